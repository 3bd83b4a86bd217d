//! Request and response headers: the only part of most frames the proxy reads.
//!
//! Request header v1/v2: api key (i16), api version (i16), correlation id (i32), client id (nullable i16
//! string), then in v2 tagged fields. Response header v0: correlation id; v1 adds tagged fields. Parsing is
//! by hand over borrowed bytes: no allocation, and the body offset comes out for the few bodies read further.

use kafka_protocol::messages::ApiKey;

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The bytes end inside the header; holds how many bytes there were.
    #[error("truncated header: {0} bytes")]
    Truncated(usize),
    /// A field cannot be valid (a negative string length, a varint over 5 bytes); names the field.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A decoded request header, borrowing from the frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    /// Raw, as sent: unknown keys are kept and forwarded (see [`Self::api`]).
    pub api_key: i16,
    /// The request's API version.
    pub api_version: i16,
    /// Echoed by the broker in the response; matches responses to requests.
    pub correlation_id: i32,
    /// Raw bytes (Kafka does not promise UTF-8); `None` when null or absent (header v0).
    pub client_id: Option<&'a [u8]>,
    /// Where the request body starts; `None` for API keys the proxy does not know (their header version is
    /// unknown, and their bodies are never read).
    pub body_offset: Option<usize>,
}

impl RequestHeader<'_> {
    /// The API, when the key is one kafka-protocol knows.
    pub fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }

    /// The client id for logs.
    pub fn client_id_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.client_id.unwrap_or_default())
    }
}

/// A small cursor over a byte slice.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        let s = self.b.get(self.at..self.at + n).ok_or(HeaderError::Truncated(self.b.len()))?;
        self.at += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, HeaderError> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Result<i32, HeaderError> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn uvarint(&mut self) -> Result<u32, HeaderError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(HeaderError::Malformed("varint"))
    }
    fn nullable_string(&mut self) -> Result<Option<&'a [u8]>, HeaderError> {
        match self.i16()? {
            -1 => Ok(None),
            n if n < 0 => Err(HeaderError::Malformed("string length")),
            n => self.take(n as usize).map(Some),
        }
    }
    fn compact_nullable_string(&mut self) -> Result<Option<&'a [u8]>, HeaderError> {
        match self.uvarint()? {
            0 => Ok(None),
            n => self.take(n as usize - 1).map(Some),
        }
    }
    fn skip_tagged_fields(&mut self) -> Result<(), HeaderError> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

/// Parses the request header at the front of a frame body.
pub fn parse_request(body: &[u8]) -> Result<RequestHeader<'_>, HeaderError> {
    let mut c = Cursor { b: body, at: 0 };
    let api_key = c.i16()?;
    let api_version = c.i16()?;
    let correlation_id = c.i32()?;
    let header_version = ApiKey::try_from(api_key).ok().map(|k| k.request_header_version(api_version));
    // Header v0 (ControlledShutdown v0 only) has no client id; every later one does, as a non-compact string.
    let client_id = match header_version {
        Some(0) => None,
        _ => c.nullable_string()?,
    };
    let body_offset = match header_version {
        Some(v) if v >= 2 => {
            c.skip_tagged_fields()?;
            Some(c.at)
        }
        Some(_) => Some(c.at),
        None => None,
    };
    Ok(RequestHeader { api_key, api_version, correlation_id, client_id, body_offset })
}

/// Length of a response header of `header_version` at the front of `body`.
pub fn response_header_len(body: &[u8], header_version: i16) -> Result<usize, HeaderError> {
    let mut c = Cursor { b: body, at: 0 };
    c.i32()?;
    if header_version >= 1 {
        c.skip_tagged_fields()?;
    }
    Ok(c.at)
}

/// The `acks` of a Produce request body (after the header): 0 means the broker sends no response.
pub fn produce_acks(request_body: &[u8], version: i16) -> Result<i16, HeaderError> {
    let mut c = Cursor { b: request_body, at: 0 };
    if version >= 9 {
        c.compact_nullable_string()?;
    } else if version >= 3 {
        c.nullable_string()?;
    }
    c.i16()
}

/// Where a Fetch request's `max_bytes` (the response's size limit) sits in its body: after replica_id,
/// max_wait_ms and min_bytes in v3-v14, after max_wait_ms and min_bytes from v15 (replica_id became a tagged
/// field); `None` before v3, which has no such limit. Every field before it is a fixed-size i32.
pub fn fetch_max_bytes_offset(version: i16) -> Option<usize> {
    match version {
        3..=14 => Some(12),
        15.. => Some(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{ProduceRequest, RequestHeader as KpHeader, TransactionalId};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode_header(key: ApiKey, version: i16, client: Option<&str>) -> BytesMut {
        let mut b = BytesMut::new();
        KpHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(client.map(|c| StrBytes::from_string(c.into())))
            .encode(&mut b, key.request_header_version(version))
            .expect("encode header");
        b
    }

    #[test]
    fn request_headers_of_every_api_and_version() {
        for key in ApiKey::iter() {
            let range = key.valid_versions();
            for v in range.min..=range.max {
                let mut frame = encode_header(key, v, Some("rdkafka"));
                let header_len = frame.len();
                frame.extend_from_slice(b"body");
                let h = parse_request(&frame).expect("valid header");
                assert_eq!((h.api_key, h.api_version, h.correlation_id), (key as i16, v, 42), "{key:?} v{v}");
                let expect_client = (key.request_header_version(v) > 0).then_some(&b"rdkafka"[..]);
                assert_eq!(h.client_id, expect_client, "{key:?} v{v}");
                assert_eq!(h.body_offset, Some(header_len), "{key:?} v{v}");
            }
        }
    }

    #[test]
    fn null_client_id_unknown_api_and_truncation() {
        let frame = encode_header(ApiKey::Metadata, 12, None);
        assert_eq!(parse_request(&frame).expect("valid").client_id, None);
        let unknown = [0x7f, 0x00, 0, 1, 0, 0, 0, 9, 0, 1, b'x'];
        let h = parse_request(&unknown).expect("unknown api parses");
        assert_eq!((h.api(), h.correlation_id, h.body_offset), (None, 9, None));
        for cut in 0..frame.len() {
            assert!(parse_request(&frame[..cut]).is_err(), "truncated at {cut}");
        }
        assert_eq!(
            parse_request(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xfe]),
            Err(HeaderError::Malformed("string length"))
        );
    }

    #[test]
    fn acks_in_every_produce_version() {
        for v in 3..=13 {
            for (txn, acks) in [(None, 0i16), (Some("txn-1"), -1), (None, 1)] {
                let req = ProduceRequest::default()
                    .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_string(t.into()))))
                    .with_acks(acks);
                let mut body = BytesMut::new();
                req.encode(&mut body, v).expect("encode");
                assert_eq!(produce_acks(&body, v), Ok(acks), "v{v} {txn:?}");
            }
        }
        assert_eq!(produce_acks(&[0, 1], 2), Ok(1));
        assert!(produce_acks(&[0], 5).is_err());
    }

    #[test]
    fn response_header_lengths() {
        assert_eq!(response_header_len(&[0, 0, 0, 1, 9, 9], 0), Ok(4));
        assert_eq!(response_header_len(&[0, 0, 0, 1, 0, 9], 1), Ok(5));
        assert_eq!(response_header_len(&[0, 0, 0, 1, 1, 0, 2, 7, 7, 9], 1), Ok(9));
        assert!(response_header_len(&[0, 0, 0], 0).is_err());
    }
}
