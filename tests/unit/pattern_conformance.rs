//! The pattern matcher against AWS's own implementation (aws/event-ruler): every recorded case must agree.

use ebconnect::pattern::Pattern;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/event-ruler");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

fn lines(name: &str) -> Vec<Value> {
    read(name)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn text_or_value(case: &Value, text: &str, value: &str) -> String {
    case.get(text)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| case[value].to_string())
}

fn check_matches(file: &str, expected_key: &str) -> usize {
    let mut failures = Vec::new();
    let cases = lines(file);
    for case in &cases {
        let rule = text_or_value(case, "rule_text", "rule");
        let event: Value = serde_json::from_str(&text_or_value(case, "event_text", "event")).unwrap();
        let expected = case[expected_key].as_bool().unwrap();
        match Pattern::parse(&rule) {
            Ok(pattern) if pattern.matches(&event) == expected => {}
            Ok(_) => failures.push(format!(
                "expected match={expected}: {} {rule}",
                case["name"].as_str().or(case["test"].as_str()).unwrap_or_default()
            )),
            Err(error) => failures.push(format!("rejected a valid pattern ({error}): {rule}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases in {file} disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn single_rule_cases_all_agree() {
    assert_eq!(check_matches("single-rule-cases.jsonl", "match"), 428);
}

#[test]
fn correctness_cases_all_agree() {
    assert_eq!(check_matches("correctness-cases.expected.jsonl", "expected_match"), 51);
}

#[test]
fn pattern_validation_agrees_with_the_eventbridge_compiler() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in lines("rule-validation.jsonl") {
        // The EventBridge-like compiler (JsonRuleCompiler, later keys override duplicates).
        if case["compiler"] != "JsonRuleCompiler" || case["withOverriding"] != true {
            continue;
        }
        checked += 1;
        let rule = case["rule_text"].as_str().unwrap();
        let valid = case["valid"].as_bool().unwrap();
        match (Pattern::parse(rule), valid) {
            (Ok(_), true) | (Err(_), false) => {}
            (Ok(_), false) => failures.push(format!("accepted an invalid pattern: {rule}")),
            (Err(error), true) => failures.push(format!("rejected a valid pattern ({error}): {rule}")),
        }
    }
    assert_eq!(checked, 156);
    assert!(
        failures.is_empty(),
        "{} disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn or_relationship_rules() {
    for file in ["orRelationshipRules.json", "normalRulesWithOrWording.json"] {
        let rules: Vec<Value> = serde_json::from_str(&read(file)).unwrap();
        for rule in rules {
            Pattern::from_value(&rule).unwrap_or_else(|error| panic!("{file}: {error}: {rule}"));
        }
    }
    let wrong: Vec<Value> = serde_json::from_str(&read("wrongOrRelationshipRules.json")).unwrap();
    for rule in wrong {
        assert!(Pattern::from_value(&rule).is_err(), "accepted {rule}");
    }
}

#[test]
fn arrays_match_consistently() {
    let expected: Value = serde_json::from_str(&read("arrayRules-arrayEvents.expected.json")).unwrap();
    let rules: Vec<(String, Pattern)> = (1..=3)
        .map(|n| {
            (
                format!("rule{n}"),
                Pattern::parse(&read(&format!("arrayRule{n}.json"))).unwrap(),
            )
        })
        .collect();
    for n in 1..=4 {
        let event: Value = serde_json::from_str(&read(&format!("arrayEvent{n}.json"))).unwrap();
        let matched: Vec<&str> = rules
            .iter()
            .filter(|(_, pattern)| pattern.matches(&event))
            .map(|(name, _)| name.as_str())
            .collect();
        let want: Vec<&str> = expected["events"][format!("upstream/src/test/data/arrayEvent{n}.json")]
            ["array_consistent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        assert_eq!(matched, want, "arrayEvent{n}");
    }
}

#[test]
fn a_big_event_matches() {
    let pattern = Pattern::parse(&read("bigEventRule.json")).unwrap();
    let event: Value = serde_json::from_str(&read("bigEvent.json")).unwrap();
    assert!(pattern.matches(&event));
}

/// `ebconnect test-pattern`, as `aws events test-event-pattern` behaves: `true` and 0, `false` and 1, invalid 2.
#[test]
fn the_test_pattern_command_reports_by_output_and_exit_code() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ebconnect"))
            .arg("test-pattern")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let event = r#"{"source":"aws.s3","detail":{"eventName":"GetObject","bytes":301.8}}"#;
    let (code, out, _) = run(&[
        "--pattern",
        r#"{"detail":{"bytes":[{"numeric":["=",3.018e2]}]}}"#,
        "--event",
        event,
    ]);
    assert_eq!((code, out.as_str()), (Some(0), "true\n"));
    let (code, out, _) = run(&["--pattern", r#"{"source":["aws.ec2"]}"#, "--event", event]);
    assert_eq!((code, out.as_str()), (Some(1), "false\n"));
    let (code, out, err) = run(&["--pattern", r#"{"source":[{"prefix":3}]}"#, "--event", event]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert!(
        err.contains("source[0].prefix") && err.contains("must be a string"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let pattern_file = dir.path().join("pattern.json");
    std::fs::write(&pattern_file, r#"{"detail":{"eventName":[{"prefix":"Get"}]}}"#).unwrap();
    let events_file = dir.path().join("events.jsonl");
    std::fs::write(
        &events_file,
        "{\"detail\":{\"eventName\":\"GetObject\"}}\n{\"detail\":{\"eventName\":\"PutObject\"}}\n{\"detail\":{}}\n",
    )
    .unwrap();
    let (code, out, _) = run(&[
        "--pattern",
        pattern_file.to_str().unwrap(),
        "--events",
        events_file.to_str().unwrap(),
    ]);
    assert_eq!((code, out.as_str()), (Some(0), "true\nfalse\nfalse\n"));
}
