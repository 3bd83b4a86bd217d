//! kaas-proxy: a Kafka-protocol-aware TLS ingress and tenant router.
//!
//! A connection's way through the proxy, module by module: [`listener`] (the one TLS port: hello → route →
//! authenticate, find the broker and connect → session; nothing reaches a tenant's cluster before its client
//! has authenticated) → [`tls`] (ClientHello, the tenant's server configuration) → [`tenants`] (server name →
//! tenant and target, the tenant's broker table) → [`upstream`] (the tenant's own cluster) → [`session`] (the
//! two-way frame pump) → [`kafka`] (framing, headers, in-flight requests, the walk that rewrites broker
//! addresses). [`server`] binds the ports and runs the rest; [`acme`] obtains and renews tenants' certificates;
//! [`routes`] builds the routing state from [`config`] (plain validated settings, depending on nothing else)
//! and swaps it on [`reload`]; [`error`] names failures by side; [`admin`] answers health probes and serves
//! [`metrics`], the registry each subsystem registers its own series in.
//!
//! Kept on purpose: the allocation-free header cursor and the bounded response walker (no peer-sized
//! allocation), the one policy table for all APIs (`kafka::apis`), bounded buffer growth (`kafka::codec`), the
//! address-field guard test and the golden round trip of every rewritten version, and the route type shared with
//! the controller (`kaas-route`).

#![warn(missing_docs)]

pub mod acme;
pub mod admin;
pub mod audit;
pub mod config;
pub mod error;
pub mod kafka;
pub mod listener;
pub mod metrics;
pub mod reload;
pub mod routes;
pub mod server;
pub mod session;
pub mod sink;
pub mod tenants;
pub mod tls;
pub mod upstream;
pub mod usage;

pub use config::Settings;
/// Test support (feature `testkit`): Kafka responses to rewrite, and their mutations; see [`kafka::testkit`].
#[cfg(any(test, feature = "testkit"))]
pub use kafka::testkit;
pub use server::{Server, Shutdown};
