//! The `kubernetes` store, for replicas: the ACME account, each tenant's certificate and the answers of the
//! challenges in progress live in Secrets of one namespace, which every replica watches (a reflector: reads
//! are from memory), and a Lease ([`kaas_lease`]) picks the one replica that orders. So one order serves every
//! replica, each serves the same certificate, and whichever replica the CA's validation reaches answers it.
//!
//! Secrets (all labelled `app.kubernetes.io/managed-by: kaas-proxy`, written by server-side apply as field
//! manager `kaas-proxy-acme`): `<name>-account` (`account.json`), `<name>-cert-<tenant>` (`kubernetes.io/tls`:
//! `tls.crt` chain, `tls.key`) and `<name>-challenges` (`tls-alpn-01.<dns name>`: the hex SHA-256 digest of
//! the key authorization; `http-01.<token>`: the key authorization). `<name>` is also the Lease's name. The
//! `cert-` prefix keeps tenants' names apart from the fixed ones: a tenant named `account` or `challenges` had
//! its certificate written over the account or the answers when certificates were `<name>-<tenant>` (still read,
//! for stores written before).
//!
//! Neighbour: [`crate::acme::Manager`] reads and writes through it; [`super::dir`] is the single-replica store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use instant_acme::AccountCredentials;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Client;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::StoreError;
use crate::config::certs;
use crate::config::KubernetesStoreSettings;

const MANAGER: &str = "kaas-proxy-acme";
const LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "kaas-proxy");
/// How long a Lease holds without renewal; the holder renews every quarter of it, also during an order.
const LEASE: Duration = Duration::from_secs(15);

/// Why the Kubernetes API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeStoreError {
    /// No usable client configuration (in-cluster, `KUBECONFIG`, or the configured file).
    #[error("kubernetes store: client configuration: {0}")]
    Config(String),
    /// A request failed.
    #[error("kubernetes store {what}: {source}")]
    Api {
        /// What was being read or written.
        what: String,
        /// The client's error.
        source: Box<kube::Error>,
    },
    /// A stored account is not what this proxy writes.
    #[error("kubernetes store: Secret {0}: unreadable account")]
    Account(String),
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory_url: String,
    credentials: AccountCredentials,
}

/// The store of one replica: its watch of the Secrets, and whether it holds the Lease.
pub struct KubeStore {
    secrets: Api<Secret>,
    cache: Store<Secret>,
    namespace: String,
    name: String,
    leading: Arc<AtomicBool>,
    identity: String,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl KubeStore {
    /// Connects, starts watching the Secrets and taking part in the election; returns once the watch has
    /// listed what is there (so a restart sees its stored certificates before deciding to order).
    pub async fn start(settings: &KubernetesStoreSettings) -> Result<KubeStore, StoreError> {
        let client = client(settings.kubeconfig.as_deref()).await?;
        let namespace = settings.namespace.clone();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let (cache, writer) = reflector::store();
        let selector = format!("{}={}", LABEL.0, LABEL.1);
        let stream = reflector::reflector(
            writer,
            watcher(secrets.clone(), watcher::Config::default().labels(&selector)),
        )
        .default_backoff()
        .applied_objects();
        let what = format!("{namespace}: watching Secrets");
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    warn!(error = %e, "ACME {what} (retrying)");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), cache.wait_until_ready())
            .await
            .map_err(|_| {
                KubeStoreError::Config(format!("no list of Secrets in {} within 30 s", settings.namespace))
            })?
            .map_err(|e| KubeStoreError::Config(e.to_string()))?;

        let leading = Arc::new(AtomicBool::new(false));
        let mut elector =
            kaas_lease::Elector::new(client, &namespace, &settings.name, &settings.identity, LEASE);
        let flag = leading.clone();
        let identity = settings.identity.clone();
        tokio::spawn(async move {
            loop {
                let now = match elector.try_lead().await {
                    Ok(held) => held,
                    Err(e) => {
                        warn!(error = %e, "ACME: the order Lease could not be read or renewed");
                        false
                    }
                };
                if flag.swap(now, Ordering::SeqCst) != now {
                    info!(identity, leading = now, "ACME: order Lease {}", if now { "held" } else { "lost" });
                }
                tokio::time::sleep(elector.retry_period()).await;
            }
        });
        Ok(KubeStore {
            secrets,
            cache,
            namespace,
            name: settings.name.clone(),
            leading,
            identity: settings.identity.clone(),
        })
    }

    /// Whether this replica holds the Lease: only then does it order.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    fn cached(&self, name: &str) -> Option<Arc<Secret>> {
        self.cache.get(&ObjectRef::new(name).within(&self.namespace))
    }

    fn key<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
        secret.data.as_ref()?.get(key).map(|b| b.0.as_slice())
    }

    async fn apply(
        &self,
        name: &str,
        kind: &str,
        data: BTreeMap<String, ByteString>,
    ) -> Result<(), StoreError> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some([(LABEL.0.to_owned(), LABEL.1.to_owned())].into()),
                ..Default::default()
            },
            type_: Some(kind.to_owned()),
            data: Some(data),
            ..Default::default()
        };
        let params = PatchParams::apply(MANAGER).force();
        self.secrets.patch(name, &params, &Patch::Apply(&secret)).await.map_err(|source| {
            KubeStoreError::Api {
                what: format!("Secret {}/{name}", self.namespace),
                source: Box::new(source),
            }
        })?;
        Ok(())
    }

    /// `tenant`'s certificate Secret and its name: `<name>-cert-<tenant>`, or a store's from before the prefix.
    fn certificate_secret(&self, tenant: &str) -> Option<(String, Arc<Secret>)> {
        let current = secret_name(&self.name, Stored::Certificate(tenant));
        if let Some(secret) = self.cached(&current) {
            return Some((current, secret));
        }
        let legacy = format!("{}-{tenant}", self.name);
        let fixed = [Stored::Account, Stored::Challenges].map(|s| secret_name(&self.name, s));
        (!fixed.contains(&legacy)).then(|| self.cached(&legacy).map(|s| (legacy, s))).flatten()
    }

    /// The stored account for `directory_url`, if there is one for it.
    pub fn account(&self, directory_url: &str) -> Result<Option<AccountCredentials>, StoreError> {
        let name = secret_name(&self.name, Stored::Account);
        let Some(bytes) = self.cached(&name).and_then(|s| Self::key(&s, "account.json").map(<[u8]>::to_vec))
        else {
            return Ok(None);
        };
        let stored: StoredAccount = serde_json::from_slice(&bytes)
            .map_err(|_| KubeStoreError::Account(format!("{}/{name}", self.namespace)))?;
        Ok((stored.directory_url == directory_url).then_some(stored.credentials))
    }

    /// Stores the account of `directory_url`, replacing any other.
    pub async fn put_account(
        &self,
        directory_url: &str,
        credentials: AccountCredentials,
    ) -> Result<(), StoreError> {
        let stored = StoredAccount { directory_url: directory_url.to_owned(), credentials };
        let json = serde_json::to_vec(&stored)
            .map_err(|_| KubeStoreError::Account(format!("{}/{}-account", self.namespace, self.name)))?;
        let data = [("account.json".to_owned(), ByteString(json))].into();
        self.apply(&secret_name(&self.name, Stored::Account), "Opaque", data).await
    }

    /// The leaf (DER) of `tenant`'s stored chain, read without loading the key: what a follower compares
    /// with the certificate it serves on every tick.
    pub fn stored_leaf(&self, tenant: &str) -> Option<Vec<u8>> {
        use rustls::pki_types::pem::PemObject as _;
        let (_, secret) = self.certificate_secret(tenant)?;
        let chain = Self::key(&secret, "tls.crt")?;
        let leaf = rustls::pki_types::CertificateDer::pem_slice_iter(chain).next()?.ok()?;
        Some(leaf.as_ref().to_vec())
    }

    /// `tenant`'s stored certificate, when there is one that loads.
    pub fn certificate(&self, tenant: &str) -> Option<CertifiedKey> {
        let (name, secret) = self.certificate_secret(tenant)?;
        let (cert, key) = (Self::key(&secret, "tls.crt")?, Self::key(&secret, "tls.key")?);
        let at = PathBuf::from(format!("secret:{}/{name}", self.namespace));
        match certs::pair_from_pem(cert, key, &at.join("tls.crt"), &at.join("tls.key")) {
            Ok(pair) => Some(pair),
            Err(e) => {
                warn!(tenant, error = %e, "ACME: stored certificate does not load");
                None
            }
        }
    }

    /// Stores `tenant`'s chain and key in one Secret, replacing the previous pair in one write.
    pub async fn put_certificate(
        &self,
        tenant: &str,
        key_pem: &str,
        chain_pem: &str,
    ) -> Result<(), StoreError> {
        let data = [
            ("tls.crt".to_owned(), ByteString(chain_pem.as_bytes().to_vec())),
            ("tls.key".to_owned(), ByteString(key_pem.as_bytes().to_vec())),
        ]
        .into();
        self.apply(&secret_name(&self.name, Stored::Certificate(tenant)), "kubernetes.io/tls", data).await
    }

    /// Publishes every answer of the challenges in progress (replacing the last set): TLS-ALPN-01 digests by
    /// name, HTTP-01 key authorizations by token.
    pub async fn publish_challenges(
        &self,
        tls_alpn: &BTreeMap<String, Vec<u8>>,
        http: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let data = tls_alpn
            .iter()
            .map(|(name, digest)| (format!("tls-alpn-01.{name}"), ByteString(hex(digest).into_bytes())))
            .chain(
                http.iter()
                    .map(|(token, ka)| (format!("http-01.{token}"), ByteString(ka.clone().into_bytes()))),
            )
            .collect();
        self.apply(&secret_name(&self.name, Stored::Challenges), "Opaque", data).await
    }

    /// The answers another replica published: TLS-ALPN-01 digests by name, HTTP-01 key authorizations by token.
    pub fn challenges(&self) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
        let (mut tls_alpn, mut http) = (BTreeMap::new(), BTreeMap::new());
        let Some(secret) = self.cached(&secret_name(&self.name, Stored::Challenges)) else {
            return (tls_alpn, http);
        };
        for (key, value) in secret.data.iter().flatten() {
            if let Some(name) = key.strip_prefix("tls-alpn-01.") {
                if let Some(digest) = unhex(&value.0) {
                    tls_alpn.insert(name.to_owned(), digest);
                }
            } else if let Some(token) = key.strip_prefix("http-01.") {
                http.insert(token.to_owned(), String::from_utf8_lossy(&value.0).into_owned());
            }
        }
        (tls_alpn, http)
    }
}

/// What a store Secret holds.
#[derive(Debug, Clone, Copy)]
enum Stored<'a> {
    Account,
    Challenges,
    Certificate(&'a str),
}

/// The Secret of store `store` holding `what`: fixed names for the account and the answers, `cert-<tenant>` for
/// a tenant's certificate, so that no tenant name (a DNS label) can give another Secret's name.
fn secret_name(store: &str, what: Stored) -> String {
    match what {
        Stored::Account => format!("{store}-account"),
        Stored::Challenges => format!("{store}-challenges"),
        Stored::Certificate(tenant) => format!("{store}-cert-{tenant}"),
    }
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(text).ok()?;
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeStoreError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| KubeStoreError::Config(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| KubeStoreError::Config(e.to_string()))?
        }
        None => kube::Config::infer().await.map_err(|e| KubeStoreError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| KubeStoreError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{secret_name, Stored};

    /// Tenants named like the fixed Secrets (or like another tenant's prefix) keep Secrets of their own: before,
    /// tenant `account` was stored as `kaas-proxy-acme-account`, over the ACME account.
    #[test]
    fn no_tenant_name_is_another_secrets_name() {
        let fixed = [Stored::Account, Stored::Challenges].map(|w| secret_name("kaas-proxy-acme", w));
        for tenant in ["account", "challenges", "cert-account", "acme", "a"] {
            let cert = secret_name("kaas-proxy-acme", Stored::Certificate(tenant));
            assert!(!fixed.contains(&cert), "{tenant}: {cert}");
        }
        assert_eq!(secret_name("s", Stored::Certificate("acme")), "s-cert-acme");
    }

    #[test]
    fn digests_survive_the_hex_round_trip_and_bad_hex_is_none() {
        let digest: Vec<u8> = (0..32).collect();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::unhex(hex.as_bytes()), Some(digest));
        assert_eq!(super::unhex(b"abc"), None);
        assert_eq!(super::unhex(b"zz"), None);
    }
}
