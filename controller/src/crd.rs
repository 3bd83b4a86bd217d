//! The `KafkaTenant` custom resource (kaas.dev/v1alpha1): what an operator or a self-service front end asks
//! for. The CRD is generated from these types (`kaas-controller crd`) into `charts/kaas-controller/crds/`;
//! a test fails when the committed file differs. Validation lives in the schema (ranges, patterns, CEL rules)
//! so the API server rejects bad tenants with a message naming the field; [`KafkaTenantSpec::validate`]
//! repeats the checks for files given to the CLI, which meet no API server.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// Where the tenant's Kafka runs: its own cluster (default) or a namespace on the shared one.
    #[serde(default)]
    pub isolation: Isolation,
    /// Cloud region for `isolation: cluster` (for example eu-west-1).
    #[serde(default = "default_region")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"))]
    pub region: String,
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
    // maxLength: without it the uniqueness rule is refused as 100x over budget (found by tests/apiserver.rs).
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"), length(min = 1, max = 63))]
    pub name: String,
    /// What the user may do; nothing when empty.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub acls: Vec<Acl>,
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
    /// `Ready`, `Provisioning` and `Degraded`; exactly one is `True`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The sized tenant, as passed to the chart; absent while the spec is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<crate::sizing::Sizing>,
    /// `<tenant>.<domain>:<port>` once the route is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
}

/// A status condition (`Ready`, `Provisioning`, `Degraded`), shaped like Kubernetes' own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Provisioning` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// CamelCase reason, e.g. `Published`, `Waiting`, `InvalidSpec`, `GitWriteFailed`.
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

/// One problem with a tenant spec, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct SpecError {
    /// Path below `spec` in the API's camelCase, e.g. `users[1].name`; `(metadata.name)` for the name.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl KafkaTenantSpec {
    /// The schema's checks, in Rust, for tenants that reach the controller without an API server (CLI files).
    pub fn validate(&self) -> Vec<SpecError> {
        use limits::*;
        let mut errs = Vec::new();
        let mut bad = |field: &str, message: String| errs.push(SpecError { field: field.into(), message });
        let t = &self.throughput;
        if !(1..=MAX_INGRESS_MBPS).contains(&t.ingress_mbps) {
            bad("throughput.ingressMBps", format!("{} is outside 1..={MAX_INGRESS_MBPS}", t.ingress_mbps));
        }
        if !(1..=MAX_EGRESS_MBPS).contains(&t.egress_mbps) {
            bad("throughput.egressMBps", format!("{} is outside 1..={MAX_EGRESS_MBPS}", t.egress_mbps));
        }
        if !(1..=MAX_RETENTION_HOURS).contains(&self.retention_hours) {
            bad("retentionHours", format!("{} is outside 1..={MAX_RETENTION_HOURS}", self.retention_hours));
        }
        if !(1..=MAX_REPLICATION_FACTOR).contains(&self.replication_factor) {
            bad(
                "replicationFactor",
                format!("{} is outside 1..={MAX_REPLICATION_FACTOR}", self.replication_factor),
            );
        }
        if let Some(p) = self.partitions.filter(|p| !(1..=MAX_PARTITIONS).contains(p)) {
            bad("partitions", format!("{p} is outside 1..={MAX_PARTITIONS}"));
        }
        if self.users.len() > MAX_USERS {
            bad("users", format!("{} users; at most {MAX_USERS}", self.users.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if let Err(m) = kaas_route::check_dns_label(&u.name) {
                bad(&format!("users[{i}].name"), m);
            }
            if !seen.insert(u.name.as_str()) {
                bad(&format!("users[{i}].name"), format!("duplicate user {:?}", u.name));
            }
            for (j, acl) in u.acls.iter().enumerate() {
                if acl.operations.is_empty() {
                    bad(&format!("users[{i}].acls[{j}].operations"), "needs at least one operation".into());
                }
                if acl.resource != AclResource::Cluster && acl.name.is_empty() {
                    bad(&format!("users[{i}].acls[{j}].name"), "needs a resource name".into());
                }
            }
        }
        let region_ok = {
            let parts: Vec<&str> = self.region.split('-').collect();
            parts.len() >= 3
                && parts[0].len() == 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
                && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
        };
        if !region_ok {
            bad("region", format!("{:?} is not a region like eu-west-1", self.region));
        }
        errs
    }
}
