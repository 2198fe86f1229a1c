//! The `ebconnect` binary as an operator runs it: killed without warning, restarted, and stopped with SIGTERM.

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{sink_yaml, unique, worker_yaml, BusCapture, ConfigDir};
use serde_json::json;

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
    // Both partitions hold records, so that the commit checks cover each.
    support::produce_numbered_across(&topic, RECORDS, 2).await;
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

    // The second run on one thread (`--threads` from the environment), which must do everything the default does.
    let mut second = support::spawn_worker_with_env(&config, "second.log", &[("EBCONNECT_THREADS", "1")]);
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
    // One runtime thread for each CPU by default, one when asked.
    let cpus = std::thread::available_parallelism().unwrap();
    for (log, threads) in [("first.log", cpus.get()), ("second.log", 1)] {
        let log = std::fs::read_to_string(config.dir.path().join(log)).unwrap();
        assert!(
            log.lines().any(
                |line| line.contains("ebconnect worker starting") && line.ends_with(&format!(" threads={threads}"))
            ),
            "{log}"
        );
    }
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

/// The source, killed without warning while it works through a queue, and restarted: every message reaches Kafka
/// (some perhaps twice), and the queue ends empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_sigkill_loses_no_message() {
    const MESSAGES: usize = 100;
    let sqs = aws_sdk_sqs::Client::new(&support::aws_config().await);
    let queue_url = support::create_queue(&sqs, &unique("process-source")).await;
    for batch in 0..MESSAGES / 10 {
        let mut request = sqs.send_message_batch().queue_url(&queue_url);
        for n in batch * 10..batch * 10 + 10 {
            let body = json!({"id": format!("event-{n}"), "source": "custom", "detail": {"n": n}}).to_string();
            request = request.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(body)
                    .build()
                    .unwrap(),
            );
        }
        request.send().await.unwrap();
    }
    let topic = unique("process-source");
    support::create_topic(&topic, 1).await;
    let name = unique("source-kill");
    // A slow producer (each write waits for its batch) keeps the work going long enough to be cut in the middle;
    // a short visibility timeout brings unfinished messages back soon after the kill.
    let connector = format!(
        "name: {name}\ntype: eventbridge-source\nconfig:\n  queue_url: {queue_url}\n  topic: {topic}\n  wait_time: 1s\n  visibility_timeout: 3s\n  producer_override:\n    linger.ms: '400'\n"
    );
    let config = ConfigDir::new(&worker_yaml(""), &[("source.yaml", &connector)]);
    let mut first = support::spawn_worker(&config, "first.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while support::end_offsets(&topic, 1)[&0] < 20 {
        assert!(Instant::now() < deadline, "the first run wrote too little");
        assert_running(&mut first, &config, "first.log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    support::signal(&first, "KILL");
    first.wait().unwrap();
    assert!(
        support::end_offsets(&topic, 1)[&0] < MESSAGES as i64,
        "the kill came too late to test anything"
    );

    let mut second = support::spawn_worker(&config, "second.log");
    let deadline = Instant::now() + Duration::from_secs(90);
    let ids = loop {
        assert!(
            Instant::now() < deadline,
            "after the restart not every message reached Kafka"
        );
        assert_running(&mut second, &config, "second.log");
        let written = support::end_offsets(&topic, 1)[&0] as usize;
        if written >= MESSAGES {
            let topic = topic.clone();
            let records =
                tokio::task::spawn_blocking(move || support::consume_all(&topic, written, Duration::from_secs(30)))
                    .await
                    .unwrap();
            let ids: std::collections::BTreeSet<String> = records
                .iter()
                .map(|record| String::from_utf8(record.key.clone().unwrap()).unwrap())
                .collect();
            if ids.len() == MESSAGES {
                break ids;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(ids, (0..MESSAGES).map(|n| format!("event-{n}")).collect());
    // Everything written is deleted: the queue empties.
    support::wait_for("the queue to be drained", Duration::from_secs(30), || async {
        support::queue_is_empty(&sqs, &queue_url).await.then_some(())
    })
    .await;
    support::terminate(&second);
    assert!(second.wait().unwrap().success(), "SIGTERM must end in exit 0");
}

/// The log at its most verbose (trace, where the AWS SDK prints the credentials it signs with, access key id in
/// clear): no credential from the environment and no resolved `${env:}` value shows, while the records still flow
/// and the invalid override is still named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_log_shows_no_secret() {
    let access_key_id = "AKIAPROBE7Q3N5X2W8Z1";
    let secret_access_key = "probe-secret-access-key-0c9f4e";
    let from_env = "probe-env-value-5b71d2";
    let topic = unique("process-log");
    support::create_topic(&topic, 1).await;
    let capture = BusCapture::new("process-log", &json!({"source": ["ebconnect.test.log"]})).await;
    support::produce_numbered(&topic, 5).await;
    let delivering = sink_yaml(
        &unique("log"),
        &topic,
        &capture.bus,
        "source: ebconnect.test.log\ndetail: value",
        "",
    );
    let echoing = format!(
        "name: {}\ntype: eventbridge-sink\nconfig:\n  topics: [{topic}]\n  event_bus: b\n  consumer_override:\n    session.timeout.ms: ${{env:EBCONNECT_TEST_LOG_PROBE}}\n",
        unique("log-echo")
    );
    let config = ConfigDir::new(
        &worker_yaml(""),
        &[("delivering.yaml", &delivering), ("echoing.yaml", &echoing)],
    );
    let log_path = config.dir.path().join("trace.log");
    let mut child = support::spawn_worker_with_env(
        &config,
        "trace.log",
        &[
            ("RUST_LOG", "trace"),
            ("AWS_ACCESS_KEY_ID", access_key_id),
            ("AWS_SECRET_ACCESS_KEY", secret_access_key),
            ("EBCONNECT_TEST_LOG_PROBE", from_env),
        ],
    );
    let events = capture.receive(5, Duration::from_secs(60)).await;
    assert_eq!(events.len(), 5);
    support::wait_for("the invalid override to be logged", Duration::from_secs(60), || async {
        let log = std::fs::read_to_string(&log_path).unwrap();
        log.contains("session.timeout.ms").then_some(())
    })
    .await;
    assert_running(&mut child, &config, "trace.log");
    support::terminate(&child);
    assert!(child.wait().unwrap().success(), "SIGTERM must end in exit 0");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("[hidden]"), "the echoed value is shown hidden");
    for secret in [access_key_id, secret_access_key, from_env] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}

/// SIGTERM against a slow endpoint (every PutEvents takes 2 s): the worker sends nothing new, waits only for the
/// requests already out, commits what they settled and exits 0 within a few seconds, instead of draining its whole
/// buffer. The next run sends the rest, and no record EventBridge acknowledged is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_only_for_requests_in_flight() {
    const RECORDS: usize = 2_000;
    let server = support::fault_server::FaultServer::start(support::fault_server::Faults {
        latency: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let topic = unique("process-term");
    support::create_topic(&topic, 2).await;
    support::produce_numbered(&topic, RECORDS as u64).await;
    let name = unique("term");
    let connector = sink_yaml(&name, &topic, "fault-bus", "detail: value", "");
    let config = ConfigDir::new(
        &support::worker_yaml_with_endpoint(&server.url, ""),
        &[("sink.yaml", &connector)],
    );
    let acknowledged = || server.observed.lock().unwrap().acknowledged.len();
    let mut first = support::spawn_worker(&config, "first.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged() == 0 {
        assert!(Instant::now() < deadline, "the first run delivered nothing");
        assert_running(&mut first, &config, "first.log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    support::terminate(&first);
    let status = first.wait().unwrap();
    let took = stopping.elapsed();
    let log = std::fs::read_to_string(config.dir.path().join("first.log")).unwrap();
    assert!(status.success(), "SIGTERM must end in exit 0, got {status}:\n{log}");
    assert!(
        took < Duration::from_secs(6),
        "shutdown took {took:?}: it should wait only for the 2 s requests already out\n{log}"
    );
    let delivered_first = acknowledged();
    assert!(
        delivered_first < RECORDS,
        "the first run delivered everything before it stopped"
    );

    let mut second = support::spawn_worker(&config, "second.log");
    let deadline = Instant::now() + Duration::from_secs(90);
    while acknowledged() < RECORDS {
        assert!(
            Instant::now() < deadline,
            "after the restart only {} of {RECORDS} records arrived",
            acknowledged()
        );
        assert_running(&mut second, &config, "second.log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    support::terminate(&second);
    assert!(second.wait().unwrap().success(), "SIGTERM must end in exit 0");
    let observed = server.observed.lock().unwrap();
    assert_eq!(
        observed.resent_after_ack, 0,
        "records acknowledged before the SIGTERM were sent again"
    );
    assert!(observed.acknowledged.values().all(|count| *count == 1));
}

/// The worker's peak memory (`VmHWM`), in MiB.
fn peak_rss_mib(child: &std::process::Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

/// The receiver under hostile clients, at its defaults: four 15 MiB `records:batch` bodies of empty entries at once,
/// 500 connections each announcing a 1 MB record and sending a fifth of it, and a client sending its headers a
/// byte a second. The batches are refused, the slow bodies beyond the memory budget get 503, the slow headers are
/// cut off, the worker's peak memory stays under 256 MiB (it reached 1.9 GiB before the limits), and once the slow
/// clients are gone an ordinary request goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_stays_small_under_hostile_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let topic = unique("process-hostile");
    support::create_topic(&topic, 1).await;
    let address = support::rest_address();
    let connector = format!(
        "name: {}\ntype: rest-produce-receiver\nconfig:\n  listen: {address}\n  topics: [{topic}]\n  auth:\n    api_key: hostile-key\n    api_secret: hostile-secret\n",
        unique("hostile")
    );
    let config = ConfigDir::new(&worker_yaml(""), &[("receiver.yaml", &connector)]);
    let mut child = support::spawn_worker(&config, "worker.log");
    support::wait_for("the receiver to listen", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(address).await.ok()
    })
    .await;
    let url = format!("http://{address}/kafka/v3/clusters/ebconnect/topics/{topic}/records");
    let client = reqwest::Client::new();
    let post = |path: String, body: Vec<u8>| {
        client
            .post(path)
            .basic_auth("hostile-key", Some("hostile-secret"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let mut batch = b"{\"entries\":[".to_vec();
    while batch.len() < 15 << 20 {
        batch.extend_from_slice(b"{},");
    }
    batch.extend_from_slice(b"{}]}");
    let batches = (0..4).map(|_| post(format!("{url}:batch"), batch.clone()));
    for answer in futures::future::join_all(batches).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status().as_u16(), 413, "{}", answer.text().await.unwrap());
    }

    let request_head = format!(
        "POST /kafka/v3/clusters/ebconnect/topics/{topic}/records HTTP/1.1\r\nhost: {address}\r\nauthorization: Basic aG9zdGlsZS1rZXk6aG9zdGlsZS1zZWNyZXQ=\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n"
    );
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request_head.as_bytes()).await.unwrap();
        stream.write_all(&[b' '; 200_000]).await.unwrap();
        slow.push(stream);
    }
    // Those beyond the budget are answered 503 at once; the others wait for the rest of their bodies.
    let mut refused = 0;
    for stream in &mut slow {
        let mut answer = [0u8; 12];
        if let Ok(Ok(12)) = tokio::time::timeout(Duration::from_millis(20), stream.read_exact(&mut answer)).await {
            assert_eq!(&answer, b"HTTP/1.1 503", "{}", String::from_utf8_lossy(&answer));
            refused += 1;
        }
    }
    // 64 MiB of budget holds about 335 of the 200 KB bodies.
    assert!(refused >= 100, "only {refused} of 500 slow bodies were refused");

    let mut slowloris = tokio::net::TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    let cut_off = loop {
        if slowloris.write_all(b"P").await.is_err() {
            break started.elapsed();
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(1), slowloris.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => break started.elapsed(),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "slow headers were never cut off"
        );
    };
    assert!(
        cut_off < Duration::from_secs(15),
        "slow headers were cut off only after {cut_off:?}"
    );

    assert_running(&mut child, &config, "worker.log");
    let peak = peak_rss_mib(&child);
    drop(slow);
    support::wait_for("an ordinary request to go through", Duration::from_secs(10), || async {
        let ordinary = post(
            url.clone(),
            br#"{"value": {"type": "JSON", "data": {"ok": true}}}"#.to_vec(),
        )
        .await
        .unwrap();
        (ordinary.status().as_u16() == 200).then_some(())
    })
    .await;
    support::terminate(&child);
    assert!(child.wait().unwrap().success(), "SIGTERM must end in exit 0");
    assert!(peak <= 256, "the worker's memory peaked at {peak} MiB");
}

/// Reads the next datagram from the notify socket as its `KEY=value` lines.
fn next_notification(socket: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut buffer = [0; 4096];
    let length = socket
        .recv(&mut buffer)
        .expect("a notification within the socket's timeout");
    String::from_utf8_lossy(&buffer[..length])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Under systemd (`Type=notify` with `WatchdogSec=`), through the `NOTIFY_SOCKET` datagram socket: no READY=1 while a
/// connector cannot start (a receiver whose port the test holds), READY=1 once both connectors run (the receiver's
/// port then accepts connections), WATCHDOG=1 at half of `WATCHDOG_USEC`, STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_systemd_when_it_is_ready_alive_and_stopping() {
    let topic = unique("process-systemd");
    support::create_topic(&topic, 1).await;
    let name = unique("systemd");
    let connector = sink_yaml(
        &name,
        &topic,
        "default",
        "source: ebconnect.test.systemd\ndetail: value",
        "",
    );
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let receiver = format!(
        "name: {name}-receiver\ntype: rest-produce-receiver\nconfig:\n  listen: 127.0.0.1:{port}\n  topics: [{topic}]\n"
    );
    // Restarted for as long as the port is held.
    let worker = worker_yaml("").replace("max_restarts: 3", "max_restarts: 100");
    let config = ConfigDir::new(&worker, &[("sink.yaml", &connector), ("receiver.yaml", &receiver)]);
    let socket_path = config.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut worker = support::spawn_worker_with_env(
        &config,
        "worker.log",
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let holding = Instant::now();
    let mut states = Vec::new();
    while holding.elapsed() < Duration::from_secs(3) {
        let lines = tokio::task::block_in_place(|| next_notification(&socket));
        assert!(
            !lines.iter().any(|line| line == "READY=1"),
            "READY=1 while the receiver cannot bind: {lines:?}"
        );
        states.extend(lines.into_iter().filter(|line| line.starts_with("STATUS=")));
        assert_running(&mut worker, &config, "worker.log");
    }
    assert!(states.iter().any(|line| line.contains("FAILED")), "{states:?}");
    drop(held);
    let status_url = format!("http://{}/connectors/{name}/status", config.rest_address());
    loop {
        let lines = tokio::task::block_in_place(|| next_notification(&socket));
        if lines.iter().any(|line| line == "READY=1") {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                "READY=1 before the receiver listened"
            );
            let status: serde_json::Value = reqwest::get(&status_url).await.unwrap().json().await.unwrap();
            assert_eq!(
                status["connector"]["state"], "RUNNING",
                "READY=1 before the connector ran"
            );
            assert!(
                lines.iter().any(|line| line == "STATUS=2 connectors: 2 RUNNING"),
                "{lines:?}"
            );
            break;
        }
        assert_running(&mut worker, &config, "worker.log");
    }

    let watching = Instant::now();
    let mut watchdogs = 0;
    while watching.elapsed() < Duration::from_millis(2_200) {
        let lines = tokio::task::block_in_place(|| next_notification(&socket));
        watchdogs += lines.iter().filter(|line| *line == "WATCHDOG=1").count();
    }
    assert!(
        (3..=6).contains(&watchdogs),
        "{watchdogs} WATCHDOG=1 in 2.2 s at a 1 s watchdog"
    );

    support::terminate(&worker);
    loop {
        let lines = tokio::task::block_in_place(|| next_notification(&socket));
        if lines.iter().any(|line| line == "STOPPING=1") {
            break;
        }
    }
    assert!(worker.wait().unwrap().success());
}
