//! The `spec.kafka.config` keys Strimzi 1.2.0 drops (with a warning, so the broker runs without them): every key
//! that starts with one of [`FORBIDDEN_PREFIXES`], lowercased, unless it is one of [`FORBIDDEN_PREFIX_EXCEPTIONS`]
//! or a per-listener key it allows (`AbstractConfiguration.java` `filterForbidden`, l.95-112;
//! `KafkaConfiguration.java` `modifyWithListeners`, l.90-95, at 1.2.0). These are what it sets itself: listeners,
//! TLS, authorization and super users, the KRaft roles and quorum.
//!
//! Neighbours: the controller's `strimzi` integration tests hold the chart's `Kafka` to [`is_forbidden`].

/// `KafkaClusterSpec.FORBIDDEN_PREFIXES` (`api/.../model/kafka/KafkaClusterSpec.java` l.56-63 at 1.2.0).
pub const FORBIDDEN_PREFIXES: &[&str] = &[
    "listeners",
    "advertised.",
    "broker.",
    "listener.",
    "host.name",
    "port",
    "inter.broker.listener.name",
    "sasl.",
    "ssl.",
    "security.",
    "password.",
    "log.dir",
    "zookeeper.connect",
    "zookeeper.set.acl",
    "zookeeper.ssl",
    // Never matches: keys are lowercased before the comparison and this prefix is not (kept as upstream has it).
    "zookeeper.clientCnxnSocket",
    "authorizer.",
    "super.user",
    "cruise.control.metrics.topic",
    "cruise.control.metrics.reporter.bootstrap.servers",
    "node.id",
    "process.roles",
    "controller.",
    "metadata.log.dir",
    "zookeeper.metadata.migration.enable",
    "client.quota.callback.static.kafka.admin.",
    "client.quota.callback.static.produce",
    "client.quota.callback.static.fetch",
    "client.quota.callback.static.storage.per.volume.limit.min.available.",
    "client.quota.callback.static.excluded.principal.name.list",
    "prometheus.metrics.reporter.",
    "cordoned.log.dirs",
];

/// `KafkaClusterSpec.FORBIDDEN_PREFIX_EXCEPTIONS` (l.66-72 at 1.2.0): exact keys kept despite their prefix.
pub const FORBIDDEN_PREFIX_EXCEPTIONS: &[&str] = &[
    "zookeeper.connection.timeout.ms",
    "sasl.server.max.receive.size",
    "ssl.cipher.suites",
    "ssl.protocol",
    "ssl.enabled.protocols",
    "ssl.secure.random.implementation",
    "cruise.control.metrics.topic.num.partitions",
    "cruise.control.metrics.topic.replication.factor",
    "cruise.control.metrics.topic.retention.ms",
    "cruise.control.metrics.topic.auto.create.retries",
    "cruise.control.metrics.topic.auto.create.timeout.ms",
    "cruise.control.metrics.topic.min.insync.replicas",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "controller.socket.timeout.ms",
    "controller.quorum.election.backoff.max.ms",
    "controller.quorum.election.timeout.ms",
    "controller.quorum.fetch.timeout.ms",
];

/// `KafkaClusterSpec.ALLOWED_PER_LISTENER_CONFIGS` (l.75 at 1.2.0): allowed as
/// `listener.name.<name>-<port>.<key>` for each listener of the cluster (`ListenersUtils.identifier`).
pub const ALLOWED_PER_LISTENER_CONFIGS: &[&str] =
    &["connections.max.reauth.ms", "max.connections", "max.connection.creation.rate"];

/// Whether Strimzi drops `key` from `spec.kafka.config` of a cluster whose listeners are `listeners` (each
/// `(name, port)`).
pub fn is_forbidden(key: &str, listeners: &[(&str, u16)]) -> bool {
    let lower = key.to_lowercase();
    if !FORBIDDEN_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return false;
    }
    // The exceptions match the key as written, not lowercased (`forbiddenPrefixExceptions.contains(k)`).
    let per_listener = listeners.iter().any(|(name, port)| {
        ALLOWED_PER_LISTENER_CONFIGS.iter().any(|c| key == format!("listener.name.{name}-{port}.{c}"))
    });
    !(FORBIDDEN_PREFIX_EXCEPTIONS.contains(&key) || per_listener)
}
