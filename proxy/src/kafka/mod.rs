//! Kafka awareness: framing ([`codec`]), the proxy's own requests ([`client`]), headers ([`header`]), which APIs
//! matter ([`apis`]), in-flight tracking
//! ([`inflight`]), address rewriting ([`rewrite`]), ApiVersions capping ([`versions`]) and quota answers
//! ([`throttle`]), walking broker bytes with the bounded cursor of [`wire`].
//!
//! This module is pure: [`inspect_request`] and [`process_response`] turn frames into decisions and frames, and
//! [`crate::session`] does the I/O. Nothing is decoded into messages: request headers and the `acks` of Produce
//! are read by hand, the bodies of responses that name brokers are walked, and records are never looked at.

pub mod apis;
pub mod client;
pub mod codec;
pub mod header;
pub mod inflight;
pub mod rewrite;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod throttle;
pub mod versions;
pub mod wire;

use bytes::BufMut;
use kaas_route::HostPort;
use kafka_protocol::messages::ApiKey;

use apis::{classify, RequestRefusal, ResponseAction};
use codec::Frame;
use header::HeaderError;
use inflight::InFlight;
use rewrite::{foreign_endpoints, Advertise, RewriteError, Scan};
use versions::{cap_api_versions, Capped, VersionsError};

/// Why a client's request was not forwarded; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request header is truncated or malformed.
    #[error("unreadable request header: {0}")]
    Header(#[from] HeaderError),
    /// A Produce body's `acks` cannot be read, so whether a response will come is unknown.
    #[error("unreadable Produce request (acks): {0}")]
    Acks(HeaderError),
    /// A Fetch body is too short to hold its `max_bytes`.
    #[error("unreadable Fetch request: too short for max_bytes")]
    FetchMaxBytes,
    /// The API is blocked, or its version is one the proxy cannot rewrite.
    #[error(transparent)]
    Refused(#[from] RequestRefusal),
}

/// What the request path learned of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The response expectation; `expects_response` is false for Produce with acks=0.
    pub inflight: InFlight,
    /// Whether the broker answers it; when false the request is not queued (see [`inflight`]).
    pub expects_response: bool,
    /// Where the request body starts; `None` for an API key the proxy does not know.
    pub body_offset: Option<usize>,
}

/// Reads the header of a request frame and decides whether and how to track its response.
pub fn inspect_request(frame: &Frame) -> Result<Inspected, RequestError> {
    let body = frame.body();
    let h = header::parse_request(body)?;
    let api = h.api();
    let action = classify(api, h.api_version)?;
    let no_response = match (api, h.body_offset) {
        (Some(ApiKey::Produce), Some(at)) => {
            header::produce_acks(&body[at..], h.api_version).map_err(RequestError::Acks)? == 0
        }
        _ => false,
    };
    let inflight = InFlight {
        correlation_id: h.correlation_id,
        api_key: h.api_key,
        version: h.api_version,
        action,
        throttle_ms: 0,
    };
    Ok(Inspected { inflight, expects_response: !no_response, body_offset: h.body_offset })
}

/// A Fetch request frame whose `max_bytes` is at most `cap`: unchanged when it already is (or the request is not a
/// Fetch of v3 or later), else a copy with the field lowered. Kafka answers with at most `max_bytes` of records
/// (and at least one batch, KIP-74), so the response the proxy must hold whole stays near `cap` however much a
/// client asks for; the client simply fetches again.
pub fn cap_fetch_bytes(frame: Frame, cap: u32) -> Result<Frame, RequestError> {
    let h = header::parse_request(frame.body())?;
    let (api, version, body) = (h.api(), h.api_version, h.body_offset);
    match (api, body) {
        (Some(ApiKey::Fetch), Some(body)) => cap_fetch_body(frame, version, body, cap),
        _ => Ok(frame),
    }
}

/// [`cap_fetch_bytes`] for a Fetch request of `version` whose header was already read ([`inspect_request`]):
/// its body starts at `body_offset`.
pub fn cap_fetch_body(
    frame: Frame,
    version: i16,
    body_offset: usize,
    cap: u32,
) -> Result<Frame, RequestError> {
    let Some(at) = header::fetch_max_bytes_offset(version).map(|o| body_offset + o) else { return Ok(frame) };
    let max_bytes = codec::i32_at(frame.body(), at).ok_or(RequestError::FetchMaxBytes)?;
    let cap = i32::try_from(cap).unwrap_or(i32::MAX);
    if max_bytes <= cap {
        return Ok(frame);
    }
    let mut patched = frame.body().to_vec();
    patched[at..at + 4].copy_from_slice(&cap.to_be_bytes());
    Ok(Frame::from_body(&patched))
}

/// Why a response could not be passed to the client; the connection is closed rather than risk a leak.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The response header of a response the proxy must read is truncated or malformed.
    #[error("unreadable {api:?} response header: {error}")]
    Header {
        /// The API of the request it answers.
        api: ApiKey,
        /// What was wrong with the header.
        error: HeaderError,
    },
    /// A body that names brokers could not be walked, or an address in it could not be rewritten.
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    /// An ApiVersions response could not be read to cap it.
    #[error(transparent)]
    Versions(#[from] VersionsError),
    /// The rewritten response still named brokers by addresses other than the proxy's own (a bug in the
    /// rewrite); it was not passed on.
    #[error(
        "rewritten {api:?} response still holds {addresses} broker address(es) not under the proxy's names"
    )]
    Leak {
        /// The API whose response it was.
        api: ApiKey,
        /// How many endpoints were foreign.
        addresses: usize,
    },
}

impl ResponseError {
    /// The API whose response it was.
    pub fn api(&self) -> ApiKey {
        match self {
            ResponseError::Header { api, .. } | ResponseError::Leak { api, .. } => *api,
            ResponseError::Rewrite(
                RewriteError::Malformed { api, .. } | RewriteError::NotRewritten { api },
            ) => *api,
            ResponseError::Versions(_) => ApiKey::ApiVersions,
        }
    }
}

/// A response ready for the client, and any broker addresses it revealed.
#[derive(Debug)]
pub struct Processed {
    /// The frame to send to the client: the original, or a rewritten copy.
    pub frame: Frame,
    /// `(node id, real address)` of every broker the response named, for the tenant's broker table.
    pub learned: Vec<(i32, HostPort)>,
    /// Whether `frame` differs from the broker's frame.
    pub rewritten: bool,
}

/// Rewrites a response frame according to the request it answers.
pub fn process_response(frame: Frame, req: &InFlight, adv: &Advertise) -> Result<Processed, ResponseError> {
    let unchanged = |frame| Processed { frame, learned: Vec::new(), rewritten: false };
    let api = match (req.action, req.api()) {
        (ResponseAction::Forward, _) | (_, None) => return Ok(unchanged(frame)),
        (_, Some(api)) => api,
    };
    let header_len = header::response_header_len(frame.body(), api.response_header_version(req.version))
        .map_err(|error| ResponseError::Header { api, error })?;
    let (header, body) = frame.body().split_at(header_len);
    let (new_frame, learned) = match req.action {
        ResponseAction::CapVersions => match cap_api_versions(body, req.version)? {
            Capped::Changed(b) => {
                let frame = Frame::build(header.len() + b.len(), |out| {
                    out.put_slice(header);
                    out.put_slice(&b);
                });
                (frame, Vec::new())
            }
            Capped::Unchanged | Capped::ErrorResponse(_) => return Ok(unchanged(frame)),
        },
        _ => {
            let Scan { edits, learned, .. } = rewrite::scan(api, req.version, body, Some(adv))?;
            if edits.is_empty() {
                return Ok(Processed { frame, learned, rewritten: false });
            }
            let new_frame = Frame::build(frame.body().len() + 64, |out| {
                out.put_slice(header);
                edits.apply(body, out);
            });
            // Belt and braces: what goes to the client is walked again and every endpoint in it must be ours.
            let addresses = foreign_endpoints(api, req.version, &new_frame.body()[header_len..], adv)?;
            if addresses > 0 {
                return Err(ResponseError::Leak { api, addresses });
            }
            (new_frame, learned)
        }
    };
    Ok(Processed { frame: new_frame, learned, rewritten: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{ProduceRequest, RequestHeader};
    use kafka_protocol::protocol::Encodable;

    fn produce_frame(version: i16, acks: i16) -> Frame {
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(version)
            .with_correlation_id(5)
            .encode(&mut b, ApiKey::Produce.request_header_version(version))
            .expect("header");
        ProduceRequest::default().with_acks(acks).encode(&mut b, version).expect("body");
        Frame::from_body(&b)
    }

    #[test]
    fn acks_0_expects_no_response() {
        for version in [3, 8, 9, 11] {
            for (acks, expects) in [(0, false), (1, true), (-1, true)] {
                let seen = inspect_request(&produce_frame(version, acks)).expect("valid");
                assert_eq!(seen.expects_response, expects, "v{version} acks={acks}");
                assert_eq!(seen.inflight.correlation_id, 5);
            }
        }
        let seen = inspect_request(&produce_frame(11, 1)).expect("valid");
        assert_eq!(seen.inflight.action, ResponseAction::Rewrite(ApiKey::Produce));
    }

    #[test]
    fn fetch_requests_of_every_version_are_capped_and_nothing_else_changes() {
        use kafka_protocol::messages::FetchRequest;
        use kafka_protocol::protocol::{Decodable, Message};
        let versions = FetchRequest::VERSIONS;
        assert!(versions.min <= 4 && versions.max >= 17, "{versions:?}");
        for version in versions.min.max(3)..=versions.max {
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Fetch as i16)
                .with_request_api_version(version)
                .with_correlation_id(9);
            let request = |max_bytes| {
                let mut r =
                    FetchRequest::default().with_max_wait_ms(500).with_min_bytes(1).with_max_bytes(max_bytes);
                if version >= 4 {
                    r = r.with_isolation_level(1);
                }
                r
            };
            let frame = |max_bytes| {
                let mut b = BytesMut::new();
                header.encode(&mut b, ApiKey::Fetch.request_header_version(version)).expect("header");
                request(max_bytes).encode(&mut b, version).expect("body");
                Frame::from_body(&b)
            };
            let capped = cap_fetch_bytes(frame(100 << 20), 8 << 20).expect("caps");
            assert_eq!(capped, frame(8 << 20), "v{version}: only max_bytes changes");
            let at = header::parse_request(capped.body()).expect("header").body_offset.expect("known api");
            let decoded =
                FetchRequest::decode(&mut bytes::Bytes::copy_from_slice(&capped.body()[at..]), version)
                    .expect("decodes");
            assert_eq!(decoded, request(8 << 20), "v{version}");
            assert_eq!(
                cap_fetch_bytes(frame(1 << 20), 8 << 20).expect("small"),
                frame(1 << 20),
                "v{version}: kept"
            );
        }
        let produce = produce_frame(9, 1);
        assert_eq!(cap_fetch_bytes(produce.clone(), 1).expect("not a fetch"), produce);
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(12)
            .encode(&mut b, ApiKey::Fetch.request_header_version(12))
            .expect("header");
        b.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
        assert!(matches!(cap_fetch_bytes(Frame::from_body(&b), 1), Err(RequestError::FetchMaxBytes)));
    }

    #[test]
    fn truncated_produce_body_is_refused() {
        let full = produce_frame(9, 1);
        let body_at = header::parse_request(full.body()).expect("header").body_offset.expect("known api");
        let cut = Frame::from_body(&full.body()[..body_at + 2]);
        assert!(matches!(inspect_request(&cut), Err(RequestError::Acks(_))));
    }
}
