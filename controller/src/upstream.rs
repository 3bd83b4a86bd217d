//! Upstream material: what kaas-proxy needs to reach a tenant's brokers over mutual TLS with each client's own
//! identity, kept in the one Secret the proxy mounts (`kaas-proxy-upstream`, flat keys `<tenant>.<file>` for
//! each of [`FILES`]): the tenant's Strimzi cluster CA (verifies the brokers) and clients CA (verifies its
//! clients), copied, and an intermediate CA the controller issues from the clients CA
//! ([`intermediate`]), which signs each client's upstream certificate. The clients CA's own key never leaves
//! the controller: with it a thief in the proxy could mint Strimzi's super users on every tenant at once.
//! When Strimzi renews a CA, or the intermediate reaches half its life, the next reconcile writes the new one,
//! the kubelet updates the proxy's volume and the proxy reloads it: no human in the loop.
//!
//! Strimzi's secrets are as hostile as any input: each file is capped at [`MAX_FILE_BYTES`] and parsed as PEM
//! before anything is written, and one tenant's bad file names itself and stops only that tenant.
//!
//! The pure part ([`Material`], [`material`], [`merge`]) is tested by tables; [`read()`] and [`write()`] are the
//! I/O edges, used by [`crate::reconcile`]. Strimzi's secrets are read where the tenant's Kafka runs: its own
//! cluster (through the Cluster API kubeconfig secret) or its namespace on the shared cluster.

pub mod intermediate;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::crd::Isolation;
use crate::names::kafka_namespace;

/// The files of one tenant, as keys after `<tenant>.` (and as file names after the route's path prefix).
pub const FILES: [&str; 4] =
    ["cluster-ca.crt", "clients-ca.crt", "clients-ca-intermediate.crt", "clients-ca-intermediate.key"];
/// Files earlier versions wrote and a write removes: the clients CA's key, which the proxy no longer holds.
const RETIRED: [&str; 1] = ["clients-ca.key"];
/// The largest file taken from Strimzi's secrets: a CA bundle is a few certificates of ~2 KiB, and the proxy's
/// Secret (1 MiB for every tenant) must not be filled by one.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// One tenant's CAs as Strimzi keeps them, read from its secrets ([`sources`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strimzi {
    /// `<cluster>-cluster-ca-cert` `ca.crt`: verifies the brokers.
    pub cluster_ca: ByteString,
    /// `<cluster>-clients-ca-cert` `ca.crt`: the clients CA, which signs the tenant users' certificates.
    pub clients_ca: ByteString,
    /// `<cluster>-clients-ca` `ca.key`: signs the intermediate, and nothing leaves the controller with it.
    pub clients_ca_key: ByteString,
}

/// One tenant's files in the proxy's Secret, in [`FILES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// Strimzi's cluster CA, as read.
    pub cluster_ca: ByteString,
    /// Strimzi's clients CA, as read: the proxy checks clients against it.
    pub clients_ca: ByteString,
    /// The intermediate's certificate ([`intermediate::issue`]).
    pub intermediate_cert: ByteString,
    /// The intermediate's key: all the proxy can sign with.
    pub intermediate_key: ByteString,
}

impl Material {
    fn entries(&self) -> [(&'static str, &ByteString); 4] {
        [
            (FILES[0], &self.cluster_ca),
            (FILES[1], &self.clients_ca),
            (FILES[2], &self.intermediate_cert),
            (FILES[3], &self.intermediate_key),
        ]
    }
}

/// Whether `bytes` (Strimzi's `what`) is at most [`MAX_FILE_BYTES`] of PEM: certificates, all readable, or one
/// private key.
fn check_pem(what: &str, bytes: &[u8], key: bool) -> Result<(), String> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!("{what}: {} bytes, over the {MAX_FILE_BYTES} taken", bytes.len()));
    }
    let parsed = if key {
        PrivateKeyDer::from_pem_slice(bytes).is_ok()
    } else {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes).collect();
        certs.is_ok_and(|c| !c.is_empty())
    };
    if parsed {
        Ok(())
    } else {
        Err(format!("{what}: not a PEM {}", if key { "private key" } else { "certificate" }))
    }
}

/// The files `tenant`'s proxy gets from `strimzi` at `now`: its CAs copied and an intermediate, the one
/// `held` (certificate and key, as the proxy's Secret has them) unless it is due for renewal
/// ([`intermediate::renewal_due`]), otherwise a new one. `Err` names the Strimzi file that is unusable.
pub fn material(
    tenant: &str,
    strimzi: &Strimzi,
    held: Option<(&ByteString, &ByteString)>,
    now: OffsetDateTime,
) -> Result<Material, String> {
    let [cluster_ca, clients_ca, clients_ca_key] = sources().map(|(secret, key)| format!("{secret} {key}"));
    check_pem(&cluster_ca, &strimzi.cluster_ca.0, false)?;
    check_pem(&clients_ca, &strimzi.clients_ca.0, false)?;
    check_pem(&clients_ca_key, &strimzi.clients_ca_key.0, true)?;
    let kept = held.filter(|(cert, key)| {
        intermediate::renewal_due(&cert.0, &strimzi.clients_ca.0, now).is_none()
            && check_pem("", &key.0, true).is_ok()
    });
    let (intermediate_cert, intermediate_key) = match kept {
        Some((cert, key)) => (cert.clone(), key.clone()),
        None => {
            let issued = intermediate::issue(tenant, &strimzi.clients_ca.0, &strimzi.clients_ca_key.0, now)
                .map_err(|e| format!("{clients_ca} and {clients_ca_key}: {e}"))?;
            (ByteString(issued.cert_pem.into_bytes()), ByteString(issued.key_pem.into_bytes()))
        }
    };
    Ok(Material {
        cluster_ca: strimzi.cluster_ca.clone(),
        clients_ca: strimzi.clients_ca.clone(),
        intermediate_cert,
        intermediate_key,
    })
}

/// The intermediate `tenant`'s entries in the proxy's Secret hold: (certificate, key).
pub fn held<'a>(
    data: &'a BTreeMap<String, ByteString>,
    tenant: &str,
) -> Option<(&'a ByteString, &'a ByteString)> {
    Some((data.get(&key(tenant, FILES[2]))?, data.get(&key(tenant, FILES[3]))?))
}

/// The Secret key of one of a tenant's files.
pub fn key(tenant: &str, file: &str) -> String {
    format!("{tenant}.{file}")
}

/// Sets `tenant`'s keys to `material`, or removes them with `None`; its retired keys go either way, other
/// tenants' keys are untouched. Returns whether anything changed (no write otherwise).
pub fn merge(data: &mut BTreeMap<String, ByteString>, tenant: &str, material: Option<&Material>) -> bool {
    let before = data.clone();
    for file in RETIRED {
        data.remove(&key(tenant, file));
    }
    match material {
        Some(m) => {
            for (file, value) in m.entries() {
                data.insert(key(tenant, file), value.clone());
            }
        }
        None => {
            for file in FILES {
                data.remove(&key(tenant, file));
            }
        }
    }
    *data != before
}

/// The Strimzi secrets a tenant's CAs come from: (secret, key) for the cluster CA, the clients CA and its key.
pub fn sources() -> [(String, &'static str); 3] {
    let [cluster_ca, clients_ca, clients_ca_key] = crate::names::strimzi_ca_secrets();
    [(cluster_ca, "ca.crt"), (clients_ca, "ca.crt"), (clients_ca_key, "ca.key")]
}

/// Why the material could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A Kubernetes call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

/// Reads the tenant's CAs from Strimzi's secrets through `cluster` (the [`crate::tenant_cluster::client`] of
/// the cluster its Kafka runs on); `Err(why)` names what is not there yet.
pub async fn read(
    cluster: &Client,
    tenant: &str,
    isolation: Isolation,
) -> Result<Result<Strimzi, String>, UpstreamError> {
    let ns = kafka_namespace(tenant, isolation);
    let secrets: Api<Secret> = Api::namespaced(cluster.clone(), &ns);
    let mut values: [ByteString; 3] = Default::default();
    for (slot, (name, key)) in values.iter_mut().zip(sources()) {
        match secrets.get_opt(&name).await?.and_then(|s| s.data?.remove(key)) {
            Some(v) if !v.0.is_empty() => *slot = v,
            _ => return Ok(Err(format!("Strimzi secret {ns}/{name} (key {key}) not created yet"))),
        }
    }
    let [cluster_ca, clients_ca, clients_ca_key] = values;
    Ok(Ok(Strimzi { cluster_ca, clients_ca, clients_ca_key }))
}

/// Sets the tenant's keys in the proxy's Secret `namespace/name` to the [`material`] of `strimzi`, keeping the
/// intermediate it holds while that is good, and creates the Secret when absent. `Err(why)` names the Strimzi
/// file that is unusable; nothing is written then.
pub async fn write(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant: &str,
    strimzi: &Strimzi,
) -> Result<Result<(), String>, UpstreamError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api.get_opt(name).await?;
    let held = existing.as_ref().and_then(|e| held(e.data.as_ref()?, tenant));
    match material(tenant, strimzi, held, OffsetDateTime::now_utc()) {
        Ok(m) => store(&api, existing, namespace, name, tenant, Some(&m)).await.map(Ok),
        Err(why) => Ok(Err(why)),
    }
}

/// Removes the tenant's keys from the proxy's Secret `namespace/name`.
pub async fn remove(client: &Client, namespace: &str, name: &str, tenant: &str) -> Result<(), UpstreamError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await? {
        Some(existing) => store(&api, Some(existing), namespace, name, tenant, None).await,
        None => Ok(()),
    }
}

/// Merges `material` into `existing` (a new Secret when `None`) and writes it when it changed. `replace`
/// carries the resourceVersion: a concurrent writer makes it fail and the reconcile retry.
async fn store(
    api: &Api<Secret>,
    existing: Option<Secret>,
    namespace: &str,
    name: &str,
    tenant: &str,
    material: Option<&Material>,
) -> Result<(), UpstreamError> {
    let mut secret = existing.unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "kaas-controller".to_owned())].into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        ..Default::default()
    });
    let changed = merge(secret.data.get_or_insert_with(Default::default), tenant, material);
    match (&secret.metadata.resource_version, changed) {
        (Some(_), false) => {}
        (Some(_), true) => drop(api.replace(name, &PostParams::default(), &secret).await?),
        (None, _) => drop(api.create(&PostParams::default(), &secret).await?),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
