//! kaas-controller: a `KafkaTenant` becomes a sized tenant — a Cluster API cluster (or a namespace) and a Flux
//! `HelmRelease` of the `charts/kaas` chart — committed to the GitOps repository; its route is published to
//! the proxy once ready.
//!
//! The reconcile path ([`reconcile`]), one step each, in order:
//! 1. claim: the tenant's platform-wide id ([`names`]) is its own, not an earlier tenant's;
//! 2. plan: [`render::plan`] validates the [`crd`] spec, sizes it ([`sizing`], priced from [`prices`]) and renders
//!    its manifests, once, into one [`render::Plan`] that every later step reads;
//! 3. commit: the plan's manifests to the tenant's folder of the GitOps repository ([`gitops`]);
//! 4. wait: the `Cluster` and `HelmRelease` Flux applied, read back ([`watched`]), are Ready;
//! 5. publish: the tenant's Strimzi CAs copied for the proxy ([`upstream`]), then its route;
//! 6. status: conditions, sizing, users and the clients' address, from the same plan.
//!
//! A kind the controller reads that the API server does not serve is named in the tenant's status and at
//! start-up ([`apis`]). A deletion undoes it (route, CA copies, folder) and waits until the cluster is gone.
//! [`metrics`] counts every reconcile, [`endpoint`] serves them with the health probe, and `kaas_lease`
//! elects the one replica that reconciles.

#![warn(missing_docs)]

pub mod apis;
pub mod crd;
pub mod endpoint;
pub mod gitops;
pub mod metrics;
pub mod names;
pub mod prices;
pub mod reconcile;
pub mod render;
pub mod sizing;
pub mod strimzi;
pub mod tenant_cluster;
pub mod upstream;
pub mod watched;
