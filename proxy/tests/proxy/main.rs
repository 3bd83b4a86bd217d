//! kaas-proxy's integration tests, one binary (the module graph check, `module_graph.rs`, is its own): the
//! binary's contract with operators ([`cli`]) and the guard that every address field of the kafka-protocol crate
//! in use is rewritten or blocked ([`address_fields`]), the demo, which starts a real Kafka broker ([`demo`]),
//! and the documentation's configuration examples loaded through the real loader ([`docs`]). The proxy's unit,
//! golden and differential tests sit beside its code in `src/`; the end-to-end tests are the `kaas-e2e` crate
//! (`tests/`).

mod address_fields;
mod cli;
mod demo;
mod docs;
mod revocation;
