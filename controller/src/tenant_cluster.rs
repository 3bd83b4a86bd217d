//! The cluster a tenant's Kafka runs on, as the controller reaches it: the management cluster itself for
//! `isolation: namespace`, its own cluster through the Cluster API `<id>-kubeconfig` Secret for
//! `isolation: cluster`. What the controller reads there: Strimzi's CA Secrets ([`crate::upstream`]) and
//! Strimzi's `Kafka`, whose status says whether the tenant serves ([`crate::strimzi::status`]).
//!
//! Neighbours: [`crate::reconcile`] makes one [`client`] per publish, asks [`kafka`] through it before it calls
//! a tenant Ready, and [`crate::upstream`] reads the CAs through the same client; [`kubeconfig`] says which
//! kubeconfigs [`client`] uses.

pub mod kubeconfig;

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
}

/// A client for the cluster the tenant's Kafka runs on; `Err(why)` while its kubeconfig secret does not
/// exist yet or is not one the controller uses ([`kubeconfig::admit`]: Cluster API writes it again, and the
/// tenant's status names what was wrong until then).
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
    let bad =
        |message: String| Ok(Err(format!("Secret {ns}/{name} (the tenant cluster's kubeconfig): {message}")));
    let Some(text) = secret.data.as_ref().and_then(|d| d.get("value")) else {
        return bad("no key `value`".into());
    };
    let Ok(text) = std::str::from_utf8(&text.0) else { return bad("not UTF-8".into()) };
    let kubeconfig = match Kubeconfig::from_yaml(text) {
        Ok(kubeconfig) => kubeconfig,
        Err(e) => return bad(e.to_string()),
    };
    if let Err(refused) = kubeconfig::admit(&kubeconfig) {
        return bad(refused);
    }
    let config = match kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await {
        Ok(config) => config,
        Err(e) => return bad(e.to_string()),
    };
    match Client::try_from(config) {
        Ok(client) => Ok(Ok(client)),
        Err(e) => bad(e.to_string()),
    }
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
