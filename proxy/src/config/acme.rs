//! The `acme` section of the configuration file: the ACME server, account and challenge the proxy's certificate
//! client ([`crate::acme`]) uses for tenants with `tls: { acme: true }`, validated into [`AcmeSettings`] with
//! every problem named by its key (`acme.contact[0]`). Neighbour: [`super`] parses the file key by key and calls
//! [`validate`]. The section applies at start-up (a reload does not change it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::certs;
use super::Collector;

/// The section as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The ACME (RFC 8555) directory, `https://`.
    pub directory_url: String,
    /// The account's contacts (`mailto:` URLs), where the CA sends expiry and policy mail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<String>,
    /// PEM roots the directory's HTTPS certificate must chain to instead of the system's (a test CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_roots: Option<PathBuf>,
    /// External account binding, for CAs that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab: Option<EabConfig>,
    /// How the CA validates the names.
    #[serde(default)]
    pub challenge: ChallengeKind,
    /// HTTP-01 only: the plain HTTP listener answering `/.well-known/acme-challenge/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http01_listen: Option<String>,
    /// DNS-01 only: the hook run as `HOOK set|clear NAME VALUE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns01_hook: Option<Vec<String>>,
    /// Where the account, certificates and keys are kept.
    pub store: StoreConfig,
}

/// External account binding (RFC 8555 §7.3.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EabConfig {
    /// The key identifier the CA gave.
    pub kid: String,
    /// The HMAC key the CA gave, base64url (with or without padding); or, better, `hmac_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<String>,
    /// A file holding the HMAC key (base64url), so the key lives in a Secret rather than in the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key_file: Option<PathBuf>,
}

impl ChallengeKind {
    /// The name, as written in the file and in metrics.
    pub fn label(self) -> &'static str {
        match self {
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
        }
    }
}

/// The ACME challenge type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeKind {
    /// RFC 8737, answered on the proxy's one TLS port.
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// A plain HTTP listener (`http01_listen`).
    #[serde(rename = "http-01")]
    Http01,
    /// A TXT record set by `dns01_hook`.
    #[serde(rename = "dns-01")]
    Dns01,
}

/// Where ACME state is kept: exactly one of the two. (A struct rather than an enum: the file is read as a YAML
/// value first, and serde_norway reads enums from values only as YAML tags.)
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// A directory (relative to the configuration file's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Kubernetes Secrets and a Lease in a namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesStore>,
}

/// The `kubernetes` store's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesStore {
    /// The namespace holding the Secrets and the Lease (the proxy's own, in the chart).
    pub namespace: String,
    /// The Lease's name and the Secrets' prefix.
    #[serde(default = "default_store_name")]
    pub name: String,
    /// This replica's name in the Lease; default: `$POD_NAME`, else the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// A kubeconfig file (relative to the configuration file's folder); default: in-cluster, or `$KUBECONFIG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
}

fn default_store_name() -> String {
    "kaas-proxy-acme".to_owned()
}

/// Where the validated section keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// The `dir` store, resolved against the configuration file's folder.
    Dir(PathBuf),
    /// The `kubernetes` store.
    Kubernetes(KubernetesStoreSettings),
}

/// The validated `kubernetes` store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesStoreSettings {
    /// The namespace of the Secrets and the Lease.
    pub namespace: String,
    /// The Lease's name and the Secrets' prefix.
    pub name: String,
    /// This replica's holder identity.
    pub identity: String,
    /// The kubeconfig file, resolved; in-cluster or `$KUBECONFIG` when `None`.
    pub kubeconfig: Option<PathBuf>,
}

/// The validated section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The ACME directory URL.
    pub directory_url: String,
    /// `mailto:` contacts of the account.
    pub contact: Vec<String>,
    /// Roots for the directory's HTTPS certificate, resolved; the system's when `None`.
    pub trust_roots: Option<PathBuf>,
    /// External account binding: key id and the decoded HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// How the CA validates the names.
    pub challenge: ChallengeKind,
    /// The HTTP-01 listener (with `challenge: http-01` only).
    pub http01_listen: Option<SocketAddr>,
    /// The DNS-01 hook, its program first (a relative path with a `/` resolved against the configuration file's
    /// folder), run as `HOOK... set|clear NAME VALUE` (with `challenge: dns-01` only).
    pub dns01_hook: Option<Vec<String>>,
    /// Where the account and certificates are kept.
    pub store: StoreSettings,
}

/// Validates `config` (read from key `acme`), every problem pushed under its key; `None` when any.
pub(super) fn validate(config: &AcmeConfig, base: &Path, errs: &mut Collector) -> Option<AcmeSettings> {
    let before = errs.0.len();
    if !config.directory_url.starts_with("https://") {
        errs.push("acme.directory_url", format!("{:?} is not an https:// URL", config.directory_url));
    }
    for (i, contact) in config.contact.iter().enumerate() {
        if !contact.starts_with("mailto:") || contact.len() == "mailto:".len() {
            errs.push(format!("acme.contact[{i}]"), format!("{contact:?} is not a mailto: URL"));
        }
    }
    let trust_roots = config.trust_roots.as_ref().map(|roots| base.join(roots));
    if let Some(Err(e)) = trust_roots.as_deref().map(certs::load_roots) {
        errs.push("acme.trust_roots", e);
    }
    let eab = config.eab.as_ref().and_then(|eab| {
        if eab.kid.is_empty() {
            errs.push("acme.eab.kid", "must not be empty");
        }
        let (field, text) = match (&eab.hmac_key, &eab.hmac_key_file) {
            (Some(key), None) => ("acme.eab.hmac_key", key.clone()),
            (None, Some(file)) => match std::fs::read_to_string(base.join(file)) {
                Ok(text) => ("acme.eab.hmac_key_file", text),
                Err(e) => {
                    errs.push(
                        "acme.eab.hmac_key_file",
                        format!("cannot read {}: {e}", base.join(file).display()),
                    );
                    return None;
                }
            },
            (given, _) => {
                let what = if given.is_some() { "not both" } else { "one is required" };
                errs.push("acme.eab", format!("hmac_key or hmac_key_file: {what}"));
                return None;
            }
        };
        let decoded =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('='));
        match decoded {
            Ok(key) if !key.is_empty() => Some((eab.kid.clone(), key)),
            _ => {
                errs.push(field, "is not a base64url key");
                None
            }
        }
    });
    let http01_listen = match (&config.http01_listen, config.challenge) {
        (Some(_), ChallengeKind::TlsAlpn01 | ChallengeKind::Dns01) => {
            errs.push("acme.http01_listen", "only with challenge: http-01");
            None
        }
        (Some(listen), ChallengeKind::Http01) => listen
            .parse::<SocketAddr>()
            .map_err(|_| {
                errs.push("acme.http01_listen", format!("{listen:?} is not an address like [::]:80"))
            })
            .ok(),
        (None, ChallengeKind::Http01) => {
            errs.push("acme.http01_listen", "needed for challenge: http-01 (the CA asks port 80)");
            None
        }
        (None, _) => None,
    };
    let dns01_hook = match (&config.dns01_hook, config.challenge) {
        (Some(_), ChallengeKind::TlsAlpn01 | ChallengeKind::Http01) => {
            errs.push("acme.dns01_hook", "only with challenge: dns-01");
            None
        }
        (Some(hook), ChallengeKind::Dns01) => match hook.split_first() {
            Some((program, args)) if !program.is_empty() => {
                let program = match program.contains('/') {
                    true => base.join(program).to_string_lossy().into_owned(),
                    false => program.clone(),
                };
                Some(std::iter::once(program).chain(args.iter().cloned()).collect())
            }
            _ => {
                errs.push("acme.dns01_hook", "needs the hook's program");
                None
            }
        },
        (None, ChallengeKind::Dns01) => {
            errs.push("acme.dns01_hook", "needed for challenge: dns-01 (it publishes the TXT records)");
            None
        }
        (None, _) => None,
    };
    let store = match (&config.store.dir, &config.store.kubernetes) {
        (Some(_), Some(_)) => {
            errs.push("acme.store", "either dir or kubernetes, not both");
            None
        }
        (None, None) => {
            errs.push("acme.store", "needs dir: PATH or kubernetes: { namespace: NAME }");
            None
        }
        (Some(dir), None) => {
            let dir = base.join(dir);
            if dir.exists() && !dir.is_dir() {
                errs.push("acme.store.dir", format!("{} is not a directory", dir.display()));
            }
            Some(StoreSettings::Dir(dir))
        }
        (None, Some(k)) => {
            for (key, value) in [("namespace", &k.namespace), ("name", &k.name)] {
                if let Err(e) = kaas_route::check_dns_label(value) {
                    errs.push(format!("acme.store.kubernetes.{key}"), e);
                }
            }
            let identity = k.identity.clone().or_else(super::replica_name).filter(|i| !i.is_empty());
            if identity.is_none() {
                errs.push(
                    "acme.store.kubernetes.identity",
                    "not set, and neither POD_NAME nor a host name is",
                );
            }
            let kubeconfig = k.kubeconfig.as_ref().map(|p| base.join(p));
            if let Some(path) = kubeconfig.as_ref().filter(|p| !p.is_file()) {
                errs.push("acme.store.kubernetes.kubeconfig", format!("{} is not a file", path.display()));
            }
            identity.map(|identity| {
                StoreSettings::Kubernetes(KubernetesStoreSettings {
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                    identity,
                    kubeconfig,
                })
            })
        }
    };
    if errs.0.len() > before {
        return None;
    }
    Some(AcmeSettings {
        directory_url: config.directory_url.clone(),
        contact: config.contact.clone(),
        trust_roots,
        eab,
        challenge: config.challenge,
        http01_listen,
        dns01_hook,
        store: store?,
    })
}
