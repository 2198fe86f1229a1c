//! The `ebconnect` binary as an operator runs it: killed without warning, restarted, and stopped with SIGTERM.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{sink_yaml, unique, worker_yaml, BusCapture, ConfigDir};

fn assert_running(child: &mut std::process::Child, config: &ConfigDir, log: &str) {
    if let Some(status) = child.try_wait().unwrap() {
        let log = std::fs::read_to_string(config.dir.path().join(log)).unwrap();
        panic!("the worker exited early with {status}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_and_sigterm_stops_cleanly() {
    const RECORDS: u64 = 200;
    let topic = unique("process-kill");
    support::create_topic(&topic, 2).await;
    let capture = BusCapture::new("process-kill", &json!({"source": ["ebconnect.test.kill"]})).await;
    support::produce_numbered(&topic, RECORDS).await;
    let name = unique("kill");
    // A slow rate keeps the stream going long enough to be cut in the middle.
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
        "source: ebconnect.test.kill\ndetail: value\nrate_limit: slow",
        "",
    );
    let config = ConfigDir::new(
        &worker_yaml("rate_limits:\n  slow:\n    entries_per_second: 40\n"),
        &[("sink.yaml", &connector)],
    );
    let mut seen = BTreeSet::new();
    let mut first = support::spawn_worker(&config, "first.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 50 {
        assert!(
            Instant::now() < deadline,
            "the first run delivered only {} records",
            seen.len()
        );
        for event in capture.poll_once().await {
            seen.insert(event["detail"]["n"].as_u64().unwrap());
        }
    }
    support::signal(&first, "KILL");
    first.wait().unwrap();
    let delivered_before_kill = seen.len() as u64;
    assert!(
        delivered_before_kill < RECORDS,
        "the kill came too late to test anything"
    );

    let mut second = support::spawn_worker(&config, "second.log");
    let deadline = Instant::now() + Duration::from_secs(90);
    while (seen.len() as u64) < RECORDS {
        assert!(
            Instant::now() < deadline,
            "after the restart only {} of {RECORDS} records arrived",
            seen.len()
        );
        assert_running(&mut second, &config, "second.log");
        for event in capture.poll_once().await {
            seen.insert(event["detail"]["n"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, (0..RECORDS).collect());
    // Every event was seen, some only from the first run: the second is still reading what the first had not
    // committed. Its periodic commits reach the end offsets once it has caught up.
    let group = format!("connect-{name}");
    let end = support::end_offsets(&topic, 2);
    let deadline = Instant::now() + Duration::from_secs(90);
    while support::committed_offsets(&group, &topic, 2) != end {
        assert!(
            Instant::now() < deadline,
            "the restarted worker did not commit everything"
        );
        assert_running(&mut second, &config, "second.log");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let stopping = Instant::now();
    support::terminate(&second);
    let status = second.wait().unwrap();
    let log = std::fs::read_to_string(config.dir.path().join("second.log")).unwrap();
    assert!(status.success(), "SIGTERM must end in exit 0, got {status}:\n{log}");
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    assert!(
        log.contains("shutting down") && log.contains("ebconnect worker stopped"),
        "{log}"
    );
    assert_eq!(support::committed_offsets(&group, &topic, 2), end);
}
