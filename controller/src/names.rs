//! Tenant naming: every name the controller derives from a `KafkaTenant` — its platform-wide id, its GitOps
//! folder, its management namespace, the namespace its Kafka runs in, its objects' names and labels. Pure: no
//! I/O, and a leaf (it reads only [`crate::crd`]).
//!
//! Neighbours: [`crate::render`] names the objects it renders with these; [`crate::reconcile`] finds them
//! again by the same names (readiness, cleanup, the route); [`crate::upstream`] reads the Strimzi secrets of
//! the release named here; [`crate::gitops`] writes the folder.

use crate::crd::{Isolation, KafkaTenant};

/// The label every rendered object carries: the [`tenant_id`] it belongs to (how the controller maps a
/// watched `Cluster` or `HelmRelease` back to its tenant).
pub const TENANT_LABEL: &str = "kaas.dev/tenant";

/// The Helm release name of a tenant's `kaas` chart, which is also its Strimzi `Kafka` cluster's name (so its
/// CA secrets are `kaas-cluster-ca-cert`, `kaas-clients-ca-cert`, `kaas-clients-ca`).
pub const KAFKA_RELEASE: &str = "kaas";

/// Annotation of a tenant's `HelmRelease` naming the `KafkaTenant` generation it was rendered from: once the
/// live object carries the tenant's current generation, Flux has applied the commit of that spec.
pub const TENANT_GENERATION: &str = "kaas.dev/tenant-generation";

/// The placeholder the platform's address and path templates hold for the [`tenant_id`] ([`expand`]).
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// The Node label (and the brokers' taint key) naming a node's pool on a tenant's own cluster. Cluster API copies
/// a Machine's labels to its Node only in `node-role.kubernetes.io`, `node-restriction.kubernetes.io` and
/// `[*.]node.cluster.x-k8s.io` (cluster-api v1.11.3 util/labels/helpers.go `GetManagedLabels`), so the
/// `kaas.dev/*` labels stay on Machines.
pub const NODE_POOL_LABEL: &str = "node.cluster.x-k8s.io/pool";
/// The pool of a tenant cluster's broker nodes (tainted: only the brokers run there).
pub const BROKER_POOL: &str = "brokers";
/// The pool of a tenant cluster's system nodes: the platform components and the KRaft controllers.
pub const SYSTEM_POOL: &str = "system";

/// `template` with [`TENANT_PLACEHOLDER`] replaced by `tenant`.
pub fn expand(template: &str, tenant: &str) -> String {
    template.replace(TENANT_PLACEHOLDER, tenant)
}

/// The longest [`tenant_id`]: names built from it must stay DNS labels (63 characters), and the longest is
/// the KubeadmControlPlane's `<id>-control-plane`, which Cluster API copies into a label; `kaas-<id>` and
/// `tenant-<id>` fit with room to spare.
pub const MAX_TENANT_ID: usize = 63 - "-control-plane".len();

/// A tenant's platform-wide id, from its `KafkaTenant`'s namespace and name: two tenants of the same name in
/// two namespaces must not share a management namespace, a Cluster (CAPA tags AWS resources by its name), a
/// route or a folder. `<namespace>-<name>` while that fits [`MAX_TENANT_ID`]; longer, its start and a hash
/// of both parts, so long names stay distinct and the id stays a DNS label.
pub fn tenant_id(namespace: &str, name: &str) -> String {
    let joined = format!("{namespace}-{name}");
    if joined.len() <= MAX_TENANT_ID {
        return joined;
    }
    let suffix = short_hash(&format!("{namespace}/{name}"));
    let keep = MAX_TENANT_ID - suffix.len() - 1;
    // DNS labels are ASCII, so byte slicing stays on character boundaries.
    let head = joined[..keep].trim_end_matches('-');
    format!("{head}-{suffix}")
}

/// The namespace of a `KafkaTenant` (a file given to the CLI may have none: `default`, as kubectl would).
pub fn tenant_namespace(t: &KafkaTenant) -> &str {
    t.metadata.namespace.as_deref().unwrap_or("default")
}

/// [`tenant_id`] of `t`.
pub fn tenant_id_of(t: &KafkaTenant) -> String {
    tenant_id(tenant_namespace(t), t.metadata.name.as_deref().unwrap_or_default())
}

/// The tenant's folder under `tenants/` of the GitOps repository: `<namespace>/<name>`, unambiguous whatever
/// the names.
pub fn folder(t: &KafkaTenant) -> String {
    format!("{}/{}", tenant_namespace(t), t.metadata.name.as_deref().unwrap_or_default())
}

/// The management-cluster namespace holding a tenant's objects; `tenant` is its [`tenant_id`].
pub fn namespace(tenant: &str) -> String {
    format!("kaas-{tenant}")
}

/// The namespace the tenant's Kafka runs in: `kafka` on its own cluster, `tenant-<id>` on the shared one.
/// The listener of the tenant's `Kafka` that kaas-proxy dials (`charts/kaas/templates/kafka.yaml`): on its
/// own cluster the load-balanced `proxy` listener, on the shared cluster the internal `tls` one.
pub fn proxy_listener(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Cluster => "proxy",
        Isolation::Namespace => "tls",
    }
}

/// The namespace of the tenant's `Kafka`: `kafka` on its own cluster, `tenant-<id>` on the shared one.
pub fn kafka_namespace(tenant: &str, isolation: Isolation) -> String {
    match isolation {
        Isolation::Cluster => "kafka".to_owned(),
        Isolation::Namespace => format!("tenant-{tenant}"),
    }
}

/// The management cluster's namespaces the tenant's folder creates: `kaas-<id>` ([`namespace`]) and, for a
/// tenant on the shared cluster, its Kafka's `tenant-<id>` ([`kafka_namespace`]).
pub fn management_namespaces(tenant: &str, isolation: Isolation) -> Vec<String> {
    match isolation {
        Isolation::Cluster => vec![namespace(tenant)],
        Isolation::Namespace => vec![namespace(tenant), kafka_namespace(tenant, isolation)],
    }
}

/// The name of the tenant's Flux `HelmRelease` of the `kaas` chart in its management namespace (the release
/// inside is [`KAFKA_RELEASE`]).
pub fn helm_release(tenant: &str) -> String {
    format!("{tenant}-kafka")
}

/// The Secret in the management namespace holding the kubeconfig of the tenant's own cluster, which Cluster
/// API writes and through which Flux installs into that cluster.
pub fn kubeconfig_secret(tenant: &str) -> String {
    format!("{tenant}-kubeconfig")
}

/// Strimzi's Secrets holding the tenant's CAs, in the Kafka's namespace: the cluster CA's certificate, the
/// clients CA's certificate and the clients CA's key (`<cluster>-cluster-ca-cert`, `<cluster>-clients-ca-cert`,
/// `<cluster>-clients-ca`).
pub fn strimzi_ca_secrets() -> [String; 3] {
    [
        format!("{KAFKA_RELEASE}-cluster-ca-cert"),
        format!("{KAFKA_RELEASE}-clients-ca-cert"),
        format!("{KAFKA_RELEASE}-clients-ca"),
    ]
}

/// The name of a topic's `KafkaTopic` object. Kafka allows topic names Kubernetes does not (capitals, `_`,
/// 249 characters where a label-like name must start and end alphanumeric): those get a cleaned name and a hash
/// of the topic's, so two topics never share an object; a name Kubernetes takes is kept as it is.
pub fn topic_resource_name(topic: &str) -> String {
    let is_subdomain = topic.split('.').all(|part| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    });
    if is_subdomain && topic.len() <= 253 {
        return topic.to_owned();
    }
    let cleaned: String =
        topic.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    // 200 characters, a hyphen and the hash: within Kubernetes' 253.
    let head: String = cleaned.trim_matches('-').chars().take(200).collect();
    let head = head.trim_end_matches('-');
    let head = if head.is_empty() { "topic" } else { head };
    format!("{head}-{}", short_hash(topic))
}

/// Ten hex digits of a stable hash of `s`. FNV-1a: stable across Rust versions and builds (std's hasher is
/// not), so names built with it never move.
fn short_hash(s: &str) -> String {
    let hash =
        s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:010x}", hash & 0xff_ffff_ffff)
}

#[cfg(test)]
pub(crate) mod tests;
