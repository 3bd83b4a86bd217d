//! The tenant route: how the proxy reaches one tenant's Kafka cluster.
//!
//! This is the one definition of the concept. `kaas-proxy` reads a list of routes from its configuration and
//! from its `tenants_file` (the ConfigMap `kaas-controller` writes, reloaded while running);
//! `kaas-controller` publishes them. Both depend on this crate and on nothing of each other. Only pure
//! validation lives here: no I/O, no file access.

#![warn(missing_docs)]

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod cidr;
mod strimzi;
pub use cidr::Cidr;
pub use strimzi::OPERATOR_ORGANIZATION;

/// One tenant as the proxy routes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRoute {
    /// DNS label; clients reach the tenant as `<name>.<domain>` and `b<node-id>.<name>.<domain>`.
    pub name: String,
    /// The tenant cluster's bootstrap servers, `host:port`, tried in order (the next one on failure).
    pub bootstrap: Vec<String>,
    /// Certificate for this tenant's names, chosen by SNI: files, or issued by ACME; the proxy's default
    /// certificate otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TenantCertificate>,
    /// The tenant's client CA (PEM bundle). When set, every client must present a certificate it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Revocation lists (PEM or DER) for the tenant's client certificates; only with `client_ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_crl: Option<PathBuf>,
    /// How a client certificate's subject becomes the principal named in the proxy's logs, as the tenant's
    /// brokers set Kafka's `ssl.principal.mapping.rules` (`RULE:^CN=(.*?),OU=.*$/$1/,DEFAULT`); default: the
    /// subject as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_mapping_rules: Option<String>,
    /// How the proxy reaches the tenant's brokers: TLS and an identity, or `plaintext: true`. Required: an
    /// unencrypted path to the brokers is an explicit choice, never a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamRoute>,
    /// Byte rates the tenant's clients are held to, all connections together; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// A tenant's byte-rate quotas, answered as Kafka's brokers answer theirs (KIP-219): a client over its rate
/// gets its response at once with `throttle_time_ms` set, and the proxy reads nothing more from that connection
/// for that long.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Produce request bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produce_bytes_per_second: Option<u64>,
    /// Fetch response bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_bytes_per_second: Option<u64>,
}

/// Smallest byte-rate quota: below it one default-sized batch (1 MiB) would throttle a client for minutes.
pub const MIN_QUOTA_BYTES_PER_SECOND: u64 = 1024;

/// The security of the connections from the proxy to a tenant's brokers (bootstrap, `b<id>` and the proxy's
/// own metadata requests alike).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRoute {
    /// TLS to the brokers; required unless `plaintext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// The named opt-in to reach the brokers without TLS (a broker on a trusted local network, a test): the
    /// tenant's records, SASL credentials and everything else cross that path in the clear, and the brokers
    /// see no client identity. Not with `tls` or an identity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plaintext: bool,
    /// DNS suffixes of the broker addresses the proxy may dial besides the bootstrap hosts (`acme.svc` admits
    /// `kafka-0.acme.svc`); default: the parent domain of each bootstrap host name. Broker addresses come from
    /// the cluster's own responses, which whoever may alter `advertised.listeners` controls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Address ranges (`10.20.0.0/16`) broker addresses may resolve into besides the names above; default: each
    /// bootstrap IP address. Link-local and metadata-service addresses are refused whatever these say, loopback
    /// unless a range here holds it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<String>,
    /// Whose certificate the broker sees; default ([`UpstreamRoute::identity`]): `client` with
    /// `clients_ca_intermediate` or `clients_ca_key`, else `proxy` with `cert`, else none (TLS without a client
    /// certificate, as for a SASL_SSL listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// `identity: client`, the weaker mode: the private key of the tenant's clients CA (PEM), whose certificate
    /// is in `client_ca`; the proxy signs each client's upstream certificate with it. Whoever steals it can sign
    /// any subject, Strimzi's super users included, for as long as the CA lives: prefer
    /// `clients_ca_intermediate`. Not with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_ca_key: Option<PathBuf>,
    /// `identity: client`: an intermediate CA the tenant's clients CA signed (`cert`: its certificate, PEM, which
    /// the proxy presents after each minted one; `key`: its key), short-lived, with `pathlen:0` and a
    /// NameConstraints extension excluding `O=io.strimzi`, so a stolen key mints no super user and only until
    /// it expires. The proxy checks all of that when it loads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_ca_intermediate: Option<CertificateFiles>,
    /// `identity: proxy`: the proxy's own certificate chain (PEM), its KafkaUser's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `identity: proxy`: the private key of `cert` (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// `identity: proxy` collapses every client of the tenant into the proxy's one principal at the broker:
    /// ACLs, quotas and audit logs can no longer tell users apart. It is taken only with this set to `true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_principal_for_every_client: bool,
}

/// TLS to a tenant's brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// The CA bundle (PEM) broker certificates must chain to: Strimzi's `<cluster>-cluster-ca-cert` `ca.crt`.
    pub ca: PathBuf,
    /// The name every broker certificate is checked against, instead of the host the proxy dialled (a
    /// bootstrap host or an address the cluster advertised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Whose identity the broker sees on the proxy's upstream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Identity {
    /// Each client's own: the proxy presents a short-lived certificate with the client's subject, signed by an
    /// intermediate of the tenant's clients CA (or the CA itself), so the broker's per-user ACLs, quotas and
    /// audit hold.
    Client,
    /// The proxy's own certificate: the broker sees one principal for every client.
    Proxy,
}

impl UpstreamRoute {
    /// The identity in force: as written, else `client` when a clients CA intermediate or key is given, else
    /// `proxy` when a certificate is, else none (TLS without a client certificate, as for a SASL_SSL listener).
    pub fn identity(&self) -> Option<Identity> {
        self.identity.or(if self.clients_ca_key.is_some() || self.clients_ca_intermediate.is_some() {
            Some(Identity::Client)
        } else if self.cert.is_some() || self.key.is_some() {
            Some(Identity::Proxy)
        } else {
            None
        })
    }
}

/// A PEM certificate chain and its private key, as file paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key matching the chain's leaf.
    pub key: PathBuf,
}

/// Where a tenant's certificate comes from: files (`cert` and `key`), or the proxy's ACME client (`acme: true`,
/// which needs the proxy's top-level `acme` section).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCertificate {
    /// PEM certificate chain, leaf first; not with `acme`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key matching the chain's leaf; not with `acme`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The certificate is ordered from the ACME server, stored and renewed by the proxy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acme: bool,
    /// With `acme`: the broker node ids whose `b<id>` names the certificate covers besides `<tenant>.<domain>`
    /// (TLS-ALPN-01 and HTTP-01 cannot validate a wildcard, so the names are ordered ahead); default `[0, 1, 2]`
    /// ([`DEFAULT_ACME_BROKER_IDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_ids: Option<Vec<u32>>,
}

/// The broker ids an ACME certificate covers when `broker_ids` is not given: a three-broker cluster numbered
/// from 0, as Strimzi numbers a node pool.
pub const DEFAULT_ACME_BROKER_IDS: [u32; 3] = [0, 1, 2];

/// Most `b<id>` names one ACME certificate may cover: Let's Encrypt allows 100 names per certificate, one of
/// them `<tenant>.<domain>`.
pub const MAX_ACME_BROKER_IDS: usize = 99;

impl TenantCertificate {
    /// The files, when the certificate is given as files (both named, no `acme`).
    pub fn files(&self) -> Option<CertificateFiles> {
        match (&self.cert, &self.key, self.acme) {
            (Some(cert), Some(key), false) => Some(CertificateFiles { cert: cert.clone(), key: key.clone() }),
            _ => None,
        }
    }

    /// The broker ids of an ACME certificate's `b<id>` names, sorted, without repeats.
    pub fn acme_broker_ids(&self) -> Vec<u32> {
        let mut ids = self.broker_ids.clone().unwrap_or_else(|| DEFAULT_ACME_BROKER_IDS.to_vec());
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn check(&self, errors: &mut Vec<RouteError>) {
        let mut push =
            |field: &str, message: String| errors.push(RouteError { field: format!("tls.{field}"), message });
        if self.acme {
            for (field, given) in [("cert", self.cert.is_some()), ("key", self.key.is_some())] {
                if given {
                    push(field, "not with acme: true (the certificate comes from ACME)".into());
                }
            }
        } else {
            for (field, given) in [("cert", self.cert.is_some()), ("key", self.key.is_some())] {
                if !given {
                    push(field, "missing (required unless acme: true)".into());
                }
            }
            if self.broker_ids.is_some() {
                push("broker_ids", "only with acme: true".into());
            }
        }
        if let Some(ids) = &self.broker_ids {
            if ids.len() > MAX_ACME_BROKER_IDS {
                push(
                    "broker_ids",
                    format!("at most {MAX_ACME_BROKER_IDS} (one certificate holds at most 100 names)"),
                );
            }
            if let Some(id) = ids.iter().find(|id| i32::try_from(**id).is_err()) {
                push("broker_ids", format!("{id} is not a Kafka node id (0-{})", i32::MAX));
            }
        }
    }
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
        if let Some(tls) = &self.tls {
            tls.check(&mut errors);
        }
        if self.client_crl.is_some() && self.client_ca.is_none() {
            errors.push(RouteError {
                field: "client_crl".into(),
                message: "needs client_ca: only client certificates can be revoked".into(),
            });
        }
        match &self.upstream {
            Some(upstream) => upstream.check(self.client_ca.is_some(), &mut errors),
            None => errors.push(RouteError { field: "upstream".into(), message: MISSING_UPSTREAM.into() }),
        }
        if let Some(quota) = &self.quota {
            for (field, rate) in [
                ("quota.produce_bytes_per_second", quota.produce_bytes_per_second),
                ("quota.fetch_bytes_per_second", quota.fetch_bytes_per_second),
            ] {
                if rate.is_some_and(|r| r < MIN_QUOTA_BYTES_PER_SECOND) {
                    errors.push(RouteError {
                        field: field.into(),
                        message: format!(
                            "must be at least {MIN_QUOTA_BYTES_PER_SECOND} (omit it for no limit)"
                        ),
                    });
                }
            }
        }
        errors
    }
}

/// What a route without `upstream` is told: TLS to the brokers is the default a person must opt out of by name.
const MISSING_UPSTREAM: &str = "missing: `tls: { ca: <the cluster CA> }` to reach the brokers over TLS, or \
     `plaintext: true` to opt in to an unencrypted path";

impl UpstreamRoute {
    /// The upstream of a route that opted in to plaintext (`upstream: { plaintext: true }`).
    pub fn plaintext() -> Self {
        UpstreamRoute { plaintext: true, ..UpstreamRoute::default() }
    }

    fn check(&self, has_client_ca: bool, errors: &mut Vec<RouteError>) {
        let mut push = |field: &str, message: &str| {
            errors.push(RouteError { field: format!("upstream.{field}"), message: message.into() })
        };
        let identity = self.identity();
        if self.plaintext {
            if self.tls.is_some() {
                push("plaintext", "not with tls: choose one");
            }
            if identity.is_some() {
                push("plaintext", "not with an identity: a client certificate is only presented over TLS");
            }
        } else if identity.is_some() && self.tls.is_none() {
            push("tls", "needed for an identity: a client certificate is only presented over TLS");
        } else if self.tls.is_none() {
            push("tls", MISSING_UPSTREAM);
        }
        if let Some(name) = self.tls.as_ref().and_then(|t| t.server_name.as_deref()) {
            if HostPort::parse(&format!("{name}:1")).is_err() {
                push("tls.server_name", "must be a DNS name or an IP address");
            }
        }
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            if HostPort::parse(&format!("{host}:1"))
                .map_or(true, |h| h.host.parse::<std::net::IpAddr>().is_ok())
            {
                push(&format!("allowed_hosts[{i}]"), "must be a DNS name (addresses go in allowed_cidrs)");
            }
        }
        for (i, cidr) in self.allowed_cidrs.iter().enumerate() {
            if let Err(e) = cidr.parse::<Cidr>() {
                push(&format!("allowed_cidrs[{i}]"), &e);
            }
        }
        match identity {
            Some(Identity::Client) => {
                if !has_client_ca {
                    push(
                        "identity",
                        "client needs the tenant's client_ca: only an authenticated client has an identity",
                    );
                }
                match (&self.clients_ca_key, &self.clients_ca_intermediate) {
                    (None, None) => push(
                        "clients_ca_intermediate",
                        "needed for identity: client (an intermediate of the tenant's clients CA; or, weaker, \
                         clients_ca_key)",
                    ),
                    (Some(_), Some(_)) => push("clients_ca_key", "not with clients_ca_intermediate: choose one"),
                    _ => {}
                }
                if self.cert.is_some() || self.key.is_some() {
                    push("cert", "only for identity: proxy");
                }
            }
            Some(Identity::Proxy) => {
                if !self.one_principal_for_every_client {
                    push(
                        "one_principal_for_every_client",
                        "needed for identity: proxy, which makes every client of the tenant one principal at the \
                         broker (its ACLs, quotas and audit logs no longer tell users apart); set it to true to \
                         choose that, or use identity: client",
                    );
                }
                if self.cert.is_none() {
                    push("cert", "needed for identity: proxy (the proxy's own certificate)");
                }
                if self.key.is_none() {
                    push("key", "needed for identity: proxy (the key of cert)");
                }
                if self.clients_ca_key.is_some() {
                    push("clients_ca_key", "only for identity: client");
                }
                if self.clients_ca_intermediate.is_some() {
                    push("clients_ca_intermediate", "only for identity: client");
                }
            }
            None => {}
        }
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
            client_crl: Some("revoked.crl".into()),
            principal_mapping_rules: None,
            upstream: None,
            quota: Some(Quota { produce_bytes_per_second: Some(10), fetch_bytes_per_second: Some(1 << 20) }),
        };
        let fields: Vec<_> = route.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "bootstrap[1]",
                "bootstrap[2]",
                "client_crl",
                "upstream",
                "quota.produce_bytes_per_second"
            ]
        );
    }

    fn upstream(yaml: &str) -> UpstreamRoute {
        serde_norway::from_str(yaml).expect("valid upstream yaml")
    }

    #[test]
    fn identity_defaults() {
        let cases = [
            ("{}", None),
            ("tls: { ca: c }", None),
            ("{ tls: { ca: c }, clients_ca_key: k }", Some(Identity::Client)),
            ("{ tls: { ca: c }, cert: a, key: b }", Some(Identity::Proxy)),
            ("{ tls: { ca: c }, identity: proxy, cert: a, key: b }", Some(Identity::Proxy)),
            ("{ tls: { ca: c }, identity: client, clients_ca_key: k }", Some(Identity::Client)),
            ("{ tls: { ca: c }, clients_ca_intermediate: { cert: i, key: k } }", Some(Identity::Client)),
        ];
        for (yaml, want) in cases {
            assert_eq!(upstream(yaml).identity(), want, "{yaml}");
        }
    }

    #[test]
    fn upstream_errors_name_their_fields() {
        let cases: &[(&str, bool, &[&str])] = &[
            ("{}", false, &["upstream.tls"]),
            ("tls: { ca: c }", false, &[]),
            ("plaintext: true", false, &[]),
            ("plaintext: true", true, &[]),
            ("plaintext: false", false, &["upstream.tls"]),
            ("{ plaintext: true, tls: { ca: c } }", false, &["upstream.plaintext"]),
            ("{ plaintext: true, clients_ca_key: k }", true, &["upstream.plaintext"]),
            ("tls: { ca: c, server_name: \"bad name\" }", false, &["upstream.tls.server_name"]),
            ("{ tls: { ca: c }, clients_ca_key: k }", true, &[]),
            ("{ tls: { ca: c }, clients_ca_key: k }", false, &["upstream.identity"]),
            ("clients_ca_key: k", true, &["upstream.tls"]),
            ("{ tls: { ca: c }, identity: client }", true, &["upstream.clients_ca_intermediate"]),
            ("{ tls: { ca: c }, clients_ca_intermediate: { cert: i, key: k } }", true, &[]),
            ("{ tls: { ca: c }, clients_ca_intermediate: { cert: i, key: k } }", false, &["upstream.identity"]),
            (
                "{ tls: { ca: c }, clients_ca_key: k, clients_ca_intermediate: { cert: i, key: k } }",
                true,
                &["upstream.clients_ca_key"],
            ),
            (
                "{ tls: { ca: c }, identity: proxy, cert: a, key: b, one_principal_for_every_client: true, \
                 clients_ca_intermediate: { cert: i, key: k } }",
                true,
                &["upstream.clients_ca_intermediate"],
            ),
            ("{ tls: { ca: c }, identity: client, clients_ca_key: k, cert: a }", true, &["upstream.cert"]),
            (
                "{ tls: { ca: c }, identity: proxy }",
                false,
                &["upstream.one_principal_for_every_client", "upstream.cert", "upstream.key"],
            ),
            ("{ tls: { ca: c }, cert: a, one_principal_for_every_client: true }", false, &["upstream.key"]),
            ("{ tls: { ca: c }, cert: a, key: b }", false, &["upstream.one_principal_for_every_client"]),
            ("{ tls: { ca: c }, cert: a, key: b, one_principal_for_every_client: true }", false, &[]),
            ("{ plaintext: true, allowed_hosts: [acme.svc], allowed_cidrs: [10.0.0.0/8] }", false, &[]),
            (
                "{ plaintext: true, allowed_hosts: [10.0.0.1, \"bad name\"], allowed_cidrs: [10.0.0.0] }",
                false,
                &["upstream.allowed_hosts[0]", "upstream.allowed_hosts[1]", "upstream.allowed_cidrs[0]"],
            ),
            (
                "{ tls: { ca: c }, identity: proxy, cert: a, key: b, clients_ca_key: k, one_principal_for_every_client: true }",
                true,
                &["upstream.clients_ca_key"],
            ),
        ];
        for (yaml, client_ca, want) in cases {
            let route = TenantRoute {
                name: "acme".into(),
                bootstrap: vec!["k:9093".into()],
                tls: None,
                client_ca: client_ca.then(|| "ca.pem".into()),
                client_crl: None,
                principal_mapping_rules: None,
                upstream: Some(upstream(yaml)),
                quota: None,
            };
            let fields: Vec<_> = route.validate().into_iter().map(|e| e.field).collect();
            assert_eq!(fields, *want, "{yaml}");
        }
        let err = serde_norway::from_str::<UpstreamRoute>("identity: nobody").expect_err("unknown identity");
        assert!(err.to_string().contains("nobody") || err.to_string().contains("variant"), "{err}");
        assert!(serde_norway::from_str::<UpstreamRoute>("tls: { ca: c, sni: x }").is_err(), "unknown key");
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let cases = [
            ("10.20.0.0/16", "10.20.255.1", true),
            ("10.20.0.0/16", "10.21.0.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("127.0.0.1/32", "127.0.0.1", true),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::/0", "2001:db8::1", true),
        ];
        for (cidr, addr, want) in cases {
            assert_eq!(cidr.parse::<Cidr>().expect(cidr).contains(ip(addr)), want, "{cidr} {addr}");
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "::/129", "x/8", "10.0.0.0/-1", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(Cidr::host(ip("::1")).to_string(), "::1/128");
    }

    /// A tenant `tls` entry, the fields its validation names, and its ACME broker ids (when `acme`).
    type CertificateCase<'a> = (&'a str, &'a [&'a str], Option<&'a [u32]>);

    #[test]
    fn tenant_certificates() {
        let ids = |n: u32| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let cases: &[CertificateCase] = &[
            ("{ cert: a.pem, key: a.key }", &[], None),
            ("{ acme: true }", &[], Some(&[0, 1, 2])),
            ("{ acme: true, broker_ids: [7, 3, 7] }", &[], Some(&[3, 7])),
            ("{ acme: true, broker_ids: [] }", &[], Some(&[])),
            ("{ cert: a.pem }", &["tls.key"], None),
            ("{}", &["tls.cert", "tls.key"], None),
            ("{ acme: false, broker_ids: [1] }", &["tls.cert", "tls.key", "tls.broker_ids"], None),
            ("{ acme: true, cert: a.pem, key: a.key }", &["tls.cert", "tls.key"], Some(&[0, 1, 2])),
            ("{ acme: true, broker_ids: [2147483648] }", &["tls.broker_ids"], Some(&[2147483648])),
        ];
        let many = format!("{{ acme: true, broker_ids: [{}] }}", ids(100));
        let many: &[CertificateCase] = &[(many.as_str(), &["tls.broker_ids"], None)];
        for (yaml, want, broker_ids) in cases.iter().chain(many) {
            let tls: TenantCertificate = serde_norway::from_str(yaml).expect("valid yaml");
            let route = TenantRoute {
                name: "acme".into(),
                bootstrap: vec!["k:9093".into()],
                tls: Some(tls.clone()),
                client_ca: None,
                client_crl: None,
                principal_mapping_rules: None,
                upstream: Some(UpstreamRoute::plaintext()),
                quota: None,
            };
            let fields: Vec<_> = route.validate().into_iter().map(|e| e.field).collect();
            assert_eq!(fields, *want, "{yaml}");
            assert_eq!(tls.files().is_some(), want.is_empty() && !tls.acme, "{yaml}");
            if let (true, Some(ids)) = (tls.acme, broker_ids) {
                assert_eq!(tls.acme_broker_ids(), *ids, "{yaml}");
            }
        }
        assert!(serde_norway::from_str::<TenantCertificate>("{ acme: yes please }").is_err());
    }

    #[test]
    fn yaml_round_trip_and_unknown_keys() {
        let yaml = "name: acme\nbootstrap: [\"127.0.0.1:19092\"]\ntls: { cert: a.pem, key: a.key }\n\
                    upstream: { plaintext: true }\n";
        let route: TenantRoute = serde_norway::from_str(yaml).expect("valid route");
        assert_eq!(route.tls.as_ref().and_then(|t| t.cert.clone()), Some(PathBuf::from("a.pem")));
        let back: TenantRoute =
            serde_norway::from_str(&serde_norway::to_string(&route).expect("serialize")).expect("reparse");
        assert_eq!(back, route);
        let err = serde_norway::from_str::<TenantRoute>("name: a\nbootstrap: []\nbootsrap: []\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("bootsrap"), "{err}");
    }
}
