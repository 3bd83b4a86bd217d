//! The walker against an oracle: kafka-protocol's decode → rewrite → encode, the way the proxy rewrote
//! responses before it walked them. For random valid responses of every rewritten API and version, and for
//! mutations of them that both sides accept, the walker's output must decode to exactly what the oracle gives,
//! and both must learn the same endpoints. Mutations the walker refuses must be refused with an error, never a
//! panic.

use kafka_protocol::messages::ApiKey;

use crate::kafka::testkit::{check, mutations, random_response, rewritten_versions, Rng};

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

#[test]
fn the_walker_knows_every_version_the_crate_knows() {
    // Production is safe either way (the walker's own ranges cap ApiVersions); this says when to extend it.
    for api in ApiKey::iter() {
        if let Some(walkable) = crate::kafka::apis::walkable(api) {
            assert_eq!(
                (walkable.min, walkable.max),
                (api.valid_versions().min, api.valid_versions().max),
                "{api:?}: kafka-protocol reads other versions than the walker; teach rewrite.rs the new layout"
            );
        }
    }
}
