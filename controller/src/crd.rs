//! The `KafkaTenant` custom resource (kaas.dev/v1alpha1): what an operator or a self-service front end asks
//! for. The CRD is generated from these types (`kaas-controller crd`) into `charts/kaas-controller/crds/`;
//! a test fails when the committed file differs. Validation lives in the schema (ranges, patterns, CEL rules)
//! so the API server rejects bad tenants with a message naming the field; [`KafkaTenantSpec::validate`]
//! repeats the checks for files given to the CLI, which meet no API server.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Platform maxima: the largest tenant one Kafka cluster of this platform is sized for.
pub mod limits {
    pub const MAX_INGRESS_MBPS: u32 = 2_000;
    pub const MAX_EGRESS_MBPS: u32 = 6_000;
    pub const MAX_RETENTION_HOURS: u32 = 8_760;
    pub const MAX_REPLICATION_FACTOR: u16 = 5;
    pub const MAX_PARTITIONS: u32 = 20_000;
    pub const MAX_USERS: usize = 200;
}

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
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub users: Vec<User>,
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// DNS label; the user's TLS client certificate is issued for it.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub acls: Vec<Acl>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Acl {
    pub resource: AclResource,
    /// Resource name; ignored for `cluster`.
    #[serde(default)]
    #[schemars(length(max = 249))]
    pub name: String,
    #[serde(default)]
    pub pattern_type: PatternType,
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclResource {
    Topic,
    Group,
    Cluster,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatternType {
    #[default]
    Literal,
    Prefix,
}

/// Kafka ACL operations, named as Strimzi names them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    DescribeConfigs,
    AlterConfigs,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
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
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One problem with a tenant spec, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct SpecError {
    pub field: String,
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
