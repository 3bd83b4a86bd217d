//! The ledger by hand: windows, connection time, the key budget, topic ids named from Metadata.

use std::time::Duration;

use super::*;

fn volume(bytes: u64, records: u64) -> Volume {
    Volume { bytes, records }
}

/// Adds one message naming `topics` (each with `volume`) `direction` through `meter`.
fn add(meter: &Meter, direction: Direction, topics: &[Topic<'_>], v: Volume) {
    meter
        .add::<()>(direction, |each| {
            topics.iter().for_each(|t| each(*t, v));
            Ok(())
        })
        .expect("adds");
}

fn topic_counts(
    entries: &[Entry],
    who: Option<&str>,
    topic: &TopicKey,
    direction: Direction,
) -> Option<Counts> {
    entries.iter().find_map(|e| match e {
        Entry::Topic { principal, topic: t, direction: d, counts, .. }
            if principal.as_deref() == who && t == topic && *d == direction =>
        {
            Some(*counts)
        }
        _ => None,
    })
}

fn connections(entries: &[Entry], who: Option<&str>) -> Option<(f64, u64, u64)> {
    entries.iter().find_map(|e| match e {
        Entry::Connections { principal, seconds, opened, requests, .. } if principal.as_deref() == who => {
            Some((*seconds, *opened, *requests))
        }
        _ => None,
    })
}

fn name(n: &str) -> TopicKey {
    TopicKey::Name(n.into())
}

#[test]
fn a_window_holds_what_each_principal_moved_by_topic_and_direction() {
    let ledger = Arc::new(Ledger::new(100));
    let t0 = Instant::now();
    let alice = ledger.open("acme", Some("alice"), t0);
    let alice_again = ledger.open("acme", Some("alice"), t0);
    let anonymous = ledger.open("acme", None, t0);
    add(&alice, Direction::Produce, &[Topic::Name("orders"), Topic::Name("audit")], volume(100, 3));
    add(&alice_again, Direction::Produce, &[Topic::Name("orders")], volume(50, 1));
    add(&alice, Direction::Fetch, &[Topic::Name("orders")], volume(150, 4));
    add(&anonymous, Direction::Fetch, &[Topic::Name("orders")], volume(7, 1));
    for _ in 0..5 {
        alice.request();
    }
    let entries = ledger.roll(t0 + Duration::from_secs(10));
    let c = |bytes, records, requests| Some(Counts { bytes, records, requests });
    assert_eq!(topic_counts(&entries, Some("alice"), &name("orders"), Direction::Produce), c(150, 4, 2));
    assert_eq!(topic_counts(&entries, Some("alice"), &name("audit"), Direction::Produce), c(100, 3, 1));
    assert_eq!(topic_counts(&entries, Some("alice"), &name("orders"), Direction::Fetch), c(150, 4, 1));
    assert_eq!(topic_counts(&entries, Some("alice"), &name("audit"), Direction::Fetch), None);
    assert_eq!(topic_counts(&entries, None, &name("orders"), Direction::Fetch), c(7, 1, 1));
    assert_eq!(connections(&entries, Some("alice")), Some((20.0, 2, 5)), "two connections for ten seconds");
    assert_eq!(connections(&entries, None), Some((10.0, 1, 0)));

    // The next window starts empty; open connections count again from its start.
    drop(alice_again);
    add(&alice, Direction::Produce, &[Topic::Name("orders")], volume(1, 1));
    let entries = ledger.roll(t0 + Duration::from_secs(25));
    assert_eq!(topic_counts(&entries, Some("alice"), &name("orders"), Direction::Produce), c(1, 1, 1));
    assert_eq!(topic_counts(&entries, Some("alice"), &name("orders"), Direction::Fetch), None);
    let (seconds, opened, requests) = connections(&entries, Some("alice")).expect("alice's connections");
    assert_eq!(
        (seconds, opened, requests),
        (15.0, 0, 0),
        "the closed connection's time was in the last window"
    );

    // Principals whose connections all closed leave after one more window.
    drop(alice);
    drop(anonymous);
    let entries = ledger.roll(t0 + Duration::from_secs(30));
    assert!(entries.is_empty(), "closed before the window began: nothing to say {entries:?}");
    assert!(lock(&ledger.tenants)["acme"].principals.lock().expect("lock").is_empty());
}

#[test]
fn past_the_key_budget_volumes_fold_into_other_for_the_window() {
    let ledger = Arc::new(Ledger::new(2));
    let t0 = Instant::now();
    let alice = ledger.open("acme", Some("alice"), t0);
    let bob = ledger.open("acme", Some("bob"), t0);
    let other_tenant = ledger.open("beta", Some("bob"), t0);
    add(&alice, Direction::Produce, &[Topic::Name("a"), Topic::Name("b")], volume(10, 1));
    // The tenant's budget is spent: bob's topics fold, alice's known ones still count.
    add(&bob, Direction::Produce, &[Topic::Name("a"), Topic::Name("c")], volume(10, 1));
    add(&alice, Direction::Produce, &[Topic::Name("a"), Topic::Name("d")], volume(10, 1));
    add(&other_tenant, Direction::Produce, &[Topic::Name("x"), Topic::Name("y")], volume(10, 1));
    let entries = ledger.roll(t0 + Duration::from_secs(1));
    let c = |n| Some(Counts { bytes: 10 * n, records: n, requests: n });
    assert_eq!(topic_counts(&entries, Some("alice"), &name("a"), Direction::Produce), c(2));
    assert_eq!(topic_counts(&entries, Some("alice"), &TopicKey::Other, Direction::Produce), c(1));
    assert_eq!(topic_counts(&entries, Some("bob"), &TopicKey::Other, Direction::Produce), c(2));
    assert_eq!(topic_counts(&entries, Some("bob"), &name("x"), Direction::Produce), c(1), "per tenant");
    let folded: u64 = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Topic { tenant, folded, .. } if &**tenant == "acme" => Some(*folded),
            _ => None,
        })
        .sum();
    assert_eq!(folded, 3);
    assert_eq!(ledger.folded.get(), 3);
    // A new window has a new budget.
    add(&bob, Direction::Produce, &[Topic::Name("c")], volume(10, 1));
    let entries = ledger.roll(t0 + Duration::from_secs(2));
    assert_eq!(topic_counts(&entries, Some("bob"), &name("c"), Direction::Produce), c(1));
}

#[test]
fn topic_ids_are_named_once_a_metadata_response_told_their_names() {
    let ledger = Arc::new(Ledger::new(100));
    let t0 = Instant::now();
    let alice = ledger.open("acme", Some("alice"), t0);
    add(&alice, Direction::Fetch, &[Topic::Id([1; 16])], volume(5, 1));
    let body = b"..orders..payments";
    alice.learn_topics(body, &[([1; 16], 2..8), ([2; 16], 10..18)]);
    add(
        &alice,
        Direction::Fetch,
        &[Topic::Id([1; 16]), Topic::Id([2; 16]), Topic::Id([3; 16])],
        volume(5, 1),
    );
    let entries = ledger.roll(t0 + Duration::from_secs(1));
    let c = |n| Some(Counts { bytes: 5 * n, records: n, requests: n });
    assert_eq!(topic_counts(&entries, Some("alice"), &TopicKey::Id([1; 16]), Direction::Fetch), c(1));
    assert_eq!(topic_counts(&entries, Some("alice"), &name("orders"), Direction::Fetch), c(1));
    assert_eq!(topic_counts(&entries, Some("alice"), &name("payments"), Direction::Fetch), c(1));
    assert_eq!(topic_counts(&entries, Some("alice"), &TopicKey::Id([3; 16]), Direction::Fetch), c(1));
    // Other connections of the tenant share what was learned.
    let bob = ledger.open("acme", Some("bob"), t0);
    add(&bob, Direction::Produce, &[Topic::Id([2; 16])], volume(5, 1));
    let entries = ledger.roll(t0 + Duration::from_secs(2));
    assert_eq!(topic_counts(&entries, Some("bob"), &name("payments"), Direction::Produce), c(1));
}

#[test]
fn learned_names_are_bounded_and_must_be_text() {
    let ledger = Arc::new(Ledger::new(2));
    let meter = ledger.open("acme", None, Instant::now());
    let body = b"aaa\xffbbbccc";
    meter.learn_topics(body, &[([1; 16], 0..3), ([2; 16], 3..4), ([3; 16], 4..7), ([4; 16], 7..10)]);
    let names = meter.tenant.names.read().expect("lock");
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names.get(&[1; 16]).map(|n| &**n), Some("aaa"));
    assert!(!names.contains_key(&[2; 16]), "not UTF-8");
}

#[test]
fn names_kafka_would_refuse_take_no_entry() {
    let ledger = Arc::new(Ledger::new(2));
    let t0 = Instant::now();
    let mallory = ledger.open("acme", Some("mallory"), t0);
    let long = "x".repeat(250);
    add(
        &mallory,
        Direction::Produce,
        &[Topic::Name(&long), Topic::Name("a b"), Topic::Name("")],
        volume(10, 1),
    );
    // The tenant's budget is whole: two real topics still get their own entries.
    add(&mallory, Direction::Produce, &[Topic::Name("orders"), Topic::Name("audit.log_v-2")], volume(10, 1));
    let entries = ledger.roll(t0 + Duration::from_secs(1));
    let c = |n| Some(Counts { bytes: 10 * n, records: n, requests: n });
    assert_eq!(topic_counts(&entries, Some("mallory"), &TopicKey::Other, Direction::Produce), c(3));
    assert_eq!(topic_counts(&entries, Some("mallory"), &name("orders"), Direction::Produce), c(1));
    assert_eq!(topic_counts(&entries, Some("mallory"), &name("audit.log_v-2"), Direction::Produce), c(1));
    assert_eq!(topic_counts(&entries, Some("mallory"), &name(&"x".repeat(249)), Direction::Produce), None);
}
