//! Router: turns the TLS server name into a tenant and a target, and keeps each tenant's broker table.
//!
//! Neighbours: [`crate::tls`] asks it which tenant a ClientHello names; [`crate::kafka::rewrite`] reports the
//! broker addresses it sees so the table learns them; [`crate::upstream`] reads the table to connect.

pub mod sni;
pub mod table;

pub use sni::{SniError, Target};
pub use table::{RouteTable, Tenant};
