//! The controller's HTTP endpoint, served by hyper (HTTP/1.1) as kaas-proxy's admin endpoint is:
//!
//! | route | answer |
//! |---|---|
//! | `/metrics` | 200, the [`crate::metrics::Metrics`] exposition |
//! | `/healthz` | 200 `ok` while the process serves (the chart's liveness and readiness probes) |
//! | any other path | 404 |
//!
//! Any method, every answer plain text in Prometheus' text format (`version=0.0.4`).
//!
//! Bounded, since the port may be reachable by more than the kubelet and Prometheus: one request per
//! connection (no keep-alive), request headers within [`HEADER_READ_TIMEOUT`] and a small read buffer, each
//! connection closed after [`CONNECTION_TIMEOUT`] whatever it is doing, and at most [`MAX_CONNECTIONS`] at once
//! (further ones wait in the accept backlog).
//!
//! Neighbours: the binary binds the listener before the leader election, so a follower answers too, and hands
//! [`serve`] the metrics' encoder. The accept loop is kaas-proxy's (`proxy/src/admin.rs`, `serve_bounded`),
//! copied: the two crates share no code outside the route and lease crates.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Time a client has to send its request line and headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection may take altogether, request and response.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// The content type of every answer.
const CONTENT: &str = "text/plain; version=0.0.4";

/// The answer to a request for `path` (without its query); `metrics` encodes the exposition.
fn respond(path: &str, metrics: impl Fn() -> String) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, metrics()),
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT));
    response
}

/// Time limits of one connection.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read: Duration,
    connection: Duration,
}

/// Answers requests on `listener` for as long as the task runs, each connection on its own task; `metrics`
/// encodes the `/metrics` body at each request.
pub async fn serve<M>(listener: TcpListener, metrics: M)
where
    M: Fn() -> String + Clone + Send + Sync + 'static,
{
    let limits = Limits { header_read: HEADER_READ_TIMEOUT, connection: CONNECTION_TIMEOUT };
    serve_with(listener, metrics, limits).await
}

async fn serve_with<M>(listener: TcpListener, metrics: M, limits: Limits)
where
    M: Fn() -> String + Clone + Send + Sync + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(false)
        .max_buf_size(16 * 1024);
    loop {
        // The semaphore is never closed.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: back off rather than spin, and keep answering probes.
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let response = respond(request.uri().path(), &metrics);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            match tokio::time::timeout(limits.connection, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics endpoint connection failed"),
                Err(_) => tracing::debug!("metrics endpoint connection timed out"),
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::metrics::Metrics;

    async fn start(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = Arc::new(Metrics::default());
        metrics.set_leader(true);
        tokio::spawn(serve_with(listener, move || metrics.encode(), limits));
        addr
    }

    /// Sends `request` as it is and reads the whole answer (the server closes the connection).
    async fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    const LIMITS: Limits = Limits { header_read: HEADER_READ_TIMEOUT, connection: CONNECTION_TIMEOUT };

    #[tokio::test]
    async fn paths_statuses_and_bodies() {
        let addr = start(LIMITS).await;
        for (request, status, body) in [
            ("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n", "200 OK", "kaas_controller_leader 1\n"),
            ("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n", "200 OK", "ok\n"),
            ("POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n", "200 OK", "ok\n"),
            ("GET /metricsz HTTP/1.1\r\nhost: x\r\n\r\n", "404 Not Found", "not found\n"),
            ("GET / HTTP/1.1\r\nhost: x\r\n\r\n", "404 Not Found", "not found\n"),
        ] {
            let answer = exchange(addr, request).await;
            let (head, got) =
                answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{request:?}: {answer:?}"));
            assert!(head.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{request:?}: {head}");
            let head = head.to_ascii_lowercase();
            assert!(head.contains("content-type: text/plain; version=0.0.4"), "{request:?}: {head}");
            assert!(head.contains("connection: close"), "{request:?}: {head}");
            assert!(got.contains(body), "{request:?}: {got:?}");
        }
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let limits = Limits { header_read: Duration::from_millis(200), connection: Duration::from_secs(5) };
        let addr = start(limits).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        silent.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("write");
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(3), silent.read_to_end(&mut buf)).await;
        assert!(
            closed.is_ok(),
            "still open after the header read timeout, well before the connection timeout"
        );
        // The endpoint still answers others.
        assert!(exchange(addr, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.ends_with("ok\n"));
    }
}
