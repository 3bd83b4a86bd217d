//! Flux objects: the tenant's `HelmRelease` of `charts/kaas` (with [`super::values`] as its values) and, on
//! a tenant's own cluster, the platform components it needs first, each a `HelmRepository` and a `HelmRelease`
//! installed through the tenant's kubeconfig. Pure.
//!
//! Neighbours: [`super`] (the entry point) orders them after [`super::cluster_api`]'s objects.

use serde_json::{json, Value};

use super::{chart_values, meta, Plan, Platform};
use crate::crd::{Isolation, KafkaTenant};
use crate::names::{helm_release, kafka_namespace, kubeconfig_secret, KAFKA_RELEASE, TENANT_GENERATION};

/// The tenant's Flux `HelmRelease` of `charts/kaas`: into its own cluster after the components it needs, or
/// into its namespace on the shared cluster.
pub(super) fn kafka_release(t: &KafkaTenant, plan: &Plan, ns: &str, p: &Platform) -> Value {
    let tenant = &plan.tenant;
    let mut spec = json!({
        "interval": "10m",
        "releaseName": KAFKA_RELEASE,
        "targetNamespace": kafka_namespace(tenant, t.spec.isolation),
        "install": { "createNamespace": true, "remediation": { "retries": 3 } },
        "upgrade": { "remediation": { "retries": 3 } },
        "chart": { "spec": {
            "chart": p.chart_path,
            "sourceRef": { "kind": "GitRepository", "name": p.chart_source, "namespace": "flux-system" },
        }},
        "values": chart_values(t, plan, p),
    });
    if t.spec.isolation == Isolation::Cluster {
        spec["kubeConfig"] = kube_config(tenant);
        // Kafka's custom resources need the Strimzi operator's CRDs, its volumes the EBS CSI driver, its
        // PodMonitor the Prometheus Operator's CRDs.
        spec["dependsOn"] = json!(["strimzi", "aws-ebs-csi-driver", "prometheus-operator-crds"]
            .map(|c| json!({ "name": format!("{tenant}-{c}") })));
    }
    let mut metadata = meta(&helm_release(tenant), ns, tenant);
    if let Some(g) = t.metadata.generation {
        metadata["annotations"] = json!({ TENANT_GENERATION: g.to_string() });
    }
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": metadata,
        "spec": spec,
    })
}

fn kube_config(tenant: &str) -> Value {
    json!({ "secretRef": { "name": kubeconfig_secret(tenant), "key": "value" } })
}

/// One platform component of a tenant cluster: an upstream Helm chart installed through the tenant's kubeconfig.
struct Component {
    /// Release name, and the suffix of the Flux objects' names (`<tenant>-<short>`).
    short: &'static str,
    chart: &'static str,
    version: String,
    url: &'static str,
    oci: bool,
    namespace: &'static str,
    values: Value,
    /// Components installed (and Ready) before this one.
    after: &'static [&'static str],
}

/// The platform components a tenant cluster needs before its Kafka, as Flux HelmReleases of their upstream
/// charts (with their HelmRepository sources) beside the tenant's own release, installed into the tenant's
/// cluster through its kubeconfig, in order (`dependsOn`): the pod network (Cilium), the AWS cloud controller
/// manager (the kubelets run with `cloud-provider: external`, so nodes stay tainted uninitialized without it;
/// its image follows the cluster's Kubernetes minor), the EBS CSI driver (the brokers' gp3 volumes), then the
/// Strimzi operator, cert-manager, external-dns and the Prometheus Operator's CRDs (the chart's PodMonitor).
/// The CNI and the cloud controller run before any pod network exists (host network, tolerating the
/// uninitialized taint), which is why they come first. On the shared cluster of `isolation: namespace` the
/// platform runs all of them once, for every tenant.
pub(super) fn components(tenant: &str, ns: &str, p: &Platform) -> Vec<Value> {
    let minor =
        p.kubernetes_version.trim_start_matches('v').splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    let list = [
        Component {
            short: "cilium",
            chart: "cilium",
            version: "1.18.0".into(),
            url: "https://helm.cilium.io/",
            oci: false,
            namespace: "kube-system",
            values: json!({ "ipam": { "mode": "kubernetes" }, "kubeProxyReplacement": false }),
            after: &[],
        },
        Component {
            short: "aws-cloud-controller-manager",
            chart: "aws-cloud-controller-manager",
            version: "0.0.12".into(),
            url: "https://kubernetes.github.io/cloud-provider-aws",
            oci: false,
            namespace: "kube-system",
            values: json!({
                "image": { "tag": format!("v{minor}.0") },
                "args": ["--v=2", "--cloud-provider=aws", "--configure-cloud-routes=false"],
            }),
            after: &[],
        },
        Component {
            short: "aws-ebs-csi-driver",
            chart: "aws-ebs-csi-driver",
            version: "2.62.0".into(),
            url: "https://kubernetes-sigs.github.io/aws-ebs-csi-driver",
            oci: false,
            namespace: "kube-system",
            // On the control plane: only its instance profile carries the EBS calls (clusterawsadm's
            // `enableCSIPolicy` attaches them to the control-plane role alone, CAPA v2.11.1
            // cmd/clusterawsadm/cloudformation/bootstrap/csi.go; docs/controller/aws-account.md). The chart's
            // default tolerations are kept (a list replaces, chart 2.62.0 values.yaml `controller.tolerations`).
            values: json!({ "controller": {
                "replicaCount": 2,
                "nodeSelector": { "node-role.kubernetes.io/control-plane": "" },
                "tolerations": [
                    { "key": "CriticalAddonsOnly", "operator": "Exists" },
                    { "effect": "NoExecute", "operator": "Exists", "tolerationSeconds": 300 },
                    { "key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule" },
                ],
            }}),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "strimzi",
            chart: "strimzi-kafka-operator",
            version: p.strimzi_version.clone(),
            url: "oci://quay.io/strimzi-helm",
            oci: true,
            namespace: "strimzi",
            values: json!({ "watchAnyNamespace": true }),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "cert-manager",
            chart: "cert-manager",
            version: "v1.19.1".into(),
            url: "https://charts.jetstack.io",
            oci: false,
            namespace: "cert-manager",
            values: json!({ "crds": { "enabled": true } }),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "external-dns",
            chart: "external-dns",
            version: "1.19.0".into(),
            url: "https://kubernetes-sigs.github.io/external-dns/",
            oci: false,
            namespace: "external-dns",
            // On the control plane, whose instance profile has the platform's Route 53 policy (aws-account.md).
            values: json!({
                "provider": { "name": "aws" }, "policy": "upsert-only", "txtOwnerId": tenant,
                "nodeSelector": { "node-role.kubernetes.io/control-plane": "" },
                "tolerations": [
                    { "key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule" },
                ],
            }),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "prometheus-operator-crds",
            chart: "prometheus-operator-crds",
            version: "25.0.0".into(),
            url: "https://prometheus-community.github.io/helm-charts",
            oci: false,
            namespace: "kube-system",
            values: json!({}),
            after: &[],
        },
    ];
    let mut out = Vec::new();
    for c in list {
        let name = format!("{tenant}-{}", c.short);
        let mut repo = json!({ "interval": "1h", "url": c.url });
        if c.oci {
            repo["type"] = json!("oci");
        }
        out.push(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": meta(&name, ns, tenant),
            "spec": repo,
        }));
        let mut spec = json!({
            "interval": "30m",
            "releaseName": c.short,
            "targetNamespace": c.namespace,
            "kubeConfig": kube_config(tenant),
            "install": { "createNamespace": true, "crds": "CreateReplace" },
            "upgrade": { "crds": "CreateReplace" },
            "chart": { "spec": { "chart": c.chart, "version": c.version, "sourceRef": { "kind": "HelmRepository", "name": name } } },
            "values": c.values,
        });
        if !c.after.is_empty() {
            spec["dependsOn"] = c.after.iter().map(|a| json!({ "name": format!("{tenant}-{a}") })).collect();
        }
        out.push(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": meta(&name, ns, tenant),
            "spec": spec,
        }));
    }
    out
}
