//! Session: one client connection and its upstream connection, pumping frames both ways.
//!
//! Requests: header read, response expectation queued, frame forwarded as it came (zero-copy slices of the read
//! buffer, written with vectored writes). Responses: matched to the oldest in-flight request; the few that name
//! brokers are rewritten, everything else forwarded untouched. Either side closing ends the session.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::kafka::codec::{i32_at, reserve_for_next, shrink_if_idle, split_frame, FrameError};
use crate::kafka::inflight::{Answer, InflightError, InflightQueue};
use crate::kafka::rewrite::Advertise;
use crate::kafka::{inspect_request, process_response, RequestError, ResponseError};
use crate::router::Tenant;

/// How a session ended badly, by side: the client's fault, the upstream's, or the link between them.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("client i/o: {0}")]
    ClientIo(std::io::Error),
    #[error("client frame: {0}")]
    ClientFrame(FrameError),
    #[error("client request: {0}")]
    Request(#[from] RequestError),
    #[error("client closed mid-frame ({0} bytes of a partial frame)")]
    ClientTruncated(usize),
    #[error("upstream i/o: {0}")]
    UpstreamIo(std::io::Error),
    #[error("upstream frame: {0}")]
    UpstreamFrame(FrameError),
    #[error("upstream response: {0}")]
    Response(#[from] ResponseError),
    #[error("upstream response: {0}")]
    Inflight(#[from] InflightError),
    #[error("upstream response too short for a correlation id")]
    UpstreamTruncated,
}

/// What a session needs besides its two streams.
#[derive(Debug)]
pub struct SessionContext {
    pub tenant: Arc<Tenant>,
    pub advertise: Advertise,
    pub max_frame_bytes: u32,
    pub peer: SocketAddr,
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
    tokio::select! {
        r = requests(client_r, upstream_w, &inflight, ctx) => r,
        r = responses(upstream_r, client_w, &inflight, ctx) => r,
    }
}

async fn requests<R, W>(
    mut client: R,
    mut upstream: W,
    inflight: &InflightQueue,
    ctx: &SessionContext,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max = ctx.max_frame_bytes;
    let mut buf = BytesMut::new();
    let mut out: Vec<Bytes> = Vec::new();
    loop {
        reserve_for_next(&mut buf, max).map_err(SessionError::ClientFrame)?;
        let read = match client.read_buf(&mut buf).await {
            // Most Kafka clients close without TLS close_notify, or reset: an ordinary end, not an error.
            Err(e) if is_abrupt_close(&e) => 0,
            r => r.map_err(SessionError::ClientIo)?,
        };
        if read == 0 {
            let _ = upstream.shutdown().await;
            return match buf.len() {
                0 => Ok(()),
                n => Err(SessionError::ClientTruncated(n)),
            };
        }
        while let Some(frame) = split_frame(&mut buf, max).map_err(SessionError::ClientFrame)? {
            let seen = inspect_request(&frame)?;
            if seen.expects_response {
                inflight.push(seen.inflight);
            } else {
                inflight.push_unanswered(seen.inflight.correlation_id);
            }
            out.push(frame.0);
        }
        write_frames(&mut upstream, &mut out).await.map_err(SessionError::UpstreamIo)?;
        shrink_if_idle(&mut buf);
    }
}

async fn responses<R, W>(
    mut upstream: R,
    mut client: W,
    inflight: &InflightQueue,
    ctx: &SessionContext,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max = ctx.max_frame_bytes;
    let mut buf = BytesMut::new();
    let mut out: Vec<Bytes> = Vec::new();
    loop {
        reserve_for_next(&mut buf, max).map_err(SessionError::UpstreamFrame)?;
        if upstream.read_buf(&mut buf).await.map_err(SessionError::UpstreamIo)? == 0 {
            let _ = client.shutdown().await;
            return Ok(());
        }
        while let Some(frame) = split_frame(&mut buf, max).map_err(SessionError::UpstreamFrame)? {
            let correlation_id = i32_at(frame.body(), 0).ok_or(SessionError::UpstreamTruncated)?;
            let request = match inflight.pop(correlation_id)? {
                Answer::Request(r) => r,
                Answer::Unsolicited => {
                    tracing::trace!(peer = %ctx.peer, correlation_id, "dropped a broker's answer to acks=0");
                    continue;
                }
            };
            let processed = process_response(frame, &request, &ctx.advertise)?;
            if !processed.learned.is_empty() {
                ctx.tenant.learn(processed.learned);
            }
            out.push(processed.frame.0);
        }
        write_frames(&mut client, &mut out).await.map_err(SessionError::ClientIo)?;
        shrink_if_idle(&mut buf);
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
