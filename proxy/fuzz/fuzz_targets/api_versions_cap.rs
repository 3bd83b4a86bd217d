//! Fuzz target: any bytes, as the body of an ApiVersions response of any version (-1 to 6), through
//! `cap_api_versions`: it never panics; a changed body parses again and needs no further capping; and in what a
//! client gets (the changed body, or the original when nothing changed) no blocked API is offered and no offered
//! version of any API is one the proxy would refuse (`apis::classify`).
#![no_main]

use kaas_proxy::kafka::apis::{classify, policy, Policy};
use kaas_proxy::kafka::versions::{broker_range, cap_api_versions, Capped};
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let version = i16::from(pick % 8) - 1;
    let Ok(capped) = cap_api_versions(body, version) else { return };
    let offered: &[u8] = match &capped {
        Capped::ErrorResponse(_) => return,
        Capped::Unchanged => body,
        Capped::Changed(b) => {
            match cap_api_versions(b, version) {
                Ok(Capped::Unchanged) => {}
                other => panic!("v{version}: capping the capped body again gave {other:?}"),
            }
            b
        }
    };
    for api in ApiKey::iter() {
        let range = broker_range(offered, version, api)
            .unwrap_or_else(|e| panic!("v{version}: the body the client gets does not parse: {e}"));
        let Some(r) = range else { continue };
        if matches!(policy(api), Policy::Blocked) {
            panic!("v{version}: blocked {api:?} offered ({r})");
        }
        if r.min > r.max {
            continue;
        }
        // The refused versions of an API form at most two runs; checking the ends of the offered range and the
        // run boundaries inside it covers them all.
        let mut probes = vec![r.min, r.max];
        if let Policy::Rewrite { from_version, decodable } = policy(api) {
            probes.extend([from_version, decodable.min.saturating_sub(1), decodable.max.saturating_add(1)]);
        }
        for v in probes.into_iter().filter(|v| (r.min..=r.max).contains(v)) {
            if let Err(e) = classify(api as i16, v) {
                panic!("v{version}: {api:?} offered as {r} but v{v} is refused: {e}");
            }
        }
    }
});
