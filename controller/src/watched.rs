//! The upstream objects the controller reads back from the management cluster, typed only as far as it reads
//! them: a Cluster API `Cluster` and a Flux `HelmRelease`, each for its `Ready` condition.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The spec of a Cluster API `Cluster`; only its status is read.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    derive = "Default",
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Cluster",
    plural = "clusters",
    namespaced,
    status = "ConditionsStatus"
)]
pub struct ClusterSpec {
    /// The spec as it is, untyped.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The spec of a Flux `HelmRelease`; only its status is read.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    derive = "Default",
    group = "helm.toolkit.fluxcd.io",
    version = "v2",
    kind = "HelmRelease",
    plural = "helmreleases",
    namespaced,
    status = "ConditionsStatus"
)]
pub struct HelmReleaseSpec {
    /// The spec as it is, untyped.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The `status.conditions` both kinds carry (metav1.Condition shape).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ConditionsStatus {
    /// Empty until the object's controller reports.
    #[serde(default)]
    pub conditions: Vec<ObservedCondition>,
}

/// One condition, with only the fields the controller reads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ObservedCondition {
    /// The condition type; only `Ready` is looked at.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason, shown when not ready.
    #[serde(default)]
    pub reason: String,
    /// Human-readable detail, shown when not ready.
    #[serde(default)]
    pub message: String,
}

/// Whether an object's `Ready` condition is `True`, and why not.
pub fn readiness(status: Option<&ConditionsStatus>) -> Result<(), String> {
    let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(format!("{}: {}", c.reason, c.message)),
        None => Err("no Ready condition yet".into()),
    }
}
