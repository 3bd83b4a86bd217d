//! Fuzz target: any bytes, as the body of any broker response the proxy reads (every rewritten API and
//! version, ApiVersions, the metadata refresh). Nothing may panic or allocate past libFuzzer's malloc limit,
//! and whatever the walker accepts it must accept again after rewriting, unchanged (`testkit::check_idempotent`).
//! (kafka-protocol is not called here: decoding arbitrary bytes with it can reserve a misread count, the very
//! fault the walker exists to avoid; the comparison with it runs in the unit tests on generated responses.)
#![no_main]

use kaas_proxy::kafka::rewrite::scan;
use kaas_proxy::kafka::versions::{broker_range, cap_api_versions};
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
    } else {
        let version = (index % 5) as i16;
        let _ = cap_api_versions(body, version);
        let _ = broker_range(body, version, ApiKey::Metadata);
    }
});
