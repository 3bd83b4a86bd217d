//! kaas-controller: a `KafkaTenant` becomes a sized tenant — a Cluster API cluster (or a namespace) and a Flux
//! `HelmRelease` of the `charts/kaas` chart — committed to the GitOps repository; its route is published to
//! the proxy once ready.
//!
//! [`crd`] (the resource) → [`sizing`] (pure, priced from [`prices`]) → [`render`] (pure manifests) → [`gitops`] (the repository) →
//! [`reconcile`] (the loop, reading [`watched`] objects back, with [`metrics`]), which keeps the proxy's
//! [`upstream`] material in step with each tenant's Strimzi CAs. `kaas_lease` elects the one replica that runs it.

#![warn(missing_docs)]

pub mod crd;
pub mod endpoint;
pub mod gitops;
pub mod metrics;
pub mod names;
pub mod prices;
pub mod reconcile;
pub mod render;
pub mod sizing;
pub mod upstream;
pub mod watched;
