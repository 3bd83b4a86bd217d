//! Framing: Kafka frames are a 4-byte big-endian length followed by that many bytes.
//!
//! [`FrameStream`] (a stream read as frames; writes pass through) is the one way frames are read, by the
//! proxy, its bench and its tests alike (mini-redis' `connection.rs` is the model): check the length prefix
//! against the limit, then take the frame off the buffer without copying (it shares the buffer's memory). It
//! never allocates the size a peer claims: the buffer grows in bounded steps, so a peer that claims 100 MiB and
//! sends nothing costs nothing, and an idle connection's buffer is released. A [`Frame`]'s bytes are private,
//! so no caller can build one whose prefix lies; its body can be patched in place ([`Frame::body_mut`]), never
//! resized.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Read-buffer growth step while a large frame arrives.
const GROWTH_STEP: usize = 256 * 1024;
/// Smallest read into an empty buffer; enough for typical requests in one read.
const MIN_READ: usize = 8 * 1024;

/// Why a length prefix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The prefix, read as Kafka's signed i32, is below zero.
    #[error("frame length {0} is negative")]
    Negative(i32),
    /// The prefix claims more than the limit; refused before any of it is buffered.
    #[error("frame of {len} bytes is larger than max_frame_bytes ({max})")]
    TooLarge {
        /// The claimed body length, bytes.
        len: u32,
        /// The limit, bytes.
        max: u32,
    },
}

/// A whole frame, length prefix included, so it can be forwarded as it came. Always at least the 4 prefix
/// bytes, and the prefix always equals the body's length. Held as the writable part of the buffer it was read
/// into (split off it, not copied), so fixed-size fields can be patched in place; cloning copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(BytesMut);

impl Frame {
    /// The bytes after the length prefix.
    pub fn body(&self) -> &[u8] {
        &self.0[4..]
    }

    /// The bytes after the length prefix, writable in place: their length, so the prefix, cannot change.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.0[4..]
    }

    /// The body as shared bytes, without copying.
    pub fn into_body(self) -> Bytes {
        self.0.freeze().slice(4..)
    }

    /// The whole frame, prefix included.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The whole frame, prefix included, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0.freeze()
    }

    /// Builds a frame from a body, adding the length prefix.
    pub fn from_body(body: &[u8]) -> Frame {
        Frame::build(body.len(), |b| b.put_slice(body))
    }

    /// Builds a frame whose body `write` appends; the prefix is set from what it wrote.
    pub fn build(capacity: usize, write: impl FnOnce(&mut BytesMut)) -> Frame {
        let mut b = BytesMut::with_capacity(4 + capacity);
        b.put_u32(0);
        write(&mut b);
        let len = (b.len() - 4) as u32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        Frame(b)
    }
}

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The length prefix was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading the stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream inside a frame; holds the bytes buffered.
    #[error("closed mid-frame ({0} bytes of a partial frame)")]
    Truncated(usize),
}

/// Reads whole frames off a byte stream, bounded by `max` bytes a frame.
#[derive(Debug)]
pub struct FrameStream<R> {
    inner: R,
    buf: BytesMut,
    max: u32,
}

impl<R: AsyncRead + Unpin> FrameStream<R> {
    /// Wraps `inner`; frames whose body is longer than `max` bytes are refused. Allocates nothing yet.
    pub fn new(inner: R, max: u32) -> Self {
        FrameStream { inner, buf: BytesMut::new(), max }
    }

    /// The next frame; `Ok(None)` when the peer closed cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(frame));
            }
            if self.fill().await? == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    n => Err(ReadError::Truncated(n)),
                };
            }
        }
    }

    /// One read from the stream into the buffer (bounded growth); 0 at end of stream.
    pub async fn fill(&mut self) -> Result<usize, ReadError> {
        shrink_if_idle(&mut self.buf);
        reserve_for_next(&mut self.buf, self.max)?;
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    /// A complete frame already buffered, without reading.
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        split_frame(&mut self.buf, self.max)
    }

    /// Bytes of a partial frame still buffered.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The stream, for writing to it.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The stream back; buffered bytes are dropped.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Writes go straight to the stream, so one value serves a request/response conversation.
impl<R: AsyncWrite + Unpin> AsyncWrite for FrameStream<R> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Declared body length of the frame at the front of `buf`, checked against `max`.
fn declared_len(buf: &[u8], max: u32) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len < 0 {
        return Err(FrameError::Negative(len));
    }
    if len as u32 > max {
        return Err(FrameError::TooLarge { len: len as u32, max });
    }
    Ok(Some(len as usize))
}

/// Takes the first complete frame off `buf`, if there is one.
fn split_frame(buf: &mut BytesMut, max: u32) -> Result<Option<Frame>, FrameError> {
    match declared_len(buf, max)? {
        Some(len) if buf.len() >= 4 + len => Ok(Some(Frame(buf.split_to(4 + len)))),
        _ => Ok(None),
    }
}

/// Makes room for the next read: at least [`MIN_READ`], at most one [`GROWTH_STEP`] beyond what is buffered,
/// and never past the end of the frame being read.
fn reserve_for_next(buf: &mut BytesMut, max: u32) -> Result<(), FrameError> {
    let want = match declared_len(buf, max)? {
        Some(len) => (4 + len - buf.len().min(4 + len)).clamp(MIN_READ.min(4 + len), GROWTH_STEP),
        None => MIN_READ,
    };
    if buf.capacity() - buf.len() < want {
        buf.reserve(want);
    }
    Ok(())
}

/// Drops the buffer's memory once it is empty and large, so idle connections hold little.
fn shrink_if_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 4 * MIN_READ {
        *buf = BytesMut::new();
    }
}

/// Reads an i32 at `at` (for correlation ids), if present.
pub fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    let mut s = bytes.get(at..at + 4)?;
    Some(s.get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_frames_only() {
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 3, 1][..]);
        assert_eq!(split_frame(&mut buf, 1024), Ok(Some(Frame(BytesMut::from(&[0, 0, 0, 2, 7, 8][..])))));
        assert_eq!(split_frame(&mut buf, 1024), Ok(None));
        assert_eq!(buf.len(), 5);
        buf.extend_from_slice(&[2, 3]);
        let f = split_frame(&mut buf, 1024).expect("valid").expect("complete");
        assert_eq!(f.body(), &[1, 2, 3]);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_hostile_lengths_without_allocating() {
        let mut huge = BytesMut::from(&0x7fff_ffffu32.to_be_bytes()[..]);
        assert_eq!(split_frame(&mut huge, 1024), Err(FrameError::TooLarge { len: 0x7fff_ffff, max: 1024 }));
        assert!(reserve_for_next(&mut huge, 1024).is_err());
        assert!(huge.capacity() < 1024);
        let mut negative = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(split_frame(&mut negative, 1024), Err(FrameError::Negative(-5)));
    }

    #[test]
    fn grows_in_steps() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(50_000_000u32).to_be_bytes());
        reserve_for_next(&mut buf, 100_000_000).expect("allowed size");
        assert!(buf.capacity() <= 4 + GROWTH_STEP + MIN_READ, "{}", buf.capacity());
        let mut small = BytesMut::new();
        small.extend_from_slice(&(10u32).to_be_bytes());
        reserve_for_next(&mut small, 1024).expect("allowed size");
        assert!(small.capacity() >= 14);
    }
}

/// Why a message could not be encoded into a frame.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api:?} v{version}: {reason}")]
pub struct EncodeError {
    /// The message's API (`ApiVersions` when the request's key is unknown).
    pub api: kafka_protocol::messages::ApiKey,
    /// The version it was to be encoded at.
    pub version: i16,
    /// The encoder's error chain.
    pub reason: String,
}

/// A whole request frame: length, header (the version `api` uses at `version`), body. For the proxy's own
/// requests and for tools and tests that speak Kafka.
pub fn encode_request<R: kafka_protocol::protocol::Request>(
    correlation_id: i32,
    version: i16,
    client_id: &'static str,
    request: &R,
) -> Result<Bytes, EncodeError> {
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let api = ApiKey::try_from(R::KEY).map_err(|_| EncodeError {
        api: ApiKey::ApiVersions,
        version,
        reason: format!("unknown api key {}", R::KEY),
    })?;
    let fail = |e: anyhow::Error| EncodeError { api, version, reason: format!("{e:#}") };
    let mut result = Ok(());
    let frame = Frame::build(64, |b| {
        result = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(client_id)))
            .encode(b, api.request_header_version(version))
            .and_then(|()| request.encode(b, version));
    });
    result.map_err(fail)?;
    Ok(frame.into_bytes())
}

/// A whole response frame for `api` at `version`: length, response header, body.
pub fn encode_response<M: kafka_protocol::protocol::Encodable>(
    api: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    message: &M,
) -> Result<Bytes, EncodeError> {
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::protocol::Encodable;
    let fail = |e: anyhow::Error| EncodeError { api, version, reason: format!("{e:#}") };
    let mut result = Ok(());
    let frame = Frame::build(64, |b| {
        result = ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(b, api.response_header_version(version))
            .and_then(|()| message.encode(b, version));
    });
    result.map_err(fail)?;
    Ok(frame.into_bytes())
}
