//! The walker against an oracle: kafka-protocol's decode → rewrite → encode, the way the proxy rewrote
//! responses before it walked them. For random valid responses of every rewritten API and version, and for
//! mutations of them that both sides accept, the walker's output must decode to exactly what the oracle gives,
//! and both must learn the same endpoints. Mutations the walker refuses must be refused with an error, never a
//! panic.

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, ShareAcknowledgeResponse, ShareFetchResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::tests::rewritten_versions;
use super::*;
use crate::testkit::{encode, mutations, random_response, Rng};

/// The oracle: decode with kafka-protocol, rename every endpoint, encode. Returns the body a client would get
/// and the endpoints learned, or `None` when kafka-protocol cannot decode the input.
pub(super) fn oracle(
    api: ApiKey,
    v: i16,
    body: &[u8],
    adv: &Advertise,
) -> Option<(Bytes, Vec<(i32, HostPort)>)> {
    let mut learned = Vec::new();
    let learn = std::cell::Cell::new(true);
    let mut visit = |id: i32, host: &mut StrBytes, port: &mut i32| {
        if id < 0 {
            if !host.is_empty() {
                (*host, *port) = (StrBytes::default(), -1);
            }
            return;
        }
        if learn.get() {
            learned.extend(parse_addr(host.as_str(), *port).map(|a| (id, a)));
        }
        *host = StrBytes::from_string(adv.host(id));
        *port = i32::from(adv.port);
    };
    fn decode<M: Decodable>(body: &[u8], v: i16) -> Option<M> {
        let mut b = Bytes::copy_from_slice(body);
        let m = M::decode(&mut b, v).ok()?;
        b.is_empty().then_some(m)
    }
    let out = match api {
        ApiKey::Metadata => {
            let mut m: MetadataResponse = decode(body, v)?;
            m.brokers.iter_mut().for_each(|b| visit(b.node_id.0, &mut b.host, &mut b.port));
            encode(&m, v)
        }
        ApiKey::FindCoordinator => {
            let mut m: FindCoordinatorResponse = decode(body, v)?;
            if v < 4 {
                visit(m.node_id.0, &mut m.host, &mut m.port);
            }
            m.coordinators.iter_mut().for_each(|c| visit(c.node_id.0, &mut c.host, &mut c.port));
            encode(&m, v)
        }
        ApiKey::DescribeCluster => {
            let mut m: DescribeClusterResponse = decode(body, v)?;
            learn.set(m.endpoint_type != 2);
            m.brokers.iter_mut().for_each(|b| visit(b.broker_id.0, &mut b.host, &mut b.port));
            encode(&m, v)
        }
        ApiKey::Produce => {
            let mut m: ProduceResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        ApiKey::Fetch => {
            let mut m: FetchResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        ApiKey::ShareFetch => {
            let mut m: ShareFetchResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        ApiKey::ShareAcknowledge => {
            let mut m: ShareAcknowledgeResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        other => panic!("no oracle for {other:?}"),
    };
    Some((out, learned))
}

/// Decodes both bodies as `api` v`version` and compares the messages (byte equality is too strict only where
/// kafka-protocol re-orders tagged fields; message equality is what a client sees).
fn same_message(api: ApiKey, v: i16, a: &[u8], b: &[u8]) -> bool {
    fn eq<M: Decodable + PartialEq>(a: &[u8], b: &[u8], v: i16) -> bool {
        let d = |x: &[u8]| M::decode(&mut Bytes::copy_from_slice(x), v).ok();
        matches!((d(a), d(b)), (Some(x), Some(y)) if x == y)
    }
    match api {
        ApiKey::Metadata => eq::<MetadataResponse>(a, b, v),
        ApiKey::FindCoordinator => eq::<FindCoordinatorResponse>(a, b, v),
        ApiKey::DescribeCluster => eq::<DescribeClusterResponse>(a, b, v),
        ApiKey::Produce => eq::<ProduceResponse>(a, b, v),
        ApiKey::Fetch => eq::<FetchResponse>(a, b, v),
        ApiKey::ShareFetch => eq::<ShareFetchResponse>(a, b, v),
        ApiKey::ShareAcknowledge => eq::<ShareAcknowledgeResponse>(a, b, v),
        _ => false,
    }
}

/// Checks the walker against the oracle on one input. Returns whether the walker accepted it.
pub(super) fn check(api: ApiKey, v: i16, body: &[u8], what: &str) -> bool {
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let walked = rewrite_response(api, v, body, &adv);
    let Ok(walked) = walked else { return false };
    // The walker accepted it, so every count and length in it fits the bytes: decoding it is safe.
    if let Some((want, want_learned)) = oracle(api, v, body, &adv) {
        let got = walked.body.clone().unwrap_or_else(|| Bytes::copy_from_slice(body));
        assert!(same_message(api, v, &got, &want), "{what}: {api:?} v{v} differs from the oracle");
        assert_eq!(walked.learned, want_learned, "{what}: {api:?} v{v} learned");
    }
    true
}

#[test]
fn random_valid_responses_match_the_oracle() {
    let mut rng = Rng::new(0x6b61_6173);
    for (api, v) in rewritten_versions() {
        for i in 0..150 {
            let body = random_response(api, v, &mut rng);
            assert!(
                check(api, v, &body, &format!("random #{i}")),
                "{api:?} v{v} random #{i}: refused a valid response"
            );
        }
    }
}

#[test]
fn mutated_responses_are_refused_or_match_the_oracle() {
    let mut rng = Rng::new(0x6d75_7461);
    let (mut accepted, mut refused) = (0, 0);
    for (api, v) in rewritten_versions() {
        for _ in 0..6 {
            let body = random_response(api, v, &mut rng);
            for (name, mutated) in mutations(&body, &mut rng) {
                if check(api, v, &mutated, &name) {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    // Both outcomes must really occur, or the mutations test nothing.
    assert!(accepted > 1000 && refused > 1000, "accepted {accepted}, refused {refused}");
}
