//! The upstream objects the controller reads back from the management cluster, typed only as far as it reads
//! them: a Cluster API v1beta2 `Cluster` and a Flux v2 `HelmRelease`.
//!
//! Each controller says "up" differently. Cluster API v1beta2 publishes `Available` at the top of
//! `status.conditions` (its `Ready` survives only under `status.deprecated.v1beta1`, which a v1beta2 reader
//! must not depend on); Flux's helm-controller publishes `Ready`. A condition describes the generation its
//! controller last saw, so a `True` left over from before a spec change is not readiness of the new spec:
//! [`cluster_readiness`] and [`release_readiness`] compare `observedGeneration` with `metadata.generation`.

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
#[serde(rename_all = "camelCase")]
pub struct ConditionsStatus {
    /// Empty until the object's controller reports.
    #[serde(default)]
    pub conditions: Vec<ObservedCondition>,
    /// The generation the object's controller last reconciled (both kinds publish it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One condition, with only the fields the controller reads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedCondition {
    /// The condition type: `Available` on a Cluster, `Ready` on a HelmRelease.
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
    /// The generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The condition type of a v1beta2 `Cluster` that says it is up (control plane and workers available).
pub const CLUSTER_AVAILABLE: &str = "Available";
/// The condition type of a Flux `HelmRelease` that says the release is installed or upgraded and healthy.
pub const RELEASE_READY: &str = "Ready";

/// Whether the condition `type_` is `True` for the object's current `generation`, and why not.
///
/// The condition's own `observedGeneration` decides when it has one (metav1.Condition carries it); otherwise
/// the status's. Neither known while the object has a generation: not ready, since a stale `True` would
/// otherwise pass for the new spec.
pub fn readiness(
    status: Option<&ConditionsStatus>,
    type_: &str,
    generation: Option<i64>,
) -> Result<(), String> {
    let found = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
    let Some(c) = found else {
        return Err(format!("no {type_} condition yet"));
    };
    let observed = c.observed_generation.or_else(|| status.and_then(|s| s.observed_generation));
    if let Some(want) = generation {
        if observed != Some(want) {
            let seen = observed.map_or_else(|| "unknown".to_owned(), |g| g.to_string());
            return Err(format!("{type_} describes generation {seen}, not the current {want}"));
        }
    }
    if c.status == "True" {
        Ok(())
    } else {
        Err(format!("{type_} {}: {}: {}", c.status, c.reason, c.message))
    }
}

/// Whether a v1beta2 `Cluster` is `Available` for its current generation.
pub fn cluster_readiness(c: &Cluster) -> Result<(), String> {
    readiness(c.status.as_ref(), CLUSTER_AVAILABLE, c.metadata.generation)
}

/// Whether a Flux `HelmRelease` is `Ready` for its current generation.
pub fn release_readiness(r: &HelmRelease) -> Result<(), String> {
    readiness(r.status.as_ref(), RELEASE_READY, r.metadata.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        type_: &str,
        on: &str,
        condition_gen: Option<i64>,
        status_gen: Option<i64>,
    ) -> ConditionsStatus {
        ConditionsStatus {
            conditions: vec![ObservedCondition {
                type_: type_.into(),
                status: on.into(),
                reason: "R".into(),
                message: "m".into(),
                observed_generation: condition_gen,
            }],
            observed_generation: status_gen,
        }
    }

    #[test]
    fn readiness_needs_the_right_type_true_at_the_current_generation() {
        // (condition type, status, condition's generation, status's generation, object's generation, ready)
        let table = [
            ("Available", "True", Some(2), Some(2), Some(2), true),
            ("Available", "True", None, Some(2), Some(2), true),
            ("Available", "True", Some(1), Some(2), Some(2), false),
            ("Available", "True", None, Some(1), Some(2), false),
            ("Available", "True", None, None, Some(2), false),
            ("Available", "True", None, None, None, true),
            ("Available", "False", Some(2), Some(2), Some(2), false),
            ("Available", "Unknown", Some(2), Some(2), Some(2), false),
            // A v1beta2 Cluster's top-level Ready is not what v1beta2 publishes.
            ("Ready", "True", Some(2), Some(2), Some(2), false),
        ];
        for (type_, on, cg, sg, g, want) in table {
            let s = status(type_, on, cg, sg);
            let got = readiness(Some(&s), CLUSTER_AVAILABLE, g);
            assert_eq!(got.is_ok(), want, "{type_} {on} {cg:?} {sg:?} {g:?}: {got:?}");
        }
        assert!(readiness(None, RELEASE_READY, Some(1)).is_err());
    }

    #[test]
    fn a_v1beta2_cluster_with_only_deprecated_ready_is_not_available() {
        // A v1beta2 Cluster as Cluster API v1.14 publishes it while its control plane comes up.
        let c: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": { "name": "acme", "namespace": "kaas-acme", "generation": 1 },
            "spec": {},
            "status": {
                "observedGeneration": 1,
                "conditions": [
                    { "type": "Available", "status": "False", "reason": "NotAvailable", "message": "control plane",
                      "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z" },
                ],
                "deprecated": { "v1beta1": { "conditions": [
                    { "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" },
                ]}},
            },
        }))
        .expect("a v1beta2 Cluster");
        let why = cluster_readiness(&c).expect_err("not available");
        assert!(why.contains("NotAvailable"), "{why}");
    }
}
