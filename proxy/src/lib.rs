//! kaas-proxy: a Kafka-protocol-aware TLS ingress and tenant router.
//!
//! A frame's way through the proxy, module by module:
//! [`listener`] (the one TLS port) → [`tls`] (ClientHello, per-tenant configuration) → [`router`] (SNI →
//! tenant and broker) → [`kafka`] (framing, headers, in-flight requests, address rewriting) → [`upstream`]
//! (the tenant's own cluster) → [`session`] (the two-way pump). [`config`] reads the YAML file; [`admin`]
//! answers health probes and serves [`metrics`]; [`reload`] applies route changes while running.

pub mod admin;
pub mod config;
pub mod kafka;
pub mod listener;
pub mod metrics;
pub mod reload;
pub mod router;
pub mod session;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tls;
pub mod upstream;

pub use config::Settings;
pub use listener::Proxy;
