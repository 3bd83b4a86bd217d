//! Fuzz target: any bytes, as the body of a client's request frame: `header::parse_request`, `inspect_request`
//! and `cap_fetch` never panic; a parsed header's fields are the bytes they came from and its `body_offset` is
//! within the body; `inspect_request` agrees with the header; `cap_fetch` (of a request `inspect_request`
//! accepted, as the session calls it) changes at most the 4 bytes of a Fetch `max_bytes`, never raises it, and
//! capping again changes nothing.
#![no_main]

use kaas_proxy::kafka::codec::Frame;
use kaas_proxy::kafka::header::{fetch_max_bytes_offset, parse_request, produce_acks, response_header_len};
use kaas_proxy::kafka::{cap_fetch, inspect_request};
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let parsed = parse_request(body);
    if let Ok(h) = &parsed {
        assert_eq!(h.api_key.to_be_bytes(), body[0..2]);
        assert_eq!(h.api_version.to_be_bytes(), body[2..4]);
        assert_eq!(h.correlation_id.to_be_bytes(), body[4..8]);
        if let Some(at) = h.body_offset {
            assert!((8..=body.len()).contains(&at), "body_offset {at} of a {}-byte body", body.len());
            if h.api() == Some(ApiKey::Produce) {
                let _ = produce_acks(&body[at..], h.api_version);
            }
        }
        if let Some(id) = h.client_id {
            let start = id.as_ptr() as usize - body.as_ptr() as usize;
            assert!(start >= 10 && start + id.len() <= body.len(), "client_id outside the header");
        }
        let _ = h.client_id_lossy();
    }
    for header_version in [0, 1] {
        if let Ok(n) = response_header_len(body, header_version) {
            assert!((4..=body.len()).contains(&n));
        }
    }

    let frame = Frame::from_body(body);
    let inspected = inspect_request(&frame);
    if let Ok(seen) = &inspected {
        let h = parsed.as_ref().expect("inspect_request accepted an unparsable header");
        assert_eq!(
            (seen.inflight.correlation_id, seen.inflight.api_key, seen.inflight.version),
            (h.correlation_id, h.api_key, h.api_version)
        );
    }

    let Ok(seen) = &inspected else { return };
    for cap in [0u32, 1 << 20, u32::MAX] {
        let mut capped = frame.clone();
        if cap_fetch(&mut capped, seen, cap).is_err() {
            continue;
        }
        let h = parsed.as_ref().expect("inspect_request accepted an unparsable header");
        assert_eq!(capped.body().len(), body.len(), "cap_fetch resized the frame");
        if capped != frame {
            let offset = fetch_max_bytes_offset(h.api_version).expect("changed a request without max_bytes");
            let at = h.body_offset.expect("changed a request of an unknown API") + offset;
            assert_eq!(h.api(), Some(ApiKey::Fetch), "changed a request that is not a Fetch");
            let (mut want, got) = (body.to_vec(), capped.body());
            let old = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            let new = i32::from_be_bytes([got[at], got[at + 1], got[at + 2], got[at + 3]]);
            assert!(
                new < old && new as i64 <= i64::from(cap),
                "max_bytes {old} became {new} under a cap of {cap}"
            );
            want[at..at + 4].copy_from_slice(&got[at..at + 4]);
            assert_eq!(got, &want[..], "cap_fetch changed more than max_bytes");
            assert_eq!(
                inspect_request(&capped).ok(),
                inspected.as_ref().ok().cloned(),
                "capping changed the request's handling"
            );
        }
        let again_seen = inspect_request(&capped).expect("a capped request is refused");
        let mut again = capped.clone();
        cap_fetch(&mut again, &again_seen, cap).expect("a capped request is refused");
        assert_eq!(again, capped, "capping twice changed the request again");
    }
});
