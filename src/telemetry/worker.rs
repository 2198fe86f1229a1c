//! The worker's own events: its REST API, its secrets, its shutdown.

use std::time::Duration;
use tracing::{error, info, warn};

use super::{count_error, InternalEvent};

/// The REST API listens on a non-loopback address without authentication, as `rest.allow_unauthenticated` asked.
pub struct RestUnauthenticated {
    pub(crate) address: std::net::SocketAddr,
}

impl InternalEvent for RestUnauthenticated {
    fn emit(self) {
        count_error("", "rest", "unauthenticated");
        warn!(
            address = %self.address,
            "the REST API has no basic_auth on a non-loopback address (rest.allow_unauthenticated): anyone who \
             reaches it can create connectors and read their configuration"
        );
    }
}

pub struct SecretChanged<'a> {
    pub(crate) reference: &'a str,
}

impl InternalEvent for SecretChanged<'_> {
    fn emit(self) {
        info!(
            reference = self.reference,
            "a secret changed in AWS; restarting what uses it"
        );
    }
}

pub struct SecretRefreshFailed<'a> {
    pub(crate) reference: &'a str,
    pub(crate) error: &'a str,
}

impl InternalEvent for SecretRefreshFailed<'_> {
    fn emit(self) {
        count_error("", "secrets", "refresh_failed");
        warn!(
            reference = self.reference,
            error = self.error,
            "cannot re-read a secret from AWS; its last value stays in use"
        );
    }
}

pub struct ShutdownRequested<'a> {
    pub(crate) signal: &'a str,
    pub(crate) timeout: Duration,
}

impl InternalEvent for ShutdownRequested<'_> {
    fn emit(self) {
        info!(signal = self.signal, timeout = ?self.timeout, "shutting down");
    }
}

pub struct ShutdownTimedOut {
    pub(crate) timeout: Duration,
    pub(crate) unfinished: Vec<String>,
}

impl InternalEvent for ShutdownTimedOut {
    fn emit(self) {
        count_error("", "shutdown", "timed_out");
        error!(
            timeout = ?self.timeout,
            unfinished = ?self.unfinished,
            "shutdown timed out; in-flight work was abandoned and will be redelivered"
        );
    }
}

/// A notification to systemd (`NOTIFY_SOCKET`) could not be sent.
pub struct ServiceManagerUnreachable<'a> {
    pub(crate) error: &'a str,
}

impl InternalEvent for ServiceManagerUnreachable<'_> {
    fn emit(self) {
        count_error("", "systemd", "notify_failed");
        warn!(error = self.error, "cannot notify systemd through NOTIFY_SOCKET");
    }
}
