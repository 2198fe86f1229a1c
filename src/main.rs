//! The `ebconnect` command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ebconnect::aws::secrets::AwsSecrets;
use ebconnect::config::{self, LogFormat, WorkerConfig};
use ebconnect::pattern::Pattern;
use ebconnect::runtime::{shutdown_on_signal, Worker};
use ebconnect::telemetry::log_levels::{ApplyFilter, LogLevels};

/// mimalloc instead of the system allocator: the record path allocates many small, short-lived values (decoded
/// JSON, entries, request bodies) across threads, where glibc's malloc spent a quarter of the worker's CPU in the
/// sink benchmark and fragmented its memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ebconnect",
    version,
    about = "Moves events between Apache Kafka and Amazon EventBridge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker and every connector under supervision until SIGTERM or SIGINT.
    Run {
        /// The worker configuration file.
        #[arg(long, default_value = "config/worker.yaml")]
        worker: PathBuf,
        /// Connector files, or directories of `*.yaml` files.
        #[arg(long, default_value = "connectors")]
        connectors: Vec<PathBuf>,
        /// Overrides the worker file's `log_format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
        /// Threads that run the connectors; by default one for each CPU the process may use. On a machine whose
        /// CPUs other busy processes share, fewer threads hand records between them less (README "Performance").
        #[arg(long, env = "EBCONNECT_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Check configuration files and list every problem; exits non-zero if there is one.
    Validate {
        /// The worker configuration file; with it, connector settings that refer to it are checked too.
        #[arg(long)]
        worker: Option<PathBuf>,
        /// Connector files, or directories of `*.yaml` files.
        #[arg(default_value = "connectors")]
        paths: Vec<PathBuf>,
    },
    /// Print the connector file (YAML) for a Kafka Connect connector's JSON (`{name, config}`, as `POST /connectors`
    /// takes it), the AWS EventBridge sink connector's included; a key with no equivalent is an error naming it.
    ImportConnect {
        /// The worker configuration file; with it, settings that must agree with the worker are checked.
        #[arg(long)]
        worker: Option<PathBuf>,
        /// The JSON file (`-` reads standard input).
        file: PathBuf,
    },
    /// Show what a connector makes of real records, one line each: the PutEvents entry, `filtered`, or the error and
    /// where the record would go; a threshold-alert's windows and alerts; a source's Kafka record. Nothing is
    /// committed, sent or written (but with `--send`).
    Preview {
        /// The connector file.
        connector: PathBuf,
        /// The worker configuration file (Kafka, the Schema Registry, AWS).
        #[arg(long, default_value = "config/worker.yaml")]
        worker: PathBuf,
        /// A file of records, one per line: a record's value (for a source, an event as EventBridge delivers it).
        #[arg(long, conflicts_with = "topic", required_unless_present = "topic")]
        records: Option<PathBuf>,
        /// Read the records from this topic, joining no consumer group and committing nothing.
        #[arg(long)]
        topic: Option<String>,
        /// With `--topic`: the first records instead of the last.
        #[arg(long, requires = "topic")]
        from_beginning: bool,
        /// With `--topic`: how many records.
        #[arg(long, requires = "topic", default_value_t = 10)]
        limit: usize,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Send the entries to the connector's bus (an eventbridge-sink's; for a test bus).
        #[arg(long)]
        send: bool,
    },
    /// Run connector tests: each file names a connector, input records and the outcomes expected of them (as
    /// `preview --json` prints them). Exits 0 when all hold, 1 with the differences when one does not, 2 when a file
    /// cannot be used.
    Test {
        /// The worker file for test files that name none. Default: config/worker.yaml, when it exists.
        #[arg(long)]
        worker: Option<PathBuf>,
        /// Test files, or directories of `*.yaml` files.
        #[arg(default_value = "connectors/tests")]
        paths: Vec<PathBuf>,
    },
    /// Test an event pattern: prints `true` (exit 0) or `false` (exit 1); an invalid pattern exits 2.
    TestPattern {
        /// The pattern: a file, or the JSON itself.
        #[arg(long)]
        pattern: String,
        /// One event: a file, or the JSON itself.
        #[arg(long, conflicts_with = "events", required_unless_present = "events")]
        event: Option<String>,
        /// A file of events, one JSON object per line: prints `true` or `false` for each line, in order.
        #[arg(long)]
        events: Option<PathBuf>,
    },
}

/// The argument itself if it looks like JSON, else the content of the file it names.
fn json_argument(argument: &str) -> Result<String, String> {
    if argument.trim_start().starts_with(['{', '[']) {
        return Ok(argument.to_owned());
    }
    std::fs::read_to_string(argument).map_err(|error| format!("cannot read {argument}: {error}"))
}

fn test_pattern(pattern: &str, event: Option<String>, events: Option<PathBuf>) -> ExitCode {
    let pattern = match json_argument(pattern).and_then(|text| Pattern::parse(&text).map_err(|error| error.to_string()))
    {
        Ok(pattern) => pattern,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = events {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("cannot read {}: {error}", file.display());
                return ExitCode::from(2);
            }
        };
        let mut output = String::new();
        for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(event) => output.push_str(if pattern.matches(&event) { "true\n" } else { "false\n" }),
                Err(error) => {
                    print!("{output}");
                    eprintln!("{}:{}: not a JSON event: {error}", file.display(), number + 1);
                    return ExitCode::from(2);
                }
            }
        }
        print!("{output}");
        return ExitCode::SUCCESS;
    }
    let event = match event.as_deref().map(json_argument) {
        Some(Ok(text)) => text,
        Some(Err(error)) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
        None => return ExitCode::from(2),
    };
    match serde_json::from_str::<serde_json::Value>(&event) {
        Ok(event) if pattern.matches(&event) => {
            println!("true");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            println!("false");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("the event is not valid JSON: {error}");
            ExitCode::from(2)
        }
    }
}

/// The filter when `RUST_LOG` sets none (or one that does not parse).
const DEFAULT_LOG_FILTER: &str = "info,rdkafka=warn,aws_config=warn";

/// Installs the log subscriber; the returned levels change its filter at run time (`/admin/loggers`).
fn init_logging(format: LogFormat) -> LogLevels {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| tracing_subscriber::EnvFilter::try_new(directives).is_ok())
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&directives))
        .with_writer(|| ebconnect::redact::ScrubbedStderr)
        .with_ansi(std::io::stderr().is_terminal());
    fn reloading<H: Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync + 'static>(
        reload: H,
    ) -> ApplyFilter {
        Arc::new(move |directives: &str| {
            let filter = tracing_subscriber::EnvFilter::try_new(directives)
                .map_err(|error| format!("`{directives}` is not a log filter: {error}"))?;
            reload(filter)
        })
    }
    let apply = match format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            reloading(move |filter| handle.reload(filter).map_err(|error| error.to_string()))
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            reloading(move |filter| handle.reload(filter).map_err(|error| error.to_string()))
        }
    };
    LogLevels::new(&directives, apply)
}

/// Reads the worker file, its `aws` section first: with it, `${aws-secretsmanager:}` and `${aws-ssm:}` placeholders
/// in the rest of the file and in the connector files read after it are resolved.
fn load_worker(file: &std::path::Path) -> Result<(WorkerConfig, Option<Arc<AwsSecrets>>), config::ConfigError> {
    let secrets = config::load_worker_aws(file).map(|aws| AwsSecrets::new(&aws));
    if let Some(store) = &secrets {
        config::install_provider(store.clone());
    }
    config::load_worker(file).map(|worker| (worker, secrets))
}

fn import_connect(worker: Option<PathBuf>, file: &std::path::Path) -> ExitCode {
    let worker = match worker.map(|worker| load_worker(&worker).map(|(worker, _)| worker)) {
        None => None,
        Some(Ok(worker)) => Some(worker),
        Some(Err(error)) => {
            eprintln!("{}", ebconnect::redact::scrub(&error.to_string()));
            return ExitCode::from(2);
        }
    };
    use std::io::Read;
    // One byte past the limit, so that a larger document is refused by the parser's check, not read whole.
    let limit = config::MAX_DOCUMENT_BYTES as u64 + 1;
    let mut text = String::new();
    let read = if file == std::path::Path::new("-") {
        std::io::stdin().take(limit).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|opened| opened.take(limit).read_to_string(&mut text))
    };
    let text = read.map(|_| text);
    let text = match text {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{}: cannot read: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    match ebconnect::connectors::import_connect(&text, worker.as_ref()) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{}: {}", file.display(), ebconnect::redact::scrub(&message));
            ExitCode::FAILURE
        }
    }
}

fn validate(worker: Option<PathBuf>, paths: Vec<PathBuf>) -> ExitCode {
    let mut failed = false;
    let worker = match worker.map(|file| (load_worker(&file).map(|(worker, _)| worker), file)) {
        None => None,
        Some((Ok(worker), file)) => {
            println!("ok     {} (worker)", file.display());
            Some(worker)
        }
        Some((Err(error), _)) => {
            println!("error  {}", ebconnect::redact::scrub(&error.to_string()));
            failed = true;
            None
        }
    };
    let (connectors, errors) = ebconnect::connectors::load_connectors(&paths, worker.as_ref());
    for connector in &connectors {
        println!(
            "ok     {} (connector `{}`, type {})",
            connector.file.display(),
            connector.name,
            connector.kind.as_str()
        );
    }
    for error in &errors {
        println!("error  {}", ebconnect::redact::scrub(&error.to_string()));
    }
    if connectors.is_empty() && errors.is_empty() {
        println!("error  no connector files (*.yaml, *.yml) in {paths:?}");
        failed = true;
    }
    if failed || !errors.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn run(worker_file: PathBuf, connector_paths: Vec<PathBuf>, log_format: Option<LogFormat>) -> ExitCode {
    ebconnect::redact::record_environment_credentials();
    let (worker, secrets) = match load_worker(&worker_file) {
        Ok(loaded) => loaded,
        Err(error) => {
            init_logging(log_format.unwrap_or_default());
            tracing::error!(%error, "invalid worker configuration");
            return ExitCode::FAILURE;
        }
    };
    let log_levels = init_logging(log_format.unwrap_or(worker.log_format));
    let connector_paths = if worker.reads_connector_files() {
        connector_paths
    } else {
        Vec::new()
    };
    let (connectors, errors) = ebconnect::connectors::load_connectors(&connector_paths, Some(&worker));
    if !errors.is_empty() {
        for error in &errors {
            tracing::error!(%error, "invalid connector configuration");
        }
        return ExitCode::FAILURE;
    }
    tracing::info!(
        worker_id = %worker.worker_id(),
        version = env!("CARGO_PKG_VERSION"),
        connectors = connectors.len(),
        threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "ebconnect worker starting"
    );
    let shutdown = match shutdown_on_signal(worker.shutdown_timeout) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let mut worker = Worker::new(worker, connectors)
        .watching(connector_paths)
        .with_log_levels(log_levels);
    if let Some(secrets) = secrets {
        worker = worker.with_secrets(secrets, worker_file);
    }
    match worker.run(shutdown).await {
        Ok(()) => {
            tracing::info!("ebconnect worker stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "ebconnect worker stopped uncleanly");
            ExitCode::FAILURE
        }
    }
}

/// Runs `task` on a multi-threaded runtime, as the worker runs its connectors.
fn block_on(task: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    block_on_threads(None, task)
}

/// Runs `task` on a runtime of `threads` worker threads, or tokio's default (one per CPU).
fn block_on_threads(threads: Option<u16>, task: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(usize::from(threads));
    }
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(task),
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

fn preview(worker: &std::path::Path, options: ebconnect::tools::preview::Options) -> ExitCode {
    let worker = match load_worker(worker) {
        Ok((worker, _)) => worker,
        Err(error) => {
            eprintln!("{}", ebconnect::redact::scrub(&error.to_string()));
            return ExitCode::from(2);
        }
    };
    block_on(ebconnect::tools::preview::run(options, &worker))
}

fn config_tests(worker: Option<PathBuf>, paths: Vec<PathBuf>) -> ExitCode {
    let default_file = PathBuf::from("config/worker.yaml");
    // Read only for the test files that name no worker of their own.
    let worker = worker.or_else(|| default_file.is_file().then_some(default_file));
    let loader = |file: &std::path::Path| {
        load_worker(file)
            .map(|(worker, _)| worker)
            .map_err(|error| error.to_string())
    };
    block_on(ebconnect::tools::config_test::run(&paths, worker.as_deref(), &loader))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Preview {
            connector,
            worker,
            records,
            topic,
            from_beginning,
            limit,
            json,
            send,
        } => {
            use ebconnect::tools::preview::{Input, Options, Peek};
            let input = match (records, topic) {
                (Some(file), _) => Input::File(file),
                (None, Some(topic)) => Input::Topic {
                    topic,
                    peek: if from_beginning {
                        Peek::FromBeginning { limit }
                    } else {
                        Peek::Latest { limit }
                    },
                },
                // clap requires one of the two.
                (None, None) => return ExitCode::from(2),
            };
            preview(
                &worker,
                Options {
                    connector,
                    input,
                    json,
                    send,
                },
            )
        }
        Command::Validate { worker, paths } => validate(worker, paths),
        Command::Test { worker, paths } => config_tests(worker, paths),
        Command::ImportConnect { worker, file } => import_connect(worker, &file),
        Command::TestPattern { pattern, event, events } => test_pattern(&pattern, event, events),
        Command::Run {
            worker,
            connectors,
            log_format,
            threads,
        } => block_on_threads(threads, run(worker, connectors, log_format)),
    }
}
