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

/// The file as written. Field names are the YAML keys.
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

/// Keys of [`Config`], for reporting every unknown or malformed key at once before the typed parse.
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
    check_shape(map, &mut errs);
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    let config: Config = match serde_norway::from_value(value) {
        Ok(c) => c,
        Err(e) => return Err(vec![ConfigError { key: "(document)".into(), message: e.to_string() }]),
    };
    let settings = validate(&config, base, &mut errs);
    match settings {
        Some(s) if errs.0.is_empty() => Ok(s),
        _ => Err(errs.0),
    }
}

/// Reports unknown keys and wrongly typed values key by key, so one bad key does not hide the others.
fn check_shape(map: &Mapping, errs: &mut Collector) {
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            errs.push(format!("{k:?}"), "keys must be strings");
            continue;
        };
        if !TOP_LEVEL_KEYS.contains(&key) {
            errs.push(key, format!("unknown key (expected one of: {})", TOP_LEVEL_KEYS.join(", ")));
            continue;
        }
        let result = match key {
            "listen" | "domain" => typed::<String>(v),
            "advertised_port" => typed::<u16>(v),
            "max_frame_bytes" => typed::<u32>(v),
            "connect_timeout_seconds" => typed::<u64>(v),
            "tls" => typed::<CertificateFiles>(v),
            "tenants" => match v.as_sequence() {
                Some(seq) => {
                    for (i, t) in seq.iter().enumerate() {
                        if let Err(e) = typed::<TenantRoute>(t) {
                            errs.push(format!("tenants[{i}]"), e);
                        }
                    }
                    Ok(())
                }
                None => Err("must be a list of tenants".to_string()),
            },
            _ => Ok(()),
        };
        if let Err(e) = result {
            errs.push(key, e);
        }
    }
    for required in ["listen", "domain", "tls", "tenants"] {
        if !map.contains_key(required) {
            errs.push(required, "missing (required)");
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
    serde_norway::from_value::<T>(v.clone()).map(drop).map_err(|e| e.to_string())
}

fn validate(config: &Config, base: &Path, errs: &mut Collector) -> Option<Settings> {
    let listen = match config.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errs.push("listen", format!("{:?} is not an address like 127.0.0.1:9092 or [::]:9092", config.listen));
            None
        }
    };
    let domain_ok = !config.domain.is_empty() && config.domain.split('.').all(|l| check_dns_label(l).is_ok());
    if !domain_ok {
        errs.push("domain", format!("{:?} is not a DNS name of lowercase labels", config.domain));
    }
    if config.advertised_port == Some(0) {
        errs.push("advertised_port", "must be 1-65535");
    }
    if !(1024..=i32::MAX as u32).contains(&config.max_frame_bytes) {
        errs.push("max_frame_bytes", format!("must be between 1024 and {}", i32::MAX));
    }
    if config.connect_timeout_seconds == 0 {
        errs.push("connect_timeout_seconds", "must be at least 1");
    }
    let default_cert = load_cert("tls", &config.tls, base, errs);
    if config.tenants.is_empty() {
        errs.push("tenants", "needs at least one tenant");
    }
    let mut seen = HashSet::new();
    let mut tenants = Vec::with_capacity(config.tenants.len());
    for (i, route) in config.tenants.iter().enumerate() {
        for e in route.validate() {
            errs.push(format!("tenants[{i}].{}", e.field), e.message);
        }
        if !seen.insert(route.name.as_str()) {
            errs.push(format!("tenants[{i}].name"), format!("duplicate tenant {:?}", route.name));
        }
        let cert = route.tls.as_ref().and_then(|files| load_cert(&format!("tenants[{i}].tls"), files, base, errs));
        tenants.push(TenantSettings {
            name: route.name.clone(),
            bootstrap: route.bootstrap.iter().filter_map(|b| HostPort::parse(b).ok()).collect(),
            cert,
        });
    }
    let listen = listen?;
    Some(Settings {
        listen,
        domain: config.domain.clone(),
        advertised_port: config.advertised_port.unwrap_or(listen.port()),
        max_frame_bytes: config.max_frame_bytes,
        connect_timeout: Duration::from_secs(config.connect_timeout_seconds),
        default_cert: default_cert?,
        tenants,
    })
}

fn load_cert(key: &str, files: &CertificateFiles, base: &Path, errs: &mut Collector) -> Option<Arc<CertifiedKey>> {
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
