//! The limits of the configuration file (`handshake_timeout_seconds`, `max_connections`, ...): each key's default
//! and the range it must lie in, read by [`limit`] with an error naming the range. Neighbour: [`super`] parses
//! the file key by key and builds [`super::Settings`] from these.

use super::{Collector, Parsed};

/// A client sends its ClientHello at once after connecting; a stranger who does not is not kept waiting for.
const DEFAULT_HELLO_TIMEOUT_SECONDS: u64 = 3;
/// Time for the rest of a client's handshake (a client certificate signed on a slow device included).
const DEFAULT_HANDSHAKE_TIMEOUT_SECONDS: u64 = 10;
/// Kafka brokers close connections idle for `connections.max.idle.ms` (10 minutes); the proxy does the same.
const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 600;
/// Well under a default process file limit of 65536 with two sockets per connection.
const DEFAULT_MAX_CONNECTIONS: u64 = 20_000;
/// A twentieth of the whole: no one address (or IPv6 /64) can take every connection, while a NAT gateway in
/// front of a few hundred clients (each holding a connection per broker it uses) still fits.
const DEFAULT_MAX_CONNECTIONS_PER_IP: u64 = 1_000;
/// Handshakes in flight from one address (or IPv6 /64): a client starts one per broker at once (a few dozen
/// at most), while a stranger stalling handshakes holds few of them.
const DEFAULT_MAX_HANDSHAKES_PER_IP: u64 = 32;
/// Handshakes in flight naming one tenant: bursts of reconnecting clients fit, and strangers stalling
/// handshakes for one tenant cannot hold more than this of the proxy.
const DEFAULT_MAX_HANDSHAKES_PER_TENANT: u64 = 512;
/// A quarter of the whole: no one tenant can take every connection.
const DEFAULT_MAX_CONNECTIONS_PER_TENANT: u64 = 5_000;
/// Far above what clients pipeline (Java's `max.in.flight.requests.per.connection` is 5; librdkafka pipelines
/// more), yet it bounds what one connection can queue.
const DEFAULT_MAX_INFLIGHT_REQUESTS: u64 = 1_024;

/// A limit's key, its default and the range it must lie in.
pub(super) struct Limit {
    pub(super) key: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
}

const WEEK_SECONDS: u64 = 7 * 24 * 3600;

/// Long enough for a producer's batch or a consumer's poll in flight, short enough that a changed route
/// (a new bootstrap, a rotated CA, a revoked client) takes over within minutes.
const DEFAULT_RELOAD_GRACE_SECONDS: u64 = 60;

/// A consumer catching up still gets responses of a good size (8 MiB), and a connection holds no more than
/// that plus one record batch, whatever a client asks for (Kafka's consumers ask for 50 MiB).
const DEFAULT_MAX_FETCH_RESPONSE_BYTES: u64 = 8 << 20;

pub(super) const LIMITS: [Limit; 11] = [
    Limit { key: "hello_timeout_seconds", default: DEFAULT_HELLO_TIMEOUT_SECONDS, range: 1..=60 },
    Limit { key: "handshake_timeout_seconds", default: DEFAULT_HANDSHAKE_TIMEOUT_SECONDS, range: 1..=300 },
    Limit { key: "idle_timeout_seconds", default: DEFAULT_IDLE_TIMEOUT_SECONDS, range: 1..=WEEK_SECONDS },
    Limit { key: "max_connections", default: DEFAULT_MAX_CONNECTIONS, range: 1..=1 << 24 },
    Limit {
        key: "max_connections_per_tenant",
        default: DEFAULT_MAX_CONNECTIONS_PER_TENANT,
        range: 1..=1 << 24,
    },
    Limit { key: "max_connections_per_ip", default: DEFAULT_MAX_CONNECTIONS_PER_IP, range: 1..=1 << 24 },
    Limit { key: "max_handshakes_per_ip", default: DEFAULT_MAX_HANDSHAKES_PER_IP, range: 1..=1 << 20 },
    Limit {
        key: "max_handshakes_per_tenant",
        default: DEFAULT_MAX_HANDSHAKES_PER_TENANT,
        range: 1..=1 << 24,
    },
    Limit {
        key: "max_inflight_requests_per_connection",
        default: DEFAULT_MAX_INFLIGHT_REQUESTS,
        range: 1..=1 << 16,
    },
    Limit { key: "reload_grace_seconds", default: DEFAULT_RELOAD_GRACE_SECONDS, range: 0..=WEEK_SECONDS },
    Limit {
        key: "max_fetch_response_bytes",
        default: DEFAULT_MAX_FETCH_RESPONSE_BYTES,
        range: 1 << 16..=i32::MAX as u64,
    },
];

/// The value of limit `key`: as written if in range (else an error naming the range), or its default.
pub(super) fn limit(p: &Parsed, key: &str, errs: &mut Collector) -> u64 {
    let Some(l) = LIMITS.iter().find(|l| l.key == key) else { return 0 };
    match p.limits.iter().find(|(k, _)| *k == key) {
        Some(&(_, n)) if l.range.contains(&n) => n,
        Some(_) => {
            errs.push(key, format!("must be between {} and {}", l.range.start(), l.range.end()));
            l.default
        }
        None => l.default,
    }
}

/// Each limit's key, default and range, for whoever documents them (the configuration reference).
pub fn limits() -> impl Iterator<Item = (&'static str, u64, std::ops::RangeInclusive<u64>)> {
    LIMITS.iter().map(|l| (l.key, l.default, l.range.clone()))
}
