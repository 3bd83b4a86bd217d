//! Admission webhooks of the Cluster API managers, registered with the test API server the way a cluster
//! registers them, but addressed by URL: each provider's `config/webhook/manifests.yaml` (copied beside its
//! binary by `scripts/install-k8s.sh`) names a Service (`webhook-service` in `system`, which kustomize rewrites
//! in a release), and here no Service can route to a process, so each `clientConfig` becomes
//! `url: https://127.0.0.1:<the manager's webhook port><the webhook's path>` with the test CA as `caBundle`.
//!
//! Without them the objects keep none of the defaults the providers' webhooks set (CAPA's `identityRef`, its
//! cloud-init secrets backend), and nothing refuses what the providers refuse (an AWSMachineTemplate's
//! changed spec): the tests need both.
//!
//! Neighbours: [`super`] calls [`register`] once per manager, before starting it.

use anyhow::Context as _;
use base64::Engine as _;
use kube::Client;
use serde_json::{json, Value};

use crate::apiserver::{apply_yaml, documents, TEST_MANAGER};

/// Registers every webhook of `manifests` (one provider's `manifests.yaml`) for the manager named `provider`
/// listening on `port` with a certificate `ca_pem` issued; the configurations are renamed `<provider>-<name>`
/// (every provider's file calls them the same). Returns how many webhooks were registered.
pub(super) async fn register(
    client: &Client,
    provider: &str,
    manifests: &str,
    port: u16,
    ca_pem: &str,
) -> anyhow::Result<usize> {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut count = 0;
    for mut config in documents(manifests)? {
        let name = config["metadata"]["name"].as_str().context("a webhook configuration without a name")?;
        config["metadata"] = json!({ "name": format!("{provider}-{name}") });
        let webhooks =
            config["webhooks"].as_array_mut().context("a webhook configuration without webhooks")?;
        for webhook in webhooks.iter_mut() {
            let path = webhook["clientConfig"]["service"]["path"]
                .as_str()
                .with_context(|| format!("webhook {} has no service path", webhook["name"]))?
                .to_owned();
            webhook["clientConfig"] =
                json!({ "url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca_bundle });
            count += 1;
        }
        apply_yaml(client, &serde_json::to_string(&config)?, TEST_MANAGER, None)
            .await
            .with_context(|| format!("register {provider}'s webhooks"))?;
    }
    Ok(count)
}

/// `crd` with `labels` added to its metadata (the contract labels a provider's kustomization adds to its CRDs
/// in a release, which Cluster API reads to choose the version of a referenced object).
pub(super) fn labelled(mut crd: Value, labels: &[(&str, &str)]) -> Value {
    for (key, value) in labels {
        crd["metadata"]["labels"][*key] = json!(value);
    }
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_added_beside_existing_ones() {
        let crd = json!({ "metadata": { "name": "x", "labels": { "a": "b" } } });
        let out = labelled(crd, &[("cluster.x-k8s.io/v1beta1", "v1beta1_v1beta2")]);
        assert_eq!(
            out["metadata"]["labels"],
            json!({ "a": "b", "cluster.x-k8s.io/v1beta1": "v1beta1_v1beta2" })
        );
        let bare = labelled(json!({ "metadata": { "name": "y" } }), &[("k", "v")]);
        assert_eq!(bare["metadata"]["labels"], json!({ "k": "v" }));
    }
}
