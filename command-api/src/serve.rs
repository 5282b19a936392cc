//! The server loop: the router over hyper's HTTP/1 connections, with the bounds
//! `axum::serve` cannot set. It sets no timer, so a client that sends part of a request's
//! head and then nothing holds its connection (and about 175 KiB) for ever; here a head
//! must arrive whole within its timeout (`Config::header_read_timeout_ms`), or the
//! connection is closed. Bodies are bounded by `crate::json::BODY_READ_TIMEOUT`.
//!
//! Shutdown is graceful, as `axum::serve`'s: the listener closes, then the connections
//! finish the requests they are serving.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How long the loop waits after the listener fails to accept (out of file descriptors,
/// say) before it tries again, so a lasting failure does not spin a core.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` completes, then lets the connections
/// finish their requests. A request's head must arrive within `header_read_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A connection that failed before it was accepted is the client's
                    // problem; anything else is ours, and passes or not with time.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and written once: no Nagle delay on them.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A client gone or too slow with its head: nothing to answer.
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
