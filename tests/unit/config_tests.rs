//! `ebconnect test` through the binary, on a JSON sink that needs no service: a file that holds passes; each kind of
//! mismatch fails (exit 1) with a line saying what differs; a file that cannot be used (a missing connector, an
//! expectation that is not one) is an error naming it (exit 2).

use std::path::Path;
use std::process::Command;

const WORKER: &str = "kafka:\n  bootstrap_servers: 127.0.0.1:9\n";

const CONNECTOR: &str = r#"name: audit-sink
type: eventbridge-sink
config:
  topics: [audit]
  event_bus: findings
  source: audit
  detail: value
  detail_type: {json_path: $.eventName, default: call}
  resources: [{json_path: "$.resources[*]"}]
transforms:
  - filter: {pattern: {eventSource: [s3.amazonaws.com]}}
"#;

/// A call to S3, then one to IAM: an entry, then `filtered`.
const RECORDS: &str = r#"    records:
      - value: {eventSource: s3.amazonaws.com, eventName: GetObject, resources: [arn:a, arn:b]}
      - value: {eventSource: iam.amazonaws.com, eventName: ListUsers}
"#;

/// Runs `ebconnect test` on one test file whose cases are `cases`; returns the exit code and the output.
fn run(cases: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("worker.yaml"), WORKER).unwrap();
    std::fs::write(dir.path().join("sink.yaml"), CONNECTOR).unwrap();
    let file = dir.path().join("sink-test.yaml");
    std::fs::write(
        &file,
        format!("connector: sink.yaml\nworker: worker.yaml\ntests:\n{cases}"),
    )
    .unwrap();
    run_file(&file)
}

fn run_file(file: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ebconnect"))
        .arg("test")
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn case(expect: &str) -> String {
    format!("  - name: two calls\n{RECORDS}    expect:\n{expect}")
}

#[test]
fn a_file_that_holds_passes() {
    let (code, text) = run(&case(
        "      - entry:\n          EventBusName: findings\n          Source: audit\n          DetailType: GetObject\n          Resources: [arn:a, arn:b]\n          Detail: {eventName: GetObject}\n      - filtered\n",
    ));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok    ") && text.contains("1 passed, 0 failed"), "{text}");
}

#[test]
fn each_kind_of_mismatch_fails_with_what_differs() {
    let mismatches = [
        (
            "      - entry: {DetailType: PutObject}\n      - filtered\n",
            r#"outcome 1 (entry): DetailType: expected "PutObject", got "GetObject""#,
        ),
        (
            "      - filtered\n      - filtered\n",
            "outcome 1 (filtered): expected filtered, got entry",
        ),
        (
            "      - entry: {Resources: [arn:a]}\n      - filtered\n",
            r#"outcome 1 (entry): Resources: expected ["arn:a"], got ["arn:a","arn:b"]"#,
        ),
        (
            "      - entry: {Detail: {eventName: GetObject, userName: benjamin}}\n      - filtered\n",
            r#"outcome 1 (entry): Detail.userName: expected "benjamin", absent"#,
        ),
        (
            "      - entry: {DetailType: GetObject}\n",
            "outcome 2 (filtered): not expected",
        ),
        (
            "      - entry: {}\n      - filtered\n      - filtered\n",
            "outcome 3 (filtered): expected, but the connector made no more",
        ),
        (
            "      - entry: {EventBusName: findings, Source: audit, DetailType: GetObject, Resources: [arn:a, arn:b], Detail: {eventSource: s3.amazonaws.com, eventName: GetObject, resources: [arn:a, arn:b]}}\n        exact: true\n      - filtered\n",
            "outcome 1 (entry): size: not expected, got 112",
        ),
        (
            "      - entry: {Detail: {eventName: GetObject}}\n        exact: true\n      - filtered\n",
            r#"outcome 1 (entry): Detail.eventSource: not expected, got "s3.amazonaws.com""#,
        ),
    ];
    for (expect, difference) in mismatches {
        let (code, text) = run(&case(expect));
        assert_eq!(code, 1, "{expect}\n{text}");
        assert!(text.contains("FAIL  "), "{text}");
        assert!(text.contains(difference), "expected `{difference}` in:\n{text}");
        // The outcomes as the connector made them, to compare by eye.
        assert!(text.contains("entry     Source=audit DetailType=GetObject"), "{text}");
        assert!(text.contains("0 passed, 1 failed"), "{text}");
    }
}

#[test]
fn a_file_that_cannot_be_used_is_an_error_naming_it() {
    let (code, text) = run(&case("      - entries: {}\n"));
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("test `two calls`: expect[0]: `entries` is not an outcome"),
        "{text}"
    );

    let (code, text) = run(&case("      - entry: {DetailType: GetObject, exact: true}\n"));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("`exact` goes beside `entry:`, not inside it"), "{text}");

    let (code, text) =
        run("  - name: no value\n    records:\n      - value: {}\n        value_text: x\n    expect: []\n");
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("records[0]: give one of `value`, `value_text` and `value_avro`"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("worker.yaml"), WORKER).unwrap();
    let file = dir.path().join("orphan-test.yaml");
    std::fs::write(&file, "connector: gone.yaml\nworker: worker.yaml\ntests: []\n").unwrap();
    let (code, text) = run_file(&file);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("orphan-test.yaml: connector:") && text.contains("gone.yaml"),
        "{text}"
    );

    std::fs::write(&file, "connector: gone.yaml\ntests: []\nexpected: []\n").unwrap();
    let (code, text) = run_file(&file);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("unknown field `expected`"), "{text}");
}
