//! Session: one client connection and its upstream connection, pumping frames both ways.
//!
//! Requests: header read, response expectation queued, frame forwarded as it came (zero-copy slices of the read
//! buffer, written with vectored writes). Responses: matched to the oldest in-flight request; the few that name
//! brokers are rewritten, everything else forwarded untouched. Either side closing ends the session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::{Blame, Side};
use crate::kafka::codec::{i32_at, Frame, FrameError, FrameReader, ReadError};
use crate::kafka::inflight::{Answer, InFlight, InflightError, InflightQueue, Timing};
use crate::kafka::rewrite::Advertise;
use crate::kafka::throttle::with_throttle;
use crate::kafka::{cap_fetch_bytes, inspect_request, process_response, RequestError, ResponseError};
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
        let requests = pump(Side::Client, &mut client_r, upstream_w, max, metrics, &mut on_request);
        let responses = pump(Side::Upstream, upstream_r, &mut client_w, max, metrics, &mut on_response);
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

/// Ends a session the proxy closes: TLS close_notify and FIN, then the client's remaining input is read (for at
/// most a second) before the socket is dropped. Dropping it with unread input would send a TCP reset, which can
/// destroy responses the client has not read yet.
async fn close_gracefully<C: AsyncRead + AsyncWrite + Unpin>(mut client: C) {
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
    let drain = async {
        let mut sink = [0u8; 4096];
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// When the proxy drains or the tenant's route is retired: stops forwarding requests, lets every response
/// still owed reach the client, then completes, so the client sees a connection closed between requests and
/// reconnects (to another proxy, or to the new route) with nothing lost: a request it sent that was not
/// forwarded gets no answer, and the client retries it.
async fn close_when_quiet(shared: &Shared, ctx: &SessionContext) -> &'static str {
    let why = tokio::select! {
        () = ctx.draining.cancelled() => "the proxy is draining",
        () = ctx.tenant.retired() => "the tenant's route changed",
    };
    shared.closing.store(true, Ordering::SeqCst);
    loop {
        let flushed = shared.flushed.notified();
        if shared.inflight.is_empty() && shared.unwritten.load(Ordering::SeqCst) == 0 {
            return why;
        }
        flushed.await;
    }
}

/// What the two directions of one session share (both run in the session's task; atomics keep it `Sync`).
struct Shared {
    inflight: InflightQueue,
    /// Signalled for each response matched, to wake a request side held back by `max_inflight`.
    answered: Notify,
    started: Instant,
    /// When a frame last went either way, microseconds after `started`.
    last_activity_micros: AtomicU64,
    /// Set when the session is to close between requests: no further request is forwarded.
    closing: AtomicBool,
    /// Until when the client is not read (a quota's throttle), microseconds after `started`; 0: not muted.
    muted_until_micros: AtomicU64,
    /// Responses handed to the client side and not yet written.
    unwritten: AtomicUsize,
    /// Signalled after each write to the client.
    flushed: Notify,
}

impl Shared {
    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_micros()).unwrap_or(u64::MAX)
    }

    fn touch(&self, at: Instant) {
        self.last_activity_micros.fetch_max(self.micros(at), Ordering::Relaxed);
    }

    /// Reads nothing more from the client until `until` (a quota's throttle, KIP-219).
    fn mute_until(&self, until: Instant) {
        self.muted_until_micros.fetch_max(self.micros(until), Ordering::Relaxed);
    }

    /// The end of the current mute, if it lies ahead.
    fn muted(&self) -> Option<Instant> {
        let until = self.started + Duration::from_micros(self.muted_until_micros.load(Ordering::Relaxed));
        (until > Instant::now()).then_some(until)
    }

    fn last_activity(&self) -> Instant {
        self.started + Duration::from_micros(self.last_activity_micros.load(Ordering::Relaxed))
    }
}

/// Completes once the session has had no request outstanding and no frame either way for `timeout`.
async fn idle(shared: &Shared, timeout: Duration) {
    loop {
        tokio::time::sleep_until((shared.last_activity() + timeout).into()).await;
        let now = Instant::now();
        if shared.last_activity() + timeout > now {
            continue;
        }
        if shared.inflight.is_empty() {
            return;
        }
        // A request is outstanding (a long poll, a JoinGroup waiting for its group): the broker owes an
        // answer, so the session is not idle; look again a timeout later.
        shared.touch(now);
    }
}

/// How long the upstream gets to finish after the client closed its side.
const DRAIN_AFTER_CLIENT_EOF: Duration = Duration::from_secs(5);

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

/// What a pump does with the frames of its direction.
trait Frames {
    /// Whether another frame may be forwarded now (backpressure); most directions always may.
    fn has_room(&self) -> bool {
        true
    }
    /// Waits until [`Frames::has_room`].
    async fn ready(&mut self) {}
    /// Returns the bytes to send for `frame` (read at `arrived`), or `None` to drop it.
    fn frame(&mut self, frame: Frame, arrived: Instant) -> Result<Option<Bytes>, SessionError>;
    /// Everything returned since the last call has been written, at `at`.
    fn written(&mut self, at: Instant);
}

/// Moves frames from `from` to `to`, passing each through `frames`. The frames a read completes are handled
/// (as many as `frames` has room for) before one vectored write; the bytes it wrote (whole frames, length
/// prefixes included) are counted once per write. Without room, nothing more is read from `from` until there is:
/// the peer is held back by TCP, never buffered for. Ends when `from` closes, after shutting down `to`'s write
/// side.
async fn pump<R, W>(
    side: Side,
    from: R,
    mut to: W,
    max: u32,
    metrics: Option<&TenantMetrics>,
    frames: &mut impl Frames,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = FrameReader::new(from, max);
    let mut out: Vec<Bytes> = Vec::new();
    let direction = match side {
        Side::Client => Direction::ClientToUpstream,
        Side::Upstream | Side::Internal => Direction::UpstreamToClient,
    };
    let mut arrived = Instant::now();
    loop {
        // Frames already read first, as many as may go now; the rest wait in the read buffer.
        let mut bytes = 0;
        while frames.has_room() {
            let Some(frame) = reader.buffered_frame().map_err(|e| side.frame_error(e))? else { break };
            if let Some(b) = frames.frame(frame, arrived)? {
                bytes += b.len() as u64;
                out.push(b);
            }
        }
        if bytes > 0 {
            write_frames(&mut to, &mut out).await.map_err(|e| side.write_error(e))?;
            frames.written(Instant::now());
            if let Some(m) = metrics {
                m.forwarded(direction, bytes);
            }
        }
        if !frames.has_room() {
            // Backpressure: nothing more is read from this side until the other makes room.
            frames.ready().await;
            continue;
        }
        let read = match reader.fill().await {
            // Most Kafka clients close without TLS close_notify, or reset: an ordinary end, not an error.
            Err(ReadError::Io(e)) if side == Side::Client && is_abrupt_close(&e) => 0,
            r => r.map_err(|e| side.read_error(e))?,
        };
        if read == 0 {
            let _ = to.shutdown().await;
            return match reader.pending() {
                0 => Ok(()),
                n => Err(side.truncated(n)),
            };
        }
        arrived = Instant::now();
    }
}

/// Client → upstream: read the header, remember what the response will need, forward the frame as it came
/// (counted by API). Holds the client back while `max_inflight` requests await their responses.
struct Requests<'s> {
    shared: &'s Shared,
    ctx: &'s SessionContext,
    metrics: Option<&'s TenantMetrics>,
    max_inflight: usize,
}

impl Frames for Requests<'_> {
    fn has_room(&self) -> bool {
        self.shared.inflight.len() < self.max_inflight
            && !self.shared.closing.load(Ordering::Relaxed)
            && self.shared.muted().is_none()
    }

    async fn ready(&mut self) {
        // `notify_one` stores a permit when nobody waits, so an answer between the check and the wait is
        // not missed.
        while !self.has_room() {
            match self.shared.muted() {
                Some(until) => tokio::time::sleep_until(until.into()).await,
                None => self.shared.answered.notified().await,
            }
        }
    }

    fn frame(&mut self, frame: Frame, arrived: Instant) -> Result<Option<Bytes>, SessionError> {
        self.shared.touch(arrived);
        let mut seen = inspect_request(&frame)?;
        if let Some(m) = self.metrics {
            m.request(seen.inflight.api_key);
        }
        let produce = self.ctx.tenant.quotas.produce.as_ref().filter(|_| seen.inflight.api_key == PRODUCE);
        if let Some(limit) = produce {
            let throttle = limit.take(frame.body().len() + 4, arrived);
            if !throttle.is_zero() {
                seen.inflight.throttle_ms = throttle_ms(throttle);
                self.shared.mute_until(arrived + throttle);
                if let Some(m) = self.metrics {
                    m.throttled("produce", throttle);
                }
            }
        }
        if seen.expects_response {
            self.shared.inflight.push(seen.inflight, arrived);
        } else {
            self.shared.inflight.push_unanswered(seen.inflight.correlation_id);
        }
        let frame = match seen.inflight.api_key {
            FETCH => cap_fetch_bytes(frame, self.ctx.max_fetch_bytes)?,
            _ => frame,
        };
        Ok(Some(frame.into_bytes()))
    }

    fn written(&mut self, at: Instant) {
        self.shared.inflight.mark_sent(at);
    }
}

/// The API key of Produce and Fetch, whose bytes count against a tenant's quotas.
const PRODUCE: i16 = 0;
const FETCH: i16 = 1;

/// A throttle as Kafka's `throttle_time_ms`, rounded up.
fn throttle_ms(throttle: Duration) -> i32 {
    i32::try_from(throttle.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
}

impl Responses<'_> {
    /// The response with the throttle the tenant's quotas ask for: the produce throttle its request earned, or
    /// (a Fetch) the fetch throttle its own size earns now; the client is not read for as long.
    fn throttle(&mut self, frame: Frame, request: &InFlight, arrived: Instant) -> Frame {
        let fetch = self.ctx.tenant.quotas.fetch.as_ref().filter(|_| request.api_key == FETCH);
        let mut throttle_ms = request.throttle_ms;
        if let Some(limit) = fetch {
            let throttle = limit.take(frame.body().len() + 4, arrived);
            if !throttle.is_zero() {
                throttle_ms = self::throttle_ms(throttle);
                self.shared.mute_until(arrived + throttle);
                if let Some(m) = self.ctx.metrics.as_deref() {
                    m.throttled("fetch", throttle);
                }
            }
        }
        match request.api() {
            Some(api) if throttle_ms > 0 => with_throttle(frame, api, request.version, throttle_ms),
            _ => frame,
        }
    }
}

/// Upstream → client: match the response to its request and rewrite it if it names brokers, and answer quotas;
/// once written, record how long the pair took in the proxy and upstream.
struct Responses<'s> {
    shared: &'s Shared,
    ctx: &'s SessionContext,
    /// Requests answered by the frames being written: API key, when the request passed, when its response
    /// arrived.
    done: Vec<(i16, Timing, Instant)>,
}

impl Frames for Responses<'_> {
    fn frame(&mut self, frame: Frame, arrived: Instant) -> Result<Option<Bytes>, SessionError> {
        let ctx = self.ctx;
        self.shared.touch(arrived);
        let correlation_id =
            i32_at(frame.body(), 0).ok_or(SessionError::UpstreamTruncated(frame.body().len()))?;
        let answer = self.shared.inflight.pop(correlation_id)?;
        self.shared.answered.notify_one();
        let (request, timing) = match answer {
            Answer::Request(r, timing) => (r, timing),
            Answer::Unsolicited => {
                tracing::trace!(peer = %ctx.peer, correlation_id, "dropped a broker's answer to acks=0");
                return Ok(None);
            }
        };
        let processed = match process_response(frame, &request, &ctx.advertise) {
            Ok(p) => p,
            Err(e) => {
                if let (ResponseError::Leak { addresses, .. }, Some(m)) = (&e, &ctx.metrics) {
                    m.leaked(*addresses as u64);
                }
                return Err(e.into());
            }
        };
        if !processed.learned.is_empty() {
            ctx.tenant.learn(processed.learned);
        }
        let processed = self.throttle(processed.frame, &request, arrived);
        if ctx.metrics.is_some() {
            self.done.push((request.api_key, timing, arrived));
        }
        self.shared.unwritten.fetch_add(1, Ordering::SeqCst);
        Ok(Some(processed.into_bytes()))
    }

    fn written(&mut self, at: Instant) {
        self.shared.unwritten.store(0, Ordering::SeqCst);
        self.shared.flushed.notify_waiters();
        let Some(m) = self.ctx.metrics.as_deref() else { return };
        for (api_key, timing, arrived) in self.done.drain(..) {
            // A response that overtook the record of its request's write counts as all upstream time.
            let sent = timing.sent.unwrap_or(timing.read).min(arrived);
            let proxy = sent.saturating_duration_since(timing.read) + at.saturating_duration_since(arrived);
            m.latency(api_key, proxy, arrived.saturating_duration_since(sent));
        }
    }
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
            max_inflight: 16,
            max_fetch_bytes: 1 << 20,
            idle_timeout: Duration::from_secs(60),
            draining: CancellationToken::new(),
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
