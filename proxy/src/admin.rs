//! Admin endpoint for orchestrators: `/healthz` (the process serves), `/readyz` (it accepts new connections;
//! 503 while draining, so a rolling update moves traffic away before the pod stops) and `/metrics`.
//! A deliberately tiny HTTP/1.1 responder: one request per connection, no keep-alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Shared with the listener, which clears it when draining starts.
#[derive(Debug, Default)]
pub struct Health {
    /// Whether `/readyz` answers 200; false before the listener is bound and while draining.
    pub ready: AtomicBool,
}

fn respond(path: Option<&str>, health: &Health, metrics: &Metrics) -> (&'static str, String) {
    match path {
        Some("/healthz") => ("200 OK", "ok\n".into()),
        Some("/readyz") if health.ready.load(Ordering::SeqCst) => ("200 OK", "ready\n".into()),
        Some("/readyz") => ("503 Service Unavailable", "draining\n".into()),
        Some("/metrics") => ("200 OK", metrics.encode()),
        _ => ("404 Not Found", "not found\n".into()),
    }
}

/// Answers admin requests on `listener` until accepting fails; each connection is served on its own task.
pub async fn serve(listener: TcpListener, health: Arc<Health>, metrics: Arc<Metrics>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let (health, metrics) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await;
            let n = match read {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = respond(request.split_whitespace().nth(1), &health, &metrics);
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let (h, m) = (Health::default(), Metrics::new(["acme"]));
        assert_eq!(respond(Some("/healthz"), &h, &m).0, "200 OK");
        assert_eq!(respond(Some("/readyz"), &h, &m).0, "503 Service Unavailable");
        h.ready.store(true, Ordering::SeqCst);
        assert_eq!(respond(Some("/readyz"), &h, &m).0, "200 OK");
        let (status, body) = respond(Some("/metrics"), &h, &m);
        assert!(status == "200 OK" && body.contains("kaas_proxy_session_opened_total{tenant=\"acme\"} 0"));
        assert_eq!(respond(Some("/"), &h, &m).0, "404 Not Found");
        assert_eq!(respond(None, &h, &m).0, "404 Not Found");
    }
}
