//! `deploy/prometheus/ebconnect-alerts.yaml` as Prometheus reads it: `promtool check rules`, then
//! `promtool test rules` on its unit tests, a firing and a quiet case for each alert (promtool comes with the stack,
//! from Debian's prometheus package).

use std::path::Path;
use std::process::Command;

fn promtool(arguments: &[&str]) -> String {
    let promtool = std::env::var("EBCONNECT_PROMTOOL").unwrap_or_else(|_| {
        panic!("EBCONNECT_PROMTOOL is not set: run `eval \"$(scripts/stack env)\"`, or `make test`")
    });
    let output = Command::new(&promtool)
        .args(arguments)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus"))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {promtool}: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {arguments:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_load_and_pass_their_unit_tests() {
    let checked = promtool(&["check", "rules", "ebconnect-alerts.yaml"]);
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "ebconnect-alerts.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}
