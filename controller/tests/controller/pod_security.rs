//! A namespace tenant's Kafka namespace on the real API server: its Pod Security Standard, enforced by the API
//! server's own PodSecurity admission, refuses a broker pod as Strimzi's default (baseline) provider makes it
//! and admits one as its restricted provider does, which is what the controller has every tenant's operator
//! run with. The two pod shapes are Strimzi's, as its providers write them (Strimzi 1.2.0
//! `api/.../security/profiles/impl/BaselinePodSecurityProvider.java`: only `fsGroup: 0` for a pod with
//! persistent storage; `RestrictedPodSecurityProvider.java`: every container without privilege escalation,
//! non-root, `RuntimeDefault` seccomp, all capabilities dropped); no Strimzi operator runs here (none is
//! published to a registry this project builds from).

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kaas_controller::crd::{Isolation, KafkaTenant};
use kaas_controller::names::{kafka_namespace, tenant_id};
use kaas_controller::render::{render, Platform, PodSecurity};
use kaas_testsupport::apiserver::{apply_yaml, ControlPlane};
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

/// A broker pod of a KafkaNodePool, as Strimzi's `provider` makes it (`baseline` or `restricted`).
fn broker_pod(name: &str, provider: &str) -> Value {
    let mut kafka = json!({
        "name": "kafka",
        "image": "quay.io/strimzi/kafka:1.2.0-kafka-4.3.1",
        "volumeMounts": [
            { "name": "data-0", "mountPath": "/var/lib/kafka/data-0" },
            { "name": "strimzi-tmp", "mountPath": "/tmp" },
            { "name": "cluster-ca", "mountPath": "/opt/kafka/cluster-ca-certs" },
            { "name": "kafka-metrics-and-logging", "mountPath": "/opt/kafka/custom-config/" },
        ],
    });
    if provider == "restricted" {
        kafka["securityContext"] = json!({
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "seccompProfile": { "type": "RuntimeDefault" },
            "capabilities": { "drop": ["ALL"] },
        });
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "serviceAccountName": "kaas-kafka",
            "securityContext": { "fsGroup": 0 },
            "containers": [kafka],
            "volumes": [
                { "name": "data-0", "persistentVolumeClaim": { "claimName": "data-0-kaas-brokers-0" } },
                { "name": "strimzi-tmp", "emptyDir": { "medium": "Memory", "sizeLimit": "5Mi" } },
                { "name": "cluster-ca", "secret": { "secretName": "kaas-cluster-ca-cert" } },
                { "name": "kafka-metrics-and-logging", "configMap": { "name": "kaas-brokers-0" } },
            ],
        },
    })
}

/// The example namespace tenant's Kafka namespace as the controller renders it on `platform`, created on
/// `plane` with the ServiceAccount Strimzi's pods run as (which kube-controller-manager's service account
/// controller would otherwise be needed for: none runs here).
async fn kafka_namespace_of(plane: &ControlPlane, platform: &Platform) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(kaas_testsupport::repo_root().join("controller/examples/beta.yaml"))?;
    let beta: KafkaTenant = serde_norway::from_str(&text)?;
    let ns = kafka_namespace(&tenant_id("tenants", "beta"), Isolation::Namespace);
    let objects = render(&beta, platform).map_err(|e| anyhow::anyhow!("{e}"))?;
    let namespace = objects
        .iter()
        .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == ns.as_str())
        .context("the Kafka's namespace is rendered")?;
    let admin = plane.admin().await?;
    apply_yaml(&admin, &namespace.to_string(), "test", None).await?;
    let account = ServiceAccount {
        metadata: kube::api::ObjectMeta { name: Some("kaas-kafka".into()), ..Default::default() },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(admin, &ns).create(&PostParams::default(), &account).await?;
    Ok(ns)
}

async fn create(plane: &ControlPlane, ns: &str, pod: Value) -> Result<(), kube::Error> {
    let pods: Api<Pod> =
        Api::namespaced(plane.admin().await.map_err(|e| kube::Error::Service(e.into()))?, ns);
    let pod: Pod = serde_json::from_value(pod).map_err(kube::Error::SerdeError)?;
    pods.create(&PostParams::default(), &pod).await.map(drop)
}

#[tokio::test]
async fn a_tenants_kafka_namespace_admits_only_pods_strimzis_restricted_provider_makes() -> anyhow::Result<()>
{
    let plane = ControlPlane::start().await?;
    let ns = kafka_namespace_of(&plane, &Platform::default()).await?;
    let refused = create(&plane, &ns, broker_pod("kaas-brokers-0", "baseline"))
        .await
        .err()
        .context("a pod of Strimzi's baseline provider was admitted")?;
    let kube::Error::Api(status) = &refused else { anyhow::bail!("{refused}") };
    assert_eq!(status.code, 403, "{status:?}");
    for says in [
        "violates PodSecurity \"restricted:v1.34\"",
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ] {
        assert!(status.message.contains(says), "{says}: {}", status.message);
    }
    create(&plane, &ns, broker_pod("kaas-brokers-0", "restricted"))
        .await
        .context("a pod of Strimzi's restricted provider")?;

    // The named opt-out: baseline, which Strimzi's default provider meets.
    let baseline = Platform { namespace_pod_security: PodSecurity::Baseline, ..Default::default() };
    let plane = ControlPlane::start().await?;
    let ns = kafka_namespace_of(&plane, &baseline).await?;
    create(&plane, &ns, broker_pod("kaas-brokers-0", "baseline")).await.context("baseline admits it")?;
    Ok(())
}
