//! The chart values of a tenant's `kaas` release: the one contract between the controller and `charts/kaas`
//! (Kafka and its storage, the brokers' share of their nodes, the listener kaas-proxy reaches, users with their
//! ACLs and broker quotas, topics). Pure.
//!
//! Neighbours: [`super::flux`] puts them in the tenant's `HelmRelease`; `charts/kaas/values.schema.json` is
//! checked against them by `render/tests.rs`.

use serde_json::{json, Value};

use super::{Plan, Platform};
use crate::crd::{AclResource, Isolation, KafkaTenant, PatternType, Topic, User};
use crate::names::topic_resource_name;
use crate::sizing::{self, InstanceType, Sizing, StrimziQuota, INSTANCE_TYPES};

/// The chart values of `plan`'s release: the one contract between the controller and `charts/kaas`.
pub fn chart_values(t: &KafkaTenant, plan: &Plan, p: &Platform) -> Value {
    let (tenant, s) = (&plan.tenant, &plan.sizing);
    let users: Vec<Value> =
        t.spec.users.iter().zip(&plan.user_quotas).map(|(u, q)| user_values(u, q)).collect();
    let topics: Vec<Value> = t.spec.topics.iter().map(|topic| topic_values(t, topic, s)).collect();
    let mut values = json!({
        "tenant": tenant,
        "kafka": {
            "version": p.kafka_version,
            "brokers": s.brokers,
            "controllers": 3,
            "storage": storage_values(t, tenant, s, p),
            "retentionHours": t.spec.retention_hours,
            "replicationFactor": t.spec.replication_factor,
            "minInsyncReplicas": min_insync_replicas(t.spec.replication_factor),
            "partitions": s.partitions,
            "instanceType": s.instance_type,
        },
        "users": users,
        "topics": topics,
        // The platform components are the controller's to place (below), never one copy per tenant release.
        "components": {
            "strimzi": { "enabled": false },
            "certManager": { "enabled": false },
            "externalDns": { "enabled": false },
        },
    });
    if let Some(it) = INSTANCE_TYPES.iter().find(|it| it.name == s.instance_type) {
        values["kafka"]["brokerResources"] = broker_resources(it);
    }
    values["kafka"]["proxyListener"] = proxy_listener(t.spec.isolation, &plan.bootstrap, p);
    values["kafka"]["placement"] = placement(t.spec.isolation);
    if t.spec.isolation == Isolation::Namespace {
        values["sharedCluster"] = shared_cluster(p);
    }
    if let Some(key) = p.volume_kms_key_of(tenant) {
        values["storageClass"] = json!({ "kmsKeyId": key });
    }
    values
}

/// On the shared cluster the tenant's namespace is its only wall: the chart's default-deny NetworkPolicy,
/// quota and limits, and the brokers' `tls` listener open only to kaas-proxy's pods (Strimzi opens a listener to
/// every namespace unless it names peers).
fn shared_cluster(p: &Platform) -> Value {
    json!({
        "enabled": true,
        "listenerPeers": [{
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": p.proxy_namespace } },
            "podSelector": { "matchLabels": { "app.kubernetes.io/name": "kaas-proxy" } },
        }],
    })
}

/// Which node pools the brokers and the KRaft controllers run on. On its own cluster the brokers go to the
/// broker pool, whose nodes are tainted for them ([`super::cluster_api`]), and the controllers to the system
/// pool; on the shared cluster the platform places them (no pool labels there).
fn placement(isolation: Isolation) -> Value {
    match isolation {
        Isolation::Cluster => json!({
            "label": crate::names::NODE_POOL_LABEL,
            "brokers": crate::names::BROKER_POOL,
            "controllers": crate::names::SYSTEM_POOL,
        }),
        Isolation::Namespace => json!({}),
    }
}

/// The `proxy` listener. On its own cluster the proxy reaches the tenant through the listener's internal load
/// balancers, at the name and port of the route (`bootstrap`, `host:port`): the listener listens there,
/// external-dns publishes the name and the brokers' certificates carry it; the load balancers admit only the
/// proxy's addresses. On the shared cluster the proxy dials the in-cluster `tls` listener, so none.
fn proxy_listener(isolation: Isolation, bootstrap: &str, p: &Platform) -> Value {
    if isolation == Isolation::Namespace {
        return json!({ "enabled": false });
    }
    let mut listener = json!({ "enabled": true, "sourceRanges": p.network.proxy_cidrs });
    if let Some((host, port)) = bootstrap.rsplit_once(':') {
        listener["bootstrapHostname"] = json!(host);
        if let Ok(port) = port.parse::<u16>() {
            listener["port"] = json!(port);
        }
    }
    listener
}

/// Most heap a broker gets, MiB: Kafka's own needs stay a few GiB at any size; more only shrinks the page
/// cache that serves consumers' reads.
pub const MAX_BROKER_HEAP_MIB: u32 = 6 * 1024;
/// CPU left on a broker's node for the kubelet and the node's daemons (Cilium, the EBS CSI node plugin),
/// millicores.
pub const NODE_CPU_RESERVE_MILLIS: u32 = 500;

/// A broker's share of its node, which it has to itself (the chart's required anti-affinity): 3/4 of the
/// instance's memory requested and limited (the rest for the OS, the kubelet and the node's daemons), a quarter
/// of it as heap up to [`MAX_BROKER_HEAP_MIB`] (the remainder of the limit is page cache), and every CPU but
/// [`NODE_CPU_RESERVE_MILLIS`] requested.
pub fn broker_resources(it: &InstanceType) -> Value {
    let memory_mib = it.memory_gib * 1024;
    json!({
        "cpuMillis": (it.vcpus * 1000).saturating_sub(NODE_CPU_RESERVE_MILLIS),
        "memoryMiB": memory_mib / 4 * 3,
        "heapMiB": (memory_mib / 4).min(MAX_BROKER_HEAP_MIB),
    })
}

/// A user's values: its ACLs, and its quotas at the brokers.
fn user_values(u: &User, quotas: &StrimziQuota) -> Value {
    let acls: Vec<Value> = u
        .acls
        .iter()
        .map(|a| {
            let resource = match a.resource {
                AclResource::Topic => {
                    json!({ "type": "topic", "name": a.name, "patternType": pattern(a.pattern_type) })
                }
                AclResource::Group => {
                    json!({ "type": "group", "name": a.name, "patternType": pattern(a.pattern_type) })
                }
                AclResource::Cluster => json!({ "type": "cluster" }),
            };
            json!({ "resource": resource, "operations": a.operations })
        })
        .collect();
    json!({ "name": u.name, "acls": acls, "quotas": quotas })
}

/// The brokers' volumes: size and class, and past gp3's baseline the throughput (and IOPS) the sizing
/// provisioned each volume with, which the chart sets through a VolumeAttributesClass (without it every volume
/// would run at 125 MiB/s whatever the sizing allowed).
fn storage_values(t: &KafkaTenant, tenant: &str, s: &Sizing, p: &Platform) -> Value {
    let mut storage =
        json!({ "size": format!("{}Gi", s.storage_per_broker_gib), "class": storage_class(t, tenant, p) });
    if let Some(a) = sizing::gp3_attributes(s.monthly_cost.provisioned_mbps_per_volume) {
        storage["throughputMiBps"] = json!(a.throughput_mibps);
        storage["iops"] = json!(a.iops);
    }
    storage
}

/// A topic's chart values: every figure explicit (the tenant's where the spec leaves it out), so the Git diff
/// of a tenant change shows each topic it touches. Retention is left to the brokers' `log.retention.hours`
/// (the tenant's) unless the topic has its own; a topic whose replicas differ from the tenant's gets its own
/// `min.insync.replicas` by the tenant's rule (with fewer, `acks=all` producers could never write to it).
fn topic_values(t: &KafkaTenant, topic: &Topic, s: &Sizing) -> Value {
    let replicas = topic.replicas.unwrap_or(t.spec.replication_factor);
    let mut config = serde_json::Map::new();
    for (k, v) in &topic.config {
        config.insert(k.clone(), json!(v));
    }
    if let Some(h) = topic.retention_hours {
        config.insert("retention.ms".into(), json!(u64::from(h) * 3_600_000));
    }
    if replicas != t.spec.replication_factor && !config.contains_key("min.insync.replicas") {
        config.insert("min.insync.replicas".into(), json!(min_insync_replicas(replicas)));
    }
    let mut out = json!({
        "name": topic.name,
        "partitions": topic.partitions.unwrap_or(s.partitions),
        "replicas": replicas,
        "config": config,
    });
    let resource = topic_resource_name(&topic.name);
    if resource != topic.name {
        out["resourceName"] = json!(resource);
    }
    out
}

/// Replicas that must acknowledge an `acks=all` write: one fewer than the copies (so one broker may be down),
/// at least one.
fn min_insync_replicas(replicas: u16) -> u16 {
    (replicas.max(2) - 1).max(1)
}

fn pattern(p: PatternType) -> &'static str {
    match p {
        PatternType::Literal => "literal",
        PatternType::Prefix => "prefix",
    }
}

/// The StorageClass of the brokers' volumes, which the tenant's release creates. On its own cluster the
/// platform's name; on the shared cluster one per tenant, since a StorageClass is cluster-wide and Helm lets
/// only one release own it (a second tenant's install of the same name would fail).
pub fn storage_class(t: &KafkaTenant, tenant: &str, p: &Platform) -> String {
    match t.spec.isolation {
        Isolation::Cluster => p.storage_class.clone(),
        Isolation::Namespace => format!("kaas-{tenant}-gp3"),
    }
}

#[cfg(test)]
mod tests;
