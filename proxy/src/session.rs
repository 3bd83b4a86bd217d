//! Session: one client connection and its upstream connection, pumping frames both ways.
//!
//! Requests: header read, response expectation queued, frame forwarded as it came (zero-copy slices of the read
//! buffer, written with vectored writes). Responses: matched to the oldest in-flight request; the few that name
//! brokers are rewritten, everything else forwarded untouched. Either side closing ends the session.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::error::{Blame, Side};
use crate::kafka::codec::{i32_at, Frame, FrameError, FrameReader, ReadError};
use crate::kafka::inflight::{Answer, InflightError, InflightQueue};
use crate::kafka::rewrite::Advertise;
use crate::kafka::{inspect_request, process_response, RequestError, ResponseError};
use crate::metrics::{Direction, TenantMetrics};
use crate::router::Tenant;

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

/// What a session needs besides its two streams.
#[derive(Debug)]
pub struct SessionContext {
    /// The tenant the server name chose; learns the brokers responses name.
    pub tenant: Arc<Tenant>,
    /// The names and port rewritten responses give the tenant's brokers.
    pub advertise: Advertise,
    /// Largest frame accepted either way, bytes.
    pub max_frame_bytes: u32,
    /// The client's address, for logs.
    pub peer: SocketAddr,
    /// The tenant's counters (bytes, requests), looked up once when the session starts so that counting a
    /// frame is one atomic add rather than a lookup by name under the metrics lock; `None` for a tenant the
    /// metrics do not know (not configured), whose traffic is not counted.
    pub metrics: Option<Arc<TenantMetrics>>,
}

/// Runs until either side closes or misbehaves.
pub async fn run<C, U>(client: C, upstream: U, ctx: &SessionContext) -> Result<(), SessionError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let inflight = InflightQueue::default();
    let max = ctx.max_frame_bytes;
    let metrics = ctx.metrics.as_deref();
    let requests =
        pump(Side::Client, client_r, upstream_w, max, metrics, |f| on_request(f, &inflight, metrics));
    let responses =
        pump(Side::Upstream, upstream_r, client_w, max, metrics, |f| on_response(f, &inflight, ctx));
    tokio::pin!(requests, responses);
    tokio::select! {
        r = &mut requests => match r {
            // The client is done sending and the broker has our FIN. Let it read and act on everything first:
            // dropping the upstream socket now, with its answers unread, would reset the connection and the
            // broker could lose requests still in its buffer (acks=0 producers close right after writing).
            Ok(()) => match tokio::time::timeout(DRAIN_AFTER_CLIENT_EOF, &mut responses).await {
                Ok(Err(SessionError::ClientIo(_))) | Err(_) => Ok(()),
                Ok(other) => other,
            },
            Err(e) => Err(e),
        },
        r = &mut responses => r,
    }
}

/// How long the upstream gets to finish after the client closed its side.
const DRAIN_AFTER_CLIENT_EOF: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors named by the side a pump reads from.
trait PumpSide {
    fn frame_error(self, e: FrameError) -> SessionError;
    fn read_error(self, e: ReadError) -> SessionError;
    fn write_error(self, e: std::io::Error) -> SessionError;
    fn truncated(self, n: usize) -> SessionError;
}

impl PumpSide for Side {
    fn frame_error(self, e: FrameError) -> SessionError {
        match self {
            Side::Client => SessionError::ClientFrame(e),
            Side::Upstream | Side::Internal => SessionError::UpstreamFrame(e),
        }
    }
    fn read_error(self, e: ReadError) -> SessionError {
        match (self, e) {
            (_, ReadError::Frame(e)) => self.frame_error(e),
            (_, ReadError::Truncated(n)) => self.truncated(n),
            (Side::Client, ReadError::Io(e)) => SessionError::ClientIo(e),
            (_, ReadError::Io(e)) => SessionError::UpstreamIo(e),
        }
    }
    fn write_error(self, e: std::io::Error) -> SessionError {
        match self {
            Side::Client => SessionError::UpstreamIo(e),
            Side::Upstream | Side::Internal => SessionError::ClientIo(e),
        }
    }
    fn truncated(self, n: usize) -> SessionError {
        match self {
            Side::Client => SessionError::ClientTruncated(n),
            Side::Upstream | Side::Internal => SessionError::UpstreamTruncated(n),
        }
    }
}

/// Moves frames from `from` to `to`, passing each through `on_frame` (which returns the bytes to send, or
/// `None` to drop the frame). Every frame a read completes is handled before one vectored write; the bytes it
/// wrote (whole frames, length prefixes included) are counted once per write. Ends when `from` closes, after
/// shutting down `to`'s write side.
async fn pump<R, W>(
    side: Side,
    from: R,
    mut to: W,
    max: u32,
    metrics: Option<&TenantMetrics>,
    mut on_frame: impl FnMut(Frame) -> Result<Option<Bytes>, SessionError>,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = FrameReader::new(from, max);
    let mut out: Vec<Bytes> = Vec::new();
    let direction = match side {
        Side::Client => Direction::ClientToUpstream,
        Side::Upstream | Side::Internal => Direction::UpstreamToClient,
    };
    loop {
        let read = match frames.fill().await {
            // Most Kafka clients close without TLS close_notify, or reset: an ordinary end, not an error.
            Err(ReadError::Io(e)) if side == Side::Client && is_abrupt_close(&e) => 0,
            r => r.map_err(|e| side.read_error(e))?,
        };
        if read == 0 {
            let _ = to.shutdown().await;
            return match frames.pending() {
                0 => Ok(()),
                n => Err(side.truncated(n)),
            };
        }
        let mut bytes = 0;
        while let Some(frame) = frames.buffered_frame().map_err(|e| side.frame_error(e))? {
            if let Some(b) = on_frame(frame)? {
                bytes += b.len() as u64;
                out.push(b);
            }
        }
        write_frames(&mut to, &mut out).await.map_err(|e| side.write_error(e))?;
        if let Some(m) = metrics.filter(|_| bytes > 0) {
            m.forwarded(direction, bytes);
        }
    }
}

/// Client → upstream: read the header, remember what the response will need, forward the frame as it came
/// (counted by API).
fn on_request(
    frame: Frame,
    inflight: &InflightQueue,
    metrics: Option<&TenantMetrics>,
) -> Result<Option<Bytes>, SessionError> {
    let seen = inspect_request(&frame)?;
    if let Some(m) = metrics {
        m.request(seen.inflight.api_key);
    }
    if seen.expects_response {
        inflight.push(seen.inflight);
    } else {
        inflight.push_unanswered(seen.inflight.correlation_id);
    }
    Ok(Some(frame.into_bytes()))
}

/// Upstream → client: match the response to its request and rewrite it if it names brokers.
fn on_response(
    frame: Frame,
    inflight: &InflightQueue,
    ctx: &SessionContext,
) -> Result<Option<Bytes>, SessionError> {
    let correlation_id =
        i32_at(frame.body(), 0).ok_or(SessionError::UpstreamTruncated(frame.body().len()))?;
    let request = match inflight.pop(correlation_id)? {
        Answer::Request(r) => r,
        Answer::Unsolicited => {
            tracing::trace!(peer = %ctx.peer, correlation_id, "dropped a broker's answer to acks=0");
            return Ok(None);
        }
    };
    let processed = process_response(frame, &request, &ctx.advertise)?;
    if !processed.learned.is_empty() {
        ctx.tenant.learn(processed.learned);
    }
    Ok(Some(processed.frame.into_bytes()))
}

fn is_abrupt_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// Writes all queued frames with as few (vectored) writes as the sink accepts, then flushes.
async fn write_frames<W: AsyncWrite + Unpin>(w: &mut W, frames: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    while first < frames.len() {
        let slices: Vec<std::io::IoSlice<'_>> =
            frames[first..].iter().take(64).map(|b| std::io::IoSlice::new(b)).collect();
        let mut written = w.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < frames.len() && written >= frames[first].len() {
            written -= frames[first].len();
            first += 1;
        }
        if written > 0 {
            let rest = frames[first].slice(written..);
            frames[first] = rest;
        }
    }
    frames.clear();
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
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
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            metrics: metrics.tenant("acme"),
        };
        let (client, mut app) = tokio::io::duplex(4096);
        let (upstream, mut broker) = tokio::io::duplex(4096);
        // Heartbeat (passed through) and an API key no Kafka version has.
        let requests = [request(12, 1, &[0; 4]), request(999, 2, &[])].concat();
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
            ("kaas_proxy_requests_total{tenant=\"acme\",api=\"unknown\"}", 1),
            ("kaas_proxy_requests_total{tenant=\"acme\",api=\"Metadata\"}", 0),
        ] {
            let line = format!("{series} {want}");
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
