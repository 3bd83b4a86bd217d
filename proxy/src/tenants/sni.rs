//! SNI → (tenant, target): pure name parsing, no I/O.
//!
//! `<tenant>.<domain>` is the tenant's bootstrap name; `b<node-id>.<tenant>.<domain>` names one broker.

use std::fmt;

/// What a connection asks to reach inside a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any of the tenant's bootstrap servers.
    Bootstrap,
    /// The broker with this node id.
    Broker(i32),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Bootstrap => f.write_str("bootstrap"),
            Target::Broker(id) => write!(f, "broker {id}"),
        }
    }
}

/// Why a server name does not name a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniError {
    /// The ClientHello has no server name (a client connecting by IP address, say).
    #[error("the client sent no server name (SNI)")]
    Missing,
    /// The name does not end in `.<domain>`; holds the name.
    #[error("{0:?} is not under the proxy's domain")]
    OutsideDomain(String),
    /// Under the domain, but neither `<tenant>` nor `b<node-id>.<tenant>` (a non-canonical node id included);
    /// holds the name.
    #[error("{0:?} names no tenant (expected <tenant>.<domain> or b<node-id>.<tenant>.<domain>)")]
    Shape(String),
    /// Well-formed, but the tenant is not in the current routes; holds the name.
    #[error("{0:?} names a tenant this proxy does not serve")]
    UnknownTenant(String),
}

/// Splits `name` into tenant and target. `domain` must be lowercase. Node ids are decimal without leading zeros,
/// so each broker has exactly one name.
pub fn parse<'a>(name: &'a str, domain: &str) -> Result<(&'a str, Target), SniError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let prefix = name
        .len()
        .checked_sub(domain.len() + 1)
        .filter(|&cut| {
            name.is_char_boundary(cut)
                && name[cut..].starts_with('.')
                && name[cut + 1..].eq_ignore_ascii_case(domain)
        })
        .map(|cut| &name[..cut])
        .ok_or_else(|| SniError::OutsideDomain(name.into()))?;
    let shape = || SniError::Shape(name.into());
    match prefix.split_once('.') {
        None if !prefix.is_empty() => Ok((prefix, Target::Bootstrap)),
        None => Err(shape()),
        Some((broker, tenant)) => {
            let digits = broker.strip_prefix('b').or_else(|| broker.strip_prefix('B')).ok_or_else(shape)?;
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            let id: i32 = digits.parse().ok().filter(|_| canonical).ok_or_else(shape)?;
            if tenant.is_empty() || tenant.contains('.') {
                return Err(shape());
            }
            Ok((tenant, Target::Broker(id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (&'static str, Result<(&'static str, Target), SniError>);

    #[test]
    fn names() {
        let d = "kaas.localhost";
        let cases: &[Case] = &[
            ("acme.kaas.localhost", Ok(("acme", Target::Bootstrap))),
            ("acme.kaas.localhost.", Ok(("acme", Target::Bootstrap))),
            ("ACME.KAAS.localhost", Ok(("ACME", Target::Bootstrap))),
            ("b111.acme.kaas.localhost", Ok(("acme", Target::Broker(111)))),
            ("b0.acme.kaas.localhost", Ok(("acme", Target::Broker(0)))),
            ("b2147483647.acme.kaas.localhost", Ok(("acme", Target::Broker(i32::MAX)))),
            (
                "b2147483648.acme.kaas.localhost",
                Err(SniError::Shape("b2147483648.acme.kaas.localhost".into())),
            ),
            ("b007.acme.kaas.localhost", Err(SniError::Shape("b007.acme.kaas.localhost".into()))),
            ("b-1.acme.kaas.localhost", Err(SniError::Shape("b-1.acme.kaas.localhost".into()))),
            ("b.acme.kaas.localhost", Err(SniError::Shape("b.acme.kaas.localhost".into()))),
            ("x1.acme.kaas.localhost", Err(SniError::Shape("x1.acme.kaas.localhost".into()))),
            ("b1.x.acme.kaas.localhost", Err(SniError::Shape("b1.x.acme.kaas.localhost".into()))),
            ("kaas.localhost", Err(SniError::OutsideDomain("kaas.localhost".into()))),
            (".kaas.localhost", Err(SniError::Shape(".kaas.localhost".into()))),
            ("acmekaas.localhost", Err(SniError::OutsideDomain("acmekaas.localhost".into()))),
            ("acme.example.com", Err(SniError::OutsideDomain("acme.example.com".into()))),
            ("é.kaas.localhost", Ok(("é", Target::Bootstrap))),
        ];
        for (name, want) in cases {
            assert_eq!(&parse(name, d), want, "{name}");
        }
    }
}
