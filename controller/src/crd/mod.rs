//! The `KafkaTenant` custom resource (kaas.dev/v1alpha1): what an operator or a self-service front end asks
//! for. The CRD is generated from these types (`kaas-controller crd`) into `charts/kaas-controller/crds/`;
//! a test fails when the committed file differs. Validation lives in the schema (ranges, patterns, CEL rules)
//! so the API server rejects bad tenants with a message naming the field; [`KafkaTenantSpec::validate`]
//! repeats the checks for files given to the CLI, which meet no API server (`crd/validate.rs`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod topic_config;
mod validate;

pub use validate::{is_kubernetes_version, SpecError};

/// Platform maxima: the largest tenant one Kafka cluster of this platform is sized for. The schema attributes
/// of [`KafkaTenantSpec`] repeat these numbers; keep both in step.
pub mod limits {
    /// Largest `throughput.ingressMBps`, MB/s.
    pub const MAX_INGRESS_MBPS: u32 = 2_000;
    /// Largest `throughput.egressMBps`, MB/s.
    pub const MAX_EGRESS_MBPS: u32 = 6_000;
    /// Largest `retentionHours`: one year.
    pub const MAX_RETENTION_HOURS: u32 = 8_760;
    /// Largest `replicationFactor`.
    pub const MAX_REPLICATION_FACTOR: u16 = 5;
    /// Largest `partitions`.
    pub const MAX_PARTITIONS: u32 = 20_000;
    /// Most `users` one tenant may have.
    pub const MAX_USERS: usize = 200;
    /// Most `topics` one tenant may declare. Also bounds the cost the API server estimates for the CEL rule
    /// keeping topic names unique, quadratic in the list's length: with 249-character names, 300 topics already
    /// take 95 % of a rule's budget and 1,000 are refused (10.6x over); 200 leave room.
    pub const MAX_TOPICS: usize = 200;
    /// Longest topic name Kafka accepts.
    pub const MAX_TOPIC_NAME: usize = 249;
    /// Most `config` entries of one topic.
    pub const MAX_TOPIC_CONFIGS: usize = 50;
    /// Longest `config` value of a topic.
    pub const MAX_TOPIC_CONFIG_VALUE: usize = 1_000;
    /// User names the chart keeps for itself: the proxy's own KafkaUser.
    pub const RESERVED_USERS: [&str; 1] = ["kaas-proxy"];
}

/// The spec of a `KafkaTenant`: the demand the tenant's cluster is sized for, and its users.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    derive = "Default",
    group = "kaas.dev",
    version = "v1alpha1",
    kind = "KafkaTenant",
    namespaced,
    status = "KafkaTenantStatus",
    shortname = "kt",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Brokers","type":"integer","jsonPath":".status.sizing.brokers"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.users.all(u, self.users.exists_one(v, v.name == u.name))").message("user names must be unique"))]
#[x_kube(validation = Rule::new("!has(self.partitions) || self.partitions >= 1").message("partitions must be at least 1"))]
#[x_kube(validation = Rule::new("self.users.all(u, u.name != 'kaas-proxy')").message("user name kaas-proxy is the proxy's own"))]
#[x_kube(validation = Rule::new("self.topics.all(t, self.topics.exists_one(u, u.name == t.name))").message("topic names must be unique"))]
#[x_kube(validation = Rule::new("self.topics.all(t, !has(t.retentionHours) || t.retentionHours <= self.retentionHours)").message("a topic's retentionHours may not exceed the tenant's (storage is sized for it)"))]
#[x_kube(validation = Rule::new(topic_config::MIN_INSYNC_RULE).message("a topic's min.insync.replicas may not exceed its replicas (every acks=all write would fail)"))]
#[x_kube(validation = Rule::new("self.users.all(u, !has(u.quota) || ((!has(u.quota.ingressMBps) || u.quota.ingressMBps <= self.throughput.ingressMBps) && (!has(u.quota.egressMBps) || u.quota.egressMBps <= self.throughput.egressMBps)))").message("a user's quota may not exceed the tenant's throughput"))]
pub struct KafkaTenantSpec {
    /// Peak throughput the cluster is sized for, in megabytes per second.
    pub throughput: Throughput,
    /// How long records are kept, in hours.
    #[schemars(range(min = 1, max = 8760))]
    pub retention_hours: u32,
    /// Copies of each partition; at most the number of brokers the sizing yields.
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 5))]
    pub replication_factor: u16,
    /// Partitions of the default topic layout; computed from throughput when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20000))]
    pub partitions: Option<u32>,
    /// The tenant's Kafka users and their ACLs; names are unique.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub users: Vec<User>,
    /// The tenant's topics, created by Strimzi's topic operator. Brokers create no topics on their own, and
    /// users create topics only where an ACL grants them `Create`.
    // Always serialized, so the schema defaults it to []: the CEL rules over topics need the field.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub topics: Vec<Topic>,
    /// Where the tenant's Kafka runs: its own cluster (default) or a namespace on the shared one.
    #[serde(default)]
    pub isolation: Isolation,
    /// Cloud region for `isolation: cluster` (for example eu-west-1).
    #[serde(default = "default_region")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"))]
    pub region: String,
    /// Versions this tenant runs; each one left out is the platform's default. Pinning them lets the platform
    /// move tenants to a new version one at a time rather than rolling every tenant with one change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
}

/// A tenant's pinned versions (see [`KafkaTenantSpec::versions`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Versions {
    /// Kubernetes of the tenant's own cluster, 1.34 or newer (`v1.34.2`); `isolation: cluster` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^v1\.(3[4-9]|[4-9][0-9])\.[0-9]+$"))]
    pub kubernetes: Option<String>,
    /// The Strimzi operator (its Helm chart's version, `1.2.0`) on the tenant's own cluster; `isolation:
    /// cluster` only (the shared cluster's operator is the platform's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+$"))]
    pub strimzi: Option<String>,
    /// Apache Kafka of the brokers (`4.3.1`): one the tenant's Strimzi version supports (a pair Strimzi does not run is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+$"))]
    pub kafka: Option<String>,
}

/// Desired throughput, in megabytes per second.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// Produced into the cluster.
    #[serde(rename = "ingressMBps")]
    #[schemars(range(min = 1, max = 2000))]
    pub ingress_mbps: u32,
    /// Consumed out of the cluster, all consumer groups together.
    #[serde(rename = "egressMBps")]
    #[schemars(range(min = 1, max = 6000))]
    pub egress_mbps: u32,
}

/// A Kafka user of the tenant, authenticated by its TLS client certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// DNS label; the user's TLS client certificate is issued for it.
    // The length bound is implied by the pattern, but the API server's CEL cost estimate reads only
    // maxLength: without it the uniqueness rule is refused as 100x over budget (found by tests/controller/apiserver.rs).
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"), length(min = 1, max = 63))]
    pub name: String,
    /// What the user may do; nothing when empty.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub acls: Vec<Acl>,
    /// The most this user may produce and consume, all its clients together; each absent figure is the
    /// tenant's throughput (so one user alone stays within what the cluster is sized for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<UserQuota>,
}

/// A user's share of the tenant's throughput, in megabytes per second; at most the tenant's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserQuota {
    /// Produced by the user's clients together; absent: the tenant's `ingressMBps`.
    #[serde(rename = "ingressMBps", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2000))]
    pub ingress_mbps: Option<u32>,
    /// Consumed by the user's clients together; absent: the tenant's `egressMBps`.
    #[serde(rename = "egressMBps", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 6000))]
    pub egress_mbps: Option<u32>,
}

/// A topic of the tenant, as Strimzi's topic operator creates and keeps it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.name != '.' && self.name != '..'").message("a topic may not be named . or .."))]
#[x_kube(validation = Rule::new("!self.name.startsWith('__')").message("topic names starting with __ are Kafka's internal ones"))]
#[x_kube(validation = Rule::new("!has(self.config) || !('retention.ms' in self.config)").message("set retentionHours, not config retention.ms"))]
pub struct Topic {
    /// The topic's name as Kafka allows it: letters, digits, `.`, `_` and `-`, at most 249 characters.
    // maxLength also bounds the cost the API server estimates for the uniqueness rule over topics.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9._-]+$"), length(min = 1, max = 249))]
    pub name: String,
    /// Partitions; the tenant's sized partition count when absent. Kafka can add partitions, never remove them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20000))]
    pub partitions: Option<u32>,
    /// Copies of each partition; the tenant's `replicationFactor` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: Option<u16>,
    /// How long records are kept, in hours, at most the tenant's `retentionHours`; the tenant's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8760))]
    pub retention_hours: Option<u32>,
    /// Further Kafka topic settings, values as strings: `cleanup.policy`, `max.message.bytes` and the others
    /// tenants may change (docs/controller/tenant.md lists them with their values).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50), transform = topic_config::transform)]
    pub config: std::collections::BTreeMap<String, String>,
}

/// One allow rule: operations on the resources a name and pattern select.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Acl {
    /// The kind of Kafka resource: `topic`, `group` or `cluster`.
    pub resource: AclResource,
    /// Resource name; ignored for `cluster`.
    #[serde(default)]
    #[schemars(length(max = 249))]
    pub name: String,
    /// How `name` selects resources: exactly (default) or as a prefix.
    #[serde(default)]
    pub pattern_type: PatternType,
    /// The operations allowed; at least one.
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
}

/// The kind of Kafka resource an ACL covers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclResource {
    /// Topics.
    Topic,
    /// Consumer groups.
    Group,
    /// The cluster itself; takes no name.
    Cluster,
}

/// How an ACL's name matches resource names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatternType {
    /// The name exactly.
    #[default]
    Literal,
    /// Every name that starts with it.
    Prefix,
}

/// Kafka ACL operations, named as Strimzi names them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AclOperation {
    /// Every operation.
    All,
    /// Consume from topics; join and commit in groups.
    Read,
    /// Produce to topics.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, records or groups.
    Delete,
    /// Change partitions and ACLs.
    Alter,
    /// Read metadata and offsets.
    Describe,
    /// Read configuration.
    DescribeConfigs,
    /// Change configuration.
    AlterConfigs,
    /// Idempotent produce (cluster resource).
    IdempotentWrite,
}

/// Where the tenant's Kafka runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Its own Kubernetes cluster (hard multi-tenancy).
    #[default]
    Cluster,
    /// A namespace on the shared cluster (soft multi-tenancy).
    Namespace,
}

fn default_replication_factor() -> u16 {
    3
}
fn default_region() -> String {
    "eu-west-1".to_owned()
}

/// Observed state, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTenantStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Provisioning` and `Degraded`, exactly one `True`; while the tenant is being deleted also
    /// `Deleting`: `True` when its cleanup failed (the state), `False` with reason `DeletionProtected` while the
    /// annotation `kaas.dev/deletion-protection: "true"` holds the deletion.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The sized tenant, as passed to the chart; absent while the spec is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<crate::sizing::Sizing>,
    /// `<tenant>.<domain>:<port>` once the route is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// Where each user's credentials are: the Secret Strimzi's user operator writes for its KafkaUser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserCredentials>,
}

/// Where a user's TLS credentials live: a Secret with `user.crt` and `user.key` (PEM; also `user.p12` and
/// `user.password` for Java keystores) and `ca.crt`, the tenant's clients CA that signed them (not the CA a
/// client trusts for the proxy). Strimzi writes it once the tenant's Kafka is up.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCredentials {
    /// The user (`spec.users[].name`); the broker sees it as `User:CN=<name>`.
    pub name: String,
    /// Name of the Secret.
    pub secret: String,
    /// Namespace of the Secret.
    pub namespace: String,
    /// The Cluster API `Cluster` (`<namespace>/<name>` on this cluster) whose cluster holds the Secret; its
    /// kubeconfig is the Secret `<name>-kubeconfig` beside it. Absent: this cluster (`isolation: namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// A status condition (`Ready`, `Provisioning`, `Degraded`, `Deleting`), shaped like Kubernetes' own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Provisioning`, `Degraded` or `Deleting`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// CamelCase reason, e.g. `Published`, `Waiting`, `InvalidSpec`, `GitWriteFailed`, `DeletionProtected`.
    pub reason: String,
    /// Human-readable detail: what the tenant waits for, or what is wrong.
    pub message: String,
    /// RFC 3339 time the status last changed (kept while it does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The spec generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
