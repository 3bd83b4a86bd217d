//! Quota answers, as a broker over a client's quota gives them (KIP-219): the response goes out at once with its
//! `throttle_time_ms` raised to the proxy's throttle, and the session reads nothing more from that client for
//! that long ([`crate::session`]). Clients back off by that field; older ones are held back by the muted read
//! alone. Pure: where the field is, and raising it in place; [`super::process_response`] does both, in the
//! one pass it makes over a response.

use kafka_protocol::messages::ApiKey;

use super::codec::Frame;

/// Where `throttle_time_ms` sits in the body (after the response header) of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleField {
    /// At this offset, whatever the body holds.
    At(usize),
    /// After arrays of the body: only a walk of it finds the field ([`super::rewrite::Scan::throttle_at`]).
    Walked,
}

/// Where `throttle_time_ms` sits in an `api` response of `version`; `None` when that version has none (or is
/// not one a quota throttles).
pub fn throttle_field(api: ApiKey, version: i16) -> Option<ThrottleField> {
    match api {
        ApiKey::Fetch if version >= 1 => Some(ThrottleField::At(0)),
        ApiKey::ShareFetch | ApiKey::ShareAcknowledge => Some(ThrottleField::At(0)),
        // After the responses array (the walker reads v3 and later).
        ApiKey::Produce if version >= 1 => Some(ThrottleField::Walked),
        _ => None,
    }
}

/// Raises the `throttle_time_ms` at `at` in `frame`'s body to `throttle_ms`, in place, unless the broker's own
/// is already as long (or the body is too short to hold it). Whether it changed.
pub fn raise_throttle(frame: &mut Frame, at: usize, throttle_ms: i32) -> bool {
    let Some(field) = frame.body_mut().get_mut(at..at.saturating_add(4)) else { return false };
    let current = i32::from_be_bytes([field[0], field[1], field[2], field[3]]);
    if current >= throttle_ms {
        return false;
    }
    field.copy_from_slice(&throttle_ms.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::{FetchResponse, ProduceResponse, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;
    use crate::kafka::apis::{classify, ResponseAction};
    use crate::kafka::header::response_header_len;
    use crate::kafka::inflight::InFlight;
    use crate::kafka::process_response;
    use crate::kafka::rewrite::Advertise;

    fn response<M: Encodable>(api: ApiKey, version: i16, m: &M) -> Frame {
        let mut b = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(7)
            .encode(&mut b, api.response_header_version(version))
            .expect("header");
        m.encode(&mut b, version).expect("body");
        Frame::from_body(&b)
    }

    fn decoded<M: Decodable>(api: ApiKey, version: i16, frame: &Frame) -> M {
        let header = response_header_len(frame.body(), api.response_header_version(version)).expect("header");
        M::decode(&mut bytes::Bytes::copy_from_slice(&frame.body()[header..]), version).expect("decodes")
    }

    /// `frame` through the response path as the answer to a request of `api` at `version` that earned a
    /// throttle of `throttle_ms`, handled as `action` (the request path's, by default).
    fn throttled(
        frame: Frame,
        api: ApiKey,
        version: i16,
        throttle_ms: i32,
        action: Option<ResponseAction>,
    ) -> Frame {
        let action = action.unwrap_or_else(|| classify(api as i16, version).expect("served"));
        let req = InFlight { correlation_id: 7, api_key: api as i16, version, action, throttle_ms };
        let adv = Advertise::new("acme", "kaas.localhost", 9092);
        let p = process_response(frame, &req, &adv).expect("processed");
        assert!(!p.rewritten, "{api:?} v{version}: no broker named, nothing rewritten");
        p.frame
    }

    #[test]
    fn raises_the_throttle_of_every_produce_and_fetch_version_and_nothing_else() {
        for version in 3..=13 {
            let original = ProduceResponse::default().with_throttle_time_ms(5);
            let frame =
                throttled(response(ApiKey::Produce, version, &original), ApiKey::Produce, version, 250, None);
            let got: ProduceResponse = decoded(ApiKey::Produce, version, &frame);
            assert_eq!(got, original.clone().with_throttle_time_ms(250), "Produce v{version}");
        }
        for version in 4..=17 {
            let original = FetchResponse::default().with_throttle_time_ms(5);
            let frame =
                throttled(response(ApiKey::Fetch, version, &original), ApiKey::Fetch, version, 250, None);
            let got: FetchResponse = decoded(ApiKey::Fetch, version, &frame);
            let want = original.clone().with_throttle_time_ms(250);
            assert_eq!(got.throttle_time_ms, want.throttle_time_ms, "Fetch v{version}");
            assert_eq!(got, decoded(ApiKey::Fetch, version, &response(ApiKey::Fetch, version, &want)));
        }
    }

    #[test]
    fn a_longer_broker_throttle_and_unreadable_bodies_are_left_alone() {
        let original = response(ApiKey::Fetch, 12, &FetchResponse::default().with_throttle_time_ms(900));
        let same = throttled(original.clone(), ApiKey::Fetch, 12, 250, None);
        assert_eq!(same.into_bytes(), original.into_bytes(), "the broker's longer throttle stays");
        let cut = Frame::from_body(&[0, 0, 0, 7, 0]);
        let passed = throttled(cut.clone(), ApiKey::Produce, 9, 250, None);
        assert_eq!(passed.into_bytes(), cut.into_bytes());
        let metadata = Frame::from_body(&[0, 0, 0, 7, 0, 0, 0, 0]);
        let unchanged = throttled(metadata.clone(), ApiKey::Metadata, 12, 250, Some(ResponseAction::Forward));
        assert_eq!(unchanged.into_bytes(), metadata.into_bytes(), "only Produce and Fetch carry a quota");
    }

    #[test]
    fn raises_in_place_within_the_body() {
        let mut frame = Frame::from_body(&[0, 0, 0, 7, 0, 0, 0, 5]);
        assert!(raise_throttle(&mut frame, 4, 250));
        assert_eq!(frame.bytes(), &[0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 250][..]);
        assert!(!raise_throttle(&mut frame, 4, 100), "never lowered");
        assert!(!raise_throttle(&mut frame, 5, 900), "past the end");
        assert!(!raise_throttle(&mut frame, usize::MAX, 900), "far past the end");
    }
}
