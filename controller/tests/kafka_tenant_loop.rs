//! The whole tenant loop, end to end: a `KafkaTenant` applied to a real API server → the real
//! `kaas-controller run` (the chart's arguments and RBAC) commits its folder to a real bare Git repository →
//! Flux itself (source-controller fetching that repository and the platform's charts over HTTP,
//! kustomize-controller applying `tenants/`, helm-controller installing `charts/kaas`, whose Strimzi objects
//! the real CRDs accept) → Strimzi's part (stand-in: the cluster's real CA secrets; no operator runs Kafka
//! here, the local cluster is the tenant's) → the controller marks the tenant Ready
//! and publishes its route and upstream material → the proxy reads the route ConfigMap and the upstream Secret
//! as the chart mounts them (stand-in for the kubelet: the objects' keys written to files) → a real Kafka
//! client (confluent-kafka, with a tenant user's certificate) produces and consumes through
//! `<tenant>.<domain>` on a real Apache Kafka cluster over mutual TLS with its own identity. Then an update (a
//! new generation, a new commit, a Helm upgrade, a changed route) and a delete (Flux prunes and uninstalls,
//! the proxy refuses the name, the object goes).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use common::{all_rbac, eventually, Platform, SYSTEM};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kaas_controller::reconcile::ROUTES_KEY;
use kaas_controller::render::tenant_id;
use kaas_e2e::apiserver::{apply_yaml, TEST_MANAGER};
use kaas_e2e::certs::Certs;
use kaas_e2e::flux::{self, Flux, FLUX_NAMESPACE};
use kaas_e2e::git_http::GitHttp;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::python::run_client;
use kaas_e2e::{raw, DOMAIN};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use rustls::AlertDescription;
use serde_json::json;

/// Writes `contents` to `path` through a rename, as the kubelet swaps a mounted volume's files: a reader
/// never sees half a file.
fn replace_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    Ok(std::fs::rename(tmp, path)?)
}

/// The kubelet's part: the route ConfigMap's `tenants.yaml` mounted as `routes_file`, the upstream Secret's
/// keys as files in `upstream_dir`, both kept current every 300 ms.
async fn mount(admin: Client, routes_file: PathBuf, upstream_dir: PathBuf) {
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), SYSTEM);
    let secrets: Api<Secret> = Api::namespaced(admin, SYSTEM);
    loop {
        if let Ok(Some(cm)) = maps.get_opt("kaas-proxy-routes").await {
            let text = cm.data.and_then(|d| d.get(ROUTES_KEY).cloned()).unwrap_or_default();
            let _ = replace_file(&routes_file, text.as_bytes());
        }
        if let Ok(secret) = secrets.get_opt("kaas-proxy-upstream").await {
            let data: BTreeMap<_, _> = secret.and_then(|s| s.data).unwrap_or_default();
            for (key, value) in &data {
                let _ = replace_file(&upstream_dir.join(key), &value.0);
            }
            for entry in std::fs::read_dir(&upstream_dir).into_iter().flatten().flatten() {
                if !data.contains_key(&*entry.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_goes_from_kafkatenant_to_records_through_the_proxy_and_away() -> anyhow::Result<()> {
    let cluster = KafkaCluster::start(ClusterOptions::named("tenant-beta").nodes(1))?;
    let work = tempfile::tempdir()?;
    let upstream_dir = work.path().join("upstream");
    std::fs::create_dir(&upstream_dir)?;
    let routes_file = work.path().join("tenants.yaml");
    std::fs::write(&routes_file, "[]\n")?;

    // The chart with its defaults, except where this machine differs: the tenant's Kafka is the local
    // cluster's mutual-TLS listener, and the proxy's mounts are folders here.
    let prefix = format!("{}/{{tenant}}.", upstream_dir.display());
    let values = json!({ "routes": {
        "upstreamFiles": prefix,
        "clientCaTemplate": format!("{prefix}clients-ca.crt"),
        "namespaceBootstrapTemplate": cluster.bootstrap_tls(),
    }});
    let p = Platform::start(values, all_rbac).await?;
    // The platform's Flux: its charts in one repository, the tenants' folders (kaas-controller's remote) in
    // another, both over HTTP; a Kustomization applies `tenants/` and prunes what leaves it.
    flux::publish(&kaas_e2e::repo_root(), &["charts/kaas"], &p.tmp.path().join("platform.git"))?;
    let git = GitHttp::start(p.tmp.path())?;
    let flux = Flux::start(&p.plane).await?;
    let sources = [
        flux::git_repository("kaas", &git.url("platform.git"), "main", "1m"),
        flux::git_repository("tenants", &git.url("gitops.git"), "main", "2s"),
        flux::kustomization("tenants", "tenants", "./tenants", "2s"),
    ];
    apply_yaml(&p.admin, &sources.join("---\n"), TEST_MANAGER, Some(FLUX_NAMESPACE)).await?;
    let controller = p.controller("kaas-controller-0")?;
    let mounting = tokio::spawn(mount(p.admin.clone(), routes_file.clone(), upstream_dir.clone()));

    let id = tenant_id("tenants", "beta");
    let folder = "tenants/tenants/beta";
    let certs = Certs::generate(work.path(), DOMAIN, &[&id])?;
    let settings = format!("tenants_file: {}\n", routes_file.display());
    let proxy = ProxyHandle::start_with_config(&certs, &settings, "  []\n")?;

    p.create_example("beta").await?;
    eventually("commit", Duration::from_secs(30), || async {
        Ok(Some(p.commits(folder)?).filter(|c| !c.is_empty()))
    })
    .await?;
    let read = |path: &Path| std::fs::read(path).with_context(|| path.display().to_string());
    let material =
        [read(cluster.cluster_ca_pem())?, read(cluster.clients_ca_pem())?, read(cluster.clients_ca_key())?];
    p.strimzi_cas(&id, [&material[0], &material[1], &material[2]]).await?;
    p.wait_state("beta", "Ready", 1).await.with_context(|| flux.logs())?;
    let kafkas = strimzi_objects(&p.admin, &id, "Kafka").await?;
    assert_eq!(kafkas.len(), 1, "helm-controller installed the chart's Kafka");
    assert_eq!(kafkas[0].annotations().get("meta.helm.sh/release-name").map(String::as_str), Some("kaas"));
    let release = helm_release(&p.admin, &id).await?.context("HelmRelease applied")?;
    assert!(
        release.managed_fields().iter().any(|m| m.manager.as_deref() == Some("kustomize-controller")),
        "applied by kustomize-controller"
    );

    // A tenant user's client: the bootstrap name, the platform's CA, and a certificate from the tenant's
    // clients CA (as Strimzi's User Operator issues it for a KafkaUser).
    let (cert, key) = cluster.client_cert("app")?;
    let client = |topic: &'static str, run: &'static str| {
        let (bootstrap, ca) = (proxy.bootstrap(&id), certs.ca.display().to_string());
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        tokio::task::spawn_blocking(move || {
            run_client(&[
                "roundtrip",
                "--client",
                "confluent",
                "--bootstrap",
                &bootstrap,
                "--ca",
                &ca,
                "--cert",
                &cert,
                "--key",
                &key,
                "--topic",
                topic,
                "--group",
                &format!("{topic}-g"),
                "--partitions",
                "1",
                "--count",
                "200",
                "--run",
                run,
            ])
        })
    };
    // The route reaches the proxy through the mounted file within a reload or two.
    let out = eventually("first round trip", Duration::from_secs(60), || async {
        let out = client("orders", "first").await??;
        let clean =
            |side: &str| out[side].as_array().is_some_and(|r| r.iter().all(|x| x.get("error").is_none()));
        Ok((clean("produced") && clean("consumed")).then_some(out))
    })
    .await?;
    assert_eq!(out["produced"].as_array().map(Vec::len), Some(200));
    assert_eq!(out["consumed"].as_array().map(Vec::len), Some(200), "{out}");

    // Update: more throughput is a new generation, a new commit and a new route (its quota).
    let before = p.routes().await?.unwrap_or_default();
    let patch = json!({ "spec": { "throughput": { "ingressMBps": 50, "egressMBps": 100 } } });
    p.tenants().patch("beta", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    eventually("second commit", Duration::from_secs(30), || async {
        Ok((p.commits(folder)?.first().map(String::as_str) == Some("tenant tenants/beta: generation 2"))
            .then_some(()))
    })
    .await?;
    p.wait_state("beta", "Ready", 2).await.with_context(|| flux.logs())?;
    let after = p.routes().await?.unwrap_or_default();
    let quota = |routes: &[kaas_route::TenantRoute]| {
        routes.iter().find(|r| r.name == id).map(|r| serde_json::to_value(&r.quota).unwrap_or_default())
    };
    assert_ne!(quota(&before), quota(&after), "the route follows the new throughput");
    let out = client("orders", "second").await??;
    assert_eq!(out["consumed"].as_array().map(Vec::len), Some(200), "{out}");

    // Delete: the route leaves the ConfigMap, the proxy (reading the file) refuses the name, the object goes.
    p.tenants().delete("beta", &DeleteParams::default()).await?;
    eventually("tenant gone", Duration::from_secs(30), || async {
        Ok(p.tenants().get_opt("beta").await?.is_none().then_some(()))
    })
    .await?;
    let name = format!("{id}.{DOMAIN}");
    eventually("the proxy refuses the name", Duration::from_secs(20), || async {
        match raw::connect(proxy.port, Some(&name), &certs.ca).await {
            Err(e) => Ok((raw::alert_of(&e) == Some(AlertDescription::UnrecognisedName)).then_some(())),
            Ok(_) => Ok(None),
        }
    })
    .await?;
    assert!(p.manifests(folder)?.is_none(), "folder removed from Git");
    assert!(std::fs::read_dir(&upstream_dir)?.next().is_none(), "the tenant's upstream files are gone");
    // Flux prunes the HelmRelease; helm-controller uninstalls the release before letting it go.
    eventually("release pruned and uninstalled", Duration::from_secs(60), || async {
        let gone = helm_release(&p.admin, &id).await?.is_none()
            && strimzi_objects(&p.admin, &id, "Kafka").await?.is_empty();
        Ok(gone.then_some(()))
    })
    .await
    .with_context(|| flux.logs())?;
    mounting.abort();
    drop(controller);
    Ok(())
}

async fn helm_release(admin: &Client, id: &str) -> anyhow::Result<Option<DynamicObject>> {
    let resource = ApiResource {
        group: "helm.toolkit.fluxcd.io".into(),
        version: "v2".into(),
        api_version: "helm.toolkit.fluxcd.io/v2".into(),
        kind: "HelmRelease".into(),
        plural: "helmreleases".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &format!("kaas-{id}"), &resource);
    Ok(api.get_opt(&format!("{id}-kafka")).await?)
}

/// The Strimzi objects of `kind` (Kafka, KafkaNodePool, KafkaUser) in the tenant's namespace.
async fn strimzi_objects(admin: &Client, id: &str, kind: &str) -> anyhow::Result<Vec<DynamicObject>> {
    let resource = ApiResource {
        group: "kafka.strimzi.io".into(),
        version: "v1".into(),
        api_version: "kafka.strimzi.io/v1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &format!("tenant-{id}"), &resource);
    Ok(api.list(&ListParams::default()).await?.items)
}
