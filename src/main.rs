//! The `ebconnect` command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ebconnect::config::{self, LogFormat};
use ebconnect::runtime::{shutdown_on_signal, Worker};

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
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn,aws_config=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn validate(worker: Option<PathBuf>, paths: Vec<PathBuf>) -> ExitCode {
    let mut failed = false;
    let worker = match worker.map(|file| (config::load_worker(&file), file)) {
        None => None,
        Some((Ok(worker), file)) => {
            println!("ok     {} (worker)", file.display());
            Some(worker)
        }
        Some((Err(error), _)) => {
            println!("error  {error}");
            failed = true;
            None
        }
    };
    let (connectors, errors) = config::load_connectors(&paths, worker.as_ref());
    for connector in &connectors {
        println!(
            "ok     {} (connector `{}`, type {})",
            connector.file.display(),
            connector.name,
            connector.kind.as_str()
        );
    }
    for error in &errors {
        println!("error  {error}");
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
    let worker = match config::load_worker(&worker_file) {
        Ok(worker) => worker,
        Err(error) => {
            init_logging(log_format.unwrap_or_default());
            tracing::error!(%error, "invalid worker configuration");
            return ExitCode::FAILURE;
        }
    };
    init_logging(log_format.unwrap_or(worker.log_format));
    let (connectors, errors) = config::load_connectors(&connector_paths, Some(&worker));
    if !errors.is_empty() {
        for error in &errors {
            tracing::error!(%error, "invalid connector configuration");
        }
        return ExitCode::FAILURE;
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        connectors = connectors.len(),
        "ebconnect worker starting"
    );
    let shutdown = match shutdown_on_signal(worker.shutdown_timeout) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    match Worker::new(worker, connectors).run(shutdown).await {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { worker, paths } => validate(worker, paths),
        Command::Run {
            worker,
            connectors,
            log_format,
        } => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run(worker, connectors, log_format)),
            Err(error) => {
                eprintln!("cannot start the async runtime: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
