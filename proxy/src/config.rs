//! Configuration: the YAML file `kaas-proxy --config FILE` reads, validated into [`Settings`].
//!
//! Every problem is collected and reported at once, each naming its key (`tenants[1].bootstrap[0]: ...`), so an
//! operator fixes a file in one pass. Certificates are loaded here (through [`certs`]) because a
//! certificate that does not match its key is a configuration error, not a runtime one.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kaas_route::{check_dns_label, CertificateFiles, HostPort, TenantCertificate, TenantRoute};
use rustls::sign::CertifiedKey;
use serde_norway::{Mapping, Value};

pub use acme::{AcmeConfig, AcmeSettings, ChallengeKind, KubernetesStoreSettings, StoreSettings};
pub use limits::limits;
use limits::{limit, LIMITS};
use principal::PrincipalMapper;
pub use records::{AuditConfig, AuditSettings, UsageConfig, UsageSettings};
pub use schema::{Config, DEFAULT_MAX_FRAME_BYTES};
use schema::{DEFAULT_CONNECT_TIMEOUT_SECONDS, TOP_LEVEL_KEYS};
pub use settings::{changed_since_start, Settings, StartOnly, TenantSettings};
pub use upstream::{UpstreamAuthSettings, UpstreamSettings};
use watched::route_files;
pub use watched::watched_files;

/// One problem, naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the key, e.g. `tenants[1].bootstrap[0]`; `(file)` or `(document)` for the whole file.
    pub key: String,
    /// What is wrong, for the operator.
    pub message: String,
}

/// Every problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The configuration file as given on the command line.
    pub file: PathBuf,
    /// Never empty; in the order found.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} error(s)", self.file.display(), self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  {}: {}", e.key, e.message)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Collector(Vec<ConfigError>);

impl Collector {
    fn push(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.0.push(ConfigError { key: key.into(), message: message.to_string() });
    }
}

/// What an absent `tenants_file` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// An error: a reload keeps the routes it has (a ConfigMap deleted by mistake must not drop every tenant).
    Refuse,
    /// No tenants from it (yet): at start-up, before kaas-controller has published any route, the proxy serves
    /// its other tenants and takes the file's when it appears.
    Empty,
}

/// Reads, parses and validates `path`; relative certificate paths are resolved against the file's folder.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    load_with(path, Missing::Refuse)
}

/// [`load`], with `missing` saying what an absent `tenants_file` means.
pub fn load_with(path: &Path, missing: Missing) -> Result<Settings, ConfigErrors> {
    let fail = |key: &str, message: String| ConfigErrors {
        file: path.to_owned(),
        errors: vec![ConfigError { key: key.into(), message }],
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail("(file)", format!("cannot read: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_yaml_with(&text, base, missing).map_err(|errors| ConfigErrors { file: path.to_owned(), errors })
}

/// Parses and validates YAML text; `base` is the folder relative file paths start from.
pub fn from_yaml(text: &str, base: &Path) -> Result<Settings, Vec<ConfigError>> {
    from_yaml_with(text, base, Missing::Refuse)
}

/// [`from_yaml`], with `missing` saying what an absent `tenants_file` means.
pub fn from_yaml_with(text: &str, base: &Path, missing: Missing) -> Result<Settings, Vec<ConfigError>> {
    let mut errs = Collector::default();
    let value: Value = serde_norway::from_str(text).map_err(|e| {
        vec![ConfigError { key: "(document)".into(), message: format!("not valid YAML: {e}") }]
    })?;
    let Some(map) = value.as_mapping() else {
        return Err(vec![ConfigError { key: "(document)".into(), message: "must be a mapping".into() }]);
    };
    let mut config = parse_keys(map, &mut errs);
    read_tenants_file(&mut config, base, missing, &mut errs);
    let settings = validate(&config, base, &mut errs);
    match settings {
        Some(s) if errs.0.is_empty() => Ok(s),
        _ => without_broken_entries(config, base, errs.0),
    }
}

/// When every error belongs to an entry of the `tenants_file` (whose entries come and go without an operator),
/// the settings without those entries, the errors kept in [`Settings::skipped`]; otherwise all the errors.
fn without_broken_entries(
    mut config: Parsed,
    base: &Path,
    errors: Vec<ConfigError>,
) -> Result<Settings, Vec<ConfigError>> {
    let entry = |key: &str| {
        key.strip_prefix("tenants_file[").and_then(|rest| Some(rest.split_once(']')?.0.to_owned()))
    };
    if errors.iter().any(|e| entry(&e.key).is_none()) {
        return Err(errors);
    }
    let broken: HashSet<String> = errors.iter().filter_map(|e| entry(&e.key)).collect();
    let is_broken = |key: &str| entry(key).is_some_and(|i| broken.contains(&i));
    let names =
        config.tenants.iter().filter(|(key, _)| is_broken(key)).map(|(_, r)| r.name.clone()).collect();
    // A left-out entry's CRL that loads is still applied (RouteSet::build): revocation fails closed.
    let crl_failed = |key: &str| errors.iter().any(|e| e.key == format!("{key}.client_crl"));
    let crls = config
        .tenants
        .iter()
        .filter(|(key, _)| is_broken(key) && !crl_failed(key))
        .filter_map(|(_, r)| {
            Some((r.name.clone(), certs::load_crls(&base.join(r.client_crl.as_ref()?)).ok()?))
        })
        .collect();
    config.tenants.retain(|(key, _)| !is_broken(key));
    let mut again = Collector::default();
    match validate(&config, base, &mut again) {
        Some(mut settings) if again.0.is_empty() => {
            settings.skipped = errors;
            settings.skipped_tenants = names;
            settings.skipped_crls = crls;
            Ok(settings)
        }
        _ => Err(errors),
    }
}

/// The file key by key: each key parsed on its own, so one bad key does not hide the others.
#[derive(Debug, Default)]
struct Parsed {
    listen: Option<String>,
    domain: Option<String>,
    advertised_port: Option<u16>,
    max_frame_bytes: Option<u32>,
    connect_timeout_seconds: Option<u64>,
    /// The limits (`handshake_timeout_seconds`, `max_connections`, ...) by key, as written.
    limits: Vec<(&'static str, u64)>,
    admin_listen: Option<String>,
    probe_listen: Option<String>,
    proxy_protocol_trusted_cidrs: Vec<String>,
    tls: Option<CertificateFiles>,
    /// Tenants that parsed, with the key naming them (`tenants[1]`, `tenants_file[0]`).
    tenants: Vec<(String, TenantRoute)>,
    tenant_count: usize,
    tenants_file: Option<PathBuf>,
    /// Set when the tenants_file was absent and that was allowed ([`Missing::Empty`]).
    tenants_file_missing: Option<PathBuf>,
    acme: Option<AcmeConfig>,
    usage: Option<UsageConfig>,
    audit: Option<AuditConfig>,
    /// The file has an `acme` key (parsed or not): tenants with `acme: true` are not wrong for it.
    acme_given: bool,
}

fn parse_keys(map: &Mapping, errs: &mut Collector) -> Parsed {
    let mut p = Parsed::default();
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            errs.push(format!("{k:?}"), "keys must be strings");
            continue;
        };
        match key {
            "listen" => p.listen = typed(key, v, errs),
            "domain" => p.domain = typed(key, v, errs),
            "advertised_port" => p.advertised_port = typed(key, v, errs),
            "max_frame_bytes" => p.max_frame_bytes = typed(key, v, errs),
            "connect_timeout_seconds" => p.connect_timeout_seconds = typed(key, v, errs),
            _ if LIMITS.iter().any(|l| l.key == key) => {
                if let (Some(l), Some(n)) = (LIMITS.iter().find(|l| l.key == key), typed(key, v, errs)) {
                    p.limits.push((l.key, n));
                }
            }
            "admin_listen" => p.admin_listen = typed(key, v, errs),
            "probe_listen" => p.probe_listen = typed(key, v, errs),
            "proxy_protocol_trusted_cidrs" => {
                p.proxy_protocol_trusted_cidrs = typed(key, v, errs).unwrap_or_default()
            }
            "tenants_file" => {
                if let Some(path) = typed::<PathBuf>(key, v, errs) {
                    p.tenants_file = Some(path);
                }
            }
            "tls" => p.tls = typed(key, v, errs),
            "acme" => p.acme = typed(key, v, errs),
            "usage" => p.usage = typed(key, v, errs),
            "audit" => p.audit = typed(key, v, errs),
            "tenants" => match v.as_sequence() {
                Some(seq) => {
                    p.tenant_count = seq.len();
                    for (i, t) in seq.iter().enumerate() {
                        let key = format!("tenants[{i}]");
                        if let Some(route) = typed(&key, t, errs) {
                            p.tenants.push((key, route));
                        }
                    }
                }
                None => errs.push(key, "must be a list of tenants"),
            },
            _ => {
                // A key that is empty or not a plain word is shown quoted, so the error still names it.
                let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                let shown = if plain { key.to_owned() } else { format!("{key:?}") };
                errs.push(shown, format!("unknown key (expected one of: {})", TOP_LEVEL_KEYS.join(", ")))
            }
        }
    }
    p.acme_given = map.contains_key("acme");
    for required in ["listen", "domain", "tls"] {
        if !map.contains_key(required) {
            errs.push(required, "missing (required)");
        }
    }
    if !map.contains_key("tenants") && !map.contains_key("tenants_file") {
        errs.push("tenants", "missing (required unless tenants_file is given)");
    }
    p
}

/// Adds the tenants of `tenants_file` (relative to `base`), each named `tenants_file[i]`.
fn read_tenants_file(p: &mut Parsed, base: &Path, missing: Missing, errs: &mut Collector) {
    let Some(file) = p.tenants_file.clone() else { return };
    let path = base.join(&file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing == Missing::Empty => {
            p.tenants_file_missing = Some(path);
            return;
        }
        Err(e) => return errs.push("tenants_file", format!("cannot read {}: {e}", path.display())),
    };
    let list: Value = match serde_norway::from_str(&text) {
        Ok(Value::Null) => return,
        Ok(v) => v,
        Err(e) => return errs.push("tenants_file", format!("{}: not valid YAML: {e}", path.display())),
    };
    let Some(seq) = list.as_sequence() else {
        return errs.push("tenants_file", format!("{} must hold a list of tenants", path.display()));
    };
    p.tenant_count += seq.len();
    for (i, t) in seq.iter().enumerate() {
        let key = format!("tenants_file[{i}]");
        if let Some(route) = typed(&key, t, errs) {
            p.tenants.push((key, route));
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(key: &str, v: &Value, errs: &mut Collector) -> Option<T> {
    serde_norway::from_value::<T>(v.clone()).map_err(|e| errs.push(key, e)).ok()
}

fn validate(p: &Parsed, base: &Path, errs: &mut Collector) -> Option<Settings> {
    let listen = p.listen.as_ref().and_then(|l| match l.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errs.push("listen", format!("{l:?} is not an address like 127.0.0.1:9092 or [::]:9092"));
            None
        }
    });
    if let Some(domain) = &p.domain {
        if domain.is_empty() || !domain.split('.').all(|l| check_dns_label(l).is_ok()) {
            errs.push("domain", format!("{domain:?} is not a DNS name of lowercase labels"));
        }
    }
    if p.advertised_port == Some(0) {
        errs.push("advertised_port", "must be 1-65535");
    }
    let max_frame_bytes = p.max_frame_bytes.unwrap_or(DEFAULT_MAX_FRAME_BYTES);
    if !(1024..=i32::MAX as u32).contains(&max_frame_bytes) {
        errs.push("max_frame_bytes", format!("must be between 1024 and {}", i32::MAX));
    }
    let connect_timeout_seconds = p.connect_timeout_seconds.unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECONDS);
    if connect_timeout_seconds == 0 {
        errs.push("connect_timeout_seconds", "must be at least 1");
    }
    let mut address = |key: &str, given: &Option<String>| {
        given.as_ref().and_then(|a| match a.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errs.push(key, format!("{a:?} is not an address like 0.0.0.0:9100"));
                None
            }
        })
    };
    let admin_listen = address("admin_listen", &p.admin_listen);
    let probe_listen = address("probe_listen", &p.probe_listen);
    let mut proxy_protocol_trusted_cidrs = Vec::new();
    for (i, cidr) in p.proxy_protocol_trusted_cidrs.iter().enumerate() {
        match cidr.parse::<kaas_route::Cidr>() {
            Ok(c) => proxy_protocol_trusted_cidrs.push(c),
            Err(e) => errs.push(format!("proxy_protocol_trusted_cidrs[{i}]"), format!("{cidr:?}: {e}")),
        }
    }
    let default_cert = p.tls.as_ref().and_then(|files| load_cert("tls", files, base, errs));
    let acme = p.acme.as_ref().and_then(|config| acme::validate(config, base, errs));
    let usage = p.usage.as_ref().and_then(|config| records::validate(config, base, errs));
    let audit = p.audit.as_ref().and_then(|config| records::validate_audit(config, base, errs));
    if let (Some(u), Some(a)) = (&usage, &audit) {
        if u.file == a.file {
            errs.push("audit.file", "must not be usage.file: two writers would rotate one file");
        }
    }
    // With a tenants_file (the controller's route source) an empty list is normal: no tenant is ready yet.
    if p.tenant_count == 0 && p.tenants_file.is_none() && p.listen.is_some() {
        errs.push("tenants", "needs at least one tenant");
    }
    let mut seen = HashSet::new();
    let mut tenants = Vec::with_capacity(p.tenants.len());
    for (key, route) in &p.tenants {
        for e in route.validate() {
            errs.push(format!("{key}.{}", e.field), e.message);
        }
        if !seen.insert(route.name.as_str()) {
            errs.push(format!("{key}.name"), format!("duplicate tenant {:?}", route.name));
        }
        let cert = route
            .tls
            .as_ref()
            .and_then(TenantCertificate::files)
            .and_then(|files| load_cert(&format!("{key}.tls"), &files, base, errs));
        let acme_tls = route.tls.as_ref().filter(|t| t.acme);
        if acme_tls.is_some() && !p.acme_given {
            errs.push(
                format!("{key}.tls.acme"),
                "needs the top-level acme section (the ACME server and store)",
            );
        }
        let client_roots = route.client_ca.as_ref().and_then(|ca| match certs::load_roots(&base.join(ca)) {
            Ok(roots) => Some(Arc::new(roots)),
            Err(e) => {
                errs.push(format!("{key}.client_ca"), e);
                None
            }
        });
        let client_crls = match route.client_crl.as_ref().map(|crl| certs::load_crls(&base.join(crl))) {
            None => Vec::new(),
            Some(Ok(crls)) => crls,
            Some(Err(e)) => {
                errs.push(format!("{key}.client_crl"), e);
                Vec::new()
            }
        };
        let upstream = upstream::load(key, route, base, errs);
        let principals = route.principal_mapping_rules.as_deref().and_then(|rules| {
            PrincipalMapper::parse(rules)
                .map(Arc::new)
                .map_err(|e| errs.push(format!("{key}.principal_mapping_rules"), e))
                .ok()
        });
        tenants.push(TenantSettings {
            name: route.name.clone(),
            bootstrap: route.bootstrap.iter().filter_map(|b| HostPort::parse(b).ok()).collect(),
            cert,
            client_roots,
            client_crls,
            upstream,
            allowed_hosts: route.upstream.as_ref().map(|u| u.allowed_hosts.clone()).unwrap_or_default(),
            allowed_cidrs: route.upstream.as_ref().map(|u| u.allowed_cidrs.clone()).unwrap_or_default(),
            principals,
            fingerprint: fingerprint(route, base),
            quota: route.quota.clone(),
            acme_broker_ids: acme_tls.map(TenantCertificate::acme_broker_ids),
        });
    }
    let hello_timeout_seconds = limit(p, "hello_timeout_seconds", errs);
    let handshake_timeout_seconds = limit(p, "handshake_timeout_seconds", errs);
    let idle_timeout_seconds = limit(p, "idle_timeout_seconds", errs);
    let max_connections = limit(p, "max_connections", errs);
    let max_connections_per_tenant = limit(p, "max_connections_per_tenant", errs);
    let max_connections_per_ip = limit(p, "max_connections_per_ip", errs);
    let max_handshakes_per_ip = limit(p, "max_handshakes_per_ip", errs);
    let max_handshakes_per_tenant = limit(p, "max_handshakes_per_tenant", errs);
    let max_inflight = limit(p, "max_inflight_requests_per_connection", errs);
    let reload_grace_seconds = limit(p, "reload_grace_seconds", errs);
    let max_fetch_response_bytes = limit(p, "max_fetch_response_bytes", errs);
    let listen = listen?;
    Some(Settings {
        listen,
        domain: p.domain.clone()?,
        advertised_port: p.advertised_port.unwrap_or(listen.port()),
        max_frame_bytes,
        connect_timeout: Duration::from_secs(connect_timeout_seconds),
        hello_timeout: Duration::from_secs(hello_timeout_seconds),
        handshake_timeout: Duration::from_secs(handshake_timeout_seconds),
        idle_timeout: Duration::from_secs(idle_timeout_seconds),
        max_connections: max_connections as usize,
        max_connections_per_tenant: max_connections_per_tenant as usize,
        max_connections_per_ip: max_connections_per_ip as usize,
        max_handshakes_per_ip: max_handshakes_per_ip as usize,
        max_handshakes_per_tenant: max_handshakes_per_tenant as usize,
        max_inflight_requests_per_connection: max_inflight as usize,
        reload_grace: Duration::from_secs(reload_grace_seconds),
        max_fetch_response_bytes: u32::try_from(max_fetch_response_bytes).unwrap_or(u32::MAX),
        admin_listen,
        probe_listen,
        proxy_protocol_trusted_cidrs,
        default_cert: default_cert?,
        tenants,
        skipped: Vec::new(),
        skipped_tenants: Vec::new(),
        skipped_crls: Vec::new(),
        tenants_file_missing: p.tenants_file_missing.clone(),
        acme: acme.map(Arc::new),
        usage,
        audit,
    })
}

/// This replica's name when the configuration gives none: `$POD_NAME`, else the host name (a pod's name in
/// Kubernetes); `None` when neither is there. The ACME store's Lease and the usage and audit records name it.
fn replica_name() -> Option<String> {
    std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// A hash of `route` and of the contents of every file it names (a file that cannot be read hashes as absent).
fn fingerprint(route: &TenantRoute, base: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_norway::to_string(route).unwrap_or_default().hash(&mut h);
    for file in route_files(route) {
        std::fs::read(base.join(file)).ok().hash(&mut h);
    }
    h.finish()
}

fn load_cert(
    key: &str,
    files: &CertificateFiles,
    base: &Path,
    errs: &mut Collector,
) -> Option<Arc<CertifiedKey>> {
    match certs::load_pair(&base.join(&files.cert), &base.join(&files.key)) {
        Ok(k) => Some(Arc::new(k)),
        Err(e) => {
            errs.push(format!("{key}.{}", e.field()), e);
            None
        }
    }
}

mod acme;
pub mod certs;
pub mod intermediate;
mod limits;
pub mod principal;
mod records;
mod schema;
mod settings;
pub mod upstream;
mod watched;

#[cfg(test)]
mod tests;
