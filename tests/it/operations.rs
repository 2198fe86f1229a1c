//! Operating a worker through its REST API and its connector directory, against the real stack: pause, resume,
//! stop, restart; connectors created, replaced and deleted through the API (their YAML files written); files added,
//! edited, broken and removed while the worker runs; offsets; metrics; readiness; plugins; Basic auth.

use crate::support;

use std::time::Duration;

use crate::support::{unique, worker_yaml, RunningWorker};
use serde_json::{json, Value};

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(worker_file: &str) -> Self {
        let address = worker_file
            .lines()
            .find_map(|line| line.trim().strip_prefix("listen: "))
            .unwrap()
            .to_owned();
        Self {
            client: reqwest::Client::new(),
            base: format!("http://{address}"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn state(&self, name: &str) -> Option<String> {
        let (code, text) = self.get(&format!("/connectors/{name}/status")).await;
        if code != 200 {
            return None;
        }
        let status: Value = serde_json::from_str(&text).ok()?;
        status["connector"]["state"].as_str().map(str::to_owned)
    }

    async fn wait_for_state(&self, name: &str, state: &str) {
        support::wait_for(&format!("{name} to be {state}"), Duration::from_secs(60), || async {
            (self.state(name).await.as_deref() == Some(state)).then_some(())
        })
        .await;
    }

    /// The value of one sample of the Prometheus text, e.g. `ebconnect_sink_record_send_total{connector="x"}`.
    async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
    }
}

fn sink(name: &str, topic: &str, bus: &str) -> String {
    format!("name: {name}\ntype: eventbridge-sink\nconfig:\n  topics: [{topic}]\n  event_bus: {bus}\n  batch: {{linger: 10ms}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_stop_restart_offsets_and_metrics() {
    let config = support::aws_config().await;
    let bus = unique("ops-bus");
    aws_sdk_eventbridge::Client::new(&config)
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let topic = unique("ops");
    support::create_topic(&topic, 1).await;
    support::produce_numbered(&topic, 5).await;
    let name = unique("ops");
    let worker_file = worker_yaml("");
    let api = Api::new(&worker_file);
    let worker = RunningWorker::start(&worker_file, &[("ops.yaml", &sink(&name, &topic, &bus))]);
    let sent = format!("ebconnect_sink_record_send_total{{connector=\"{name}\"}}");
    support::wait_for("5 records sent", Duration::from_secs(60), || async {
        (api.metric(&sent).await == Some(5.0)).then_some(())
    })
    .await;
    assert_eq!(
        api.metric(&format!("ebconnect_sink_record_read_total{{connector=\"{name}\"}}"))
            .await,
        Some(5.0)
    );
    assert!(api
        .metric(&format!(
            "ebconnect_putevents_duration_seconds_count{{connector=\"{name}\"}}"
        ))
        .await
        .is_some_and(|count| count >= 1.0));
    assert_eq!(
        api.metric(&format!(
            "ebconnect_connector_state{{connector=\"{name}\",state=\"RUNNING\"}}"
        ))
        .await,
        Some(1.0)
    );
    let (code, text) = api.get(&format!("/connectors/{name}/offsets")).await;
    assert_eq!(code, 200, "{text}");
    support::wait_for("the offsets to be committed", Duration::from_secs(30), || async {
        let (_, text) = api.get(&format!("/connectors/{name}/offsets")).await;
        let offsets: Value = serde_json::from_str(&text).ok()?;
        (offsets["offsets"]
            == json!([{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 5}}]))
        .then_some(())
    })
    .await;

    // Paused: records produced meanwhile wait; resumed: they go out.
    let (code, _) = api
        .call(reqwest::Method::PUT, &format!("/connectors/{name}/pause"), None)
        .await;
    assert_eq!(code, 202);
    api.wait_for_state(&name, "PAUSED").await;
    support::produce_numbered(&topic, 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.metric(&sent).await, Some(5.0), "nothing is sent while paused");
    let (code, _) = api
        .call(reqwest::Method::PUT, &format!("/connectors/{name}/resume"), None)
        .await;
    assert_eq!(code, 202);
    api.wait_for_state(&name, "RUNNING").await;
    support::wait_for("the 3 records after resume", Duration::from_secs(60), || async {
        (api.metric(&sent).await == Some(8.0)).then_some(())
    })
    .await;

    let (code, _) = api
        .call(reqwest::Method::PUT, &format!("/connectors/{name}/stop"), None)
        .await;
    assert_eq!(code, 204);
    api.wait_for_state(&name, "STOPPED").await;
    let (code, _) = api
        .call(reqwest::Method::POST, &format!("/connectors/{name}/restart"), None)
        .await;
    assert_eq!(code, 204);
    api.wait_for_state(&name, "RUNNING").await;
    let (code, _) = api.call(reqwest::Method::PUT, "/connectors/nope/pause", None).await;
    assert_eq!(code, 404);

    let (code, text) = api.get("/ready").await;
    assert_eq!(code, 200, "{text}");
    let (_, text) = api.get("/connector-plugins").await;
    let plugins: Value = serde_json::from_str(&text).unwrap();
    assert!(plugins
        .as_array()
        .unwrap()
        .contains(&json!({"class": "dev.ebconnect.EventBridgeSinkConnector", "type": "sink", "version": env!("CARGO_PKG_VERSION")})));
    worker.stop().await;
}

/// A consumer closed while its join is in flight used to stay in the group until its session timed out (its
/// LeaveGroup queued behind the JoinGroup): the group could not empty, so offsets could not change, and each later
/// join waited for it. Three restarts sent back to back, then a stop, six times over: each time the offsets change
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_in_quick_succession_leave_no_member_behind() {
    let topic = unique("quick-restarts");
    support::create_topic(&topic, 1).await;
    support::produce_numbered(&topic, 3).await;
    let name = unique("quick-restarts");
    let worker_file = worker_yaml("");
    let api = Api::new(&worker_file);
    let worker = RunningWorker::start(&worker_file, &[("quick.yaml", &sink(&name, &topic, "default"))]);
    api.wait_for_state(&name, "RUNNING").await;
    for round in 0..6 {
        for restart in ["restart", "restart?includeTasks=true", "tasks/0/restart"] {
            let (code, text) = api
                .call(reqwest::Method::POST, &format!("/connectors/{name}/{restart}"), None)
                .await;
            assert!([202, 204].contains(&code), "{restart}: {code} {text}");
        }
        api.wait_for_state(&name, "RUNNING").await;
        let (code, _) = api
            .call(reqwest::Method::PUT, &format!("/connectors/{name}/stop"), None)
            .await;
        assert_eq!(code, 204);
        api.wait_for_state(&name, "STOPPED").await;
        let offsets = json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": round}}]});
        let (code, text) = api
            .call(
                reqwest::Method::PATCH,
                &format!("/connectors/{name}/offsets"),
                Some(offsets),
            )
            .await;
        assert_eq!(code, 200, "round {round}: {text}");
        let (code, _) = api
            .call(reqwest::Method::PUT, &format!("/connectors/{name}/resume"), None)
            .await;
        assert_eq!(code, 202);
        api.wait_for_state(&name, "RUNNING").await;
    }
    worker.stop().await;
}

/// `validate` of a configuration in Kafka Connect's form reports every wrong key at once, each error on its own key,
/// as Kafka Connect does: a bad value, a value out of range and a misspelt key, beside keys that are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_each_wrong_key_of_a_flat_configuration() {
    let worker_file = worker_yaml("");
    let api = Api::new(&worker_file);
    let worker = RunningWorker::start(&worker_file, &[]);
    let (code, text) = api
        .call(
            reqwest::Method::PUT,
            "/connector-plugins/eventbridge-sink/config/validate",
            Some(json!({
                "connector.class": "eventbridge-sink", "topics": "t", "event_bus": "b",
                "batch.max_entries": "ten", "tasks.max": "0", "batch.max_entris": "1", "detail": "value",
            })),
        )
        .await;
    worker.stop().await;
    assert_eq!(code, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let errors: std::collections::BTreeMap<&str, Vec<&str>> = answer["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|config| {
            let errors: Vec<&str> = config["value"]["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|error| error.as_str().unwrap())
                .collect();
            (!errors.is_empty()).then(|| (config["value"]["name"].as_str().unwrap(), errors))
        })
        .collect();
    assert_eq!(
        errors.keys().copied().collect::<Vec<_>>(),
        ["batch.max_entries", "batch.max_entris", "tasks.max"],
        "{text}"
    );
    assert!(errors.values().all(|errors| errors.len() == 1), "{text}");
    assert!(
        errors["batch.max_entries"][0].contains("`ten` is not a whole number"),
        "{text}"
    );
    assert!(
        errors["batch.max_entris"][0].contains("unknown field `max_entris`"),
        "{text}"
    );
    assert!(
        errors["tasks.max"][0].contains("`0` is not a whole number of at least 1"),
        "{text}"
    );
    assert_eq!(answer["error_count"], 3, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_written_through_the_api_are_files_that_survive_a_restart() {
    let topic = unique("ops-write");
    support::create_topic(&topic, 1).await;
    let worker_file = worker_yaml("");
    let api = Api::new(&worker_file);
    let worker = RunningWorker::start(&worker_file, &[]);
    let name = unique("written");
    let document = json!({"name": name, "type": "eventbridge-sink", "config": {"topics": [topic], "event_bus": "b"}});

    let (code, text) = api
        .call(
            reqwest::Method::PUT,
            "/connector-plugins/eventbridge-sink/config/validate",
            Some(json!({"name": "v", "type": "eventbridge-sink", "config": {"topics": [topic]}})),
        )
        .await;
    assert_eq!(code, 200);
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error_count"], 1);
    assert!(text.contains("missing field `event_bus`"), "{text}");

    let (code, text) = api
        .call(reqwest::Method::POST, "/connectors", Some(document.clone()))
        .await;
    assert_eq!(code, 201, "{text}");
    api.wait_for_state(&name, "RUNNING").await;
    let file = worker.config.connectors().join(format!("{name}.yaml"));
    assert!(std::fs::read_to_string(&file).unwrap().contains("event_bus: b"));
    let (code, _) = api.call(reqwest::Method::POST, "/connectors", Some(document)).await;
    assert_eq!(code, 409, "a second POST of the same name conflicts");

    // A bad replacement is refused with the reason, and the file stays as it was.
    let (code, text) = api
        .call(
            reqwest::Method::PUT,
            &format!("/connectors/{name}/config"),
            Some(json!({"type": "eventbridge-sink", "config": {"topics": [topic], "event_bus": "b", "batch": {"max_entries": 50}}})),
        )
        .await;
    assert_eq!(code, 400);
    assert!(text.contains("max_entries"), "{text}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("event_bus: b"));
    let (code, text) = api
        .call(
            reqwest::Method::PUT,
            &format!("/connectors/{name}/config"),
            Some(json!({"type": "eventbridge-sink", "config": {"topics": [topic], "event_bus": "c"}})),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    let (_, text) = api.get(&format!("/connectors/{name}/config")).await;
    let config: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["event_bus"], "c");
    assert!(std::fs::read_to_string(&file).unwrap().contains("event_bus: c"));

    // The file is what a restarted worker reads.
    let loaded = ebconnect::connectors::load_connector(&file, None).unwrap();
    assert_eq!(loaded.name.as_str(), name);

    let (code, _) = api
        .call(reqwest::Method::DELETE, &format!("/connectors/{name}"), None)
        .await;
    assert_eq!(code, 204);
    assert!(!file.exists());
    support::wait_for("the connector to be gone", Duration::from_secs(30), || async {
        (api.get(&format!("/connectors/{name}")).await.0 == 404).then_some(())
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_start_restart_and_stop_exactly_their_connector() {
    let topic = unique("ops-reload");
    support::create_topic(&topic, 1).await;
    let worker_file = worker_yaml("");
    let api = Api::new(&worker_file);
    let steady = unique("steady");
    let worker = RunningWorker::start(&worker_file, &[("steady.yaml", &sink(&steady, &topic, "b"))]);
    api.wait_for_state(&steady, "RUNNING").await;
    let steady_since = worker.state(&steady).unwrap().since;
    let directory = worker.config.connectors();

    let added = unique("added");
    std::fs::write(directory.join("added.yaml"), sink(&added, &topic, "first")).unwrap();
    api.wait_for_state(&added, "RUNNING").await;

    std::fs::write(directory.join("added.yaml"), sink(&added, &topic, "second")).unwrap();
    support::wait_for("the edit to apply", Duration::from_secs(30), || async {
        let (_, text) = api.get(&format!("/connectors/{added}/config")).await;
        let config: Value = serde_json::from_str(&text).ok()?;
        (config["event_bus"] == "second").then_some(())
    })
    .await;

    // A broken edit is reported and the running version kept.
    std::fs::write(
        directory.join("added.yaml"),
        "name: broken\ntype: eventbridge-sink\nconfig: {topics: [x]}\n",
    )
    .unwrap();
    support::wait_for("the rejection to be counted", Duration::from_secs(30), || async {
        (api.metric("ebconnect_connector_file_rejections_total").await >= Some(1.0)).then_some(())
    })
    .await;
    let (_, text) = api.get(&format!("/connectors/{added}/config")).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["event_bus"], "second");
    assert_eq!(api.state(&added).await.as_deref(), Some("RUNNING"));

    std::fs::remove_file(directory.join("added.yaml")).unwrap();
    support::wait_for("the removed connector to stop", Duration::from_secs(30), || async {
        (api.get(&format!("/connectors/{added}")).await.0 == 404).then_some(())
    })
    .await;
    assert_eq!(
        worker.state(&steady).unwrap().since,
        steady_since,
        "the other connector was never restarted"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_what_is_not_ready_and_auth_guards_all_but_health() {
    let topic = unique("ops-ready");
    support::create_topic(&topic, 1).await;
    let producer = support::producer();
    support::produce(&producer, &topic, None, None, Some(b"not json"), &[]).await;
    let worker_file = worker_yaml("  basic_auth: {username: admin, password: pw}\n");
    let api = Api::new(&worker_file);
    let strict = unique("strict");
    let worker = RunningWorker::start(
        &worker_file,
        &[(
            "strict.yaml",
            &format!("name: {strict}\ntype: eventbridge-sink\nconfig:\n  topics: [{topic}]\n  event_bus: b\n  value: {{format: json}}\n"),
        )],
    );
    let (code, _) = api.get("/health").await;
    assert_eq!(code, 200, "health needs no credentials");
    let (code, _) = api.get("/connectors").await;
    assert_eq!(code, 401);
    let authed = |path: &str| {
        api.client
            .get(format!("{}{path}", api.base))
            .basic_auth("admin", Some("pw"))
            .send()
    };
    assert_eq!(authed("/connectors").await.unwrap().status().as_u16(), 200);
    let report: Value = support::wait_for(
        "readiness to report the failed connector",
        Duration::from_secs(60),
        || async {
            let response = authed("/ready").await.ok()?;
            let code = response.status().as_u16();
            let report: Value = response.json().await.ok()?;
            (code == 503 && report["problems"].to_string().contains("FAILED")).then_some(report)
        },
    )
    .await;
    assert_eq!(report["ready"], false);
    assert!(report["problems"][0].as_str().unwrap().contains(&strict), "{report}");
    worker.stop().await;
}

/// No secret in any answer: a resolved `${env:}`/`${file:}` value that librdkafka echoes in its error, and a
/// literal password in a librdkafka override, are absent from status, info, config, the expanded list and validate;
/// `[hidden]` written back is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_show_in_rest_answers() {
    let topic = unique("ops-secret");
    support::create_topic(&topic, 1).await;
    let from_env = "env-secret-4f1c9a";
    let from_file = "file-secret-8d2e7b";
    let literal = "literal-key-pass-61a0";
    std::env::set_var("EBCONNECT_TEST_PROBE_SECRET", from_env);
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), format!("{from_file}\n")).unwrap();
    let worker_file = worker_yaml("");
    let api = Api::new(&worker_file);
    let worker = RunningWorker::start(&worker_file, &[]);

    let mut names = Vec::new();
    for placeholder in [
        "${env:EBCONNECT_TEST_PROBE_SECRET}".to_owned(),
        format!("${{file:{}}}", secret_file.path().display()),
    ] {
        let name = unique("probe");
        let document = json!({"name": name, "type": "eventbridge-sink", "config": {
            "topics": [topic], "event_bus": "b",
            // An invalid value, so that librdkafka's error quotes it.
            "consumer_override": {"session.timeout.ms": placeholder, "ssl.key.password": literal},
        }});
        let (code, text) = api.call(reqwest::Method::POST, "/connectors", Some(document)).await;
        assert_eq!(code, 201, "{text}");
        names.push(name);
    }
    for name in &names {
        api.wait_for_state(name, "FAILED").await;
    }
    let mut answers = Vec::new();
    for name in &names {
        for path in [
            format!("/connectors/{name}/status"),
            format!("/connectors/{name}"),
            format!("/connectors/{name}/config"),
            format!("/connectors/{name}/tasks"),
            format!("/connectors/{name}/tasks/0/status"),
        ] {
            let (code, text) = api.get(&path).await;
            assert_eq!(code, 200, "{path}: {text}");
            answers.push((path, text));
        }
    }
    let (_, status) = &answers[0];
    assert!(
        status.contains("session.timeout.ms") && status.contains("[hidden]"),
        "the trace names the key and hides the value: {status}"
    );
    let (_, info) = &answers[1];
    assert!(
        info.contains(r#""consumer.override.ssl.key.password":"[hidden]""#),
        "{info}"
    );
    answers.push((
        "/connectors?expand=info&expand=status".into(),
        api.get("/connectors?expand=info&expand=status").await.1,
    ));
    let probe = json!({"name": "v", "type": "eventbridge-sink", "config": {
        "topics": [topic], "event_bus": 5, "consumer_override": {"session.timeout.ms": "${env:EBCONNECT_TEST_PROBE_SECRET}"},
    }});
    answers.push((
        "validate".into(),
        api.call(
            reqwest::Method::PUT,
            "/connector-plugins/eventbridge-sink/config/validate",
            Some(probe),
        )
        .await
        .1,
    ));
    // Kafka Connect's form: a literal secret and a placeholder, in validate and in a failed create.
    let flat = json!({
        "connector.class": "eventbridge-sink", "topics": topic, "event_bus": "b",
        "consumer.override.ssl.key.password": literal,
        "consumer.override.sasl.password": "${env:EBCONNECT_TEST_PROBE_SECRET}",
        "batch.max_entries": "99",
    });
    answers.push((
        "flat validate".into(),
        api.call(
            reqwest::Method::PUT,
            "/connector-plugins/eventbridge-sink/config/validate",
            Some(flat.clone()),
        )
        .await
        .1,
    ));
    answers.push((
        "flat create, refused".into(),
        api.call(
            reqwest::Method::POST,
            "/connectors",
            Some(json!({"name": "refused", "config": flat})),
        )
        .await
        .1,
    ));
    for (path, text) in &answers {
        for secret in [from_env, from_file, literal] {
            assert!(!text.contains(secret), "{path} shows a secret: {text}");
        }
    }

    let (code, text) = api.get(&format!("/connectors/{}/config", names[0])).await;
    assert_eq!(code, 200);
    let written_back: Value = serde_json::from_str(&text).unwrap();
    let (code, text) = api
        .call(
            reqwest::Method::PUT,
            &format!("/connectors/{}/config", names[0]),
            Some(written_back),
        )
        .await;
    assert_eq!(code, 400, "[hidden] written back is refused: {text}");
    assert!(text.contains("`[hidden]` is how the API shows a secret"), "{text}");
    worker.stop().await;
}

/// A body nested 100,000 flow levels deep (80 KB of YAML that took the parser minutes) is refused at once by create
/// and by validate, naming the limit, while `/health` keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_bodies_are_refused_at_once() {
    let worker_file = worker_yaml("");
    let api = Api::new(&worker_file);
    let worker = RunningWorker::start(&worker_file, &[]);
    let deep = format!(
        "name: deep\ntype: eventbridge-sink\nconfig:\n  topics: {}{}\n  event_bus: b\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let send = |method: reqwest::Method, path: &str| {
        api.client
            .request(method, format!("{}{path}", api.base))
            .header("content-type", "application/yaml")
            .body(deep.clone())
            .send()
    };
    let started = std::time::Instant::now();
    let created = send(reqwest::Method::POST, "/connectors").await.unwrap();
    assert_eq!(created.status().as_u16(), 400);
    let text = created.text().await.unwrap();
    assert!(text.contains("nested more than 64 levels deep at line 4"), "{text}");
    let validated = send(
        reqwest::Method::PUT,
        "/connector-plugins/eventbridge-sink/config/validate",
    )
    .await
    .unwrap();
    assert_eq!(
        validated.status().as_u16(),
        400,
        "a body that does not parse is refused, as Kafka Connect does"
    );
    let text = validated.text().await.unwrap();
    assert!(text.contains("nested more than 64 levels deep"), "{text}");
    // A generous bound for a debug build on a busy machine; the parser alone took minutes on this body.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(api.get("/health").await.0, 200);
    worker.stop().await;
}
