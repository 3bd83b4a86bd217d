//! The tenant route: how the proxy reaches one tenant's Kafka cluster.
//!
//! This is the one definition of the concept. `kaas-proxy` reads a list of routes from its configuration and
//! from its `tenants_file` (the ConfigMap `kaas-controller` writes, reloaded while running);
//! `kaas-controller` publishes them. Both depend on this crate and on nothing of each other. Only pure
//! validation lives here: no I/O, no file access.

#![warn(missing_docs)]

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One tenant as the proxy routes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRoute {
    /// DNS label; clients reach the tenant as `<name>.<domain>` and `b<node-id>.<name>.<domain>`.
    pub name: String,
    /// The tenant cluster's bootstrap servers, `host:port`, tried in order (the next one on failure).
    pub bootstrap: Vec<String>,
    /// Certificate for this tenant's names, chosen by SNI; the proxy's default certificate otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<CertificateFiles>,
    /// The tenant's client CA (PEM bundle). When set, every client must present a certificate it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// A PEM certificate chain and its private key, as file paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key matching the chain's leaf.
    pub key: PathBuf,
}

/// A problem with one field of a route; `field` is the path below the route (for example `bootstrap[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RouteError {
    /// Path of the offending field below the route, e.g. `name` or `bootstrap[1]`.
    pub field: String,
    /// What is wrong with it, for a person to read.
    pub message: String,
}

impl TenantRoute {
    /// Every problem with this route's own fields, all at once (file checks are the reader's job).
    pub fn validate(&self) -> Vec<RouteError> {
        let mut errors = Vec::new();
        if let Err(message) = check_dns_label(&self.name) {
            errors.push(RouteError { field: "name".into(), message });
        }
        if self.bootstrap.is_empty() {
            errors.push(RouteError {
                field: "bootstrap".into(),
                message: "needs at least one host:port".into(),
            });
        }
        for (i, server) in self.bootstrap.iter().enumerate() {
            if let Err(e) = HostPort::parse(server) {
                errors.push(RouteError { field: format!("bootstrap[{i}]"), message: e.to_string() });
            }
        }
        errors
    }
}

/// Checks an RFC 1123 DNS label: 1–63 lowercase letters, digits and `-`, not starting or ending with `-`.
pub fn check_dns_label(label: &str) -> Result<(), String> {
    let ok_chars = label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if label.is_empty() || label.len() > 63 || !ok_chars || label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "{label:?} is not a DNS label (1-63 characters of a-z, 0-9 and '-', not starting or ending with '-')"
        ));
    }
    Ok(())
}

/// A `host:port` address as written in routes and Kafka responses. IPv6 hosts are written in brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP address; an IPv6 address without its brackets.
    pub host: String,
    /// TCP port, 1–65535 (0 is refused).
    pub port: u16,
}

/// Why a `host:port` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// No `:port` suffix, or an unbracketed IPv6 address; holds the input.
    #[error("{0:?} is not host:port")]
    Shape(String),
    /// The port is not a number in 1–65535; holds the input.
    #[error("{0:?} has an invalid port (1-65535)")]
    Port(String),
    /// The host is neither an IP address nor a valid DNS name (bracketed non-IPv6 included); holds the input.
    #[error("{0:?} has an invalid host name")]
    Host(String),
}

impl HostPort {
    /// Parses `host:port` or `[ipv6]:port`; name labels are lenient (letters, digits, `-`, `_`, any case).
    pub fn parse(s: &str) -> Result<Self, HostPortError> {
        let (host, port) = s.rsplit_once(':').ok_or_else(|| HostPortError::Shape(s.into()))?;
        let port: u16 = port.parse().map_err(|_| HostPortError::Port(s.into()))?;
        if port == 0 {
            return Err(HostPortError::Port(s.into()));
        }
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
            Some(_) => return Err(HostPortError::Host(s.into())),
            None if host.contains(':') => return Err(HostPortError::Shape(s.into())),
            None => host,
        };
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !(valid_name || host.parse::<std::net::IpAddr>().is_ok()) {
            return Err(HostPortError::Host(s.into()));
        }
        Ok(HostPort { host: host.to_owned(), port })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "acme", "team-7", "0x", &"a".repeat(63)] {
            assert!(check_dns_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Acme", "a.b", "a_b", "ünï", &"a".repeat(64)] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        let cases: &[(&str, Option<(&str, u16)>)] = &[
            ("127.0.0.1:9092", Some(("127.0.0.1", 9092))),
            ("kafka-0.kafka.svc:9093", Some(("kafka-0.kafka.svc", 9093))),
            ("[::1]:9092", Some(("::1", 9092))),
            ("host", None),
            ("host:0", None),
            ("host:70000", None),
            (":9092", None),
            ("::1:9092", None),
            ("[nope]:9092", None),
            ("bad host:9092", None),
            ("a..b:9092", None),
        ];
        for (input, want) in cases {
            let got = HostPort::parse(input).ok().map(|hp| (hp.host, hp.port));
            assert_eq!(got, want.map(|(h, p)| (h.to_string(), p)), "{input}");
        }
        assert_eq!(HostPort::parse("[::1]:9092").map(|h| h.to_string()), Ok("[::1]:9092".to_string()));
    }

    #[test]
    fn route_reports_every_error() {
        let route = TenantRoute {
            name: "Bad_Name".into(),
            bootstrap: vec!["ok:1".into(), "nope".into(), "x:0".into()],
            tls: None,
            client_ca: None,
        };
        let fields: Vec<_> = route.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "bootstrap[1]", "bootstrap[2]"]);
    }

    #[test]
    fn yaml_round_trip_and_unknown_keys() {
        let yaml = "name: acme\nbootstrap: [\"127.0.0.1:19092\"]\ntls: { cert: a.pem, key: a.key }\n";
        let route: TenantRoute = serde_norway::from_str(yaml).expect("valid route");
        assert_eq!(route.tls.as_ref().map(|t| t.cert.clone()), Some(PathBuf::from("a.pem")));
        let back: TenantRoute =
            serde_norway::from_str(&serde_norway::to_string(&route).expect("serialize")).expect("reparse");
        assert_eq!(back, route);
        let err = serde_norway::from_str::<TenantRoute>("name: a\nbootstrap: []\nbootsrap: []\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("bootsrap"), "{err}");
    }
}
