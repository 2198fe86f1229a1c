//! systemd's service protocol, for `Type=notify` units (`deploy/systemd/ebconnect.service`): `READY=1` once every
//! connector the worker started with is RUNNING (or PAUSED or STOPPED), `STATUS=` with the connectors' states,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` for as long as the runtime turns, and `STOPPING=1` on shutdown. Without
//! `NOTIFY_SOCKET` in the environment (not run by systemd) it does nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use super::status::{ConnectorStatus, StatusRegistry};
use crate::config::ConnectorName;
use crate::telemetry::{emit, ServiceManagerUnreachable};

/// How often the states are looked at when no watchdog asks for more.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until shutdown, then says `STOPPING=1`. `expected` are the connectors the worker started with: readiness
/// waits for each to have a state, so that a worker is not ready before its connectors were even started.
pub(crate) async fn notify_service_manager(
    status: StatusRegistry,
    expected: BTreeSet<ConnectorName>,
    shutdown: CancellationToken,
) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled().map(|timeout| timeout / 2);
    let mut ticker = tokio::time::interval(watchdog.map_or(STATUS_INTERVAL, |half| half.min(STATUS_INTERVAL)));
    let mut last_watchdog = tokio::time::Instant::now();
    let mut ready = false;
    let mut shown = String::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let states = status.all();
        let line = status_line(&states);
        let mut message = Vec::new();
        if !ready && started(&states, &expected) {
            ready = true;
            message.push(NotifyState::Ready);
        }
        if line != shown {
            message.push(NotifyState::Status(&line));
        }
        // This task runs on the runtime the connectors run on: while it keeps its pace, so does the runtime.
        if watchdog.is_some_and(|half| last_watchdog.elapsed() >= half) {
            last_watchdog = tokio::time::Instant::now();
            message.push(NotifyState::Watchdog);
        }
        if !message.is_empty() {
            send(&message);
        }
        shown = line;
    }
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn started(states: &BTreeMap<ConnectorName, ConnectorStatus>, expected: &BTreeSet<ConnectorName>) -> bool {
    expected.iter().all(|name| states.contains_key(name)) && states.values().all(|status| status.state.is_settled())
}

/// `3 connectors: 2 RUNNING, 1 FAILED`.
fn status_line(states: &BTreeMap<ConnectorName, ConnectorStatus>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for status in states.values() {
        *counts.entry(status.state.as_str()).or_default() += 1;
    }
    let counted: Vec<String> = counts.iter().map(|(state, count)| format!("{count} {state}")).collect();
    match counted.is_empty() {
        true => "no connectors".to_owned(),
        false => format!("{} connectors: {}", states.len(), counted.join(", ")),
    }
}

fn send(message: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(message) {
        emit(ServiceManagerUnreachable {
            error: &error.to_string(),
        });
    }
}
