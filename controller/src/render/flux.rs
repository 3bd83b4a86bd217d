//! Flux objects: the tenant's `HelmRelease` of `charts/kaas` (with [`super::values`] as its values) and, on
//! a tenant's own cluster, the platform components it needs first, each a `HelmRepository` and a `HelmRelease`
//! installed through the tenant's kubeconfig (from their upstream Helm repositories, or all from the platform's
//! mirror, [`Platform::component_charts`]). Every release retries failures and corrects drift. Pure.
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
        "install": { "createNamespace": true },
        "chart": { "spec": {
            "chart": p.chart_path,
            // The chart's version stays 0.1.0 while its templates change: a new Git revision of the chart is
            // what must roll out (the default, ChartVersion, never would; helm-controller v1.4.0
            // api/v2/helmrelease_types.go:373).
            "reconcileStrategy": "Revision",
            "sourceRef": { "kind": "GitRepository", "name": p.chart_source, "namespace": "flux-system" },
        }},
        "values": chart_values(t, plan, p),
    });
    if t.spec.isolation == Isolation::Cluster {
        through_kube_config(&mut spec, tenant);
        // Kafka's custom resources need the Strimzi operator's CRDs, its volumes the EBS CSI driver, its
        // PodMonitor the Prometheus Operator's CRDs.
        spec["dependsOn"] = json!(["strimzi", "aws-ebs-csi-driver", "prometheus-operator-crds"]
            .map(|c| json!({ "name": format!("{tenant}-{c}") })));
    }
    retry_and_correct(&mut spec);
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

/// Installs the release into the tenant's cluster through the kubeconfig Cluster API publishes. Helm's
/// storage (the release Secrets) goes to the target namespace there: without `storageNamespace`
/// helm-controller uses the HelmRelease's own namespace (helm-controller v1.4.0,
/// api/v2/helmrelease_types.go:1358 `GetStorageNamespace`), `kaas-<id>`, which exists only on the management
/// cluster, and nothing installs.
fn through_kube_config(spec: &mut Value, tenant: &str) {
    spec["kubeConfig"] = json!({ "secretRef": { "name": kubeconfig_secret(tenant), "key": "value" } });
    spec["storageNamespace"] = spec["targetNamespace"].clone();
}

/// What every release does on failure and drift. A failed install or upgrade is retried every two minutes
/// (`RetryOnFailure`, helm-controller v1.4.0 api/v2/helmrelease_types.go:576; the default
/// `RemediateOnFailure` with 0 retries stalls the release until its spec changes), each action given 15
/// minutes (the default 5 is less than new workers take to join and run the operators and CSI driver that
/// come first); drift detection puts back objects changed by hand on the target cluster.
fn retry_and_correct(spec: &mut Value) {
    spec["timeout"] = json!("15m");
    let retry = json!({ "name": "RetryOnFailure", "retryInterval": "2m" });
    spec["install"]["strategy"] = retry.clone();
    spec["upgrade"]["strategy"] = retry;
    spec["driftDetection"] = json!({ "mode": "enabled" });
}

/// Checks a [`Platform::component_charts`] URL: an HTTP(S) Helm repository (Flux reads its `index.yaml`), with a
/// host and nothing a URL cannot carry. OCI registries are refused: one OCI URL names one chart, not a
/// repository of them.
pub fn component_charts_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(format!("{url:?}: a Helm repository URL starts with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?}: no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?}: contains white space"));
    }
    Ok(url.to_owned())
}

/// One platform component of a tenant cluster: an upstream Helm chart installed through the tenant's kubeconfig.
struct Component {
    /// Release name, and the suffix of the Flux objects' names (`<tenant>-<short>`).
    short: &'static str,
    chart: &'static str,
    version: String,
    /// The upstream repository, unless the platform mirrors the charts.
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
    let bootstrap = p.proxy_bootstrap(tenant, Isolation::Cluster);
    let bootstrap_host = bootstrap.rsplit_once(':').map_or(bootstrap.as_str(), |(host, _)| host);
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
            // `extraVolumeTags`: every volume the driver makes on the tenant's cluster carries its tenant, whatever
            // StorageClass (an existing class's parameters can never change; charts/kaas storageclass.yaml).
            values: json!({ "controller": {
                "replicaCount": 2,
                "extraVolumeTags": { "kaas.dev/tenant": tenant },
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
            // Every pod Strimzi makes meets the restricted Pod Security Standard (RestrictedPodSecurityProvider,
            // selected by this name: Strimzi 1.2.0 ClusterOperatorConfig and its PodSecurityProfilesST).
            values: json!({
                "watchAnyNamespace": true,
                "extraEnvs": [{ "name": "STRIMZI_POD_SECURITY_PROVIDER_CLASS", "value": "restricted" }],
            }),
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
        // Node drains (a Kubernetes upgrade, a replaced machine) evict no broker: Strimzi Drain Cleaner denies
        // the eviction and has Strimzi roll the broker itself, once its partitions stay in sync without it
        // (drain-cleaner 1.6.0 README, "deny eviction", the chart's default). On the control plane, so draining
        // workers never takes it down; two replicas for the control plane's own rollouts; its webhook's
        // certificate from cert-manager.
        Component {
            short: "strimzi-drain-cleaner",
            chart: "strimzi-drain-cleaner",
            version: "1.6.0".into(),
            url: "oci://quay.io/strimzi-helm",
            oci: true,
            namespace: "strimzi-drain-cleaner",
            values: json!({
                "replicaCount": 2,
                "podDisruptionBudget": { "create": true, "minAvailable": 1 },
                // helm-controller creates the target namespace; the chart only names it.
                "namespace": { "create": false, "name": "strimzi-drain-cleaner" },
                "certManager": { "create": true },
                "nodeSelector": { "node-role.kubernetes.io/control-plane": "" },
                "tolerations": [
                    { "key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule" },
                ],
            }),
            after: &["strimzi", "cert-manager"],
        },
        Component {
            short: "external-dns",
            chart: "external-dns",
            version: "1.19.0".into(),
            url: "https://kubernetes-sigs.github.io/external-dns/",
            oci: false,
            namespace: "external-dns",
            // On the control plane, whose instance profile has the platform's Route 53 policy (aws-account.md).
            // It publishes names at or under the bootstrap's, from the brokers' Services alone: `domainFilters`
            // keeps a Service annotated with another tenant's name (or any other) from being published at all.
            // The filter is narrower than the Route 53 zone holding it, which external-dns then skips unless
            // told to match the zone as the filter's parent (`--aws-zone-match-parent`, off by default: its
            // flags reference; without it no zone matches and nothing is ever published).
            values: json!({
                "provider": { "name": "aws" }, "policy": "upsert-only", "txtOwnerId": tenant,
                "sources": ["service"], "domainFilters": [bootstrap_host],
                "extraArgs": ["--aws-zone-match-parent"],
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
        let mut repo = json!({ "interval": "1h", "url": p.component_charts.as_deref().unwrap_or(c.url) });
        if c.oci && p.component_charts.is_none() {
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
            "install": { "createNamespace": true, "crds": "CreateReplace" },
            "upgrade": { "crds": "CreateReplace" },
            "chart": { "spec": { "chart": c.chart, "version": c.version, "sourceRef": { "kind": "HelmRepository", "name": name } } },
            "values": c.values,
        });
        through_kube_config(&mut spec, tenant);
        retry_and_correct(&mut spec);
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::tests::example;
    use super::super::{render, Platform};
    use super::component_charts_url;

    fn releases(name: &str, p: &Platform) -> Vec<Value> {
        let objects = render(&example(name), p).expect("renders");
        objects.into_iter().filter(|o| o["kind"] == "HelmRelease").collect()
    }

    /// helm-controller keeps a release's Helm storage in `spec.storageNamespace`, else in the HelmRelease's own
    /// namespace, on the cluster it installs into (helm-controller v1.4.0, api/v2/helmrelease_types.go:1358
    /// `GetStorageNamespace`): through a kubeconfig that is `kaas-<id>` on the tenant's cluster, which does
    /// not exist there. The target namespace does (`createNamespace`).
    #[test]
    fn releases_through_a_kubeconfig_keep_helm_storage_in_their_target_namespace() {
        let all = releases("acme", &Platform::default());
        assert_eq!(all.len(), 9);
        for r in &all {
            assert!(r["spec"]["kubeConfig"].is_object(), "{}", r["metadata"]["name"]);
            assert_eq!(
                r["spec"]["storageNamespace"], r["spec"]["targetNamespace"],
                "{}",
                r["metadata"]["name"]
            );
        }
        // On the shared cluster the release's own namespace exists: nothing to move.
        for r in releases("beta", &Platform::default()) {
            assert!(r["spec"].get("storageNamespace").is_none());
        }
    }

    /// external-dns on a tenant's cluster publishes the bootstrap name and nothing else: a Service there annotated
    /// with another tenant's name (or any name) is outside its domain filter and never reaches Route 53.
    #[test]
    fn external_dns_publishes_only_the_tenants_bootstrap_name() {
        let mut p = Platform::default();
        let dns = |p: &Platform| {
            let all = releases("acme", p);
            let r = all.iter().find(|r| r["spec"]["releaseName"] == "external-dns").expect("external-dns");
            (r["spec"]["values"]["domainFilters"].clone(), r["spec"]["values"]["sources"].clone())
        };
        let id = crate::names::tenant_id_of(&example("acme"));
        let want = serde_json::json!([format!("kafka-bootstrap.{id}.internal.kaas.dev")]);
        assert_eq!(dns(&p), (want, serde_json::json!(["service"])));
        // The zone (internal.kaas.dev) is the filter's parent: matched only with this flag.
        let all = releases("acme", &p);
        let r = all.iter().find(|r| r["spec"]["releaseName"] == "external-dns").expect("external-dns");
        assert_eq!(r["spec"]["values"]["extraArgs"], serde_json::json!(["--aws-zone-match-parent"]));
        p.cluster_bootstrap = "{tenant}.kafka.example.com:443".into();
        assert_eq!(dns(&p).0, serde_json::json!([format!("{id}.kafka.example.com")]));
    }

    /// Every EBS volume made on a tenant's cluster carries its tenant, also under a StorageClass made before
    /// classes were tagged (whose parameters can never change).
    #[test]
    fn every_volume_on_a_tenant_cluster_carries_its_tenant() {
        let all = releases("acme", &Platform::default());
        let csi = all.iter().find(|r| r["spec"]["releaseName"] == "aws-ebs-csi-driver").expect("EBS CSI");
        let id = crate::names::tenant_id_of(&example("acme"));
        assert_eq!(
            csi["spec"]["values"]["controller"]["extraVolumeTags"],
            serde_json::json!({ "kaas.dev/tenant": id })
        );
    }

    /// A drained node's brokers are rolled by Strimzi, not evicted: Drain Cleaner is installed after the
    /// operator and cert-manager (its webhook certificate), on the control plane, which worker drains never
    /// take it from.
    #[test]
    fn node_drains_leave_brokers_to_strimzi_through_drain_cleaner() {
        let all = releases("acme", &Platform::default());
        let cleaner =
            all.iter().find(|r| r["spec"]["releaseName"] == "strimzi-drain-cleaner").expect("Drain Cleaner");
        let id = crate::names::tenant_id_of(&example("acme"));
        let after: Vec<String> = ["strimzi", "cert-manager"].iter().map(|c| format!("{id}-{c}")).collect();
        assert_eq!(
            cleaner["spec"]["dependsOn"],
            serde_json::json!([{ "name": after[0] }, { "name": after[1] }])
        );
        let values = &cleaner["spec"]["values"];
        assert_eq!(values["certManager"]["create"], true);
        assert_eq!(values["namespace"]["create"], false, "helm-controller makes the target namespace");
        assert_eq!(values["nodeSelector"]["node-role.kubernetes.io/control-plane"], "");
        assert!(values["replicaCount"].as_u64() >= Some(2));
        assert!(
            values.get("env").is_none(),
            "the chart's default: evictions denied, brokers rolled by Strimzi"
        );
        let kafka = all.iter().find(|r| r["spec"]["releaseName"] == "kaas").expect("kafka");
        assert!(kafka["spec"]["values"]["kafka"].get("template").is_none());
    }

    /// Every release retries a failed install or upgrade (helm-controller v1.4.0 api/v2/helmrelease_types.go:576
    /// `RetryOnFailure`, retried every `retryInterval`; with the default `RemediateOnFailure` and 0 retries a
    /// failure stalls the release until its spec changes), with a timeout that leaves new nodes time to join.
    #[test]
    fn releases_retry_failures_with_timeouts_long_enough_for_new_nodes() {
        for name in ["acme", "beta"] {
            for r in releases(name, &Platform::default()) {
                let spec = &r["spec"];
                let what = format!("{name} {}", r["metadata"]["name"]);
                assert_eq!(spec["timeout"], "15m", "{what}");
                for action in ["install", "upgrade"] {
                    assert_eq!(spec[action]["strategy"]["name"], "RetryOnFailure", "{what} {action}");
                    assert!(spec[action].get("remediation").is_none(), "{what}: retries are the strategy's");
                }
            }
        }
    }

    /// The `kaas` chart's version never changes, so with the default `reconcileStrategy: ChartVersion` an edit
    /// of the chart never reaches a tenant (helm-controller v1.4.0 api/v2/helmrelease_types.go:373); drift
    /// detection puts back what someone changed by hand on the tenant's side.
    #[test]
    fn chart_edits_roll_out_and_drift_is_corrected() {
        for name in ["acme", "beta"] {
            let all = releases(name, &Platform::default());
            let kafka = all.last().expect("the kafka release is last");
            assert_eq!(kafka["spec"]["chart"]["spec"]["reconcileStrategy"], "Revision");
            for r in &all {
                assert_eq!(r["spec"]["driftDetection"]["mode"], "enabled", "{}", r["metadata"]["name"]);
            }
        }
    }

    /// With a mirror every component's chart comes from it, as a plain HTTP(S) Helm repository; without one
    /// from the upstream repositories (Strimzi's is OCI).
    #[test]
    fn a_chart_mirror_replaces_every_components_repository() {
        let repositories = |p: &Platform| -> Vec<Value> {
            let objects = render(&example("acme"), p).expect("renders");
            objects.into_iter().filter(|o| o["kind"] == "HelmRepository").map(|o| o["spec"].clone()).collect()
        };
        let upstream = repositories(&Platform::default());
        assert_eq!(upstream.len(), 8);
        assert!(upstream.iter().any(|s| s["type"] == "oci"));
        let mirror = "https://charts.example.internal/kaas";
        let p = Platform { component_charts: Some(mirror.into()), ..Platform::default() };
        for spec in repositories(&p) {
            assert_eq!(spec["url"], mirror);
            assert!(spec.get("type").is_none(), "{spec}");
        }
    }

    #[test]
    fn chart_mirror_urls_are_http_helm_repositories() {
        for good in ["https://charts.example.internal/kaas", "http://127.0.0.1:8080/", "https://mirror:8443"]
        {
            assert_eq!(component_charts_url(good).as_deref(), Ok(good));
        }
        for (bad, says) in [
            ("oci://quay.io/strimzi-helm", "starts with https://"),
            ("charts.example.internal", "starts with https://"),
            ("https://", "no host"),
            ("https:///kaas", "no host"),
            ("http://:8080/", "no host"),
            ("https://charts.example .internal/", "white space"),
        ] {
            let e = component_charts_url(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
