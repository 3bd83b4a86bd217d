//! Fuzz target: any bytes, as the body of any broker response the proxy reads (every rewritten API and
//! version, ApiVersions, the metadata refresh). Nothing may panic or allocate past libFuzzer's malloc limit,
//! and whatever the walker accepts it must accept again after rewriting, unchanged (`testkit::check_idempotent`);
//! a rewritten body names no foreign endpoint (`foreign_endpoints` is 0) and is walkable again (`scan`), and the
//! same body behind a response header through `process_response` is never a `Leak` and, when it passes, names
//! only the proxy's brokers; a throttle (`InFlight::throttle_ms`) only ever raises the 4 bytes of
//! `throttle_time_ms`.
//! (kafka-protocol is not called here: decoding arbitrary bytes with it can reserve a misread count, the very
//! fault the walker exists to avoid; the comparison with it runs in the unit tests on generated responses.)
#![no_main]

use kaas_proxy::kafka::apis::classify;
use kaas_proxy::kafka::codec::Frame;
use kaas_proxy::kafka::inflight::InFlight;
use kaas_proxy::kafka::rewrite::{foreign_endpoints, rewrite_response, scan, Advertise};
use kaas_proxy::kafka::versions::{broker_range, cap_api_versions};
use kaas_proxy::kafka::{process_response, ResponseError};
use kaas_proxy::testkit::{check_idempotent, rewritten_versions};
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let cases = rewritten_versions();
    let index = usize::from(pick);
    if let Some(&(api, version)) = cases.get(index) {
        check_idempotent(api, version, body);
        let _ = scan(api, version, body, None);
        rewritten_is_clean(api, version, body);
        through_process_response(api, version, body);
    } else {
        let version = (index % 5) as i16;
        let _ = cap_api_versions(body, version);
        let _ = broker_range(body, version, ApiKey::Metadata);
    }
});

fn advertise() -> Advertise {
    Advertise::new("acme", "kaas.localhost", 9092)
}

/// decode → rewrite → the rewritten body, when there is one, is walkable and names only the proxy's brokers.
fn rewritten_is_clean(api: ApiKey, version: i16, body: &[u8]) {
    let adv = advertise();
    let Ok(rewritten) = rewrite_response(api, version, body, &adv) else { return };
    let Some(new) = rewritten.body else { return };
    let foreign = foreign_endpoints(api, version, &new, &adv).unwrap_or_else(|e| {
        panic!("{api:?} v{version}: rewritten body not walkable for the leak check: {e}")
    });
    assert_eq!(foreign, 0, "{api:?} v{version}: rewritten body names foreign endpoints");
    if let Err(e) = scan(api, version, &new, None) {
        panic!("{api:?} v{version}: rewritten body does not scan again: {e}");
    }
}

/// The body as the proxy's response path gets it: behind a response header (correlation id, and an empty
/// tagged-field section for flexible versions), answered to an in-flight request of `api` at `version`.
fn through_process_response(api: ApiKey, version: i16, body: &[u8]) {
    let flexible = api.response_header_version(version) >= 1;
    let mut framed = Vec::with_capacity(body.len() + 5);
    framed.extend_from_slice(&7i32.to_be_bytes());
    if flexible {
        framed.push(0);
    }
    framed.extend_from_slice(body);
    let frame = Frame::from_body(&framed);
    let Ok(action) = classify(api as i16, version) else { return };
    let req = InFlight { correlation_id: 7, api_key: api as i16, version, action, throttle_ms: 0 };
    let adv = advertise();
    match process_response(frame.clone(), &req, &adv) {
        Err(ResponseError::Leak { api, addresses }) => {
            panic!("{api:?} v{version}: process_response leaked {addresses} address(es)")
        }
        Err(_) => {}
        Ok(p) => {
            let header = framed.len() - body.len();
            if p.rewritten {
                let out = &p.frame.body()[header..];
                assert_eq!(foreign_endpoints(api, version, out, &adv).ok(), Some(0), "{api:?} v{version}");
            } else {
                assert_eq!(p.frame, frame, "{api:?} v{version}: changed but not marked rewritten");
            }
        }
    }
    // The same response over a quota: exactly what it is without one, but for the 4 bytes of a raised
    // throttle_time_ms.
    let unthrottled = process_response(frame.clone(), &req, &adv).map(|p| p.frame);
    let throttled = process_response(frame, &InFlight { throttle_ms: 1000, ..req }, &adv);
    match (unthrottled, throttled) {
        (Ok(plain), Ok(p)) => {
            let (plain, got) = (plain.body(), p.frame.body());
            assert_eq!(plain.len(), got.len(), "{api:?} v{version}: the throttle resized the response");
            let changed: Vec<usize> = (0..got.len()).filter(|&i| plain[i] != got[i]).collect();
            assert_eq!(p.throttled, !changed.is_empty(), "{api:?} v{version}: throttled is not what changed");
            if let (Some(&first), Some(&last)) = (changed.first(), changed.last()) {
                assert!(last - first < 4, "{api:?} v{version}: more than the 4 bytes of a field changed");
                let field = |b: &[u8], at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                let raised = (last.saturating_sub(3)..=first)
                    .filter(|&at| at + 4 <= got.len())
                    .any(|at| field(got, at) == 1000 && field(plain, at) < 1000);
                assert!(raised, "{api:?} v{version}: not a shorter throttle_time_ms raised to 1000");
            }
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("{api:?} v{version}: the throttle changed the outcome: {:?} / {:?}", a.is_ok(), b.is_ok()),
    }
}
