//! `deploy/prometheus`'s alert rules: each has a unit test that expects it to fire and one that expects it to stay
//! quiet (`tests/it/alert_rules.rs` runs them with promtool; `telemetry::metrics`'s tests check the metric names).

use std::path::Path;

fn yaml(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus")
        .join(file);
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rules() -> Vec<serde_json::Value> {
    yaml("ebconnect-alerts.yaml")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let cases: Vec<serde_json::Value> = yaml("ebconnect-alerts.test.yaml")["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_array().unwrap().clone())
        .collect();
    let tested = |alert: &str, firing: bool| {
        cases.iter().any(|case| {
            case["alertname"] == alert
                && case["exp_alerts"]
                    .as_array()
                    .is_some_and(|expected| expected.is_empty() != firing)
        })
    };
    let rules = rules();
    assert_eq!(rules.len(), 6);
    for rule in rules {
        let alert = rule["alert"].as_str().unwrap();
        assert!(tested(alert, true), "no unit test expects {alert} to fire");
        assert!(tested(alert, false), "no unit test expects {alert} to stay quiet");
    }
}
