//! Session: one client connection and its upstream connection, pumping frames both ways.
//!
//! Requests: header read, response expectation queued, frame forwarded as it came (zero-copy slices of the read
//! buffer, written with vectored writes). Responses: matched to the oldest in-flight request; the few that name
//! brokers are rewritten, everything else forwarded untouched. Either side closing ends the session; so do an
//! idle timeout, a drain and a retired route (`shared`). The frame loop is `pump`, what each direction does
//! with a frame is in `directions`.

mod directions;
mod pump;
mod shared;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::audit::Auditor;
use crate::error::{Blame, Side};
use crate::kafka::codec::FrameError;
use crate::kafka::inflight::{InflightError, InflightQueue};
use crate::kafka::rewrite::Advertise;
use crate::kafka::{RequestError, ResponseError};
use crate::metrics::{Direction, TenantMetrics};
use crate::tenants::Tenant;
use crate::usage::{Meter, Usage};
use directions::{Requests, Responses};
use pump::pump;
use shared::{close_gracefully, close_when_quiet, idle, Shared};

/// How a session ended badly, by side: the client's fault, the upstream's, or the link between them.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reading from or writing to the client failed (an abrupt close while idle is not an error).
    #[error("client i/o: {0}")]
    ClientIo(std::io::Error),
    /// The client sent a length prefix that is negative or over `max_frame_bytes`.
    #[error("client frame: {0}")]
    ClientFrame(FrameError),
    /// A client request was unreadable or refused; it was not forwarded.
    #[error("client request: {0}")]
    Request(#[from] RequestError),
    /// The client closed inside a frame; holds the bytes of the partial frame.
    #[error("client closed mid-frame ({0} bytes of a partial frame)")]
    ClientTruncated(usize),
    /// Reading from or writing to the broker failed.
    #[error("upstream i/o: {0}")]
    UpstreamIo(std::io::Error),
    /// The broker sent a length prefix that is negative or over `max_frame_bytes`.
    #[error("upstream frame: {0}")]
    UpstreamFrame(FrameError),
    /// A broker response the proxy must read could not be walked; it was not passed on.
    #[error("upstream response: {0}")]
    Response(#[from] ResponseError),
    /// A broker response matched no outstanding request.
    #[error("upstream response: {0}")]
    Inflight(#[from] InflightError),
    /// The broker closed inside a frame, or sent a frame shorter than a correlation id; holds its length.
    #[error("upstream closed mid-frame or sent a frame too short for a correlation id ({0} bytes)")]
    UpstreamTruncated(usize),
}

impl Blame for SessionError {
    fn side(&self) -> Side {
        use SessionError::*;
        match self {
            ClientIo(_) | ClientFrame(_) | Request(_) | ClientTruncated(_) => Side::Client,
            UpstreamIo(_) | UpstreamFrame(_) | Response(_) | Inflight(_) | UpstreamTruncated(_) => {
                Side::Upstream
            }
        }
    }

    fn retryable(&self) -> bool {
        // A broken link to the broker: the client reconnects and carries on. Bad bytes stay bad.
        matches!(self, SessionError::UpstreamIo(_) | SessionError::UpstreamTruncated(_))
    }

    fn label(&self) -> &'static str {
        use SessionError::*;
        match self {
            ClientIo(_) | UpstreamIo(_) => "io",
            ClientFrame(_) | UpstreamFrame(_) => "frame",
            ClientTruncated(_) | UpstreamTruncated(_) => "truncated",
            Request(_) => "request",
            Response(_) => "malformed_response",
            Inflight(_) => "unmatched_response",
        }
    }
}

impl SessionError {
    /// The `reason` of `kaas_proxy_session_frames_refused_total` when a frame ended the session unforwarded
    /// (one of [`crate::metrics::FRAME_REFUSALS`]); `None` for i/o and truncation.
    pub fn frame_refusal(&self) -> Option<&'static str> {
        use SessionError::*;
        Some(match self {
            ClientFrame(_) => "client_frame_size",
            Request(_) => "client_request",
            UpstreamFrame(_) => "upstream_frame_size",
            Response(ResponseError::Leak { .. }) => "address_leak",
            Response(_) => "upstream_response",
            Inflight(_) => "upstream_unmatched",
            ClientIo(_) | UpstreamIo(_) | ClientTruncated(_) | UpstreamTruncated(_) => return None,
        })
    }
}

/// What a session needs besides its two streams.
#[derive(Debug)]
pub struct SessionContext {
    /// The tenant the server name chose; learns the brokers responses name.
    pub tenant: Arc<Tenant>,
    /// The names and port rewritten responses give the tenant's brokers.
    pub advertise: Advertise,
    /// Largest frame accepted either way, bytes.
    pub max_frame_bytes: u32,
    /// Requests awaiting a response before the proxy stops reading the client (backpressure).
    pub max_inflight: usize,
    /// Largest `max_bytes` a Fetch request is forwarded with.
    pub max_fetch_bytes: u32,
    /// A session with no request outstanding and no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Cancelled when the proxy drains (shutting down): the session closes once nothing is outstanding.
    pub draining: CancellationToken,
    /// The client's address, for logs.
    pub peer: SocketAddr,
    /// The tenant's counters (bytes, requests), looked up once when the session starts so that counting a
    /// frame is one atomic add rather than a lookup by name under the metrics lock; `None` for a tenant the
    /// metrics do not know (not configured), whose traffic is not counted.
    pub metrics: Option<Arc<TenantMetrics>>,
    /// The usage recorder and this connection's meter (its principal's window); `None` without usage records.
    pub usage: Option<(Arc<Usage>, Meter)>,
    /// The session's auditor (administrative requests and their answers); `None` without an audit trail.
    pub audit: Option<Auditor>,
}

/// Runs until either side closes or misbehaves, or stays idle for `idle_timeout`.
pub async fn run<C, U>(client: C, upstream: U, ctx: &SessionContext) -> Result<(), SessionError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let shared = Shared {
        inflight: InflightQueue::default(),
        answered: Notify::new(),
        started: Instant::now(),
        last_activity_micros: AtomicU64::new(0),
        closing: AtomicBool::new(false),
        muted_until_micros: AtomicU64::new(0),
        unwritten: AtomicUsize::new(0),
        flushed: Notify::new(),
    };
    let max = ctx.max_frame_bytes;
    let metrics = ctx.metrics.as_deref();
    let ended = {
        let mut on_request =
            Requests { shared: &shared, ctx, metrics, max_inflight: ctx.max_inflight.max(1) };
        let mut on_response = Responses { shared: &shared, ctx, done: Vec::new() };
        let requests =
            pump(Direction::ClientToUpstream, &mut client_r, upstream_w, max, metrics, &mut on_request);
        let responses =
            pump(Direction::UpstreamToClient, upstream_r, &mut client_w, max, metrics, &mut on_response);
        tokio::pin!(requests, responses);
        tokio::select! {
            r = &mut requests => match r {
                // The client is done sending and the broker has our FIN. Let it read and act on everything
                // first: dropping the upstream socket now, with its answers unread, would reset the connection
                // and the broker could lose requests still in its buffer (acks=0 producers close right after
                // writing).
                Ok(()) => match tokio::time::timeout(DRAIN_AFTER_CLIENT_EOF, &mut responses).await {
                    Ok(Err(SessionError::ClientIo(_))) | Err(_) => Ended::Closed(Ok(())),
                    Ok(other) => Ended::Closed(other),
                },
                Err(e) => Ended::Closed(Err(e)),
            },
            r = &mut responses => Ended::Closed(r),
            () = idle(&shared, ctx.idle_timeout) => {
                tracing::debug!(idle_seconds = ctx.idle_timeout.as_secs(), "idle session closed");
                Ended::ByProxy
            }
            why = close_when_quiet(&shared, ctx) => {
                tracing::info!("session closed between requests: {why}");
                Ended::ByProxy
            }
        }
    };
    match ended {
        Ended::Closed(result) => result,
        Ended::ByProxy => {
            close_gracefully(client_r.unsplit(client_w)).await;
            Ok(())
        }
    }
}

/// How the pumps ended: a side closed or failed, or the proxy chose to close a quiet session.
enum Ended {
    Closed(Result<(), SessionError>),
    ByProxy,
}

/// How long the upstream gets to finish after the client closed its side.
const DRAIN_AFTER_CLIENT_EOF: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::codec::Frame;
    use crate::metrics::Metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A request frame: header v1 (api key, version, correlation id, null client id), then `body`.
    fn request(api_key: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&api_key.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&correlation_id.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(body);
        Frame::from_body(&b).into_bytes().to_vec()
    }

    /// A response frame: header v0 (correlation id), then `body`.
    fn response(correlation_id: i32, body: &[u8]) -> Vec<u8> {
        Frame::from_body(&[&correlation_id.to_be_bytes()[..], body].concat()).into_bytes().to_vec()
    }

    #[tokio::test]
    async fn forwarded_frames_are_counted_for_the_tenant() {
        let metrics = Metrics::new(["acme"]);
        let ctx = SessionContext {
            tenant: Arc::new(Tenant::new("acme".into(), Vec::new())),
            advertise: Advertise::new("acme", "kaas.localhost", 9092),
            max_frame_bytes: 1 << 20,
            max_inflight: 16,
            max_fetch_bytes: 1 << 20,
            idle_timeout: Duration::from_secs(60),
            draining: CancellationToken::new(),
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            metrics: metrics.tenant("acme"),
            usage: None,
            audit: None,
        };
        let (client, mut app) = tokio::io::duplex(4096);
        let (upstream, mut broker) = tokio::io::duplex(4096);
        // Heartbeat and LeaveGroup, passed through unread.
        let requests = [request(12, 1, &[0; 4]), request(13, 2, &[])].concat();
        let responses = [response(1, &[0, 0]), response(2, &[])].concat();
        let traffic = async {
            app.write_all(&requests).await.expect("client writes");
            let mut got = vec![0; requests.len()];
            broker.read_exact(&mut got).await.expect("broker reads");
            assert_eq!(got, requests, "forwarded as sent");
            broker.write_all(&responses).await.expect("broker writes");
            let mut got = vec![0; responses.len()];
            app.read_exact(&mut got).await.expect("client reads");
            assert_eq!(got, responses, "passed back as sent");
            app.shutdown().await.expect("client closes");
            drop(broker);
        };
        let (result, ()) = tokio::join!(run(client, upstream, &ctx), traffic);
        result.expect("a clean session");
        let text = metrics.encode();
        for (series, want) in [
            (
                "kaas_proxy_session_bytes_total{tenant=\"acme\",direction=\"client_to_upstream\"}",
                requests.len(),
            ),
            (
                "kaas_proxy_session_bytes_total{tenant=\"acme\",direction=\"upstream_to_client\"}",
                responses.len(),
            ),
            ("kaas_proxy_requests_total{tenant=\"acme\",api=\"Heartbeat\"}", 1),
            ("kaas_proxy_requests_total{tenant=\"acme\",api=\"LeaveGroup\"}", 1),
            ("kaas_proxy_requests_total{tenant=\"acme\",api=\"Metadata\"}", 0),
        ] {
            let line = format!("{series} {want}");
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
