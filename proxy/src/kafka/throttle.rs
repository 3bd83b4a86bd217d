//! Quota answers, as a broker over a client's quota gives them (KIP-219): the response goes out at once with its
//! `throttle_time_ms` raised to the proxy's throttle, and the session reads nothing more from that client for
//! that long ([`crate::session`]). Clients back off by that field; older ones are held back by the muted read
//! alone. Pure: a frame in, a frame out.

use kafka_protocol::messages::ApiKey;

use super::codec::{i32_at, Frame};
use super::header::response_header_len;
use super::rewrite::scan;

/// Where `throttle_time_ms` sits in the body (after the response header) of an `api` response of `version`;
/// `None` when that version has none or the body cannot be walked to it.
pub fn throttle_offset(api: ApiKey, version: i16, body: &[u8]) -> Option<usize> {
    match api {
        ApiKey::Fetch if version >= 1 => Some(0),
        ApiKey::ShareFetch | ApiKey::ShareAcknowledge => Some(0),
        // After the responses array: only a walk finds it (the walker reads v3 and later).
        ApiKey::Produce if version >= 1 => scan(api, version, body, None).ok()?.throttle_at,
        _ => None,
    }
}

/// `frame` (a response of `api` at `version`) with `throttle_time_ms` at least `throttle_ms`: unchanged when the
/// broker's own is already as long or the field cannot be found, else a copy with the field replaced.
pub fn with_throttle(frame: Frame, api: ApiKey, version: i16, throttle_ms: i32) -> Frame {
    let Ok(header_len) = response_header_len(frame.body(), api.response_header_version(version)) else {
        return frame;
    };
    let body = &frame.body()[header_len..];
    let Some(at) = throttle_offset(api, version, body).map(|o| header_len + o) else { return frame };
    match i32_at(frame.body(), at) {
        Some(current) if current < throttle_ms => {
            let mut patched = frame.body().to_vec();
            patched[at..at + 4].copy_from_slice(&throttle_ms.to_be_bytes());
            Frame::from_body(&patched)
        }
        _ => frame,
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::{FetchResponse, ProduceResponse, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

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

    #[test]
    fn raises_the_throttle_of_every_produce_and_fetch_version_and_nothing_else() {
        for version in 3..=13 {
            let original = ProduceResponse::default().with_throttle_time_ms(5);
            let frame =
                with_throttle(response(ApiKey::Produce, version, &original), ApiKey::Produce, version, 250);
            let got: ProduceResponse = decoded(ApiKey::Produce, version, &frame);
            assert_eq!(got, original.clone().with_throttle_time_ms(250), "Produce v{version}");
        }
        for version in 4..=17 {
            let original = FetchResponse::default().with_throttle_time_ms(5);
            let frame =
                with_throttle(response(ApiKey::Fetch, version, &original), ApiKey::Fetch, version, 250);
            let got: FetchResponse = decoded(ApiKey::Fetch, version, &frame);
            let want = original.clone().with_throttle_time_ms(250);
            assert_eq!(got.throttle_time_ms, want.throttle_time_ms, "Fetch v{version}");
            assert_eq!(got, decoded(ApiKey::Fetch, version, &response(ApiKey::Fetch, version, &want)));
        }
    }

    #[test]
    fn a_longer_broker_throttle_and_unreadable_bodies_are_left_alone() {
        let original = response(ApiKey::Fetch, 12, &FetchResponse::default().with_throttle_time_ms(900));
        let same = with_throttle(original.clone(), ApiKey::Fetch, 12, 250);
        assert_eq!(same.into_bytes(), original.into_bytes(), "the broker's longer throttle stays");
        let cut = Frame::from_body(&[0, 0, 0, 7, 0]);
        assert_eq!(with_throttle(cut.clone(), ApiKey::Produce, 9, 250).into_bytes(), cut.into_bytes());
        let metadata = Frame::from_body(&[0, 0, 0, 7, 0, 0, 0, 0]);
        let unchanged = with_throttle(metadata.clone(), ApiKey::Metadata, 12, 250);
        assert_eq!(unchanged.into_bytes(), metadata.into_bytes(), "only Produce and Fetch carry a quota");
    }
}
