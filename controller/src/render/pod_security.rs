//! The Pod Security Standard tenants' pods are held to ([`PodSecurity`]): the labels of a namespace tenant's
//! Kafka namespace, which the API server's own PodSecurity admission enforces.
//!
//! Neighbours: [`super::access`] renders that namespace with [`kafka_namespace_object`]; the Strimzi operator of
//! a tenant's own cluster is set to make conforming pods in [`super::flux`].

use serde_json::{json, Value};

use super::namespace_object;

/// A Pod Security Standard (`pod-security.kubernetes.io/enforce`) for the namespaces tenants' pods run in.
/// Restricted by default: Strimzi makes every pod it runs conform when its operator runs with the restricted
/// provider (`STRIMZI_POD_SECURITY_PROVIDER_CLASS=restricted`, `RestrictedPodSecurityProvider` at Strimzi
/// 1.2.0), which a tenant's own cluster's operator always does and the shared cluster's must
/// (docs/controller/platform.md). Baseline is the named opt-out for a shared operator that cannot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PodSecurity {
    /// The restricted standard.
    #[default]
    Restricted,
    /// The baseline standard: what Strimzi's default provider's pods meet.
    Baseline,
}

impl PodSecurity {
    /// Its name as the namespace label takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurity::Restricted => "restricted",
            PodSecurity::Baseline => "baseline",
        }
    }
}

/// The Pod Security Admission version the standard is enforced at: pinned, as Kubernetes advises, so a cluster
/// upgrade cannot start refusing the pods of running tenants; the platform's oldest supported minor.
pub const POD_SECURITY_VERSION: &str = "v1.34";

/// The Namespace a namespace tenant's Kafka runs in on this cluster: its pods held to the platform's Pod
/// Security Standard, enforced (refused), audited and warned about alike.
pub(super) fn kafka_namespace_object(ns: &str, tenant: &str, standard: PodSecurity) -> Value {
    let mut object = namespace_object(ns, tenant);
    let labels = &mut object["metadata"]["labels"];
    for mode in ["enforce", "audit", "warn"] {
        labels[format!("pod-security.kubernetes.io/{mode}")] = json!(standard.as_str());
        labels[format!("pod-security.kubernetes.io/{mode}-version")] = json!(POD_SECURITY_VERSION);
    }
    object
}
