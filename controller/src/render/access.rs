//! What kaas-controller may read of a tenant, rendered with the tenant: a Role naming exactly the Secrets the
//! controller reads for it, bound to the controller's own user, in the tenant's folder. So the controller's
//! ClusterRole has no `get` on Secrets anywhere: Flux (which applies tenants' folders) grants each tenant's
//! reads as the tenant comes and prunes them as it goes, and a controller's credentials read nothing of a
//! namespace that holds no tenant, nor any other Secret of one that does.
//!
//! - `isolation: cluster`: `<id>-kubeconfig` in `kaas-<id>` (Cluster API's; the tenant's cluster is read through
//!   it, Strimzi's CAs included).
//! - `isolation: namespace`: Strimzi's CA Secrets in `tenant-<id>`, the Kafka's namespace on this cluster,
//!   which the folder therefore creates (before, helm-controller created it with the release).
//!
//! Neighbours: [`super::manifests`] puts these objects after the tenant's Namespace; [`crate::tenant_cluster`] and
//! [`crate::upstream`] make the reads they allow.

use serde_json::{json, Value};

use super::pod_security::kafka_namespace_object;
use super::{meta, Platform};
use crate::crd::Isolation;
use crate::names::{kafka_namespace, kubeconfig_secret, namespace, strimzi_ca_secrets};

/// The Role and RoleBinding (and for a namespace tenant its Kafka's Namespace) that let the controller read
/// the tenant's Secrets, in apply order.
pub fn objects(tenant: &str, isolation: Isolation, p: &Platform) -> Vec<Value> {
    let (ns, secrets) = match isolation {
        Isolation::Cluster => (namespace(tenant), vec![kubeconfig_secret(tenant)]),
        Isolation::Namespace => (kafka_namespace(tenant, isolation), strimzi_ca_secrets().to_vec()),
    };
    let mut out = Vec::new();
    if isolation == Isolation::Namespace {
        out.push(kafka_namespace_object(&ns, tenant, p.namespace_pod_security));
    }
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(ROLE, &ns, tenant),
        "rules": [{ "apiGroups": [""], "resources": ["secrets"], "resourceNames": secrets, "verbs": ["get"] }],
    }));
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(ROLE, &ns, tenant),
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": p.controller_user }],
    }));
    out
}

/// The name of the Role (and its binding) in each tenant namespace.
pub const ROLE: &str = "kaas-controller-reads";
