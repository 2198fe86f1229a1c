//! How the sink reaches PutEvents from what the process's environment says, as an operator sets it: the platform's
//! trust store (`SSL_CERT_FILE`) for an HTTPS endpoint, and a proxy from `HTTPS_PROXY` unless `NO_PROXY` exempts
//! the endpoint. The endpoint is moto itself serving TLS with the stack's certificate (for 127.0.0.1), and the proxy
//! is proxy.py, a real HTTP proxy from PyPI that the stack installs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, sink_yaml, stack, unique, worker_yaml_with_endpoint, ConfigDir};

/// Every variable reqwest and hyper-util read a proxy from, in both cases: the runs below set only what they test.
const PROXY_VARIABLES: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A child process of the test's own, killed when the test ends however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn venv_bin(name: &str) -> PathBuf {
    Path::new(&stack("EBCONNECT_STACK_PYTHON")).with_file_name(name)
}

fn wait_for_port(port: u16, daemon: &mut Daemon, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!(
                "{} exited with {status}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// moto on a port of its own, serving HTTPS with the certificate the stack made for 127.0.0.1.
fn moto_over_tls(dir: &Path) -> (Daemon, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tls = PathBuf::from(stack("KAFKA_TLS_DIR"));
    let log = dir.join("moto.log");
    let child = Command::new(venv_bin("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .arg("--ssl-cert")
        .arg(tls.join("broker.pem"))
        .arg("--ssl-key")
        .arg(tls.join("broker.key"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    wait_for_port(port, &mut daemon, &log);
    (daemon, format!("https://127.0.0.1:{port}"))
}

/// proxy.py on a port it picks, logging each request it carries to `proxy.log`.
fn proxy(dir: &Path) -> (Daemon, u16, PathBuf) {
    let port_file = dir.join("proxy.port");
    let log = dir.join("proxy.log");
    let child = Command::new(stack("EBCONNECT_STACK_PYTHON"))
        .args([
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--num-acceptors",
            "1",
        ])
        .args(["--num-workers", "1", "--port-file"])
        .arg(&port_file)
        .arg("--log-file")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            break port;
        }
        assert!(Instant::now() < deadline, "proxy.py wrote no port");
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_for_port(port, &mut daemon, &log);
    (daemon, port, log)
}

fn spawn(config: &ConfigDir, log: &str, variables: &[(&str, &str)]) -> Child {
    let mut command = support::worker_command(config, log);
    for variable in PROXY_VARIABLES {
        command.env_remove(variable);
    }
    // The log at its default level, as an operator reads it.
    command.env_remove("RUST_LOG");
    command.envs(variables.iter().copied()).spawn().unwrap()
}

/// Waits until the worker has committed everything `topic` holds: each record has had EventBridge's success.
async fn wait_for_commits(group: &str, topic: &str, worker: &mut Child, config: &ConfigDir, log: &str) {
    let end = support::end_offsets(topic, 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while support::committed_offsets(group, topic, 1) != end {
        if let Some(status) = worker.try_wait().unwrap() {
            panic!(
                "the worker exited with {status}:\n{}",
                std::fs::read_to_string(config.dir.path().join(log)).unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not everything was delivered:\n{}",
            std::fs::read_to_string(config.dir.path().join(log)).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_events_over_tls_checks_the_certificate_and_goes_through_the_proxy_the_environment_names() {
    let scratch = tempfile::tempdir().unwrap();
    let (_moto, endpoint) = moto_over_tls(scratch.path());
    let (_proxy, proxy_port, proxy_log) = proxy(scratch.path());
    let tls = PathBuf::from(stack("KAFKA_TLS_DIR"));
    let (trusted, stranger) = (tls.join("ca.pem"), tls.join("other-ca.pem"));
    let (trusted, stranger) = (trusted.to_str().unwrap(), stranger.to_str().unwrap());

    let topic = unique("transport");
    support::create_topic(&topic, 1).await;
    support::produce_numbered(&topic, 20).await;
    let name = unique("transport");
    let group = format!("connect-{name}");
    let config = ConfigDir::new(
        &worker_yaml_with_endpoint(&endpoint, ""),
        &[(
            "sink.yaml",
            &sink_yaml(
                &name,
                &topic,
                "default",
                "source: ebconnect.test.transport\ndetail: value",
                "",
            ),
        )],
    );

    // A certificate from a CA the platform's store does not hold: refused, nothing delivered or committed, and a
    // warning with the reason.
    let mut refused = spawn(&config, "refused.log", &[("SSL_CERT_FILE", stranger)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(config.dir.path().join("refused.log")).unwrap();
        if let Some(warning) = log
            .lines()
            .find(|line| line.contains("PutEvents requests keep failing"))
        {
            assert!(warning.contains("WARN") && warning.contains("UnknownIssuer"), "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "no warning of the failing requests:\n{log}");
        assert!(refused.try_wait().unwrap().is_none(), "{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    support::signal(&refused, "KILL");
    refused.wait().unwrap();
    assert!(support::committed_offsets(&group, &topic, 1).is_empty());

    // Trusted, through the proxy: it carried a CONNECT to the endpoint, and every record arrived.
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let mut proxied = spawn(
        &config,
        "proxied.log",
        &[("SSL_CERT_FILE", trusted), ("HTTPS_PROXY", &proxy_url)],
    );
    wait_for_commits(&group, &topic, &mut proxied, &config, "proxied.log").await;
    support::terminate(&proxied);
    proxied.wait().unwrap();
    let authority = endpoint.trim_start_matches("https://");
    let carried = std::fs::read_to_string(&proxy_log).unwrap();
    assert!(carried.contains(&format!("CONNECT {authority}")), "{carried}");

    // `NO_PROXY` exempts the endpoint: straight to it, past a proxy that is not there.
    support::produce_numbered(&topic, 20).await;
    let mut direct = spawn(
        &config,
        "direct.log",
        &[
            ("SSL_CERT_FILE", trusted),
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
            ("NO_PROXY", "127.0.0.1"),
        ],
    );
    wait_for_commits(&group, &topic, &mut direct, &config, "direct.log").await;
    support::terminate(&direct);
    direct.wait().unwrap();
}
