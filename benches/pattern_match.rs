//! Matching a real CloudTrail event (as EventBridge delivers it) against compiled patterns, in nanoseconds per
//! match. A plain timing loop: the median of several rounds of many matches.
//!
//!     cargo bench --bench pattern_match

use std::hint::black_box;
use std::time::Instant;

use ebconnect::pattern::Pattern;
use serde_json::Value;

fn nanos_per_match(pattern: &Pattern, event: &Value) -> f64 {
    const MATCHES: u32 = 1_000_000;
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..MATCHES {
                black_box(pattern.matches(black_box(event)));
            }
            started.elapsed().as_nanos() as f64 / f64::from(MATCHES)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn main() {
    let event: Value = serde_json::from_str(include_str!(
        "../tests/fixtures/eventbridge/02_awsdocs_signin_ConsoleLogin.json"
    ))
    .unwrap();
    let patterns = [
        (
            "simple: detail-type",
            r#"{"detail-type": ["AWS Console Sign In via CloudTrail"]}"#,
        ),
        (
            "cloudtrail: source + nested exact",
            r#"{"source": ["aws.signin"], "detail": {"eventName": ["ConsoleLogin"]}}"#,
        ),
        (
            "reference setup: anything-but lists",
            r#"{"detail-type": ["AWS Console Sign In via CloudTrail"], "detail": {"userIdentity": {"type": [{"anything-but": "AWSService"}]}, "eventSource": [{"anything-but": ["sts.amazonaws.com", "ssm.amazonaws.com"]}]}}"#,
        ),
        (
            "prefix + cidr + exists",
            r#"{"detail": {"eventName": [{"prefix": "Console"}], "sourceIPAddress": [{"cidr": "0.0.0.0/0"}], "errorCode": [{"exists": false}]}}"#,
        ),
        (
            "no match: first field differs",
            r#"{"source": ["aws.s3"], "detail": {"eventName": ["ConsoleLogin"]}}"#,
        ),
    ];
    println!("pattern_match: ns per match against a CloudTrail ConsoleLogin event (median of 7 x 1M)");
    for (name, text) in patterns {
        let pattern = Pattern::parse(text).unwrap();
        let nanos = nanos_per_match(&pattern, &event);
        println!("  {nanos:8.1} ns  {name} (matches: {})", pattern.matches(&event));
    }
}
