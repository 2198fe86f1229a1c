//! Runs one connector: starts it, watches it, restarts it after a failure with bounded exponential backoff, and
//! stops it on shutdown. The connector itself is built anew for every attempt by a factory, so a restart starts
//! from committed state, never from whatever the failed attempt left in memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::config::{ConnectorName, RestartPolicy};
use crate::connectors::{BoxError, Connector, ConnectorContext, Progress, Started};
use crate::error_chain;
use crate::runtime::status::{ConnectorState, StatusRegistry};
use crate::telemetry::{
    emit, ConnectorFailed, ConnectorGaveUp, ConnectorRestartScheduled, ConnectorStarted, ConnectorStopped,
};

/// Builds a fresh connector for each attempt.
pub(crate) type ConnectorFactory = Arc<dyn Fn() -> Result<Box<dyn Connector>, BoxError> + Send + Sync>;

pub(crate) struct Supervisor {
    pub(crate) name: ConnectorName,
    pub(crate) kind: &'static str,
    pub(crate) factory: ConnectorFactory,
    pub(crate) policy: RestartPolicy,
    pub(crate) status: StatusRegistry,
    /// The worker's shutdown, of which the token `run` is given is a child.
    pub(crate) worker_shutdown: CancellationToken,
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "connector panicked".to_owned()
    }
}

/// The delay before restart number `failures` (1-based): doubles from `initial_backoff`, capped at `max_backoff`.
pub(crate) fn backoff(policy: &RestartPolicy, failures: u32) -> Duration {
    crate::backoff::ceiling(policy.initial_backoff, policy.max_backoff, failures)
}

impl Supervisor {
    /// What the connector calls once it has started: it is RUNNING from then.
    fn started(&self, attempt: u32, consecutive_failures: u32) -> Started {
        let status = self.status.clone();
        let name = self.name.clone();
        let kind = self.kind;
        Started::new(move || {
            status.set(&name, ConnectorState::Running, None, consecutive_failures);
            emit(ConnectorStarted {
                connector: name.as_str(),
                kind,
                attempt,
            });
        })
    }

    /// Runs until `shutdown` is cancelled (then waits for the connector to finish its orderly stop), or until the
    /// connector failed `max_restarts` times in a row.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let name = self.name.as_str();
        let mut consecutive_failures = 0u32;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let started = Instant::now();
            let progress = Progress::default();
            let outcome = match (self.factory)() {
                Ok(connector) => {
                    // A connector seen for the first time is UNASSIGNED until it starts; one being restarted keeps
                    // the state that says why (FAILED with its trace, RESTARTING, PAUSED).
                    if self.status.get(&self.name).is_none() {
                        self.status.set(&self.name, ConnectorState::Unassigned, None, 0);
                    }
                    let context = ConnectorContext {
                        shutdown: shutdown.clone(),
                        progress: progress.clone(),
                        topics: self.status.topics(&self.name),
                        started: self.started(attempt, consecutive_failures),
                        worker_shutdown: self.worker_shutdown.clone(),
                    };
                    // A panic inside the connector becomes a failure of this attempt, not of the worker.
                    match std::panic::AssertUnwindSafe(connector.run(context))
                        .catch_unwind()
                        .await
                    {
                        Ok(result) => result.map_err(|error| error_chain(error.as_ref())),
                        Err(panic) => Err(format!("panic: {}", panic_message(panic.as_ref()))),
                    }
                }
                Err(error) => Err(error_chain(error.as_ref())),
            };
            match outcome {
                Ok(()) => {
                    self.status.set(&self.name, ConnectorState::Stopped, None, 0);
                    emit(ConnectorStopped { connector: name });
                    return;
                }
                Err(trace) => {
                    // A run that moved records, or outlived the longest backoff, was healthy: the failure is a new
                    // one, not the next in a row.
                    if progress.was_made() || started.elapsed() > self.policy.max_backoff {
                        consecutive_failures = 0;
                    }
                    consecutive_failures += 1;
                    emit(ConnectorFailed {
                        connector: name,
                        error: &trace,
                        consecutive_failures,
                    });
                    self.status
                        .set(&self.name, ConnectorState::Failed, Some(trace), consecutive_failures);
                    if shutdown.is_cancelled() {
                        return;
                    }
                    if consecutive_failures > self.policy.max_restarts {
                        emit(ConnectorGaveUp {
                            connector: name,
                            max_restarts: self.policy.max_restarts,
                        });
                        return;
                    }
                    let delay = backoff(&self.policy, consecutive_failures);
                    emit(ConnectorRestartScheduled { connector: name, delay });
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// Fails its first `failures` runs, then runs until shutdown.
    struct Flaky {
        runs: Arc<AtomicU32>,
        failures: u32,
        panic: bool,
        /// Each failing run moves records first.
        progresses: bool,
    }

    #[async_trait]
    impl Connector for Flaky {
        async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run <= self.failures {
                if self.progresses {
                    context.progress.made();
                }
                if self.panic {
                    panic!("boom {run}");
                }
                return Err(format!("broken run {run}").into());
            }
            context.started.mark();
            context.shutdown.cancelled().await;
            Ok(())
        }
    }

    /// Starts only when `go` is notified.
    struct SlowStart {
        go: Arc<tokio::sync::Notify>,
    }

    #[async_trait]
    impl Connector for SlowStart {
        async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError> {
            self.go.notified().await;
            context.started.mark();
            context.shutdown.cancelled().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_connector_is_running_only_once_it_has_started() {
        let go = Arc::new(tokio::sync::Notify::new());
        let status = StatusRegistry::default();
        let start = go.clone();
        let supervisor = Supervisor {
            name: name(),
            kind: "test",
            factory: Arc::new(move || Ok(Box::new(SlowStart { go: start.clone() }) as Box<dyn Connector>)),
            policy: RestartPolicy {
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(40),
                max_restarts: 1,
            },
            status: status.clone(),
            worker_shutdown: CancellationToken::new(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervisor.run(shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(status.get(&name()).unwrap().state, ConnectorState::Unassigned);
        go.notify_one();
        let deadline = Instant::now() + Duration::from_secs(5);
        while status.get(&name()).unwrap().state != ConnectorState::Running {
            assert!(Instant::now() < deadline, "the connector did not become RUNNING");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    fn supervisor(failures: u32, panic: bool, max_restarts: u32) -> (Supervisor, Arc<AtomicU32>, StatusRegistry) {
        supervisor_of(failures, panic, false, max_restarts)
    }

    fn supervisor_of(
        failures: u32,
        panic: bool,
        progresses: bool,
        max_restarts: u32,
    ) -> (Supervisor, Arc<AtomicU32>, StatusRegistry) {
        let runs = Arc::new(AtomicU32::new(0));
        let status = StatusRegistry::default();
        let factory_runs = runs.clone();
        let supervisor = Supervisor {
            name: ConnectorName::try_from("flaky".to_owned()).unwrap(),
            kind: "test",
            factory: Arc::new(move || {
                Ok(Box::new(Flaky {
                    runs: factory_runs.clone(),
                    failures,
                    panic,
                    progresses,
                }) as Box<dyn Connector>)
            }),
            policy: RestartPolicy {
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(40),
                max_restarts,
            },
            status: status.clone(),
            worker_shutdown: CancellationToken::new(),
        };
        (supervisor, runs, status)
    }

    fn name() -> ConnectorName {
        ConnectorName::try_from("flaky".to_owned()).unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RestartPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_restarts: 10,
        };
        let delays: Vec<u64> = (1..=8).map(|n| backoff(&policy, n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&policy, u32::MAX), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn restarts_a_failing_connector_until_it_runs() {
        let (supervisor, runs, status) = supervisor(3, false, 10);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervisor.run(shutdown.clone()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 4 {
            assert!(Instant::now() < deadline, "connector was not restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let running = status.get(&name()).unwrap();
        assert_eq!(running.state, ConnectorState::Running);
        assert_eq!(running.consecutive_failures, 3);
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(status.get(&name()).unwrap().state, ConnectorState::Stopped);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_after_max_restarts_and_keeps_the_error() {
        let (supervisor, runs, status) = supervisor(u32::MAX, true, 2);
        tokio::time::timeout(Duration::from_secs(5), supervisor.run(CancellationToken::new()))
            .await
            .expect("supervisor should give up");
        assert_eq!(runs.load(Ordering::SeqCst), 3, "one run and two restarts");
        let failed = status.get(&name()).unwrap();
        assert_eq!(failed.state, ConnectorState::Failed);
        assert_eq!(failed.trace.as_deref(), Some("panic: boom 3"));
    }

    #[tokio::test]
    async fn failures_after_progress_are_not_counted_in_a_row() {
        let (supervisor, runs, status) = supervisor_of(6, false, true, 2);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervisor.run(shutdown.clone()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 7 {
            assert!(
                !task.is_finished(),
                "the supervisor gave up on a connector that makes progress"
            );
            assert!(Instant::now() < deadline, "connector was not restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(status.get(&name()).unwrap().consecutive_failures, 1);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_interrupts_the_backoff() {
        let (mut supervisor, runs, status) = supervisor(u32::MAX, false, 10);
        supervisor.policy.initial_backoff = Duration::from_secs(3600);
        supervisor.policy.max_backoff = Duration::from_secs(3600);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervisor.run(shutdown.clone()));
        while runs.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("backoff must not delay shutdown")
            .unwrap();
        let failed = status.get(&name()).unwrap();
        assert_eq!(failed.trace.as_deref(), Some("broken run 1"));
    }
}
