//! kaas-proxy end to end, one test binary organised by feature: real brokers, real clients, real TLS, and the
//! proxy in between (the harness is the `kaas_e2e` library, `tests/src/`; `docs/develop/testing.md` maps each
//! feature to its tests).
//!
//! The broker is a fixture: a feature's tests run against Tansu (one process, starts in a second) unless they
//! need what only Apache Kafka has (several brokers, leadership moves, KIP-951 endpoints, ACLs, SCRAM, CA
//! rotation). Every test that starts an Apache Kafka cluster sits in a module named `kafka` inside its feature
//! (`wire::kafka`, `identity::kafka::rotation`): nextest runs those one at a time (the `kafka` group in
//! `.config/nextest.toml`, selected by that path), because two clusters booting at once on 2 cores only make
//! both slow.
//!
//! - [`acme`]: certificates ordered from a real ACME server (Pebble), renewed, revoked, shared by replicas.
//! - [`audit`]: the audit trail names administrative requests with the broker's answers, and sessions.
//! - [`clients`]: real client libraries round-trip records, groups and transactions, and the client × broker
//!   matrix.
//! - [`failover`]: leaders moving, a whole cluster unreachable, proxy replicas draining and restarting.
//! - [`fixtures`]: the Apache Kafka fixture itself (nodes, listeners, ACLs, SCRAM, two clusters side by side).
//! - [`hostile`]: hostile clients and hostile brokers, each refused at the cost of one connection.
//! - [`identity`]: client certificates per tenant at the proxy, and client identity carried to the broker.
//! - [`operations`]: limits, timeouts, reload and drain against scripted brokers.
//! - [`sni_routing`]: real clients' TLS ClientHellos route to the name they were sent to.
//! - [`soak`]: a steady mixed load through the real binary, sampled.
//! - [`tenants`]: tenants behind one port stay apart.
//! - [`usage`]: usage records hold what each principal moved.
//! - [`wire`]: byte-level address rewriting: no upstream address reaches a client.
//!
//! [`common`] holds the librdkafka helpers the features share.

mod common;

mod acme;
mod audit;
mod clients;
mod failover;
mod fixtures;
mod hostile;
mod identity;
mod operations;
mod sni_routing;
mod soak;
mod tenants;
mod usage;
mod wire;
