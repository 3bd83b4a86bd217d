//! A small Kafka client over any byte stream: typed requests out, response bodies back, matched by correlation
//! id. The proxy's own metadata refresh uses it and walks the bodies with the bounded readers of
//! [`super::rewrite`] and [`super::versions`]; the bench and the tests, whose peers are trusted, may decode with
//! kafka-protocol ([`KafkaClient::call_decoded`]). Framing is [`super::codec::FrameStream`]'s.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::codec::{encode_request, i32_at, EncodeError, FrameStream, ReadError};
use super::header::{response_header_len, HeaderError};

/// Why a [`KafkaClient`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be encoded at the asked version.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Writing the request to the stream failed.
    #[error("sending: {0}")]
    Send(std::io::Error),
    /// Reading the response frame failed, or its length prefix was refused.
    #[error("receiving: {0}")]
    Receive(#[from] ReadError),
    /// The stream ended cleanly before the response.
    #[error("the peer closed the connection before answering")]
    Closed,
    /// The response header is truncated or malformed.
    #[error("{api:?} response header: {source}")]
    Header {
        /// The API of the request.
        api: ApiKey,
        /// What was wrong with the header.
        source: HeaderError,
    },
    /// The response answers another request than the one just sent.
    #[error("answer to correlation id {got}, expected {expected}")]
    Correlation {
        /// The id the request was sent with.
        expected: i32,
        /// The id the response carries.
        got: i32,
    },
    /// kafka-protocol could not decode the response body ([`KafkaClient::call_decoded`] only).
    #[error("{api:?} v{version} response: {source:#}")]
    Decode {
        /// The API of the request.
        api: ApiKey,
        /// The version it was sent and decoded at.
        version: i16,
        /// The decoder's error.
        source: anyhow::Error,
    },
    /// The request type's key is not an API kafka-protocol knows.
    #[error("unknown api key {0}")]
    UnknownApi(i16),
}

/// One connection speaking Kafka, one request at a time.
#[derive(Debug)]
pub struct KafkaClient<S> {
    frames: FrameStream<S>,
    client_id: &'static str,
    next_correlation_id: i32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> KafkaClient<S> {
    /// Wraps `stream`; responses longer than `max_frame_bytes` are refused, correlation ids start at 1.
    pub fn new(stream: S, max_frame_bytes: u32, client_id: &'static str) -> Self {
        KafkaClient { frames: FrameStream::new(stream, max_frame_bytes), client_id, next_correlation_id: 1 }
    }

    /// Sends `request` as `version`; returns its correlation id.
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(correlation_id, version, self.client_id, request)?;
        let stream = self.frames.get_mut();
        stream.write_all(&frame).await.map_err(ClientError::Send)?;
        stream.flush().await.map_err(ClientError::Send)?;
        Ok(correlation_id)
    }

    /// Reads the answer to `correlation_id` (an `api` request of `version`) and returns its body, after the
    /// response header.
    pub async fn receive(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes, ClientError> {
        let frame = self.frames.read_frame().await?.ok_or(ClientError::Closed)?;
        let header_len = response_header_len(frame.body(), api.response_header_version(version))
            .map_err(|source| ClientError::Header { api, source })?;
        let got =
            i32_at(frame.body(), 0).ok_or(ClientError::Header { api, source: HeaderError::Truncated(0) })?;
        if got != correlation_id {
            return Err(ClientError::Correlation { expected: correlation_id, got });
        }
        Ok(frame.into_body().slice(header_len..))
    }

    /// Sends `request` and returns the body of its response.
    pub async fn call<R: Request>(&mut self, version: i16, request: &R) -> Result<Bytes, ClientError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| ClientError::UnknownApi(R::KEY))?;
        let correlation_id = self.send(version, request).await?;
        self.receive(api, version, correlation_id).await
    }

    /// Sends `request` and decodes its response with kafka-protocol. For trusted peers only: its decoder
    /// reserves what counts on the wire say (the proxy walks broker bytes instead).
    pub async fn call_decoded<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| ClientError::UnknownApi(R::KEY))?;
        let mut body = self.call(version, request).await?;
        R::Response::decode(&mut body, version).map_err(|source| ClientError::Decode { api, version, source })
    }

    /// The stream, for writing raw bytes to it.
    pub fn get_mut(&mut self) -> &mut S {
        self.frames.get_mut()
    }
}
