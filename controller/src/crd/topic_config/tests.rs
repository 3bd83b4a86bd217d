use super::*;

#[test]
fn each_setting_takes_its_values_and_nothing_else() {
    // (key, value, the topic's replicas, None when allowed, else what the refusal says)
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("cleanup.policy", "compact", 3, None),
        ("cleanup.policy", "compact,delete", 3, None),
        ("cleanup.policy", "delete, compact", 3, None),
        ("cleanup.policy", "compact,archive", 3, Some("comma-separated list of delete, compact")),
        ("compression.type", "zstd", 3, None),
        ("compression.type", "brotli", 3, Some("\"brotli\" is not one of producer")),
        ("compression.zstd.level", "-5", 3, None),
        ("compression.gzip.level", "10", 3, Some("10 is outside 1..=9")),
        ("compression.gzip.level", "0", 3, Some("0 is outside 1..=9")),
        ("max.message.bytes", "2097152", 3, None),
        ("max.message.bytes", "8388609", 3, Some("outside 1024..=8388608")),
        ("max.message.bytes", "2MB", 3, Some("\"2MB\" is not an integer")),
        ("max.message.bytes", "+2097152", 3, Some("is not an integer")),
        ("retention.bytes", "-1", 3, None),
        ("retention.bytes", "-2", 3, Some("-2 is outside -1..=")),
        ("retention.bytes", "9223372036854775807", 3, Some("is not an integer")),
        ("segment.bytes", "1048576", 3, Some("1048576 is outside 52428800..=1073741824")),
        ("segment.ms", "60000", 3, Some("outside 600000..=")),
        ("message.timestamp.type", "LogAppendTime", 3, None),
        ("min.insync.replicas", "2", 3, None),
        ("min.insync.replicas", "3", 3, None),
        ("min.insync.replicas", "3", 2, Some("more than the topic's 2 replicas")),
        ("min.insync.replicas", "0", 3, Some("0 is outside 1..=5")),
        ("retention.ms", "1", 3, Some("set retentionHours, not config retention.ms")),
        ("unclean.leader.election.enable", "true", 3, Some("acknowledged records be lost")),
        ("flush.messages", "1", 3, Some("may not be set on a tenant's topic")),
        ("remote.storage.enable", "true", 3, Some("no tiered storage")),
        (
            "segment.index.bytes",
            "4096",
            3,
            Some("not a topic setting tenants may change (they are: cleanup.policy"),
        ),
        ("Cleanup Policy", "compact", 3, Some("not a topic setting tenants may change")),
    ];
    for &(key, value, replicas, want) in cases {
        match (check(key, value, replicas), want) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => assert!(e.contains(w), "{key}={value}: {e}"),
            (got, _) => panic!("{key}={value} on {replicas} replicas: {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn the_schema_has_a_rule_for_the_keys_and_one_per_setting() {
    let rules = schema_rules();
    assert_eq!(rules.len(), 1 + SETTINGS.len());
    assert!(rules[0]["rule"].as_str().is_some_and(|r| SETTINGS.iter().all(|s| r.contains(s.key))));
    for (rule, s) in rules[1..].iter().zip(SETTINGS) {
        let text = rule["rule"].as_str().unwrap_or_default();
        assert!(text.starts_with(&format!("!('{}' in self) || (", s.key)), "{text}");
        assert!(rule["message"].as_str().is_some_and(|m| m.starts_with(s.key)), "{rule}");
    }
    // A refused key is never also allowed.
    assert!(REFUSED.iter().all(|(k, _)| SETTINGS.iter().all(|s| s.key != *k)));
}
