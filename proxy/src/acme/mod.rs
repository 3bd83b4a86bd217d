//! ACME certificates (RFC 8555, with the `instant-acme` crate) for tenants with `tls: { acme: true }`: one
//! account per store, created once and kept; per tenant one certificate for `<tenant>.<domain>` and the
//! `b<id>.<tenant>.<domain>` of its configured broker ids (`tls.broker_ids`, default 0, 1, 2: TLS-ALPN-01
//! and HTTP-01 cannot validate a wildcard, so the broker names are ordered ahead rather than learned; a broker outside the
//! list is served the tenant's certificate, which does not cover its name, until the list is changed).
//!
//! [`Manager`] runs in its own task, each order in a task of its own (one per tenant, up to `MAX_ORDERS` at
//! once, so a slow order does not hold up another tenant's): a tenant's stored certificate serves until it expires
//! (a restart makes no order unless its renewal is due). Renewal follows the CA's renewal information (RFC 9773,
//! ARI: a random time inside the suggested window, at once when the window is over, as for a revoked
//! certificate), asked after each issuance and again after the CA's `Retry-After`, else two thirds of the
//! lifetime; a renewal's order names the certificate it `replaces`. Failures back off ([`schedule`]), never
//! sooner than the CA's `Retry-After` ([`client`] reads it), and keep the current certificate serving.
//! Challenges are TLS-ALPN-01 on the TLS port ([`challenge`]), HTTP-01 on `http01_listen` ([`http01`]) or
//! DNS-01 through the operator's hook ([`dns01`], which orders `*.<tenant>.<domain>` instead of the broker
//! names); issued certificates go to [`AcmeCerts`], which
//! the tenants' TLS configurations read on every handshake, so a new certificate serves new handshakes at once
//! and open connections are not touched.
//!
//! With the `kubernetes` store ([`store::kube`]) several replicas share one account and one certificate per
//! tenant: the replica holding the Lease orders (and publishes its challenge answers to a Secret), the others
//! serve the certificates and answer the challenges they read from the watched Secrets.
//!
//! Neighbours: [`crate::config::AcmeSettings`] (the `acme` section), [`store`] (the `dir` store, and `Store`:
//! either store),
//! [`crate::routes`] (which tenants want ACME, and their resolvers; it asks this module, not the other way), [`crate::listener`] (answers challenge
//! handshakes), [`crate::metrics`] (orders by outcome, certificate expiry).

pub mod certs;
pub mod challenge;
pub mod client;
pub mod dns01;
pub mod http01;
pub mod manager;
pub mod metrics;
pub mod order;
pub mod schedule;
pub mod store;

pub use certs::{names, names_for, AcmeCerts};
pub use manager::Manager;
pub use metrics::AcmeMetrics;
pub use order::OrderError;
