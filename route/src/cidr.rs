//! Address ranges as routes write them (`allowed_cidrs`, the tenant VPC): parsed, shown and matched. A leaf of
//! this crate, beside the route ([`crate`]).

use std::fmt;

/// An address range, `address/prefix-length` (`10.0.0.0/16`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The range holding exactly `ip`.
    pub fn host(ip: std::net::IpAddr) -> Self {
        Cidr { network: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
    }

    /// Whether `ip` is in the range (an IPv4 address is never in an IPv6 range, nor the reverse).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let (net, ip, bits) = match (self.network, ip) {
            (V4(n), V4(a)) => (u128::from(u32::from(n)), u128::from(u32::from(a)), 32),
            (V6(n), V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || net >> shift == ip >> shift
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not address/prefix-length (10.0.0.0/16, fd00::/8)");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let network: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > if network.is_ipv4() { 32 } else { 128 } {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
