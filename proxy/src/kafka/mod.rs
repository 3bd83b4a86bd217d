//! Kafka awareness: framing ([`codec`]), the proxy's own requests ([`client`]), headers ([`header`]), which APIs
//! matter ([`apis`]), in-flight tracking
//! ([`inflight`]), address rewriting ([`rewrite`]), ApiVersions capping ([`versions`]) and quota answers
//! ([`throttle`]), walking broker bytes with the bounded cursor of [`wire`].
//!
//! This module is pure: [`inspect_request`], [`cap_fetch`] and [`process_response`] turn frames into decisions
//! and frames, and [`crate::session`] does the I/O. Nothing is decoded into messages: request headers and the
//! `acks` of Produce are read by hand, the bodies of responses that name brokers are walked (once), and records
//! are never looked at. Fixed-size fields (a Fetch request's `max_bytes`, a response's `throttle_time_ms`) are
//! patched in place in the frame's buffer; only a response whose addresses change is copied.

pub mod apis;
pub mod client;
pub mod codec;
pub mod header;
pub mod inflight;
pub mod rewrite;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod throttle;
pub mod usage;
pub mod versions;
pub mod wire;

use std::ops::Range;

use bytes::BufMut;
use kaas_route::HostPort;
use kafka_protocol::messages::ApiKey;

use apis::{classify, RequestRefusal, ResponseAction};
use codec::Frame;
use header::HeaderError;
use inflight::InFlight;
use rewrite::{Advertise, RewriteError, Scan};
use throttle::{raise_throttle, throttle_field, ThrottleField};
use usage::TopicId;
use versions::{cap_api_versions, Capped, VersionsError};
use wire::Shifts;

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
    let action = classify(h.api_key, h.api_version)?;
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

/// Lowers a Fetch request's `max_bytes` to `cap`, in place, when it asks for more; `seen` is what
/// [`inspect_request`] read of the frame. Other requests, and Fetch before v3 (which has no such limit), are left
/// alone. Kafka answers with at most `max_bytes` of records (and at least one batch, KIP-74), so the response the
/// proxy must hold whole stays near `cap` however much a client asks for; the client simply fetches again.
pub fn cap_fetch(frame: &mut Frame, seen: &Inspected, cap: u32) -> Result<(), RequestError> {
    let (Some(ApiKey::Fetch), Some(body)) = (seen.inflight.api(), seen.body_offset) else { return Ok(()) };
    let Some(at) = header::fetch_max_bytes_offset(seen.inflight.version).map(|o| body + o) else {
        return Ok(());
    };
    let field = frame.body_mut().get_mut(at..at + 4).ok_or(RequestError::FetchMaxBytes)?;
    let max_bytes = i32::from_be_bytes([field[0], field[1], field[2], field[3]]);
    let cap = i32::try_from(cap).unwrap_or(i32::MAX);
    if max_bytes > cap {
        field.copy_from_slice(&cap.to_be_bytes());
    }
    Ok(())
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
    /// The frame to send to the client: the broker's (its throttle perhaps raised in place), or a rewritten copy.
    pub frame: Frame,
    /// `(node id, real address)` of every broker the response named, for the tenant's broker table.
    pub learned: Vec<(i32, HostPort)>,
    /// Whether broker addresses (or ApiVersions' ranges) were rewritten: `frame` is a new frame.
    pub rewritten: bool,
    /// Whether `throttle_time_ms` was raised to the request's `throttle_ms`.
    pub throttled: bool,
    /// A Metadata response's topic ids and where each topic's name is in `frame`'s body ([`Scan::topic_ids`]).
    pub topic_ids: Vec<(TopicId, Range<usize>)>,
}

impl Processed {
    fn unchanged(frame: Frame) -> Processed {
        Processed { frame, learned: Vec::new(), rewritten: false, throttled: false, topic_ids: Vec::new() }
    }
}

/// The response path: a response frame, as the request it answers asks. The response header is read once, and
/// a body is walked at most once: for the broker addresses to rewrite (with the facts the leak guard checks
/// and where `throttle_time_ms` is), or, for a Produce passing through over its quota, for `throttle_time_ms`
/// alone. A response whose addresses change is copied once with the splices made; `throttle_time_ms` is raised
/// to the request's `throttle_ms` in place. Anything else passes as it came, unread.
pub fn process_response(frame: Frame, req: &InFlight, adv: &Advertise) -> Result<Processed, ResponseError> {
    let Some(api) = req.api() else { return Ok(Processed::unchanged(frame)) };
    let throttle = throttle_field(api, req.version).filter(|_| req.throttle_ms > 0);
    if req.action == ResponseAction::Forward && throttle.is_none() {
        return Ok(Processed::unchanged(frame));
    }
    let header_len = match header::response_header_len(frame.body(), api.response_header_version(req.version))
    {
        Ok(n) => n,
        // Passing through, it is read only for the throttle, a courtesy: unreadable, it goes as it came.
        Err(_) if req.action == ResponseAction::Forward => return Ok(Processed::unchanged(frame)),
        Err(error) => return Err(ResponseError::Header { api, error }),
    };
    let (mut processed, throttle_at) = match req.action {
        ResponseAction::CapVersions => return cap_versions(frame, header_len, req.version),
        ResponseAction::Rewrite(_) => {
            let body = &frame.body()[header_len..];
            let scan = rewrite::scan(api, req.version, body, Some(adv))?;
            if scan.edits.is_empty() {
                let at = scan.throttle_at.map(|o| header_len + o);
                let topic_ids = moved(scan.topic_ids, |o| header_len + o);
                (Processed { learned: scan.learned, topic_ids, ..Processed::unchanged(frame) }, at)
            } else {
                spliced(&frame, header_len, api, req.version, scan, adv)?
            }
        }
        ResponseAction::Forward => {
            let at = match throttle {
                Some(ThrottleField::At(o)) => Some(o),
                Some(ThrottleField::Walked) => {
                    let body = &frame.body()[header_len..];
                    rewrite::scan(api, req.version, body, None).ok().and_then(|s| s.throttle_at)
                }
                None => None,
            };
            (Processed::unchanged(frame), at.map(|o| header_len + o))
        }
    };
    if let Some(at) = throttle_at.filter(|_| req.throttle_ms > 0) {
        processed.throttled = raise_throttle(&mut processed.frame, at, req.throttle_ms);
    }
    Ok(processed)
}

/// An ApiVersions response with the versions capped to those the proxy can rewrite.
fn cap_versions(frame: Frame, header_len: usize, version: i16) -> Result<Processed, ResponseError> {
    let (header, body) = frame.body().split_at(header_len);
    match cap_api_versions(body, version)? {
        Capped::Changed(b) => {
            let frame = Frame::build(header.len() + b.len(), |out| {
                out.put_slice(header);
                out.put_slice(&b);
            });
            Ok(Processed { rewritten: true, ..Processed::unchanged(frame) })
        }
        Capped::Unchanged | Capped::ErrorResponse(_) => Ok(Processed::unchanged(frame)),
    }
}

/// A copy of `frame` (whose response header is `header_len` bytes) with the splices of `scan`, a walk of its
/// body, made; and where its `throttle_time_ms` now is. Belt and braces: every endpoint the walk saw is read
/// again where it now is in the copy, and must be the proxy's own name ([`rewrite::foreign`]), or nothing is
/// sent.
fn spliced(
    frame: &Frame,
    header_len: usize,
    api: ApiKey,
    version: i16,
    scan: Scan,
    adv: &Advertise,
) -> Result<(Processed, Option<usize>), ResponseError> {
    let Scan { edits, learned, endpoints, throttle_at, topic_ids } = scan;
    let (header, body) = frame.body().split_at(header_len);
    let mut shifts = Shifts::default();
    let new = Frame::build(frame.body().len() + 64, |out| {
        out.put_slice(header);
        shifts = edits.apply(body, out);
    });
    let flexible = rewrite::flexible(api, version);
    let addresses = rewrite::foreign(&new.body()[header_len..], &endpoints, &shifts, adv, flexible);
    if addresses > 0 {
        return Err(ResponseError::Leak { api, addresses });
    }
    let throttle_at = throttle_at.map(|o| header_len + shifts.at(o));
    let topic_ids = moved(topic_ids, |o| header_len + shifts.at(o));
    Ok((Processed { frame: new, learned, rewritten: true, throttled: false, topic_ids }, throttle_at))
}

/// Topic names' places moved by `to` (from the walked body to the frame sent); names are never edited.
fn moved(ids: Vec<(TopicId, Range<usize>)>, to: impl Fn(usize) -> usize) -> Vec<(TopicId, Range<usize>)> {
    ids.into_iter().map(|(id, name)| (id, to(name.start)..to(name.start) + name.len())).collect()
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

    /// The request path's handling of `frame`: inspected, then capped.
    fn inspected_and_capped(mut frame: Frame, cap: u32) -> Result<Frame, RequestError> {
        let seen = inspect_request(&frame)?;
        cap_fetch(&mut frame, &seen, cap)?;
        Ok(frame)
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
            let capped = inspected_and_capped(frame(100 << 20), 8 << 20).expect("caps");
            assert_eq!(capped, frame(8 << 20), "v{version}: only max_bytes changes");
            let at = header::parse_request(capped.body()).expect("header").body_offset.expect("known api");
            let decoded =
                FetchRequest::decode(&mut bytes::Bytes::copy_from_slice(&capped.body()[at..]), version)
                    .expect("decodes");
            assert_eq!(decoded, request(8 << 20), "v{version}");
            assert_eq!(
                inspected_and_capped(frame(1 << 20), 8 << 20).expect("small"),
                frame(1 << 20),
                "v{version}: kept"
            );
        }
        let produce = produce_frame(9, 1);
        assert_eq!(inspected_and_capped(produce.clone(), 1).expect("not a fetch"), produce);
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(12)
            .encode(&mut b, ApiKey::Fetch.request_header_version(12))
            .expect("header");
        b.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
        assert!(matches!(inspected_and_capped(Frame::from_body(&b), 1), Err(RequestError::FetchMaxBytes)));
    }

    /// Metadata v12 naming three upstream brokers, as a whole response frame.
    fn metadata_frame() -> Frame {
        use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
        use kafka_protocol::messages::{BrokerId, MetadataResponse, ResponseHeader};
        use kafka_protocol::protocol::StrBytes;
        let brokers = [(1, "10.0.0.1"), (2, "kafka-2.internal"), (3, "::1")]
            .map(|(id, host)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_static_str(host))
                    .with_port(9093)
            })
            .to_vec();
        let mut b = BytesMut::new();
        ResponseHeader::default().with_correlation_id(3).encode(&mut b, 1).expect("header");
        MetadataResponse::default().with_brokers(brokers).encode(&mut b, 12).expect("body");
        Frame::from_body(&b)
    }

    #[test]
    fn the_leak_guard_reads_what_is_sent() {
        let adv = Advertise::new("acme", "kaas.localhost", 9092);
        let req = InFlight {
            correlation_id: 3,
            api_key: ApiKey::Metadata as i16,
            version: 12,
            action: ResponseAction::Rewrite(ApiKey::Metadata),
            throttle_ms: 0,
        };
        let frame = metadata_frame();
        let p = process_response(frame.clone(), &req, &adv).expect("rewrites");
        assert!(p.rewritten && p.learned.len() == 3);
        assert!(!p.frame.body().windows(8).any(|w| w == b"internal"), "an upstream name went out");
        // A rewrite with a bug: the splice of one endpoint is lost. The guard finds the broker's address.
        let mut scan = rewrite::scan(ApiKey::Metadata, 12, &frame.body()[5..], Some(&adv)).expect("walks");
        scan.edits.drop_last();
        let got = spliced(&frame, 5, ApiKey::Metadata, 12, scan, &adv);
        assert!(matches!(got, Err(ResponseError::Leak { addresses: 1, .. })), "{got:?}");
        // Splices to another tenant's names: every endpoint sent is foreign.
        let beta = Advertise::new("beta", "kaas.localhost", 9092);
        let scan = rewrite::scan(ApiKey::Metadata, 12, &frame.body()[5..], Some(&beta)).expect("walks");
        let got = spliced(&frame, 5, ApiKey::Metadata, 12, scan, &adv);
        assert!(matches!(got, Err(ResponseError::Leak { addresses: 3, .. })), "{got:?}");
    }

    #[test]
    fn metadata_topic_ids_point_at_the_names_in_the_frame_sent() {
        use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
        use kafka_protocol::messages::{BrokerId, MetadataResponse, ResponseHeader, TopicName};
        use kafka_protocol::protocol::StrBytes;
        let adv = Advertise::new("acme", "kaas.localhost", 9092);
        let topic = |name: &'static str, id: u8| {
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(name))))
                .with_topic_id(uuid::Uuid::from_bytes([id; 16]))
        };
        // A missing topic comes back with the zero id: nothing to learn.
        let topics = vec![topic("orders", 1), topic("missing", 0), topic("payments", 2)];
        for brokers in [0, 2] {
            let brokers = (0..brokers)
                .map(|id| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_static_str("kafka-internal.cluster.local"))
                        .with_port(9093)
                })
                .collect();
            let mut b = BytesMut::new();
            ResponseHeader::default().with_correlation_id(3).encode(&mut b, 1).expect("header");
            let response = MetadataResponse::default().with_brokers(brokers).with_topics(topics.clone());
            response.encode(&mut b, 12).expect("body");
            let req = InFlight {
                correlation_id: 3,
                api_key: ApiKey::Metadata as i16,
                version: 12,
                action: ResponseAction::Rewrite(ApiKey::Metadata),
                throttle_ms: 0,
            };
            let p = process_response(Frame::from_body(&b), &req, &adv).expect("rewrites");
            let named: Vec<_> =
                p.topic_ids.iter().map(|(id, at)| (id[0], &p.frame.body()[at.clone()])).collect();
            assert_eq!(named, [(1, &b"orders"[..]), (2, &b"payments"[..])], "rewritten: {}", p.rewritten);
        }
    }

    #[test]
    fn truncated_produce_body_is_refused() {
        let full = produce_frame(9, 1);
        let body_at = header::parse_request(full.body()).expect("header").body_offset.expect("known api");
        let cut = Frame::from_body(&full.body()[..body_at + 2]);
        assert!(matches!(inspect_request(&cut), Err(RequestError::Acks(_))));
    }
}
