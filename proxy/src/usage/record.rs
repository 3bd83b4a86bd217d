//! The usage record: one JSON line per [`Entry`] of a closed window, schema `kaas.usage/v1`
//! (docs/operate/usage.md). Records of one proxy process are numbered from 1; `(replica, replica_started,
//! sequence)` names a record uniquely, so a consumer drops the duplicates a retried write can leave.

use base64::Engine;
use serde::Serialize;

use super::ledger::{Direction, Entry, TopicKey, OTHER};

/// The schema name every record carries; a change that is not an addition of fields moves it to `v2`.
pub const SCHEMA: &str = "kaas.usage/v1";

/// What every record of a window shares.
#[derive(Debug, Clone)]
pub struct Window<'a> {
    /// The proxy replica (its pod name).
    pub replica: &'a str,
    /// When the replica's process started, RFC 3339.
    pub replica_started: &'a str,
    /// The window's start, RFC 3339.
    pub start: String,
    /// The window's end, RFC 3339.
    pub end: String,
}

#[derive(Serialize)]
struct Record<'a> {
    schema: &'static str,
    replica: &'a str,
    replica_started: &'a str,
    sequence: u64,
    window_start: &'a str,
    window_end: &'a str,
    tenant: &'a str,
    principal: Option<&'a str>,
    #[serde(flatten)]
    what: What<'a>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum What<'a> {
    Topic {
        direction: &'static str,
        topic: Option<&'a str>,
        topic_id: Option<String>,
        bytes: u64,
        records: u64,
        requests: u64,
        #[serde(skip_serializing_if = "is_zero")]
        folded: u64,
    },
    Connections {
        connection_seconds: f64,
        connections_opened: u64,
        requests: u64,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `entry` of `window` as one JSON line (no newline), numbered `sequence`.
pub fn line(window: &Window<'_>, sequence: u64, entry: &Entry) -> String {
    let (tenant, principal, what) = match entry {
        Entry::Topic { tenant, principal, topic, direction, counts, folded } => {
            let (topic, topic_id) = match topic {
                TopicKey::Name(n) => (Some(&**n), None),
                // Kafka writes topic ids in URL-safe base64 without padding (`Uuid.toString()`).
                TopicKey::Id(id) => (None, Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id))),
                TopicKey::Other => (Some(OTHER), None),
            };
            let direction = match direction {
                Direction::Produce => "produce",
                Direction::Fetch => "fetch",
            };
            let what = What::Topic {
                direction,
                topic,
                topic_id,
                bytes: counts.bytes,
                records: counts.records,
                requests: counts.requests,
                folded: *folded,
            };
            (tenant, principal, what)
        }
        Entry::Connections { tenant, principal, seconds, opened, requests } => {
            let what = What::Connections {
                connection_seconds: (seconds * 1000.0).round() / 1000.0,
                connections_opened: *opened,
                requests: *requests,
            };
            (tenant, principal, what)
        }
    };
    let record = Record {
        schema: SCHEMA,
        replica: window.replica,
        replica_started: window.replica_started,
        sequence,
        window_start: &window.start,
        window_end: &window.end,
        tenant,
        principal: principal.as_deref(),
        what,
    };
    // Strings, integers and a finite float: serializing cannot fail.
    serde_json::to_string(&record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::sink::rfc3339;
    use crate::usage::ledger::Counts;

    #[test]
    fn records_are_one_json_object_per_line_in_the_documented_shape() {
        let window = Window {
            replica: "kaas-proxy-0",
            replica_started: "2026-12-07T19:00:00.000Z",
            start: rfc3339(UNIX_EPOCH + Duration::from_millis(1_796_630_400_000)),
            end: rfc3339(UNIX_EPOCH + Duration::from_millis(1_796_630_460_250)),
        };
        let tenant: Arc<str> = "acme".into();
        let counts = Counts { bytes: 1024, records: 10, requests: 2 };
        let topic = |topic, folded| Entry::Topic {
            tenant: tenant.clone(),
            principal: Some("alice".into()),
            topic,
            direction: Direction::Produce,
            counts,
            folded,
        };
        let head = r#"{"schema":"kaas.usage/v1","replica":"kaas-proxy-0","replica_started":"2026-12-07T19:00:00.000Z","#;
        let window_fields =
            r#""window_start":"2026-12-07T08:00:00.000Z","window_end":"2026-12-07T08:01:00.250Z","#;
        let cases = [
            (
                topic(TopicKey::Name("orders".into()), 0),
                r#""tenant":"acme","principal":"alice","kind":"topic","direction":"produce","topic":"orders","topic_id":null,"bytes":1024,"records":10,"requests":2}"#,
            ),
            (
                topic(TopicKey::Id([0xfb; 16]), 0),
                r#""tenant":"acme","principal":"alice","kind":"topic","direction":"produce","topic":null,"topic_id":"-_v7-_v7-_v7-_v7-_v7-w","bytes":1024,"records":10,"requests":2}"#,
            ),
            (
                topic(TopicKey::Other, 7),
                r#""tenant":"acme","principal":"alice","kind":"topic","direction":"produce","topic":"(other)","topic_id":null,"bytes":1024,"records":10,"requests":2,"folded":7}"#,
            ),
            (
                Entry::Connections {
                    tenant: tenant.clone(),
                    principal: None,
                    seconds: 59.99951,
                    opened: 3,
                    requests: 40,
                },
                r#""tenant":"acme","principal":null,"kind":"connections","connection_seconds":60.0,"connections_opened":3,"requests":40}"#,
            ),
        ];
        for (sequence, (entry, tail)) in cases.into_iter().enumerate() {
            let got = line(&window, sequence as u64 + 1, &entry);
            let want = format!("{head}\"sequence\":{},{window_fields}{tail}", sequence + 1);
            assert_eq!(got, want);
        }
    }
}
