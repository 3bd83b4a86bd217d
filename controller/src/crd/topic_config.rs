//! The Kafka topic settings a tenant may put in `spec.topics[].config`, and the values each may take. An
//! allow-list, since every other topic config is the platform's to set: retention is sized (`retentionHours`),
//! some are broker internals that can take the tenant's brokers down (one-megabyte segments by the thousand, an
//! fsync per message), and one loses acknowledged records (unclean leader election).
//!
//! One table, two enforcers: [`schema_rules`] turns it into the CRD's CEL rules, so the API server refuses a bad
//! setting at `kubectl apply`, and [`check`] repeats it for the controller
//! ([`super::KafkaTenantSpec::validate`]), which also meets tenants from files and names the offending key.
//! Neighbours: [`super`] attaches the rules to `Topic::config`.
//!
//! Sources: what each key means and Kafka's own bounds, Kafka 4.x's topic configs
//! (<https://kafka.apache.org/documentation/#topicconfigs>, `TopicConfig`/`LogConfig`); where a range here is
//! narrower than Kafka's, it follows what managed Kafka services allow (Confluent Cloud's topic configuration
//! reference: `segment.bytes` 50 MiB–1 GiB, `segment.ms` ≥ 10 min; MSK Serverless: `max.message.bytes` ≤ 8 MiB).

use serde_json::{json, Value};

/// Largest value of an integer setting: 18 digits, so the API server's `int()` never overflows.
const MAX_INTEGER: i64 = 999_999_999_999_999_999;

/// What values a setting takes.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    /// One of these words.
    Word(&'static [&'static str]),
    /// A comma-separated list of these words (spaces around commas allowed, as Kafka reads lists).
    Words(&'static [&'static str]),
    /// An integer in `min..=max`.
    Integer {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
}

/// One setting a tenant may change.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Kafka's name of it.
    pub key: &'static str,
    /// What it may be set to.
    pub values: Values,
}

impl Values {
    /// What the values are, in words: `an integer in 1..=5`.
    pub fn describe(&self) -> String {
        match self {
            Values::Word(words) => format!("one of {}", words.join(", ")),
            Values::Words(words) => format!("a comma-separated list of {}", words.join(", ")),
            Values::Integer { min, max } => format!("an integer in {min}..={max}"),
        }
    }
}

const fn int(key: &'static str, min: i64, max: i64) -> Setting {
    Setting { key, values: Values::Integer { min, max } }
}

/// The settings tenants may change, by key.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "cleanup.policy", values: Values::Words(&["delete", "compact"]) },
    Setting {
        key: "compression.type",
        values: Values::Word(&["producer", "uncompressed", "zstd", "lz4", "snappy", "gzip"]),
    },
    // KIP-390 (Kafka 3.8); Kafka's ranges, but gzip's -1 (its default, as leaving the key out) is left out:
    // Kafka takes -1 or 1..=9 and refuses 0 (`CompressionType.GZIP` level validator), which one range cannot say.
    int("compression.gzip.level", 1, 9),
    int("compression.lz4.level", 1, 17),
    int("compression.zstd.level", -131_072, 22),
    int("delete.retention.ms", 0, MAX_INTEGER),
    // Below an hour the cleaner compacts the topic over and over.
    int("max.compaction.lag.ms", 3_600_000, MAX_INTEGER),
    // 8 MiB: a larger batch holds up every fetch from the partition (MSK Serverless' and Confluent's limit).
    int("max.message.bytes", 1_024, 8 * 1_048_576),
    int("message.timestamp.after.max.ms", 0, MAX_INTEGER),
    int("message.timestamp.before.max.ms", 0, MAX_INTEGER),
    Setting { key: "message.timestamp.type", values: Values::Word(&["CreateTime", "LogAppendTime"]) },
    int("min.compaction.lag.ms", 0, MAX_INTEGER),
    // At most the topic's replicas too (checked with them): past that every acks=all write fails.
    int("min.insync.replicas", 1, 5),
    // -1: no limit by size (retention by time still holds).
    int("retention.bytes", -1, MAX_INTEGER),
    // Smaller segments multiply open files and memory maps on every broker.
    int("segment.bytes", 50 * 1_048_576, 1_073_741_824),
    int("segment.ms", 600_000, MAX_INTEGER),
];

/// Keys refused with a reason of their own; any other key not in [`SETTINGS`] is refused as not a tenant's.
pub const REFUSED: &[(&str, &str)] = &[
    ("retention.ms", "set retentionHours, not config retention.ms"),
    ("unclean.leader.election.enable", "an out-of-sync replica would lead and acknowledged records be lost"),
    ("flush.messages", "Kafka's durability is replication; an fsync per write stalls the brokers' disks"),
    ("flush.ms", "Kafka's durability is replication; an fsync per write stalls the brokers' disks"),
    ("remote.storage.enable", "the platform runs no tiered storage"),
    ("local.retention.ms", "the platform runs no tiered storage"),
    ("local.retention.bytes", "the platform runs no tiered storage"),
    ("message.downconversion.enable", "Kafka 4 removed it"),
    ("leader.replication.throttled.replicas", "the platform sets it while it moves partitions"),
    ("follower.replication.throttled.replicas", "the platform sets it while it moves partitions"),
];

/// Whether `value` is one `key` may take on a topic of `replicas` copies; the reason when not.
pub fn check(key: &str, value: &str, replicas: u16) -> Result<(), String> {
    let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
        return Err(match REFUSED.iter().find(|(k, _)| *k == key) {
            Some((_, why)) if key == "retention.ms" => (*why).to_owned(),
            Some((_, why)) => format!("{key} may not be set on a tenant's topic: {why}"),
            None => format!("{key:?} is not a topic setting tenants may change (they are: {})", keys()),
        });
    };
    match setting.values {
        Values::Word(words) if !words.contains(&value) => {
            Err(format!("{key}: {value:?} is not {}", setting.values.describe()))
        }
        Values::Words(words) if !value.split(',').all(|w| words.contains(&w.trim_matches(' '))) => {
            Err(format!("{key}: {value:?} is not {}", setting.values.describe()))
        }
        Values::Integer { min, max } => {
            let n = integer(value).ok_or_else(|| format!("{key}: {value:?} is not an integer"))?;
            if !(min..=max).contains(&n) {
                return Err(format!("{key}: {n} is outside {min}..={max}"));
            }
            if key == "min.insync.replicas" && n > i64::from(replicas) {
                return Err(format!(
                    "{key}: {n} is more than the topic's {replicas} replicas (every acks=all write would fail)"
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// An optional `-` and 1 to 18 digits, as the schema's pattern has it.
fn integer(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let plain = (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| value.parse().ok()).flatten()
}

fn keys() -> String {
    SETTINGS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
}

/// A CEL list literal of `words`.
fn cel_list(words: impl IntoIterator<Item = &'static str>) -> String {
    let quoted: Vec<String> = words.into_iter().map(|w| format!("'{w}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The table as `x-kubernetes-validations` of the `config` map (`self`): the keys, then each key's values.
/// `min.insync.replicas` against the topic's replicas needs the tenant's `replicationFactor`, so that rule
/// is the spec's ([`MIN_INSYNC_RULE`]).
pub fn schema_rules() -> Vec<Value> {
    let allowed = cel_list(SETTINGS.iter().map(|s| s.key));
    // A static message: one naming the offending key (a filter and join over the map) costs the API server more
    // than 100 times its budget in its estimate, keys having no length bound. The controller names it.
    let mut rules = vec![json!({
        "rule": format!("self.all(k, k in {allowed})"),
        "message": format!("a topic's config may set only {}", keys()),
    })];
    for s in SETTINGS {
        let (key, v) = (s.key, format!("self['{}']", s.key));
        let holds = match s.values {
            Values::Word(words) => format!("{v} in {}", cel_list(words.iter().copied())),
            // A pattern, not split(): its cost is linear in the value's length, a split's list is not.
            Values::Words(words) => {
                let word = format!(" *({}) *", words.join("|"));
                format!("{v}.matches('^{word}(,{word})*$')")
            }
            Values::Integer { min, max } => {
                format!("{v}.matches('^-?[0-9]{{1,18}}$') && int({v}) >= {min} && int({v}) <= {max}")
            }
        };
        rules.push(json!({
            "rule": format!("!('{key}' in self) || ({holds})"),
            "message": format!("{key} must be {}", s.values.describe()),
        }));
    }
    rules
}

/// The spec's rule that no topic asks more in-sync replicas than it has copies.
pub const MIN_INSYNC_RULE: &str = "self.topics.all(t, !has(t.config) || !('min.insync.replicas' in t.config) || !t.config['min.insync.replicas'].matches('^[0-9]{1,18}$') || int(t.config['min.insync.replicas']) <= (has(t.replicas) ? t.replicas : self.replicationFactor))";

/// Attaches [`schema_rules`] to the `config` map's schema, with the length bounds of its values that keep the
/// rules' cost within what the API server allows.
pub fn transform(schema: &mut schemars::Schema) {
    use super::limits::MAX_TOPIC_CONFIG_VALUE;
    schema.insert(
        "additionalProperties".into(),
        json!({ "type": "string", "minLength": 1, "maxLength": MAX_TOPIC_CONFIG_VALUE }),
    );
    schema.insert("x-kubernetes-validations".into(), Value::Array(schema_rules()));
}

#[cfg(test)]
mod tests;
