//! The pump: moves whole frames from one side to the other, reading only while its direction has room
//! (backpressure), with vectored writes. Neighbours: [`super::directions`] decide what each frame becomes.

use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::SessionError;
use crate::kafka::codec::{Frame, FrameError, FrameStream, ReadError};
use crate::metrics::{Direction, TenantMetrics};

/// A pump's errors, named by its direction: the side it reads from and the side it writes to.
trait DirectionErrors {
    fn frame_error(self, e: FrameError) -> SessionError;
    fn read_error(self, e: ReadError) -> SessionError;
    fn write_error(self, e: std::io::Error) -> SessionError;
    fn truncated(self, n: usize) -> SessionError;
}

impl DirectionErrors for Direction {
    fn frame_error(self, e: FrameError) -> SessionError {
        match self {
            Direction::ClientToUpstream => SessionError::ClientFrame(e),
            Direction::UpstreamToClient => SessionError::UpstreamFrame(e),
        }
    }
    fn read_error(self, e: ReadError) -> SessionError {
        match (self, e) {
            (_, ReadError::Frame(e)) => self.frame_error(e),
            (_, ReadError::Truncated(n)) => self.truncated(n),
            (Direction::ClientToUpstream, ReadError::Io(e)) => SessionError::ClientIo(e),
            (_, ReadError::Io(e)) => SessionError::UpstreamIo(e),
        }
    }
    fn write_error(self, e: std::io::Error) -> SessionError {
        match self {
            Direction::ClientToUpstream => SessionError::UpstreamIo(e),
            Direction::UpstreamToClient => SessionError::ClientIo(e),
        }
    }
    fn truncated(self, n: usize) -> SessionError {
        match self {
            Direction::ClientToUpstream => SessionError::ClientTruncated(n),
            Direction::UpstreamToClient => SessionError::UpstreamTruncated(n),
        }
    }
}

/// What a pump does with the frames of its direction.
pub(super) trait Frames {
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
/// direction.
pub(super) async fn pump<R, W>(
    direction: Direction,
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
    let mut reader = FrameStream::new(from, max);
    let mut out: Vec<Bytes> = Vec::new();
    let mut arrived = Instant::now();
    loop {
        // Frames already read first, as many as may go now; the rest wait in the read buffer.
        let mut bytes = 0;
        while frames.has_room() {
            let Some(frame) = reader.buffered_frame().map_err(|e| direction.frame_error(e))? else { break };
            if let Some(b) = frames.frame(frame, arrived)? {
                bytes += b.len() as u64;
                out.push(b);
            }
        }
        if bytes > 0 {
            write_frames(&mut to, &mut out).await.map_err(|e| direction.write_error(e))?;
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
            Err(ReadError::Io(e)) if direction == Direction::ClientToUpstream && is_abrupt_close(&e) => 0,
            r => r.map_err(|e| direction.read_error(e))?,
        };
        if read == 0 {
            let _ = to.shutdown().await;
            return match reader.pending() {
                0 => Ok(()),
                n => Err(direction.truncated(n)),
            };
        }
        arrived = Instant::now();
    }
}

fn is_abrupt_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// Writes all queued frames with as few (vectored) writes as the sink accepts, then flushes.
pub(super) async fn write_frames<W: AsyncWrite + Unpin>(
    w: &mut W,
    frames: &mut Vec<Bytes>,
) -> std::io::Result<()> {
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
