//! kaas-controller's integration tests, one binary organised by feature (`docs/develop/testing.md` maps each
//! feature to its tests; the controller's unit tests sit beside its code in `src/`).
//!
//! - [`cli`]: the binary without a cluster: `render`, `crd`, `sync`, `size`, and refusals.
//! - [`docs`]: the documentation's `KafkaTenant` examples read by the CRD's type and schema and planned. No
//!   cluster.
//! - [`strimzi`]: the example tenants through `charts/kaas`, held to Strimzi's rules (`kaas_controller::strimzi`):
//!   versions, configuration, super users, certificate names, load balancers, node pools. No cluster.
//! - [`reconcile`]: `reconcile` called in-process against a real kube-apiserver with the real CRDs and a real Git
//!   remote.
//! - [`apiserver`]: the real `kaas-controller run` binary with the chart's RBAC against a real kube-apiserver:
//!   the CRDs' rules, finalizer, GitOps commits, status, Events, leader election, the start-up check of the
//!   upstream APIs. Each test starts its own
//!   etcd + kube-apiserver; nextest runs them one at a time (the `apiserver` group in `.config/nextest.toml`).
//! - [`pod_security`]: a namespace tenant's Kafka namespace on a real API server refuses the pods Strimzi's
//!   default provider makes and admits its restricted provider's (the `apiserver` group).
//! - [`cluster_api`]: the rendered Cluster API objects under the real Cluster API and CAPA controllers, AWS
//!   emulated by moto: what they build for a tenant (security groups, images, key pairs, zones) and what
//!   their webhooks refuse (the `apiserver` group).
//! - [`tenant_loop`]: the whole loop with real Flux, the proxy and a real Apache Kafka cluster (the `kafka`
//!   group); a cluster-mode tenant's own cluster comes from the real Cluster API and CAPA on moto
//!   ([`own_cluster`]).
//!
//! [`common`] is the control-plane arrangement the API-server tests share; the control plane, Flux and the Git
//! server themselves are the `kaas_testsupport` crate.

mod common;

mod apiserver;
mod cli;
mod cluster_api;
mod docs;
mod own_cluster;
mod pod_security;
mod reconcile;
mod strimzi;
mod tenant_loop;
