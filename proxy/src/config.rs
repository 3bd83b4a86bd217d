//! Configuration: the YAML file `kaas-proxy --config FILE` reads, validated into [`Settings`].
//!
//! Every problem is collected and reported at once, each naming its key (`tenants[1].bootstrap[0]: ...`), so an
//! operator fixes a file in one pass. Certificates are loaded here (through [`crate::tls::certs`]) because a
//! certificate that does not match its key is a configuration error, not a runtime one.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kaas_route::{check_dns_label, CertificateFiles, HostPort, TenantRoute};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use crate::tls::certs;

/// Kafka's own default for `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 100 * 1024 * 1024;
const DEFAULT_CONNECT_TIMEOUT_SECONDS: u64 = 5;

/// The file as written; field names are the YAML keys. The schema of record (for tools that write the file);
/// [`load`] reads it key by key to report every error at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The one TLS port for all tenants.
    pub listen: String,
    /// Tenants live under it: `<tenant>.<domain>`, `b<node-id>.<tenant>.<domain>`.
    pub domain: String,
    /// Port written into rewritten broker addresses; default: the port of `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_port: Option<u16>,
    /// Largest Kafka frame accepted in either direction.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: u32,
    /// Time allowed to open a TCP connection to a tenant's broker.
    #[serde(default = "default_connect_timeout_seconds")]
    pub connect_timeout_seconds: u64,
    /// Default certificate chain and key, used for names without a tenant certificate.
    pub tls: CertificateFiles,
    pub tenants: Vec<TenantRoute>,
}

fn default_max_frame_bytes() -> u32 {
    DEFAULT_MAX_FRAME_BYTES
}
fn default_connect_timeout_seconds() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECONDS
}

/// Keys of [`Config`]. The file is read key by key (so every error is reported at once); a test checks this
/// list and the parser against [`Config`] itself.
const TOP_LEVEL_KEYS: &[&str] =
    &["listen", "domain", "advertised_port", "max_frame_bytes", "connect_timeout_seconds", "tls", "tenants"];

/// A validated configuration, certificates loaded.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub domain: String,
    pub advertised_port: u16,
    pub max_frame_bytes: u32,
    pub connect_timeout: Duration,
    pub default_cert: Arc<CertifiedKey>,
    pub tenants: Vec<TenantSettings>,
}

#[derive(Debug, Clone)]
pub struct TenantSettings {
    pub name: String,
    pub bootstrap: Vec<HostPort>,
    pub cert: Option<Arc<CertifiedKey>>,
}

/// One problem, naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

/// Every problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
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

/// Reads, parses and validates `path`; relative certificate paths are resolved against the file's folder.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    let fail = |key: &str, message: String| ConfigErrors {
        file: path.to_owned(),
        errors: vec![ConfigError { key: key.into(), message }],
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail("(file)", format!("cannot read: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_yaml(&text, base).map_err(|errors| ConfigErrors { file: path.to_owned(), errors })
}

/// Parses and validates YAML text; `base` is the folder relative file paths start from.
pub fn from_yaml(text: &str, base: &Path) -> Result<Settings, Vec<ConfigError>> {
    let mut errs = Collector::default();
    let value: Value = serde_norway::from_str(text).map_err(|e| {
        vec![ConfigError { key: "(document)".into(), message: format!("not valid YAML: {e}") }]
    })?;
    let Some(map) = value.as_mapping() else {
        return Err(vec![ConfigError { key: "(document)".into(), message: "must be a mapping".into() }]);
    };
    let config = parse_keys(map, &mut errs);
    let settings = validate(&config, base, &mut errs);
    match settings {
        Some(s) if errs.0.is_empty() => Ok(s),
        _ => Err(errs.0),
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
    tls: Option<CertificateFiles>,
    /// Tenants that parsed, with their index in the file.
    tenants: Vec<(usize, TenantRoute)>,
    tenant_count: usize,
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
            "tls" => p.tls = typed(key, v, errs),
            "tenants" => match v.as_sequence() {
                Some(seq) => {
                    p.tenant_count = seq.len();
                    for (i, t) in seq.iter().enumerate() {
                        if let Some(route) = typed(&format!("tenants[{i}]"), t, errs) {
                            p.tenants.push((i, route));
                        }
                    }
                }
                None => errs.push(key, "must be a list of tenants"),
            },
            _ => errs.push(key, format!("unknown key (expected one of: {})", TOP_LEVEL_KEYS.join(", "))),
        }
    }
    for required in ["listen", "domain", "tls", "tenants"] {
        if !map.contains_key(required) {
            errs.push(required, "missing (required)");
        }
    }
    p
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
    let default_cert = p.tls.as_ref().and_then(|files| load_cert("tls", files, base, errs));
    if p.tenant_count == 0 && p.listen.is_some() {
        errs.push("tenants", "needs at least one tenant");
    }
    let mut seen = HashSet::new();
    let mut tenants = Vec::with_capacity(p.tenants.len());
    for (i, route) in &p.tenants {
        for e in route.validate() {
            errs.push(format!("tenants[{i}].{}", e.field), e.message);
        }
        if !seen.insert(route.name.as_str()) {
            errs.push(format!("tenants[{i}].name"), format!("duplicate tenant {:?}", route.name));
        }
        let cert =
            route.tls.as_ref().and_then(|files| load_cert(&format!("tenants[{i}].tls"), files, base, errs));
        tenants.push(TenantSettings {
            name: route.name.clone(),
            bootstrap: route.bootstrap.iter().filter_map(|b| HostPort::parse(b).ok()).collect(),
            cert,
        });
    }
    let listen = listen?;
    Some(Settings {
        listen,
        domain: p.domain.clone()?,
        advertised_port: p.advertised_port.unwrap_or(listen.port()),
        max_frame_bytes,
        connect_timeout: Duration::from_secs(connect_timeout_seconds),
        default_cert: default_cert?,
        tenants,
    })
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

#[cfg(test)]
mod tests;
