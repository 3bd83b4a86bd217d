//! Reconcile tests against an in-memory Kubernetes API (kube-fake-client) and a real Git remote: create,
//! readiness and route publishing, update, delete (finalizer), a failing write, a malformed tenant.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kaas_controller::crd::KafkaTenant;
use kaas_controller::gitops::Repo;
use kaas_controller::metrics::Metrics;
use kaas_controller::reconcile::{
    ensure_route_source, reconcile, Context, RouteSource, FINALIZER, ROUTES_KEY,
};
use kaas_controller::render::{tenant_id, Platform};
use kaas_controller::watched::{Cluster, HelmRelease};
use kaas_route::TenantRoute;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_fake_client::{interceptor, ClientBuilder};
use serde::Deserialize;
use serde_json::json;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Fixture {
    tmp: tempfile::TempDir,
    url: String,
    client: Client,
    ctx: Arc<Context>,
}

impl Fixture {
    async fn new(tenants: Vec<KafkaTenant>, interceptors: Option<interceptor::Funcs>) -> Fixture {
        Self::with_routes(tenants, interceptors, RouteSource::default()).await
    }

    async fn with_routes(
        tenants: Vec<KafkaTenant>,
        interceptors: Option<interceptor::Funcs>,
        routes: RouteSource,
    ) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bare = tmp.path().join("remote.git");
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "--quiet", "--bare", "--initial-branch=main"]);
        let url = bare.to_string_lossy().into_owned();
        let repo = Repo::clone_remote(&url, &tmp.path().join("work"), "main").expect("clone");
        let mut builder = ClientBuilder::new()
            .with_resource::<KafkaTenant>()
            .with_status_subresource::<KafkaTenant>()
            .with_resource::<Cluster>()
            .with_status_subresource::<Cluster>()
            .with_resource::<HelmRelease>()
            .with_status_subresource::<HelmRelease>()
            .with_objects(tenants);
        if let Some(i) = interceptors {
            builder = builder.with_interceptor_funcs(i);
        }
        let client = builder.build().await.expect("fake client");
        let ctx = Arc::new(Context {
            client: client.clone(),
            repo: Arc::new(Mutex::new(repo)),
            platform: Platform::default(),
            routes,
            metrics: Metrics::default(),
            events: None,
        });
        Fixture { tmp, url, client, ctx }
    }

    fn tenants(&self) -> Api<KafkaTenant> {
        self.tenants_in("tenants")
    }

    fn tenants_in(&self, ns: &str) -> Api<KafkaTenant> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Reconciles the stored object, as the controller would on each change.
    async fn reconcile(&self, name: &str) -> Result<(), String> {
        self.reconcile_in("tenants", name).await
    }

    async fn reconcile_in(&self, ns: &str, name: &str) -> Result<(), String> {
        let t = self.tenants_in(ns).get(name).await.map_err(|e| e.to_string())?;
        reconcile(Arc::new(t), self.ctx.clone()).await.map(drop).map_err(|e| e.to_string())
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
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "kaas-system");
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

    /// What Flux's kustomize-controller does with the folder of tenant `tenants/<name>`, for the two objects
    /// the controller reads back: applies the committed `Cluster` and `HelmRelease` (create, or update keeping
    /// the status), so the API server sets or bumps their `metadata.generation`.
    async fn flux_apply(&self, name: &str) {
        self.flux_apply_in("tenants", name).await
    }

    async fn flux_apply_in(&self, ns: &str, name: &str) {
        let id = tenant_id(ns, name);
        for o in self.committed(&format!("tenants/{ns}/{name}")) {
            match o["kind"].as_str() {
                Some("Cluster") => {
                    apply::<Cluster>(Api::namespaced(self.client.clone(), &format!("kaas-{id}")), o).await
                }
                Some("HelmRelease") if o["metadata"]["name"] == format!("{id}-kafka") => {
                    apply::<HelmRelease>(Api::namespaced(self.client.clone(), &format!("kaas-{id}")), o).await
                }
                _ => {}
            }
        }
    }

    /// Cluster API v1.14 marking the v1beta2 `Cluster` of tenant `id` available at its current generation:
    /// the top-level `Available` condition (its `Ready` lives only under `status.deprecated.v1beta1`).
    async fn capi_available(&self, id: &str) {
        let api: Api<Cluster> = Api::namespaced(self.client.clone(), &format!("kaas-{id}"));
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
        let api: Api<HelmRelease> = Api::namespaced(self.client.clone(), &format!("kaas-{id}"));
        let name = format!("{id}-kafka");
        let generation = api.get(&name).await.expect("release applied").metadata.generation;
        let status = json!({ "status": {
            "observedGeneration": generation,
            "lastAttemptedGeneration": generation,
            "lastAttemptedRevision": "0.1.0",
            "conditions": [{ "type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
                "message": "Helm upgrade succeeded", "observedGeneration": generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z" }],
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("ready");
    }

    /// Flux applies the folder of tenant `tenants/<name>` and every controller reports its objects up.
    async fn make_ready(&self, name: &str) {
        self.make_ready_in("tenants", name).await
    }

    async fn make_ready_in(&self, ns: &str, name: &str) {
        self.flux_apply_in(ns, name).await;
        let id = tenant_id(ns, name);
        let clusters = Api::<Cluster>::namespaced(self.client.clone(), &format!("kaas-{id}"));
        if clusters.get_opt(&id).await.expect("get").is_some() {
            self.capi_available(&id).await;
        }
        self.helm_ready(&id).await;
    }
}

/// Creates `object` or updates the stored one's spec and metadata when they differ (as `kubectl apply` would,
/// status kept).
async fn apply<K>(api: Api<K>, object: serde_json::Value)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let mut new: K = serde_json::from_value(object).expect("typed");
    let name = new.meta().name.clone().expect("name");
    match api.get_opt(&name).await.expect("get") {
        None => drop(api.create(&PostParams::default(), &new).await.expect("create")),
        // Unchanged: a no-op, as on a real API server (the fake one would bump the generation anyway).
        Some(old) if same_desired_state(&old, &new) => {}
        Some(old) => {
            new.meta_mut().resource_version = old.meta().resource_version.clone();
            let mut value = serde_json::to_value(&new).expect("json");
            value["status"] = serde_json::to_value(&old).expect("json")["status"].clone();
            let new: K = serde_json::from_value(value).expect("typed");
            api.replace(&name, &PostParams::default(), &new).await.expect("replace");
        }
    }
}

fn same_desired_state<K: kube::Resource + serde::Serialize>(old: &K, new: &K) -> bool {
    let (a, b) = (serde_json::to_value(old).expect("json"), serde_json::to_value(new).expect("json"));
    a["spec"] == b["spec"]
        && old.meta().annotations == new.meta().annotations
        && old.meta().labels == new.meta().labels
}

/// An example tenant as stored after the controller's first pass, which adds the finalizer (kube's JSON patch
/// for that first step tests a missing field for null, which the fake API does not support; every later step,
/// including the finalizer's removal, runs against it).
fn example(name: &str) -> KafkaTenant {
    let text = std::fs::read_to_string(format!("{}/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR")))
        .expect("example");
    let mut t: KafkaTenant = serde_norway::from_str(&text).expect("parses");
    t.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    t
}

#[tokio::test]
async fn create_then_ready_then_update_then_delete() {
    let f = Fixture::new(vec![example("acme")], None).await;
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
    assert!(since(ready.clone(), "Ready") > provisioning_since, "Ready turned True later");
    assert!(since(ready, "Degraded") == provisioning_since, "Degraded stayed False");
    let routes = f.routes().await;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, "tenants-acme");
    assert_eq!(routes[0].bootstrap, ["kafka-bootstrap.tenants-acme.internal.kaas.dev:9093"]);
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
    let mut t = f.tenants().get("acme").await.expect("tenant");
    t.spec.throughput.ingress_mbps = 500;
    f.tenants().replace("acme", &PostParams::default(), &t).await.expect("update");
    f.reconcile("acme").await.expect("updated");
    let log = f.remote_log();
    assert_eq!(log.len(), 2, "{log:?}");
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

    // Delete. The fake API removes objects at once instead of marking them, so the object the API server
    // would hand over (deletionTimestamp set, finalizer still on) is passed in directly.
    let mut deleting = f.tenants().get("acme").await.expect("tenant");
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    reconcile(Arc::new(deleting), f.ctx.clone()).await.expect("cleanup");
    assert_eq!(f.remote_log()[0], "remove tenant tenants/acme");
    assert!(!f.remote_has("tenants/tenants/acme"));
    assert!(f.routes().await.is_empty());
    let stored = f.tenants().get("acme").await.expect("tenant");
    assert!(stored.finalizers().is_empty(), "finalizer released");
    let metrics = f.ctx.metrics.encode();
    assert!(metrics.contains("kaas_controller_reconciles_total"), "{metrics}");
}

#[tokio::test]
async fn malformed_tenant_is_degraded_and_others_keep_reconciling() {
    let mut bad = example("beta");
    bad.metadata.name = Some("broken".into());
    bad.spec.throughput.ingress_mbps = 0;
    let f = Fixture::new(vec![bad, example("beta")], None).await;
    for name in ["broken", "beta"] {
        f.reconcile(name).await.expect("apply");
    }
    let (status, reason, message) = f.condition("broken", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert!(message.contains("spec.throughput.ingressMBps"), "{message}");
    assert!(!f.remote_has("tenants/tenants/broken"), "nothing committed for the malformed tenant");
    assert!(f.remote_has("tenants/tenants/beta/manifests.yaml"));
    // Namespace isolation waits only for its HelmRelease.
    let (_, _, message) = f.condition("beta", "Provisioning").await;
    assert!(message.contains("HelmRelease kaas-tenants-beta/tenants-beta-kafka"), "{message}");
}

#[tokio::test]
async fn failing_status_write_is_an_error_counted_in_metrics() {
    let funcs = interceptor::Funcs::new()
        .patch_status(|_| Err(kube_fake_client::Error::Internal("etcd is on fire".into())));
    let f = Fixture::new(vec![example("acme")], Some(funcs)).await;
    let err = f.reconcile("acme").await.expect_err("status write fails");
    assert!(err.contains("etcd is on fire") || err.contains("kubernetes"), "{err}");
    // Labelled by what failed (the Kubernetes write), not by the finalizer that wraps every failure.
    let metrics = f.ctx.metrics.encode();
    assert!(metrics.contains("reason=\"kube\""), "{metrics}");
    assert!(!metrics.contains("reason=\"finalizer\""), "{metrics}");
}

#[tokio::test]
async fn unreachable_remote_degrades_the_tenant() {
    let f = Fixture::new(vec![example("acme")], None).await;
    std::fs::remove_dir_all(f.tmp.path().join("remote.git")).expect("remove remote");
    let err = f.reconcile("acme").await.expect_err("git fails");
    assert!(err.contains("git"), "{err}");
    let (status, reason, _) = f.condition("acme", "Degraded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "GitWriteFailed"));
}

/// Writes one of Strimzi's CA secrets of tenant id `tenant` (namespace isolation: `tenant-<id>`).
async fn strimzi_secret(f: &Fixture, tenant: &str, name: &str, key: &str, value: &str) {
    let ns = format!("tenant-{tenant}");
    let api: Api<Secret> = Api::namespaced(f.client.clone(), &ns);
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
    let api: Api<Secret> = Api::namespaced(f.client.clone(), "kaas-system");
    let data =
        api.get_opt("kaas-proxy-upstream").await.expect("get").and_then(|s| s.data).unwrap_or_default();
    data.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect()
}

#[tokio::test]
async fn strimzi_cas_reach_the_proxy_before_the_route_and_follow_rotations() {
    let routes = RouteSource {
        upstream_files: Some("/etc/kaas-proxy/upstream/{tenant}.".into()),
        ..RouteSource::default()
    };
    let f = Fixture::with_routes(vec![example("beta")], None, routes).await;
    f.reconcile("beta").await.expect("applied");
    f.make_ready("beta").await;
    f.reconcile("beta").await.expect("up, waiting for the CAs");
    let (status, _, message) = f.condition("beta", "Provisioning").await;
    assert_eq!(status, "True");
    assert!(message.contains("tenant-tenants-beta/kaas-cluster-ca-cert"), "{message}");
    assert!(f.routes().await.is_empty(), "no route before its files exist");

    strimzi_secret(&f, "tenants-beta", "kaas-cluster-ca-cert", "ca.crt", "cluster-ca-1").await;
    strimzi_secret(&f, "tenants-beta", "kaas-clients-ca-cert", "ca.crt", "clients-ca-1").await;
    f.reconcile("beta").await.expect("still waiting");
    assert!(f.condition("beta", "Provisioning").await.2.contains("kaas-clients-ca"), "the key is missing");
    strimzi_secret(&f, "tenants-beta", "kaas-clients-ca", "ca.key", "clients-key-1").await;
    f.reconcile("beta").await.expect("ready");
    assert_eq!(f.condition("beta", "Ready").await.0, "True");
    let files = proxy_secret(&f).await;
    assert_eq!(files.get("tenants-beta.cluster-ca.crt").map(String::as_str), Some("cluster-ca-1"));
    assert_eq!(files.get("tenants-beta.clients-ca.crt").map(String::as_str), Some("clients-ca-1"));
    assert_eq!(files.get("tenants-beta.clients-ca.key").map(String::as_str), Some("clients-key-1"));
    let route = f.routes().await.pop().expect("route published");
    assert!(route.validate().is_empty(), "{:?}", route.validate());
    let upstream = route.upstream.expect("upstream");
    assert_eq!(
        upstream.tls.map(|t| t.ca),
        Some("/etc/kaas-proxy/upstream/tenants-beta.cluster-ca.crt".into())
    );
    assert_eq!(upstream.clients_ca_key, Some("/etc/kaas-proxy/upstream/tenants-beta.clients-ca.key".into()));
    assert_eq!(route.client_ca, Some("/etc/kaas-proxy/upstream/tenants-beta.clients-ca.crt".into()));

    // Strimzi renews the cluster CA: the next reconcile carries it to the proxy.
    strimzi_secret(&f, "tenants-beta", "kaas-cluster-ca-cert", "ca.crt", "cluster-ca-2").await;
    f.reconcile("beta").await.expect("rotated");
    assert_eq!(
        proxy_secret(&f).await.get("tenants-beta.cluster-ca.crt").map(String::as_str),
        Some("cluster-ca-2")
    );

    // Deleting the tenant removes its keys (and only its keys).
    let mut deleting = f.tenants().get("beta").await.expect("tenant");
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    reconcile(Arc::new(deleting), f.ctx.clone()).await.expect("cleanup");
    assert!(proxy_secret(&f).await.is_empty(), "{:?}", proxy_secret(&f).await);
}

/// The object the API server hands over once `deletionTimestamp` is set (the fake API removes at once).
fn deleting(mut t: KafkaTenant) -> Arc<KafkaTenant> {
    t.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    Arc::new(t)
}

#[tokio::test]
async fn same_named_tenants_in_two_namespaces_stay_apart_and_deleting_one_leaves_the_other() {
    let in_ns = |ns: &str| {
        let mut t = example("acme");
        t.metadata.namespace = Some(ns.into());
        t
    };
    let f = Fixture::new(vec![in_ns("a"), in_ns("b")], None).await;
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

    let b = f.tenants_in("b").get("acme").await.expect("b/acme");
    reconcile(deleting(b), f.ctx.clone()).await.expect("cleanup");
    assert!(!f.remote_has("tenants/b/acme"), "b/acme's folder removed");
    assert!(f.remote_has("tenants/a/acme/manifests.yaml"), "a/acme's folder kept");
    let routes: Vec<String> = f.routes().await.into_iter().map(|r| r.name).collect();
    assert_eq!(routes, ["a-acme"], "a/acme's route kept");
    assert_eq!(f.remote_log()[0], "remove tenant b/acme");
}

#[tokio::test]
async fn the_route_source_exists_before_any_tenant_and_is_left_alone_after() {
    let f = Fixture::new(vec![example("beta")], None).await;
    let source = RouteSource::default();
    ensure_route_source(&f.client, &source).await.expect("created");
    let api: Api<ConfigMap> = Api::namespaced(f.client.clone(), "kaas-system");
    let cm = api.get_opt("kaas-proxy-routes").await.expect("get").expect("the proxy can mount it");
    let text = cm.data.expect("data").remove(ROUTES_KEY).expect("tenants.yaml");
    assert_eq!(serde_norway::from_str::<Vec<TenantRoute>>(&text).expect("a list"), []);
    f.reconcile("beta").await.expect("applied");
    f.make_ready("beta").await;
    f.reconcile("beta").await.expect("ready");
    ensure_route_source(&f.client, &source).await.expect("again");
    assert_eq!(f.routes().await.len(), 1, "a restart keeps the published routes");
}

#[tokio::test]
async fn a_client_ca_template_alone_requires_certificates_from_strimzis_clients_ca() {
    let routes = RouteSource {
        client_ca: Some("/etc/kaas-proxy/upstream/{tenant}.clients-ca.crt".into()),
        ..RouteSource::default()
    };
    let f = Fixture::with_routes(vec![example("beta")], None, routes).await;
    f.reconcile("beta").await.expect("applied");
    f.make_ready("beta").await;
    f.reconcile("beta").await.expect("up, waiting for the CAs");
    assert!(f.routes().await.is_empty(), "no route naming a CA file the proxy does not have");
    for (secret, key) in [
        ("kaas-cluster-ca-cert", "ca.crt"),
        ("kaas-clients-ca-cert", "ca.crt"),
        ("kaas-clients-ca", "ca.key"),
    ] {
        strimzi_secret(&f, "tenants-beta", secret, key, &format!("{secret}-1")).await;
    }
    f.reconcile("beta").await.expect("ready");
    assert_eq!(
        proxy_secret(&f).await.get("tenants-beta.clients-ca.crt").map(String::as_str),
        Some("kaas-clients-ca-cert-1")
    );
    let route = f.routes().await.pop().expect("route published");
    assert_eq!(route.client_ca, Some("/etc/kaas-proxy/upstream/tenants-beta.clients-ca.crt".into()));
    assert!(route.validate().is_empty(), "{:?}", route.validate());
}
