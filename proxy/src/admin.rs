//! Admin endpoint for orchestrators and Prometheus, served by hyper (HTTP/1.1):
//!
//! | route | answer |
//! |---|---|
//! | `GET /livez` | 200 while the process serves |
//! | `GET /healthz` | the same (the chart's liveness probe) |
//! | `GET /readyz` | 200 once routes and certificates are loaded and the TLS port is bound; 503 before that and while draining, so a rolling update moves traffic away before the pod stops |
//! | `GET /metrics` | the [`Metrics`] exposition, [`crate::metrics::CONTENT_TYPE`] |
//!
//! Another method on those paths answers 405, any other path 404.
//!
//! Bounded, since the port may be reachable by more than the kubelet and Prometheus: one request per
//! connection (no keep-alive), request headers within [`HEADER_READ_TIMEOUT`] and a small read buffer, each
//! connection closed after [`CONNECTION_TIMEOUT`] whatever it is doing, and at most [`MAX_CONNECTIONS`] at once
//! (further ones wait in the accept backlog).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::{self, Metrics};

/// Time a client has to send its request line and headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection may take altogether, request and response.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// Shared with the listener, which clears it when draining starts.
#[derive(Debug, Default)]
pub struct Health {
    /// Whether `/readyz` answers 200; false before the listener is bound and while draining.
    pub ready: AtomicBool,
}

const TEXT: &str = "text/plain; charset=utf-8";

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

/// The answer to `method path` (the path without its query); `/metrics` only where `metrics` is given.
fn respond(method: &Method, path: &str, health: &Health, metrics: Option<&Metrics>) -> Response<Full<Bytes>> {
    let metrics_path = path == "/metrics" && metrics.is_some();
    if !(matches!(path, "/livez" | "/healthz" | "/readyz") || metrics_path) {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match path {
        "/readyz" if health.ready.load(Ordering::SeqCst) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => match metrics {
            Some(metrics) => {
                let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
                response
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => text(StatusCode::OK, "ok\n"),
    }
}

/// Time limits of one admin connection.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read: Duration,
    connection: Duration,
}

/// Answers admin requests on `listener` for as long as the task runs; each connection is served on its own task.
pub async fn serve(listener: TcpListener, health: Arc<Health>, metrics: Arc<Metrics>) {
    let limits = Limits { header_read: HEADER_READ_TIMEOUT, connection: CONNECTION_TIMEOUT };
    serve_with(listener, health, metrics, limits).await
}

/// Answers only the probes on `listener`, with connection places of its own: whoever holds the admin
/// endpoint's places (its port is reachable by whatever scrapes metrics) cannot fail the kubelet's probes.
pub async fn serve_probes(listener: TcpListener, health: Arc<Health>) {
    let limits = Limits { header_read: HEADER_READ_TIMEOUT, connection: CONNECTION_TIMEOUT };
    serve_bounded(listener, limits, move |method, path| respond(method, path, &health, None)).await
}

async fn serve_with(listener: TcpListener, health: Arc<Health>, metrics: Arc<Metrics>, limits: Limits) {
    serve_bounded(listener, limits, move |method, path| respond(method, path, &health, Some(&metrics))).await
}

/// Serves `respond` (method, path without query → response) on `listener` within the admin endpoint's bounds
/// (module docs) for as long as the task runs; also the ACME HTTP-01 listener's server.
pub(crate) async fn serve_requests<F>(listener: TcpListener, respond: F)
where
    F: Fn(&Method, &str) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    let limits = Limits { header_read: HEADER_READ_TIMEOUT, connection: CONNECTION_TIMEOUT };
    serve_bounded(listener, limits, respond).await
}

async fn serve_bounded<F>(listener: TcpListener, limits: Limits, respond: F)
where
    F: Fn(&Method, &str) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
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
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let respond = respond.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let response = respond(request.method(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            match tokio::time::timeout(limits.connection, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "admin connection failed"),
                Err(_) => tracing::debug!("admin connection timed out"),
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use hyper::header::HOST;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A served admin endpoint for a proxy with the one tenant `acme`.
    async fn start(limits: Limits) -> (SocketAddr, Arc<Health>, Arc<Metrics>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (health, metrics) = (Arc::new(Health::default()), Arc::new(Metrics::new(["acme"])));
        tokio::spawn(serve_with(listener, health.clone(), metrics.clone(), limits));
        (addr, health, metrics)
    }

    struct Answer {
        status: StatusCode,
        content_type: String,
        body: String,
    }

    /// One request through hyper's client, on a connection of its own.
    async fn request(addr: SocketAddr, method: Method, path: &str) -> Answer {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "kaas-proxy")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        Answer { status, content_type, body: String::from_utf8_lossy(&body).into_owned() }
    }

    const LIMITS: Limits = Limits { header_read: HEADER_READ_TIMEOUT, connection: CONNECTION_TIMEOUT };

    #[tokio::test]
    async fn routes_statuses_and_content_types() {
        let (addr, health, metrics) = start(LIMITS).await;
        for path in ["/livez", "/healthz"] {
            let a = request(addr, Method::GET, path).await;
            assert_eq!((a.status, a.content_type.as_str(), a.body.as_str()), (StatusCode::OK, TEXT, "ok\n"));
        }
        let a = request(addr, Method::GET, "/readyz").await;
        assert_eq!((a.status, a.content_type.as_str()), (StatusCode::SERVICE_UNAVAILABLE, TEXT));
        health.ready.store(true, Ordering::SeqCst);
        let a = request(addr, Method::GET, "/readyz").await;
        assert_eq!((a.status, a.content_type.as_str(), a.body.as_str()), (StatusCode::OK, TEXT, "ready\n"));
        health.ready.store(false, Ordering::SeqCst);
        assert_eq!(
            request(addr, Method::GET, "/readyz").await.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "draining"
        );

        metrics.session_started("acme");
        let a = request(addr, Method::GET, "/metrics?x=1").await;
        assert_eq!((a.status, a.content_type.as_str()), (StatusCode::OK, metrics::CONTENT_TYPE));
        assert!(
            a.body.lines().any(|l| l == "kaas_proxy_session_opened_total{tenant=\"acme\"} 1"),
            "{}",
            a.body
        );
        assert!(a.body.lines().any(|l| l.starts_with("kaas_proxy_runtime_tasks ")), "{}", a.body);
        assert!(a.body.ends_with("# EOF\n"), "{}", a.body);

        for path in ["/", "/nope", "/metrics/x", "/healthz/"] {
            let a = request(addr, Method::GET, path).await;
            assert_eq!((a.status, a.content_type.as_str()), (StatusCode::NOT_FOUND, TEXT), "{path}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
            for path in ["/livez", "/metrics"] {
                let a = request(addr, method.clone(), path).await;
                assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            }
        }
    }

    #[tokio::test]
    async fn one_request_per_connection() {
        let (addr, _, _) = start(LIMITS).await;
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // HTTP/1.1 without `connection: close`, as the CLI test and curl send it: the server still closes.
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut out))
            .await
            .expect("closed after the response")
            .expect("read");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.to_ascii_lowercase().contains("connection: close\r\n"), "{out}");
    }

    #[tokio::test]
    async fn silent_clients_are_cut_off() {
        let limits = Limits { header_read: Duration::from_millis(200), connection: Duration::from_secs(1) };
        let (addr, _, _) = start(limits).await;
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("write");
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the connection is closed once the header timeout passes");
        // Still serving everyone else.
        assert_eq!(request(addr, Method::GET, "/livez").await.status, StatusCode::OK);
    }

    /// Whoever holds every place of the admin endpoint (reachable by whatever scrapes metrics) makes its probes
    /// wait; the probe endpoint, with places of its own, still answers at once, and serves nothing else.
    #[tokio::test]
    async fn probes_cannot_be_starved_through_the_admin_endpoint() {
        let (admin, health, _) = start(LIMITS).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let probes = listener.local_addr().expect("addr");
        tokio::spawn(serve_probes(listener, health.clone()));
        health.ready.store(true, Ordering::SeqCst);
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 4 {
            held.push(tokio::net::TcpStream::connect(admin).await.expect("connect"));
        }
        let starved =
            tokio::time::timeout(Duration::from_secs(1), request(admin, Method::GET, "/readyz")).await;
        assert!(starved.is_err(), "the admin endpoint's places are all held");
        let answer = tokio::time::timeout(Duration::from_secs(1), request(probes, Method::GET, "/readyz"))
            .await
            .expect("the probe endpoint answers while the admin endpoint is full");
        assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "ready\n"));
        assert_eq!(request(probes, Method::GET, "/healthz").await.status, StatusCode::OK);
        assert_eq!(request(probes, Method::GET, "/metrics").await.status, StatusCode::NOT_FOUND);
        drop(held);
    }
}
