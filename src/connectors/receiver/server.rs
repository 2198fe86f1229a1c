//! The receiver's HTTP/1.1 server: hyper's, with the limits an endpoint open to the internet needs and
//! `axum::serve` does not offer: at most `max_connections` connections (the next waits in the kernel's backlog),
//! and a deadline for each request's headers, so that a client sending them a byte at a time is cut off.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{emit, ReceiverAcceptFailed};

/// The most a connection buffers of what the client sent before the handler takes it.
const READ_BUFFER_BYTES: usize = 64 << 10;

pub(crate) struct ServerLimits {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
}

/// Serves `router` until `shutdown`, then waits for the open connections to finish their requests.
pub(crate) async fn serve(
    connector: &str,
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper grows a connection's read buffer up to ~400 KB while a body streams in, and keeps it: 500
        // connections sending bodies held 128 MiB that way. Headers must fit too, so this is also their limit.
        .max_buf_size(READ_BUFFER_BYTES);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted: wait a moment
                    // rather than spin, and go on.
                    emit(ReceiverAcceptFailed { connector, error: &error });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A connection's end, orderly or not, is the client's business; its requests were answered or not.
            let _ = connection.await;
            drop(permit);
        });
    }
    graceful.shutdown().await;
}
