//! The cluster a tenant's Kafka runs on, as the controller reaches it: the management cluster itself for
//! `isolation: namespace`, its own cluster through the Cluster API `<id>-kubeconfig` Secret for
//! `isolation: cluster`. What the controller reads there: Strimzi's CA Secrets ([`crate::upstream`]) and
//! Strimzi's `Kafka`, whose status says whether the tenant serves ([`crate::strimzi::status`]).
//!
//! Neighbours: [`crate::reconcile`] makes one [`client`] per publish, asks [`kafka`] through it before it calls
//! a tenant Ready, and [`crate::upstream`] reads the CAs through the same client.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::Client;
use serde_json::Value;

use crate::crd::Isolation;
use crate::names::{kafka_namespace, kubeconfig_secret, namespace, KAFKA_RELEASE};

/// Why the tenant's cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TenantClusterError {
    /// A Kubernetes call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// Strimzi's `Kafka` could not be read as JSON.
    #[error("Strimzi's Kafka unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// The tenant cluster's kubeconfig secret is unusable.
    #[error("kubeconfig of tenant cluster {tenant}: {message}")]
    Kubeconfig {
        /// The tenant.
        tenant: String,
        /// What was wrong.
        message: String,
    },
}

/// A client for the cluster the tenant's Kafka runs on; `Err(why)` while its kubeconfig secret does not
/// exist yet.
pub async fn client(
    management: &Client,
    tenant: &str,
    isolation: Isolation,
) -> Result<Result<Client, String>, TenantClusterError> {
    if isolation == Isolation::Namespace {
        return Ok(Ok(management.clone()));
    }
    let ns = namespace(tenant);
    let name = kubeconfig_secret(tenant);
    let secrets: Api<Secret> = Api::namespaced(management.clone(), &ns);
    let Some(secret) = secrets.get_opt(&name).await? else {
        return Ok(Err(format!("Secret {ns}/{name} (the tenant cluster's kubeconfig) not created yet")));
    };
    let bad = |message: String| TenantClusterError::Kubeconfig { tenant: tenant.into(), message };
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

/// Strimzi's `Kafka` of the tenant (`kaas` in its Kafka namespace), read through `cluster` (the [`client`] of
/// the cluster it runs on), as the API server returns it; `Err(why)` while Strimzi's kind or the object is not
/// there yet.
pub async fn kafka(
    cluster: &Client,
    tenant: &str,
    isolation: Isolation,
) -> Result<Result<Value, String>, TenantClusterError> {
    let ns = kafka_namespace(tenant, isolation);
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("kafka.strimzi.io", "v1", "Kafka"));
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.clone(), &ns, &resource);
    match api.get_opt(KAFKA_RELEASE).await {
        Ok(Some(kafka)) => Ok(Ok(serde_json::to_value(kafka)?)),
        Ok(None) => Ok(Err(format!("Strimzi's Kafka {ns}/{KAFKA_RELEASE} not created yet"))),
        // The kind itself is not served until Strimzi's release has installed its CRDs.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Err(
            "Strimzi's Kafka kind (kafka.strimzi.io/v1) not served on the tenant's cluster yet".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
