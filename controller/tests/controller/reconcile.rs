//! Reconcile tests: the controller's `reconcile` called in-process, as its watch would call it, against a real
//! Kubernetes API server (etcd + kube-apiserver, `kaas_testsupport::apiserver`) with the real CRDs, and a real Git
//! remote: the finalizer the controller adds itself, readiness from the status fields Cluster API and Flux
//! publish, route publishing, update, deletion through the finalizer, a status write the server forbids, a
//! malformed tenant, Strimzi's CAs reaching the proxy, a tenant whose Cluster API or Flux kind the server does
//! not serve. The `kaas-controller run` binary, RBAC and leader election are [`crate::apiserver`]'s.

// The stand-ins for Flux and helm-controller the API-server tests use too.
use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kaas_controller::crd::KafkaTenant;
use kaas_controller::gitops::Repo;
use kaas_controller::metrics::Metrics;
use kaas_controller::names::tenant_id;
use kaas_controller::reconcile::{
    ensure_route_source, reconcile, Context, RouteSource, FINALIZER, ROUTES_KEY,
};
use kaas_controller::render::Platform;
use kaas_controller::upstream::intermediate;
use kaas_controller::watched::Cluster;
use kaas_route::TenantRoute;
use kaas_testsupport::apiserver::{apply_yaml, client_from, ControlPlane, TEST_MANAGER};
use kaas_testsupport::capi::workload_kubeconfig;
use kaas_testsupport::certs::strimzi_ca;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

fn git(dir: &Path, args: &[&str]) -> String {
    kaas_testsupport::git(Some(dir), args).unwrap_or_else(|e| panic!("git {args:?}: {e:#}"))
}

struct Fixture {
    tmp: tempfile::TempDir,
    url: String,
    /// The tests' own client (system:masters), for what Flux, Cluster API and Strimzi would write.
    admin: Client,
    ctx: Arc<Context>,
    plane: ControlPlane,
}

/// Which upstream CRDs (`../shared/crds/`) the API server serves.
enum Upstream {
    /// Every one: Cluster API, CAPA, Flux, Strimzi.
    All,
    /// Only these files, as a platform where something is not installed.
    Only(&'static [&'static str]),
}

/// Who the reconciler runs as.
enum As {
    /// An identity RBAC allows everything.
    Admin,
    /// A service account that may read and write tenants but not their `status` subresource.
    NoStatusWrites,
}

impl Fixture {
    async fn new(tenants: Vec<KafkaTenant>) -> Fixture {
        Self::with(tenants, RouteSource::default(), As::Admin).await
    }

    async fn with(tenants: Vec<KafkaTenant>, routes: RouteSource, who: As) -> Fixture {
        Self::serving(tenants, routes, who, Upstream::All).await
    }

    async fn serving(tenants: Vec<KafkaTenant>, routes: RouteSource, who: As, upstream: Upstream) -> Fixture {
        let plane = ControlPlane::start().await.expect("control plane");
        match upstream {
            Upstream::All => drop(plane.install_upstream_crds().await.expect("upstream CRDs")),
            Upstream::Only(files) => {
                for file in files {
                    let path = kaas_testsupport::repo_root().join("../shared/crds").join(file);
                    let yaml = std::fs::read_to_string(&path).expect("an upstream CRD");
                    plane.install_crds(&yaml).await.expect("the upstream CRD");
                }
            }
        }
        let crd = std::fs::read_to_string(
            kaas_testsupport::repo_root().join("charts/kaas-controller/crds/kafkatenant.yaml"),
        )
        .expect("the generated CRD");
        plane.install_crds(&crd).await.expect("the KafkaTenant CRD");
        let admin = plane.admin().await.expect("admin client");
        let mut namespaces = vec!["kaas-system".to_owned()];
        for t in &tenants {
            let ns = t.namespace().expect("a namespaced tenant");
            if !namespaces.contains(&ns) {
                namespaces.push(ns);
            }
        }
        for ns in &namespaces {
            plane.namespace(ns).await.expect("namespace");
        }
        for t in tenants {
            let api: Api<KafkaTenant> = Api::namespaced(admin.clone(), &t.namespace().expect("namespace"));
            api.create(&PostParams::default(), &t).await.expect("the server accepts the tenant");
        }
        let client = match who {
            As::Admin => admin.clone(),
            As::NoStatusWrites => {
                let rbac = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: tenants-but-not-status }
rules:
  - { apiGroups: [kaas.dev], resources: [kafkatenants], verbs: [get, list, watch, patch, update] }
  - { apiGroups: [""], resources: [configmaps, secrets, namespaces], verbs: [get, list, watch, create, patch, update] }
  - { apiGroups: [cluster.x-k8s.io], resources: [clusters], verbs: [get, list, watch] }
  - { apiGroups: [helm.toolkit.fluxcd.io], resources: [helmreleases], verbs: [get, list, watch] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: tenants-but-not-status }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: tenants-but-not-status }
subjects: [{ kind: ServiceAccount, name: reconciler, namespace: kaas-system }]
"#;
                apply_yaml(&admin, rbac, TEST_MANAGER, None).await.expect("rbac");
                let kubeconfig =
                    plane.service_account("kaas-system", "reconciler").await.expect("service account");
                client_from(&kubeconfig).await.expect("service account client")
            }
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let bare = tmp.path().join("remote.git");
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "--quiet", "--bare", "--initial-branch=main"]);
        let url = bare.to_string_lossy().into_owned();
        let repo = Repo::clone_remote(&url, &tmp.path().join("work"), "main").expect("clone");
        let ctx = Arc::new(Context {
            client,
            repo: Arc::new(Mutex::new(repo)),
            platform: Platform::default(),
            routes,
            metrics: Metrics::default(),
            events: None,
            failures: Default::default(),
        });
        Fixture { tmp, url, admin, ctx, plane }
    }

    /// The fixture with `platform` in place of the default one.
    fn with_platform(mut self, platform: Platform) -> Fixture {
        let Ok(mut ctx) = Arc::try_unwrap(self.ctx) else { panic!("the context is not shared yet") };
        ctx.platform = platform;
        self.ctx = Arc::new(ctx);
        self
    }

    fn tenants(&self) -> Api<KafkaTenant> {
        self.tenants_in("tenants")
    }

    fn tenants_in(&self, ns: &str) -> Api<KafkaTenant> {
        Api::namespaced(self.admin.clone(), ns)
    }

    /// Reconciles the stored object, as the controller would on each change.
    async fn reconcile(&self, name: &str) -> Result<(), String> {
        self.reconcile_in("tenants", name).await
    }

    /// A tenant without the finalizer first gets it (kube's finalizer helper writes only that and waits for
    /// the watch to bring the object back); the next pass, as that watch event would trigger, applies it.
    async fn reconcile_in(&self, ns: &str, name: &str) -> Result<(), String> {
        let t = self.tenants_in(ns).get(name).await.map_err(|e| e.to_string())?;
        let first = !t.finalizers().iter().any(|f| f == FINALIZER);
        reconcile(Arc::new(t), self.ctx.clone()).await.map_err(|e| e.to_string())?;
        if first {
            let t = self.tenants_in(ns).get(name).await.map_err(|e| e.to_string())?;
            assert!(t.finalizers().iter().any(|f| f == FINALIZER), "the controller added its finalizer");
            reconcile(Arc::new(t), self.ctx.clone()).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Deletes the tenant: the server only marks it (the finalizer holds it); the controller's pass removes
    /// the route and the folder. Objects of the tenant still on the server (applied by Flux) keep it, `Deleting`
    /// True, until Flux prunes them (done here as Flux would once the folder is gone); then the next pass
    /// releases the finalizer and the object is gone. Returns whether it had to wait.
    async fn delete_in(&self, ns: &str, name: &str) -> bool {
        let api = self.tenants_in(ns);
        api.delete(name, &DeleteParams::default()).await.expect("delete");
        let marked = api.get(name).await.expect("held by the finalizer");
        assert!(marked.metadata.deletion_timestamp.is_some(), "marked for deletion");
        reconcile(Arc::new(marked), self.ctx.clone()).await.expect("cleanup");
        let waited = match api.get_opt(name).await.expect("get") {
            None => false,
            Some(held) => {
                let status = held.status.expect("status");
                let c = status.conditions.iter().find(|c| c.type_ == "Deleting").expect("Deleting");
                assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "WaitingForTeardown"), "{c:?}");
                assert!(!self.remote_has(&format!("tenants/{ns}/{name}")), "the folder goes first, for Flux");
                self.flux_prune(ns, name).await;
                let held = api.get(name).await.expect("still held");
                reconcile(Arc::new(held), self.ctx.clone()).await.expect("released");
                true
            }
        };
        assert!(api.get_opt(name).await.expect("get").is_none(), "gone once the finalizer is released");
        waited
    }

    /// What Flux does once a tenant's folder left Git: prunes the objects it had applied from it.
    async fn flux_prune(&self, ns: &str, name: &str) {
        common::flux_prune(&self.admin, &tenant_id(ns, name)).await.expect("prune");
    }

    fn remote_log(&self) -> Vec<String> {
        let check = self.tmp.path().join("check");
        if check.exists() {
            std::fs::remove_dir_all(&check).expect("clean");
        }
        git(self.tmp.path(), &["clone", "--quiet", &self.url, &check.to_string_lossy()]);
        if git(&check, &["branch", "-r"]).trim().is_empty() {
            return Vec::new();
        }
        git(&check, &["log", "--format=%s", "origin/main"]).lines().map(str::to_owned).collect()
    }

    fn remote_has(&self, path: &str) -> bool {
        self.remote_log();
        self.tmp.path().join("check").join(path).exists()
    }

    async fn routes(&self) -> Vec<TenantRoute> {
        let api: Api<ConfigMap> = Api::namespaced(self.admin.clone(), "kaas-system");
        match api.get_opt("kaas-proxy-routes").await.expect("get") {
            Some(cm) => {
                serde_norway::from_str(cm.data.expect("data").get(ROUTES_KEY).expect("key")).expect("yaml")
            }
            None => Vec::new(),
        }
    }

    async fn condition(&self, name: &str, type_: &str) -> (String, String, String) {
        let t = self.tenants().get(name).await.expect("tenant");
        let status = t.status.expect("status");
        let c = status.conditions.iter().find(|c| c.type_ == type_).expect("condition");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    /// The tenant's rendered objects as committed to the remote.
    fn committed(&self, folder: &str) -> Vec<serde_json::Value> {
        self.remote_log();
        let path = self.tmp.path().join("check").join(folder).join("manifests.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_norway::Deserializer::from_str(&text)
            .map(|doc| serde_json::Value::deserialize(doc).expect("yaml"))
            .collect()
    }

    /// What Flux's kustomize-controller does with the folder of tenant `tenants/<name>`: server-side applies
    /// every committed object, so the API server sets or bumps each one's `metadata.generation` (and the
    /// real CRDs check them).
    async fn flux_apply(&self, name: &str) {
        self.flux_apply_in("tenants", name).await
    }

    async fn flux_apply_in(&self, ns: &str, name: &str) {
        self.remote_log();
        let path = self.tmp.path().join("check").join(format!("tenants/{ns}/{name}/manifests.yaml"));
        let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        apply_yaml(&self.admin, &yaml, "kustomize-controller", None)
            .await
            .expect("the server accepts the folder");
    }

    /// Cluster API v1.14 marking the v1beta2 `Cluster` of tenant `id` available at its current generation:
    /// the top-level `Available` condition (its `Ready` lives only under `status.deprecated.v1beta1`).
    async fn capi_available(&self, id: &str) {
        let api: Api<Cluster> = Api::namespaced(self.admin.clone(), &format!("kaas-{id}"));
        let generation = api.get(id).await.expect("cluster applied").metadata.generation;
        let status = json!({ "status": {
            "observedGeneration": generation,
            "conditions": [{ "type": "Available", "status": "True", "reason": "Available", "message": "",
                "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z" }],
            "deprecated": { "v1beta1": { "conditions": [
                { "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" }] } },
        }});
        api.patch_status(id, &PatchParams::default(), &Patch::Merge(&status)).await.expect("available");
    }

    /// Flux's helm-controller reporting the release of tenant `id` upgraded at its current generation.
    async fn helm_ready(&self, id: &str) {
        common::helm_ready(&self.admin, id).await.expect("release applied and reported ready");
    }

    /// Flux applies the folder of tenant `tenants/<name>` and every controller reports its objects up.
    async fn make_ready(&self, name: &str) {
        self.make_ready_in("tenants", name).await
    }

    async fn make_ready_in(&self, ns: &str, name: &str) {
        self.flux_apply_in(ns, name).await;
        let id = tenant_id(ns, name);
        let clusters = Api::<Cluster>::namespaced(self.admin.clone(), &format!("kaas-{id}"));
        let own_cluster = clusters.get_opt(&id).await.expect("get").is_some();
        if own_cluster {
            self.capi_available(&id).await;
        }
        self.helm_ready(&id).await;
        self.strimzi_serving(&id, own_cluster).await;
    }

    /// Strimzi reporting tenant `id`'s `Kafka` serving. A tenant on its own cluster reaches it through the
    /// `<id>-kubeconfig` Secret Cluster API publishes, here pointing back at this API server (its `kafka`
    /// namespace standing for the tenant cluster's).
    async fn strimzi_serving(&self, id: &str, own_cluster: bool) {
        let (ns, listener) =
            if own_cluster { ("kafka".to_owned(), "proxy") } else { (format!("tenant-{id}"), "tls") };
        if own_cluster {
            let secret =
                workload_kubeconfig(id, &format!("kaas-{id}"), &self.plane).expect("kubeconfig secret");
            apply_yaml(&self.admin, &secret, TEST_MANAGER, None).await.expect("kubeconfig secret");
        }
        common::strimzi_serving(&self.admin, &ns, listener).await.expect("Strimzi reports the Kafka serving");
    }
}

/// An example tenant from `controller/examples/`, as a user would apply it.
fn example(name: &str) -> KafkaTenant {
    let text = std::fs::read_to_string(format!("{}/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR")))
        .expect("example");
    serde_norway::from_str(&text).expect("parses")
}

#[tokio::test]
async fn create_then_ready_then_update_then_delete() {
    let f = Fixture::new(vec![example("acme")]).await;
    f.reconcile("acme").await.expect("applied");
    assert_eq!(f.remote_log().len(), 1, "one commit");
    assert!(f.remote_log()[0].starts_with("tenant tenants/acme: generation"));
    assert!(f.remote_has("tenants/tenants/acme/manifests.yaml"));
    let (status, reason, message) = f.condition("acme", "Provisioning").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Waiting"));
    assert!(message.contains("Cluster kaas-tenants-acme/tenants-acme"), "{message}");
    assert_eq!(f.condition("acme", "Ready").await.0, "False");
    assert!(f.routes().await.is_empty(), "no route before Ready");

    let since = |t: KafkaTenant, type_: &str| {
        let status = t.status.expect("status");
        let c = status.conditions.into_iter().find(|c| c.type_ == type_).expect("condition");
        c.last_transition_time.expect("every condition has a lastTransitionTime")
    };
    let provisioning_since = since(f.tenants().get("acme").await.expect("tenant"), "Provisioning");

    // Nothing changed: no new commit, and still provisioning since the same time.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    f.reconcile("acme").await.expect("again");
    assert_eq!(f.remote_log().len(), 1);
    assert_eq!(since(f.tenants().get("acme").await.expect("tenant"), "Provisioning"), provisioning_since);

    // Flux applied the folder and the release is Ready, but Cluster API has not made the cluster Available
    // (its deprecated v1beta1 Ready says nothing about v1beta2 availability).
    f.flux_apply("acme").await;
    f.helm_ready("tenants-acme").await;
    f.reconcile("acme").await.expect("waiting for the cluster");
    let (status, _, message) = f.condition("acme", "Provisioning").await;
    assert_eq!(status, "True", "{message}");
    assert!(message.contains("no Available condition yet"), "{message}");
    f.make_ready("acme").await;
    f.reconcile("acme").await.expect("ready");
    assert_eq!(f.condition("acme", "Ready").await.0, "True");
    let ready = f.tenants().get("acme").await.expect("tenant");
    let bootstrap = ready.status.as_ref().and_then(|s| s.bootstrap.clone());
    assert_eq!(bootstrap.as_deref(), Some("tenants-acme.kaas.example.com:9092"), "what its clients use");
    assert!(since(ready.clone(), "Ready") > provisioning_since, "Ready turned True later");
    assert!(since(ready, "Degraded") == provisioning_since, "Degraded stayed False");
    let routes = f.routes().await;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, "tenants-acme");
    assert_eq!(
        routes[0].bootstrap,
        ["kafka-bootstrap.tenants-acme.internal.kaas.dev:9094"],
        "the proxy listener"
    );
    let tenant = f.tenants().get("acme").await.expect("tenant");
    let quota = routes[0].quota.clone().expect("the route carries the tenant's quota");
    let stated = |mbps: u32| Some(u64::from(mbps) * 1_250_000);
    assert_eq!(quota.produce_bytes_per_second, stated(tenant.spec.throughput.ingress_mbps), "ingress + 25 %");
    assert_eq!(quota.fetch_bytes_per_second, stated(tenant.spec.throughput.egress_mbps), "egress + 25 %");
    let status = f.tenants().get("acme").await.expect("tenant").status.expect("status");
    let sizing = status.sizing.expect("sized");
    assert_eq!(sizing.brokers, 3);
    // The status says why: acme's 3 brokers are the minimum, and what they cost.
    let binding: Vec<_> = sizing.reasons.iter().filter(|r| r.binding).map(|r| r.limit).collect();
    assert_eq!(binding, [kaas_controller::sizing::Limit::MinimumBrokers]);
    assert!(sizing.monthly_cost.total_usd > 0.0);

    // Spec change: one more commit naming the new generation.
    let sized_before = topic_partitions(&f.committed("tenants/tenants/acme"));
    let mut t = f.tenants().get("acme").await.expect("tenant");
    t.spec.throughput.ingress_mbps = 500;
    f.tenants().replace("acme", &PostParams::default(), &t).await.expect("update");
    f.reconcile("acme").await.expect("updated");
    let log = f.remote_log();
    assert_eq!(log.len(), 2, "{log:?}");
    // Five times the throughput sizes more partitions, but a topic keeps those it was created with: `orders`
    // names none in its spec, and more would move its keys to other partitions.
    let resized =
        f.tenants().get("acme").await.expect("tenant").status.expect("status").sizing.expect("sized");
    assert!(u64::from(resized.partitions) > sized_before["orders"], "{} partitions now", resized.partitions);
    assert_eq!(
        topic_partitions(&f.committed("tenants/tenants/acme")),
        sized_before,
        "every topic's partitions kept"
    );
    let generation = f.tenants().get("acme").await.expect("tenant").metadata.generation.expect("generation");
    assert_eq!(log[0], format!("tenant tenants/acme: generation {generation}"));
    // The old release is still Ready, for the old spec: the tenant is not Ready for its new one until Flux has
    // applied the commit and helm-controller has upgraded the release at the new generation.
    let (status, _, message) = f.condition("acme", "Provisioning").await;
    assert_eq!(status, "True", "{message}");
    assert!(message.contains(&format!("tenant generation {generation}")), "{message}");
    f.flux_apply("acme").await;
    f.reconcile("acme").await.expect("applied, upgrading");
    let (status, _, message) = f.condition("acme", "Provisioning").await;
    assert_eq!(status, "True", "{message}");
    assert!(message.contains("Ready describes generation 1, not the current 2"), "{message}");
    f.helm_ready("tenants-acme").await;
    f.reconcile("acme").await.expect("upgraded");
    assert_eq!(f.condition("acme", "Ready").await.0, "True");
    assert_eq!(
        f.tenants().get("acme").await.expect("tenant").status.expect("s").observed_generation,
        Some(generation)
    );

    // Delete: the server marks the tenant; the finalizer holds it until the controller cleaned up and Flux
    // pruned its Cluster and HelmRelease.
    assert!(f.delete_in("tenants", "acme").await, "held while its cluster objects were there");
    assert_eq!(f.remote_log()[0], "remove tenant tenants/acme");
    assert!(!f.remote_has("tenants/tenants/acme"));
    assert!(f.routes().await.is_empty());
    let metrics = f.ctx.metrics.encode();
    assert!(metrics.contains("kaas_controller_reconciles_total"), "{metrics}");
}

#[tokio::test]
async fn malformed_tenant_is_degraded_and_others_keep_reconciling() {
    // The schema and CEL rules refuse most malformed tenants at the API server (apiserver.rs); an ACL on a
    // topic without a topic name is what only the controller's validation catches.
    let mut bad = example("beta");
    bad.metadata.name = Some("broken".into());
    bad.spec.users[0].acls[0].name = String::new();
    let f = Fixture::new(vec![bad, example("beta")]).await;
    for name in ["broken", "beta"] {
        f.reconcile(name).await.expect("apply");
    }
    let (status, reason, message) = f.condition("broken", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert!(message.contains("spec.users[0].acls[0].name"), "{message}");
    assert!(!f.remote_has("tenants/tenants/broken"), "nothing committed for the malformed tenant");
    assert!(f.remote_has("tenants/tenants/beta/manifests.yaml"));
    // Namespace isolation waits only for its HelmRelease.
    let (_, _, message) = f.condition("beta", "Provisioning").await;
    assert!(message.contains("HelmRelease kaas-tenants-beta/tenants-beta-kafka"), "{message}");
    // Never committed, it is deleted all the same (its finalizer does not wait on a folder that never was).
    f.delete_in("tenants", "broken").await;
    assert!(f.remote_has("tenants/tenants/beta/manifests.yaml"), "the other tenant's folder stays");
}

#[tokio::test]
async fn failing_status_write_is_an_error_counted_in_metrics() {
    let f = Fixture::with(vec![example("acme")], RouteSource::default(), As::NoStatusWrites).await;
    let err = f.reconcile("acme").await.expect_err("status write forbidden");
    assert!(err.contains("forbidden") && err.contains("kafkatenants/status"), "{err}");
    // Labelled by what failed (the Kubernetes write), not by the finalizer that wraps every failure.
    let metrics = f.ctx.metrics.encode();
    assert!(metrics.contains("reason=\"kube\""), "{metrics}");
    assert!(!metrics.contains("reason=\"finalizer\""), "{metrics}");
}

#[tokio::test]
async fn unreachable_remote_degrades_the_tenant() {
    let f = Fixture::new(vec![example("acme")]).await;
    std::fs::remove_dir_all(f.tmp.path().join("remote.git")).expect("remove remote");
    let err = f.reconcile("acme").await.expect_err("git fails");
    assert!(err.contains("git"), "{err}");
    let (status, reason, _) = f.condition("acme", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "GitWriteFailed"));
}

/// Writes one of Strimzi's CA secrets of tenant id `tenant` (namespace isolation: `tenant-<id>`).
async fn strimzi_secret(f: &Fixture, tenant: &str, name: &str, key: &str, value: &str) {
    let ns = format!("tenant-{tenant}");
    common::ensure_namespace(&f.admin, &ns).await.expect("namespace");
    let api: Api<Secret> = Api::namespaced(f.admin.clone(), &ns);
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.into());
    secret.metadata.namespace = Some(ns);
    secret.data = Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into());
    match api.get_opt(name).await.expect("get") {
        Some(old) => {
            secret.metadata.resource_version = old.metadata.resource_version;
            api.replace(name, &PostParams::default(), &secret).await.expect("replace");
        }
        None => drop(api.create(&PostParams::default(), &secret).await.expect("create")),
    }
}

async fn proxy_secret(f: &Fixture) -> BTreeMap<String, String> {
    let api: Api<Secret> = Api::namespaced(f.admin.clone(), "kaas-system");
    let data =
        api.get_opt("kaas-proxy-upstream").await.expect("get").and_then(|s| s.data).unwrap_or_default();
    data.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect()
}

/// Whether `files` holds for tenant `id` an intermediate the clients CA `clients_ca` issued, good now.
fn intermediate_of(files: &BTreeMap<String, String>, id: &str, clients_ca: &str) -> Option<String> {
    let cert = files.get(&format!("{id}.clients-ca-intermediate.crt"))?;
    files.get(&format!("{id}.clients-ca-intermediate.key"))?;
    let due = intermediate::renewal_due(cert.as_bytes(), clients_ca.as_bytes(), OffsetDateTime::now_utc());
    due.is_none().then(|| cert.clone())
}

#[tokio::test]
async fn strimzi_cas_and_an_intermediate_reach_the_proxy_before_the_route_never_the_clients_ca_key() {
    let routes = RouteSource {
        upstream_files: Some("/etc/kaas-proxy/upstream/{tenant}.".into()),
        ..RouteSource::default()
    };
    let f = Fixture::with(vec![example("beta")], routes, As::Admin).await;
    f.reconcile("beta").await.expect("applied");
    f.make_ready("beta").await;
    f.reconcile("beta").await.expect("up, waiting for the CAs");
    let (status, _, message) = f.condition("beta", "Provisioning").await;
    assert_eq!(status, "True");
    assert!(message.contains("tenant-tenants-beta/kaas-cluster-ca-cert"), "{message}");
    assert!(f.routes().await.is_empty(), "no route before its files exist");

    let (cluster_ca, _) = strimzi_ca("cluster-ca v0").expect("CA");
    let (clients_ca, clients_key) = strimzi_ca("clients-ca v0").expect("CA");
    let (_, another_key) = strimzi_ca("another").expect("CA");
    strimzi_secret(&f, "tenants-beta", "kaas-cluster-ca-cert", "ca.crt", &cluster_ca).await;
    strimzi_secret(&f, "tenants-beta", "kaas-clients-ca-cert", "ca.crt", &clients_ca).await;
    f.reconcile("beta").await.expect("still waiting");
    assert!(f.condition("beta", "Provisioning").await.2.contains("kaas-clients-ca"), "the key is missing");
    // A key that is not the clients CA's issues nothing, and says so.
    strimzi_secret(&f, "tenants-beta", "kaas-clients-ca", "ca.key", &another_key).await;
    f.reconcile("beta").await.expect("waiting on a usable key");
    let (status, _, message) = f.condition("beta", "Provisioning").await;
    assert_eq!(status, "True");
    assert!(message.contains("does not belong to the clients CA certificate"), "{message}");
    assert!(f.routes().await.is_empty() && proxy_secret(&f).await.is_empty(), "nothing published");

    strimzi_secret(&f, "tenants-beta", "kaas-clients-ca", "ca.key", &clients_key).await;
    f.reconcile("beta").await.expect("ready");
    assert_eq!(f.condition("beta", "Ready").await.0, "True");
    let files = proxy_secret(&f).await;
    assert_eq!(files.get("tenants-beta.cluster-ca.crt"), Some(&cluster_ca));
    assert_eq!(files.get("tenants-beta.clients-ca.crt"), Some(&clients_ca));
    assert!(files.values().all(|v| *v != clients_key), "the clients CA's key is in no file of the proxy");
    let first =
        intermediate_of(&files, "tenants-beta", &clients_ca).expect("an intermediate of the clients CA");
    let route = f.routes().await.pop().expect("route published");
    assert!(route.validate().is_empty(), "{:?}", route.validate());
    let upstream = route.upstream.expect("upstream");
    assert_eq!(
        upstream.tls.map(|t| t.ca),
        Some("/etc/kaas-proxy/upstream/tenants-beta.cluster-ca.crt".into())
    );
    assert_eq!(upstream.clients_ca_key, None);
    let signer = upstream.clients_ca_intermediate.expect("the intermediate signs");
    assert_eq!(
        signer.cert,
        PathBuf::from("/etc/kaas-proxy/upstream/tenants-beta.clients-ca-intermediate.crt")
    );
    assert_eq!(route.client_ca, Some("/etc/kaas-proxy/upstream/tenants-beta.clients-ca.crt".into()));

    // Strimzi renews the cluster CA: the next reconcile carries it to the proxy, and keeps the intermediate.
    let (cluster_ca_2, _) = strimzi_ca("cluster-ca v1").expect("CA");
    strimzi_secret(&f, "tenants-beta", "kaas-cluster-ca-cert", "ca.crt", &cluster_ca_2).await;
    f.reconcile("beta").await.expect("rotated");
    let files = proxy_secret(&f).await;
    assert_eq!(files.get("tenants-beta.cluster-ca.crt"), Some(&cluster_ca_2));
    assert_eq!(intermediate_of(&files, "tenants-beta", &clients_ca), Some(first.clone()), "kept while good");
    // Strimzi renews the clients CA: a new intermediate, issued by the new CA.
    let (clients_ca_2, clients_key_2) = strimzi_ca("clients-ca v1").expect("CA");
    strimzi_secret(&f, "tenants-beta", "kaas-clients-ca-cert", "ca.crt", &clients_ca_2).await;
    strimzi_secret(&f, "tenants-beta", "kaas-clients-ca", "ca.key", &clients_key_2).await;
    f.reconcile("beta").await.expect("rotated");
    let files = proxy_secret(&f).await;
    let second =
        intermediate_of(&files, "tenants-beta", &clients_ca_2).expect("issued by the new clients CA");
    assert_ne!(second, first);

    // Deleting the tenant removes its keys (and only its keys).
    f.delete_in("tenants", "beta").await;
    assert!(proxy_secret(&f).await.is_empty(), "{:?}", proxy_secret(&f).await);
}

/// helm-controller's `Ready` says the chart is applied, not that Kafka runs: a tenant is Ready, and its route
/// published, only once Strimzi says its `Kafka` serves for the current spec on the listener the proxy dials.
#[tokio::test]
async fn a_tenant_is_ready_only_when_strimzi_says_its_kafka_serves() {
    let f = Fixture::new(vec![example("beta")]).await;
    f.reconcile("beta").await.expect("applied");
    f.flux_apply_in("tenants", "beta").await;
    f.helm_ready("tenants-beta").await;
    f.reconcile("beta").await.expect("release ready, no Kafka yet");
    let (status, _, message) = f.condition("beta", "Provisioning").await;
    assert_eq!(status, "True", "{message}");
    assert!(message.contains("Kafka tenant-tenants-beta/kaas not created yet"), "{message}");
    assert!(f.routes().await.is_empty(), "no route while Kafka does not serve");

    // Strimzi refuses the cluster (here: a Kafka version it does not run), and says why.
    f.strimzi_serving("tenants-beta", false).await;
    let kafkas = common::kafkas(&f.admin, "tenant-tenants-beta");
    let refused = json!({ "status": { "conditions": [{ "type": "NotReady", "status": "True",
        "reason": "UnsupportedKafkaVersionException", "message": "Unsupported Kafka.spec.kafka.version: 3.9.0",
        "lastTransitionTime": "2026-01-01T00:00:00Z" }], "listeners": [] } });
    kafkas.patch_status("kaas", &PatchParams::default(), &Patch::Merge(&refused)).await.expect("status");
    f.reconcile("beta").await.expect("Kafka refused");
    let (status, _, message) = f.condition("beta", "Provisioning").await;
    assert_eq!(status, "True", "{message}");
    assert!(message.contains("Unsupported Kafka.spec.kafka.version: 3.9.0"), "{message}");
    assert!(f.routes().await.is_empty(), "no route while Kafka does not serve");

    // A spec change Strimzi has not reconciled yet is not served either, whatever the status said before.
    let bump = json!({ "spec": { "kafka": { "listeners": [
        { "name": "tls", "port": 9093, "type": "internal", "tls": true },
        { "name": "other", "port": 9095, "type": "internal", "tls": true }] } } });
    kafkas.patch("kaas", &PatchParams::default(), &Patch::Merge(&bump)).await.expect("spec change");
    f.reconcile("beta").await.expect("not reconciled");
    let message = f.condition("beta", "Provisioning").await.2;
    assert!(message.contains("has not reconciled generation 2 yet"), "{message}");
    f.strimzi_serving("tenants-beta", false).await;
    f.reconcile("beta").await.expect("served");
    assert_eq!(f.condition("beta", "Ready").await.0, "True");
    assert_eq!(f.routes().await.len(), 1, "the route is published once Kafka serves");
}

#[tokio::test]
async fn same_named_tenants_in_two_namespaces_stay_apart_and_deleting_one_leaves_the_other() {
    let in_ns = |ns: &str| {
        let mut t = example("acme");
        t.metadata.namespace = Some(ns.into());
        t
    };
    let f = Fixture::new(vec![in_ns("a"), in_ns("b")]).await;
    for ns in ["a", "b"] {
        f.reconcile_in(ns, "acme").await.expect("applied");
        f.make_ready_in(ns, "acme").await;
        f.reconcile_in(ns, "acme").await.expect("ready");
    }
    assert!(f.remote_has("tenants/a/acme/manifests.yaml") && f.remote_has("tenants/b/acme/manifests.yaml"));
    let a = f.committed("tenants/a/acme");
    assert!(a.iter().all(|o| o["metadata"]["labels"]["kaas.dev/tenant"] == "a-acme"), "{a:?}");
    assert_eq!(a[0]["metadata"]["name"], "kaas-a-acme", "its own management namespace");
    let routes: Vec<String> = f.routes().await.into_iter().map(|r| r.name).collect();
    assert_eq!(routes, ["a-acme", "b-acme"]);

    f.delete_in("b", "acme").await;
    assert!(!f.remote_has("tenants/b/acme"), "b/acme's folder removed");
    assert!(f.remote_has("tenants/a/acme/manifests.yaml"), "a/acme's folder kept");
    let routes: Vec<String> = f.routes().await.into_iter().map(|r| r.name).collect();
    assert_eq!(routes, ["a-acme"], "a/acme's route kept");
    assert_eq!(f.remote_log()[0], "remove tenant b/acme");
}

#[tokio::test]
async fn the_route_source_exists_before_any_tenant_and_is_left_alone_after() {
    let f = Fixture::new(vec![example("beta")]).await;
    let source = RouteSource::default();
    ensure_route_source(&f.ctx.client, &source).await.expect("created");
    let api: Api<ConfigMap> = Api::namespaced(f.admin.clone(), "kaas-system");
    let cm = api.get_opt("kaas-proxy-routes").await.expect("get").expect("the proxy can mount it");
    let text = cm.data.expect("data").remove(ROUTES_KEY).expect("tenants.yaml");
    assert_eq!(serde_norway::from_str::<Vec<TenantRoute>>(&text).expect("a list"), []);
    f.reconcile("beta").await.expect("applied");
    f.make_ready("beta").await;
    f.reconcile("beta").await.expect("ready");
    ensure_route_source(&f.ctx.client, &source).await.expect("again");
    assert_eq!(f.routes().await.len(), 1, "a restart keeps the published routes");
}

#[tokio::test]
async fn a_client_ca_template_alone_requires_certificates_from_strimzis_clients_ca() {
    let routes = RouteSource {
        client_ca: Some("/etc/kaas-proxy/upstream/{tenant}.clients-ca.crt".into()),
        ..RouteSource::default()
    };
    let f = Fixture::with(vec![example("beta")], routes, As::Admin).await;
    f.reconcile("beta").await.expect("applied");
    f.make_ready("beta").await;
    f.reconcile("beta").await.expect("up, waiting for the CAs");
    assert!(f.routes().await.is_empty(), "no route naming a CA file the proxy does not have");
    let (cluster_ca, _) = strimzi_ca("cluster-ca v0").expect("CA");
    let (clients_ca, clients_key) = strimzi_ca("clients-ca v0").expect("CA");
    for (secret, key, value) in [
        ("kaas-cluster-ca-cert", "ca.crt", &cluster_ca),
        ("kaas-clients-ca-cert", "ca.crt", &clients_ca),
        ("kaas-clients-ca", "ca.key", &clients_key),
    ] {
        strimzi_secret(&f, "tenants-beta", secret, key, value).await;
    }
    f.reconcile("beta").await.expect("ready");
    assert_eq!(proxy_secret(&f).await.get("tenants-beta.clients-ca.crt"), Some(&clients_ca));
    let route = f.routes().await.pop().expect("route published");
    assert_eq!(route.client_ca, Some("/etc/kaas-proxy/upstream/tenants-beta.clients-ca.crt".into()));
    assert!(route.validate().is_empty(), "{:?}", route.validate());
}

#[tokio::test]
async fn a_second_tenant_with_the_same_id_is_refused_and_leaves_the_first_alone() {
    // `a-b/c` and `a/b-c` both have the id `a-b-c`.
    let named = |ns: &str, name: &str| {
        let mut t = example("beta");
        t.metadata.namespace = Some(ns.into());
        t.metadata.name = Some(name.into());
        t
    };
    let f = Fixture::new(vec![named("a-b", "c"), named("a", "b-c")]).await;
    f.reconcile_in("a-b", "c").await.expect("first");
    f.make_ready_in("a-b", "c").await;
    f.reconcile_in("a-b", "c").await.expect("ready");
    f.reconcile_in("a", "b-c").await.expect("refused, not failed");
    let second = f.tenants_in("a").get("b-c").await.expect("tenant").status.expect("status");
    let degraded = second.conditions.iter().find(|c| c.type_ == "Degraded").expect("condition");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "IdConflict"));
    assert!(degraded.message.contains("tenant id a-b-c is already a-b/c's"), "{}", degraded.message);
    assert!(!f.remote_has("tenants/a/b-c"), "nothing committed for the second");
    let routes: Vec<String> = f.routes().await.into_iter().map(|r| r.name).collect();
    assert_eq!(routes, ["a-b-c"], "the first one's route");

    // Deleting the refused one leaves the first one's route; deleting the first frees the id.
    assert!(!f.delete_in("a", "b-c").await, "the owner's objects are not the refused one's to wait for");
    assert_eq!(f.routes().await.len(), 1, "the owner's route stays");
    let kept: Vec<String> = f.routes().await.into_iter().map(|r| r.name).collect();
    assert_eq!(kept, ["a-b-c"]);
    let again = named("a", "b-c");
    f.tenants_in("a").create(&PostParams::default(), &again).await.expect("again");
    f.delete_in("a-b", "c").await;
    assert!(f.routes().await.is_empty());
    f.reconcile_in("a", "b-c").await.expect("now its own");
    assert!(f.remote_has("tenants/a/b-c/manifests.yaml"), "committed once the id is free");
}

/// Flux installed but not Cluster API: the namespace-mode tenant goes on (it needs no Cluster API), the
/// cluster-mode one is `Degraded` naming the kind and API version that is not served, and its deletion
/// completes, since no `Cluster` can exist where no version of the kind is served. Without Flux either, the
/// namespace-mode tenant names the `HelmRelease`.
#[tokio::test]
async fn a_tenant_whose_apis_are_not_served_says_which_and_can_be_deleted() {
    let flux_only = Upstream::Only(&["helm.toolkit.fluxcd.io_helmreleases.yaml"]);
    let f = Fixture::serving(
        vec![example("acme"), example("beta")],
        RouteSource::default(),
        As::Admin,
        flux_only,
    )
    .await;
    for name in ["acme", "beta"] {
        f.reconcile(name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let (status, reason, message) = f.condition("acme", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ApiNotServed"), "{message}");
    assert!(message.contains("Cluster (cluster.x-k8s.io/v1beta2)"), "{message}");
    let (status, _, message) = f.condition("beta", "Provisioning").await;
    assert_eq!(status, "True", "{message}");
    assert!(message.contains("HelmRelease kaas-tenants-beta/tenants-beta-kafka"), "{message}");
    assert!(!f.delete_in("tenants", "acme").await, "nothing to wait for");

    let bare =
        Fixture::serving(vec![example("beta")], RouteSource::default(), As::Admin, Upstream::Only(&[])).await;
    bare.reconcile("beta").await.expect("apply");
    let (status, reason, message) = bare.condition("beta", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ApiNotServed"), "{message}");
    assert!(message.contains("HelmRelease (helm.toolkit.fluxcd.io/v2)"), "{message}");
    assert!(!message.contains("Cluster"), "a namespace-mode tenant needs no Cluster API: {message}");
    assert!(!bare.delete_in("tenants", "beta").await, "nothing to wait for");
}

/// A cluster tenant's `<id>-kubeconfig` that would make the controller run a command (a user `exec` plugin)
/// or send its own service-account token (`tokenFile`) to the server it names is not used: the tenant waits,
/// its status naming both, and the command never runs. Cluster API writing the Secret back as it should is
/// enough for the tenant to go on.
#[tokio::test]
async fn a_tenant_kubeconfig_that_would_run_a_command_or_read_the_controllers_files_is_refused() {
    let f = Fixture::new(vec![example("acme")]).await;
    let id = "tenants-acme";
    f.reconcile("acme").await.expect("applied");
    f.flux_apply("acme").await;
    f.capi_available(id).await;
    f.helm_ready(id).await;

    let marker = f.tmp.path().join("exec-ran");
    let admin = std::fs::read_to_string(f.plane.admin_kubeconfig()).expect("admin kubeconfig");
    // The admin's user entry, its client certificate and key replaced by a command and a file of the reader's.
    let (start, end) =
        (admin.find("client-certificate-data").expect("cert"), admin.find("\ncontexts:").expect("ctx"));
    let hostile = format!(
        "{}exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: /bin/sh\n        \
         args: [\"-c\", \"touch {}\"]\n      tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token{}",
        &admin[..start],
        marker.display(),
        &admin[end..]
    );
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{id}-kubeconfig")),
            namespace: Some(format!("kaas-{id}")),
            ..Default::default()
        },
        type_: Some("cluster.x-k8s.io/secret".into()),
        data: Some([("value".to_owned(), ByteString(hostile.into_bytes()))].into()),
        ..Default::default()
    };
    let secret = serde_json::to_string(&secret).expect("serializes");
    apply_yaml(&f.admin, &secret, TEST_MANAGER, None).await.expect("hostile kubeconfig");
    f.reconcile("acme").await.expect("waits");
    let (status, _, message) = f.condition("acme", "Provisioning").await;
    assert_eq!(status, "True", "{message}");
    for named in [format!("Secret kaas-{id}/{id}-kubeconfig"), "exec".into(), "tokenFile".into()] {
        assert!(message.contains(&named), "{named}: {message}");
    }
    assert!(!marker.exists(), "the kubeconfig's command ran");
    assert!(f.routes().await.is_empty(), "no route from a cluster read through a refused kubeconfig");

    f.strimzi_serving(id, true).await;
    f.reconcile("acme").await.expect("served");
    assert_eq!(f.condition("acme", "Ready").await.0, "True");
}

/// A namespace a new tenant's folder would create, made first by someone else, is not adopted: the tenant is
/// `Degraded` (`NamespaceTaken`) naming it and nothing is committed; once it is gone the tenant goes on. A
/// tenant already committed keeps its namespaces, an earlier version's unlabelled `tenant-<id>` included.
#[tokio::test]
async fn a_namespace_someone_else_made_first_is_not_adopted() {
    use k8s_openapi::api::core::v1::Namespace;
    let f = Fixture::new(vec![example("beta")]).await;
    let namespaces: Api<Namespace> = Api::all(f.admin.clone());
    let squatted = Namespace {
        metadata: kube::api::ObjectMeta { name: Some("tenant-tenants-beta".into()), ..Default::default() },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &squatted).await.expect("made first");
    f.reconcile("beta").await.expect("refused");
    let (status, reason, message) = f.condition("beta", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "NamespaceTaken"), "{message}");
    assert!(message.contains("namespace tenant-tenants-beta exists"), "{message}");
    assert!(f.remote_log().is_empty(), "nothing committed");

    namespaces.delete("tenant-tenants-beta", &DeleteParams::default()).await.expect("deleted");
    // No namespace controller runs here: its last step, an empty finalizer list, is made by hand.
    let mut terminating = namespaces.get("tenant-tenants-beta").await.expect("terminating");
    terminating.spec = Some(Default::default());
    namespaces
        .replace_subresource("finalize", "tenant-tenants-beta", &PostParams::default(), &terminating)
        .await
        .expect("finalized");
    assert!(namespaces.get_opt("tenant-tenants-beta").await.expect("get").is_none(), "gone");
    f.reconcile("beta").await.expect("applied");
    assert_eq!(f.remote_log().len(), 1, "committed once the namespace is gone");

    // Committed: its namespaces are its own, labelled by Flux or not (helm-controller made them before).
    let unlabelled = Namespace {
        metadata: kube::api::ObjectMeta { name: Some("tenant-tenants-beta".into()), ..Default::default() },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &unlabelled).await.expect("helm-controller's");
    f.reconcile("beta").await.expect("still applied");
    assert_ne!(f.condition("beta", "Degraded").await.0, "True");
}

/// One namespace's tenants order at most `--namespace-max-brokers` brokers together: a tenant that would take
/// its namespace over is `Degraded` (`NamespaceQuotaExceeded`) with nothing committed for it, and a tenant that
/// runs keeps its size (and its status's sizing) when it asks for more than fits.
#[tokio::test]
async fn a_namespace_orders_at_most_its_quota() {
    use kaas_controller::render::{plan, NamespaceQuota};
    let brokers = |name: &str| plan(&example(name), &Platform::default()).expect("plans").sizing.brokers;
    let (acme, beta) = (brokers("acme"), brokers("beta"));
    let quota = NamespaceQuota { max_brokers: Some(acme + beta), max_storage_gib: None };
    let f = Fixture::new(vec![example("acme"), example("beta")])
        .await
        .with_platform(Platform { namespace_quota: quota, ..Platform::default() });
    f.reconcile("acme").await.expect("applied");
    f.reconcile("beta").await.expect("applied: at the quota");
    assert_eq!(f.remote_log().len(), 2, "both committed");
    let sized = |t: KafkaTenant| t.status.and_then(|s| s.sizing).map(|s| s.brokers);
    assert_eq!(sized(f.tenants().get("beta").await.expect("beta")), Some(beta));

    // Beta asks for ten times its throughput: more brokers than its namespace has left.
    let more = json!({ "spec": { "throughput": { "ingressMBps": 50, "egressMBps": 100 } } });
    f.tenants().patch("beta", &PatchParams::default(), &Patch::Merge(&more)).await.expect("patched");
    f.reconcile("beta").await.expect("refused");
    let (status, reason, message) = f.condition("beta", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "NamespaceQuotaExceeded"), "{message}");
    assert!(message.contains(&format!("over --namespace-max-brokers {}", acme + beta)), "{message}");
    assert_eq!(f.remote_log().len(), 2, "nothing committed for the larger size");
    assert_eq!(sized(f.tenants().get("beta").await.expect("beta")), Some(beta), "it keeps its size");
}

/// Each topic's partitions in the committed Kafka release (`documents` of its folder's manifests).
fn topic_partitions(documents: &[serde_json::Value]) -> BTreeMap<String, u64> {
    let release = documents
        .iter()
        .find(|o| o["kind"] == "HelmRelease" && o["spec"]["releaseName"] == "kaas")
        .expect("the Kafka release");
    let topics = release["spec"]["values"]["topics"].as_array().expect("topics");
    topics
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or("").to_owned(), t["partitions"].as_u64().unwrap_or(0)))
        .collect()
}
