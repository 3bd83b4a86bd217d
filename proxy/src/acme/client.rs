//! The HTTPS client under `instant-acme`, built here rather than by the crate so the CA's `Retry-After` on a
//! refusal can be read: the crate turns an error answer into a [`instant_acme::Problem`] and drops its headers
//! (it honours `Retry-After` itself only while polling an order, and returns the renewalInfo one). Every
//! error answer's `Retry-After` is kept for the task that asked ([`recording`]: each order runs in its own
//! task, so a refusal is attributed to its own order, not to another tenant's in flight).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use crate::config::certs;

/// The `Retry-After` of the CA's latest error answer, as an instant.
#[derive(Debug, Clone, Default)]
pub struct RetryAfter(Arc<Mutex<Option<SystemTime>>>);

tokio::task_local! {
    /// Where the requests of the future being run by [`recording`] record the CA's `Retry-After`.
    static RECORDER: RetryAfter;
}

/// Runs `work` (requests to the CA) and returns its output with the wait the CA last asked for in a
/// `Retry-After` on an error answer during it, if that time is still ahead.
pub async fn recording<F: Future>(work: F) -> (F::Output, Option<Duration>) {
    let recorder = RetryAfter::default();
    let output = RECORDER.scope(recorder.clone(), work).await;
    (output, recorder.take())
}

impl RetryAfter {
    /// Takes what was recorded: how long from now the CA asked to wait (`None` when it asked nothing since the
    /// last take, or the time has passed).
    pub fn take(&self) -> Option<Duration> {
        let at = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        at.duration_since(SystemTime::now()).ok()
    }

    fn record(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }
}

/// An HTTP `Retry-After` value (RFC 9110 §10.2.3: delay seconds or an HTTP date) received at `now`, as an instant.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(seconds) => now.checked_add(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value).ok(),
    }
}

/// The client: `trust_roots` (PEM, every certificate in it) for the directory's HTTPS certificate, else the
/// system's verifier, as the crate's own default.
pub fn client(trust_roots: Option<&Path>) -> Result<Box<dyn HttpClient>, String> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match trust_roots {
        Some(path) => {
            let roots = certs::load_roots(path)?;
            let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(config)
        }
        None => builder.try_with_platform_verifier().map_err(|e| e.to_string())?,
    };
    let connector = builder.https_only().enable_http1().enable_http2().build();
    let inner: Box<dyn HttpClient> = Box::new(Client::builder(TokioExecutor::new()).build(connector));
    Ok(Box::new(Recording { inner }))
}

struct Recording {
    inner: Box<dyn HttpClient>,
}

impl HttpClient for Recording {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.inner.request(req);
        Box::pin(async move {
            let response = response.await?;
            let status = response.parts.status;
            if status.is_client_error() || status.is_server_error() {
                let header = response.parts.headers.get(http::header::RETRY_AFTER);
                let value = header.and_then(|v| v.to_str().ok());
                if let Some(at) = value.and_then(|v| parse_retry_after(v, SystemTime::now())) {
                    // Outside `recording` (no one asked) it is dropped.
                    let _ = RECORDER.try_with(|r| r.record(at));
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let at = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let cases = [
            ("120", at(1_000_000_120)),
            (" 0 ", at(1_000_000_000)),
            ("Sun, 09 Sep 2001 01:46:40 GMT", at(1_000_000_000)),
            ("Sun, 09 Sep 2001 01:48:40 GMT", at(1_000_000_120)),
            ("-5", None),
            ("soon", None),
            ("", None),
            ("18446744073709551615", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
    }

    #[tokio::test]
    async fn recording_keeps_each_futures_own_wait() {
        let (_, none) = recording(async {}).await;
        assert_eq!(none, None);
        let (a, b) = tokio::join!(
            recording(async { RECORDER.with(|r| r.record(SystemTime::now() + Duration::from_secs(100))) }),
            recording(async { RECORDER.with(|r| r.record(SystemTime::now() + Duration::from_secs(5))) }),
        );
        assert!(a.1.expect("a's") > Duration::from_secs(90), "{a:?}");
        assert!(b.1.expect("b's") <= Duration::from_secs(5), "{b:?}");
    }

    #[test]
    fn a_recorded_wait_is_taken_once_and_a_past_one_is_none() {
        let r = RetryAfter::default();
        assert_eq!(r.take(), None);
        r.record(SystemTime::now() + Duration::from_secs(30));
        let wait = r.take().expect("recorded");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
        assert_eq!(r.take(), None, "taken");
        r.record(SystemTime::now() - Duration::from_secs(1));
        assert_eq!(r.take(), None, "already past");
    }
}
