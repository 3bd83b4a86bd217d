//! [`KafkaTenantSpec::validate`]: the schema's checks (ranges, patterns, CEL rules) in Rust, each problem
//! naming its field, for tenants that reach the controller without an API server (files given to the CLI).
//!
//! Neighbours: the types and the schema attributes it repeats are in [`super`]; [`crate::render`] refuses a
//! tenant this finds fault with, and adds the check only the sizing can make (a topic's replicas against the
//! broker count) and the version pair against the platform's defaults
//! ([`KafkaTenantSpec::validate_versions`], Strimzi's table in [`crate::strimzi::versions`]).

use super::{limits, AclResource, Isolation, KafkaTenantSpec};
use crate::strimzi::{check_versions, VersionError};

impl KafkaTenantSpec {
    /// The topic rules of the schema (config settings: [`super::topic_config`]), and one Kafka applies beyond
    /// it: names that differ only in `.` and `_` collide (Kafka refuses the second, since metric names replace
    /// one with the other).
    fn validate_topics(&self, bad: &mut impl FnMut(&str, String)) {
        use limits::*;
        if self.topics.len() > MAX_TOPICS {
            bad("topics", format!("{} topics; at most {MAX_TOPICS}", self.topics.len()));
        }
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, topic) in self.topics.iter().enumerate() {
            let field = |f: &str| format!("topics[{i}].{f}");
            let name = &topic.name;
            let legal = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if name.is_empty() || name.len() > MAX_TOPIC_NAME || !legal || name == "." || name == ".." {
                bad(
                    &field("name"),
                    format!("{name:?} is no Kafka topic name (1 to {MAX_TOPIC_NAME} of a-z A-Z 0-9 . _ -)"),
                );
            } else if name.starts_with("__") {
                bad(&field("name"), format!("{name:?}: names starting with __ are Kafka's internal ones"));
            }
            match seen.insert(name.replace('.', "_"), i) {
                Some(j) if self.topics[j].name == *name => {
                    bad(&field("name"), format!("duplicate topic {name:?}"))
                }
                Some(j) => bad(
                    &field("name"),
                    format!("{name:?} collides with {:?} (Kafka treats . and _ alike)", self.topics[j].name),
                ),
                None => {}
            }
            if let Some(p) = topic.partitions.filter(|p| !(1..=MAX_PARTITIONS).contains(p)) {
                bad(&field("partitions"), format!("{p} is outside 1..={MAX_PARTITIONS}"));
            }
            if let Some(r) = topic.replicas.filter(|r| !(1..=MAX_REPLICATION_FACTOR).contains(r)) {
                bad(&field("replicas"), format!("{r} is outside 1..={MAX_REPLICATION_FACTOR}"));
            }
            if let Some(h) = topic.retention_hours.filter(|h| !(1..=self.retention_hours).contains(h)) {
                bad(
                    &field("retentionHours"),
                    format!("{h} is outside 1..={} (the tenant's retentionHours)", self.retention_hours),
                );
            }
            if topic.config.len() > MAX_TOPIC_CONFIGS {
                bad(&field("config"), format!("{} entries; at most {MAX_TOPIC_CONFIGS}", topic.config.len()));
            }
            let replicas = topic.replicas.unwrap_or(self.replication_factor);
            for (key, value) in &topic.config {
                if let Err(why) = super::topic_config::check(key, value, replicas) {
                    bad(&field("config"), why);
                }
                if value.is_empty() || value.len() > MAX_TOPIC_CONFIG_VALUE {
                    bad(
                        &field("config"),
                        format!("{key}: value of {} characters (1..={MAX_TOPIC_CONFIG_VALUE})", value.len()),
                    );
                }
            }
        }
    }
}

/// Whether `k` is a Kubernetes version a tenant may run: `v1.MINOR.PATCH`, 1.34 or newer (the schema's pattern
/// on `versions.kubernetes`; the platform's offered versions are held to it too).
pub fn is_kubernetes_version(k: &str) -> bool {
    let minor = k.strip_prefix("v1.").and_then(|r| r.split('.').next()).and_then(|m| m.parse::<u32>().ok());
    let parts: Vec<&str> = k.strip_prefix('v').unwrap_or_default().split('.').collect();
    let semver =
        parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    semver && minor.is_some_and(|m| m >= 34)
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
        self.validate_topics(&mut bad);
        for (i, u) in self.users.iter().enumerate() {
            if RESERVED_USERS.contains(&u.name.as_str()) {
                bad(&format!("users[{i}].name"), format!("{:?} is the proxy's own user", u.name));
            }
            let Some(q) = &u.quota else { continue };
            if let Some(mbps) = q.ingress_mbps.filter(|m| !(1..=t.ingress_mbps).contains(m)) {
                bad(
                    &format!("users[{i}].quota.ingressMBps"),
                    format!("{mbps} is outside 1..={} (the tenant's ingressMBps)", t.ingress_mbps),
                );
            }
            if let Some(mbps) = q.egress_mbps.filter(|m| !(1..=t.egress_mbps).contains(m)) {
                bad(
                    &format!("users[{i}].quota.egressMBps"),
                    format!("{mbps} is outside 1..={} (the tenant's egressMBps)", t.egress_mbps),
                );
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
        if let Some(v) = &self.versions {
            let semver = |s: &str| {
                let parts: Vec<&str> = s.split('.').collect();
                parts.len() == 3
                    && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            };
            if let Some(k) = &v.kubernetes {
                if !is_kubernetes_version(k) {
                    bad(
                        "versions.kubernetes",
                        format!("{k:?} is not a Kubernetes version like v1.34.2, 1.34 or newer"),
                    );
                }
            }
            for (field, value) in [("versions.strimzi", &v.strimzi), ("versions.kafka", &v.kafka)] {
                if let Some(s) = value.as_ref().filter(|s| !semver(s)) {
                    bad(field, format!("{s:?} is not a version like 1.2.0"));
                }
            }
            if self.isolation == Isolation::Namespace {
                for (field, set) in [
                    ("versions.kubernetes", v.kubernetes.is_some()),
                    ("versions.strimzi", v.strimzi.is_some()),
                ] {
                    if set {
                        bad(
                            field,
                            "only for isolation: cluster (the shared cluster's is the platform's)".into(),
                        );
                    }
                }
            }
        }
        errs
    }
}

impl KafkaTenantSpec {
    /// The Strimzi and Kafka versions the tenant runs (its pins, else the platform's `strimzi` and `kafka`) go
    /// together: Strimzi refuses a Kafka version it does not support, and no broker starts. The error names
    /// the pinned field (the Kafka pin before the Strimzi one), both versions and what that Strimzi runs. A pin
    /// that is no version at all is [`KafkaTenantSpec::validate`]'s to report.
    pub fn validate_versions(&self, strimzi: &str, kafka: &str) -> Vec<SpecError> {
        let pins = self.versions.clone().unwrap_or_default();
        let (strimzi, kafka) =
            (pins.strimzi.as_deref().unwrap_or(strimzi), pins.kafka.as_deref().unwrap_or(kafka));
        let Err(e) = check_versions(strimzi, kafka) else { return Vec::new() };
        let field = match (&e, pins.strimzi.is_some(), pins.kafka.is_some()) {
            (VersionError::UnknownStrimzi { .. }, true, _) => "versions.strimzi",
            (_, _, true) => "versions.kafka",
            (_, true, _) => "versions.strimzi",
            _ => "versions",
        };
        vec![SpecError { field: field.into(), message: e.to_string() }]
    }
}
