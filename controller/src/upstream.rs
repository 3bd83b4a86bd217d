//! Upstream material: what kaas-proxy needs to reach a tenant's brokers over mutual TLS with each client's own
//! identity, copied from the tenant's Strimzi CA secrets into the one Secret the proxy mounts
//! (`kaas-proxy-upstream`, flat keys `<tenant>.cluster-ca.crt`, `<tenant>.clients-ca.crt`,
//! `<tenant>.clients-ca.key`). When Strimzi renews a CA, the next reconcile copies it, the kubelet updates the
//! proxy's volume and the proxy reloads it: no human in the loop.
//!
//! The pure part ([`Material`], [`merge`]) is tested by tables; [`read()`] and [`write()`] are the I/O edges, used
//! by [`crate::reconcile`]. Strimzi's secrets are read where the tenant's Kafka runs: its own cluster (through
//! the Cluster API kubeconfig secret) or its namespace on the shared cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

use crate::crd::Isolation;
use crate::names::{kafka_namespace, kubeconfig_secret, namespace, KAFKA_RELEASE};

/// The files of one tenant, as keys after `<tenant>.` (and as file names after the route's path prefix).
pub const FILES: [&str; 3] = ["cluster-ca.crt", "clients-ca.crt", "clients-ca.key"];

/// One tenant's upstream material, as Strimzi keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// `<cluster>-cluster-ca-cert` `ca.crt`: verifies the brokers.
    pub cluster_ca: ByteString,
    /// `<cluster>-clients-ca-cert` `ca.crt`: the clients CA, which the proxy checks clients against.
    pub clients_ca: ByteString,
    /// `<cluster>-clients-ca` `ca.key`: signs each client's upstream certificate.
    pub clients_ca_key: ByteString,
}

impl Material {
    fn entries(&self) -> [(&'static str, &ByteString); 3] {
        [(FILES[0], &self.cluster_ca), (FILES[1], &self.clients_ca), (FILES[2], &self.clients_ca_key)]
    }
}

/// The Secret key of one of a tenant's files.
pub fn key(tenant: &str, file: &str) -> String {
    format!("{tenant}.{file}")
}

/// Sets `tenant`'s keys to `material`, or removes them with `None`; other tenants' keys are untouched. Returns
/// whether anything changed (no write otherwise).
pub fn merge(data: &mut BTreeMap<String, ByteString>, tenant: &str, material: Option<&Material>) -> bool {
    let before = data.clone();
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

/// The Strimzi secrets a tenant's material comes from: (secret, key) per file, in [`FILES`] order.
pub fn sources() -> [(String, &'static str); 3] {
    [
        (format!("{KAFKA_RELEASE}-cluster-ca-cert"), "ca.crt"),
        (format!("{KAFKA_RELEASE}-clients-ca-cert"), "ca.crt"),
        (format!("{KAFKA_RELEASE}-clients-ca"), "ca.key"),
    ]
}

/// Why the material could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A Kubernetes call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The tenant cluster's kubeconfig secret is unusable.
    #[error("kubeconfig of tenant cluster {tenant}: {message}")]
    Kubeconfig {
        /// The tenant.
        tenant: String,
        /// What was wrong.
        message: String,
    },
}

/// A client for the cluster the tenant's Kafka runs on; `None` (with what is awaited) while its kubeconfig
/// secret does not exist yet.
async fn tenant_client(
    management: &Client,
    tenant: &str,
    isolation: Isolation,
) -> Result<Result<Client, String>, UpstreamError> {
    if isolation == Isolation::Namespace {
        return Ok(Ok(management.clone()));
    }
    let ns = namespace(tenant);
    let name = kubeconfig_secret(tenant);
    let secrets: Api<Secret> = Api::namespaced(management.clone(), &ns);
    let Some(secret) = secrets.get_opt(&name).await? else {
        return Ok(Err(format!("Secret {ns}/{name} (the tenant cluster's kubeconfig) not created yet")));
    };
    let bad = |message: String| UpstreamError::Kubeconfig { tenant: tenant.into(), message };
    let text = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .ok_or_else(|| bad(format!("{ns}/{name} has no key `value`")))?;
    let text = std::str::from_utf8(&text.0).map_err(|_| bad("not UTF-8".into()))?;
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| bad(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    Ok(Ok(Client::try_from(config).map_err(|e| bad(e.to_string()))?))
}

/// Reads the tenant's material from Strimzi's secrets; `Err(why)` names what is not there yet.
pub async fn read(
    management: &Client,
    tenant: &str,
    isolation: Isolation,
) -> Result<Result<Material, String>, UpstreamError> {
    let client = match tenant_client(management, tenant, isolation).await? {
        Ok(c) => c,
        Err(waiting) => return Ok(Err(waiting)),
    };
    let ns = kafka_namespace(tenant, isolation);
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let mut values = Vec::with_capacity(3);
    for (name, key) in sources() {
        let value = secrets.get_opt(&name).await?.and_then(|s| s.data?.remove(key));
        match value {
            Some(v) if !v.0.is_empty() => values.push(v),
            _ => return Ok(Err(format!("Strimzi secret {ns}/{name} (key {key}) not created yet"))),
        }
    }
    let [cluster_ca, clients_ca, clients_ca_key] = <[ByteString; 3]>::try_from(values).map_err(|_| {
        UpstreamError::Kubeconfig { tenant: tenant.into(), message: "internal: 3 values".into() }
    })?;
    Ok(Ok(Material { cluster_ca, clients_ca, clients_ca_key }))
}

/// Sets (or with `None` removes) the tenant's keys in the proxy's Secret `namespace/name`, creating it when
/// absent. `replace` carries the resourceVersion: a concurrent writer makes it fail and the reconcile retry.
pub async fn write(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant: &str,
    material: Option<&Material>,
) -> Result<(), UpstreamError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api.get_opt(name).await?;
    if existing.is_none() && material.is_none() {
        return Ok(());
    }
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
mod tests {
    use super::*;

    fn material(tag: &str) -> Material {
        let b = |what: &str| ByteString(format!("{tag}-{what}").into_bytes());
        Material { cluster_ca: b("cluster"), clients_ca: b("clients"), clients_ca_key: b("key") }
    }

    #[test]
    fn merge_touches_one_tenant_and_says_when_it_changed() {
        let mut data = BTreeMap::new();
        assert!(merge(&mut data, "acme", Some(&material("v1"))));
        assert!(merge(&mut data, "beta", Some(&material("b1"))));
        assert_eq!(
            data.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "acme.clients-ca.crt",
                "acme.clients-ca.key",
                "acme.cluster-ca.crt",
                "beta.clients-ca.crt",
                "beta.clients-ca.key",
                "beta.cluster-ca.crt"
            ]
        );
        assert!(!merge(&mut data, "acme", Some(&material("v1"))), "same material: no write");
        assert!(merge(&mut data, "acme", Some(&material("v2"))), "a rotated CA is a change");
        assert_eq!(data["acme.cluster-ca.crt"].0, b"v2-cluster");
        assert!(merge(&mut data, "acme", None));
        assert!(!merge(&mut data, "acme", None));
        assert_eq!(data.len(), 3, "beta untouched");
        assert_eq!(data["beta.clients-ca.key"].0, b"b1-key");
    }

    #[test]
    fn sources_are_strimzis_secrets_of_the_kaas_release() {
        let names: Vec<_> = sources().into_iter().map(|(n, k)| format!("{n}/{k}")).collect();
        assert_eq!(
            names,
            ["kaas-cluster-ca-cert/ca.crt", "kaas-clients-ca-cert/ca.crt", "kaas-clients-ca/ca.key"]
        );
    }
}
