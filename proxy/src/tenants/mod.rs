//! Tenants: the table from TLS server name to tenant and target (the routing decision), each tenant's broker
//! table, its byte-rate quotas ([`quota`]) and the addresses the proxy may dial for it ([`reach`]).
//!
//! Neighbours: [`crate::listener`] asks it which tenant a ClientHello names; [`crate::kafka::rewrite`] reports
//! the broker addresses it sees so the table learns them; [`crate::upstream`] reads the table to connect;
//! [`crate::routes`] builds it from the settings.

pub mod quota;
pub mod reach;
pub mod refresh;
pub mod sni;
pub mod table;

pub use sni::{SniError, Target};
pub use table::{Tenant, TenantTable};
