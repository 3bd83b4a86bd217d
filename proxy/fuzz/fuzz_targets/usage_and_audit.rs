//! Fuzz target: any bytes, as the body of a message the usage records or the audit trail read: a Produce
//! request and a Fetch response (`kafka::usage`), an audited administrative request and its response
//! (`audit::requests`, `audit::outcome`), SASL's handshake and authenticate messages (`audit::sasl`). The first
//! three bytes pick what and which version (`[kind, api, version]`), the rest is the body. Nothing may panic or
//! allocate past libFuzzer's malloc limit; a walk that accepts a Produce reports no more bytes than it was given;
//! an audit keeps at most `MAX_RESOURCES` resources, each name cut to `MAX_TEXT_BYTES` (and its suffixes).
#![no_main]

use kaas_proxy::audit::admin::{AUDITED, MAX_ENTITY_PARTS, MAX_RESOURCES, MAX_TEXT_BYTES};
use kaas_proxy::audit::outcome::outcomes;
use kaas_proxy::audit::requests::resources;
use kaas_proxy::audit::sasl::Exchange;
use kaas_proxy::kafka::usage::{fetched, produced};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [kind, api, version, body @ ..] = data else { return };
    match kind % 5 {
        0 => {
            let mut bytes = 0u64;
            if produced(body, i16::from(version % 14), |_, v| bytes += v.bytes).is_ok() {
                assert!(bytes <= body.len() as u64, "more record bytes than the body holds");
            }
        }
        1 => {
            let _ = fetched(body, i16::from(version % 19), |_, _| {});
        }
        2 | 3 => {
            let api = AUDITED[usize::from(*api) % AUDITED.len()];
            let version = i16::from(*version % 12);
            let mut named =
                resources(api, version, if kind % 5 == 2 { body } else { &[] }).unwrap_or_default();
            if kind % 5 == 3 {
                let _ = outcomes(api, version, body, &mut named);
            }
            assert!(named.resources.len() <= MAX_RESOURCES);
            for r in &named.resources {
                // A cut name says its length (21 bytes at most); a partition adds its number, an ACL its resource
                // type and pattern (26); a quota entity has at most MAX_ENTITY_PARTS `type=name` parts.
                let most = match r.kind {
                    "client_quota" => MAX_ENTITY_PARTS * (2 * (MAX_TEXT_BYTES + 21) + 2),
                    _ => MAX_TEXT_BYTES + 21 + 26,
                };
                assert!(r.name.len() <= most, "a {} name of {} bytes kept", r.kind, r.name.len());
            }
        }
        _ => {
            let mut exchange = Exchange::default();
            let version = i16::from(*version % 3);
            match api % 3 {
                0 => exchange.handshake(body, version.min(1)),
                1 => exchange.authenticate(body, version),
                _ => {
                    let _ = exchange.answered(body, version);
                    let _ = exchange.succeeded();
                }
            }
            assert!(exchange.user.as_ref().is_none_or(|u| u.len() <= body.len()));
        }
    }
});
