//! The whole tenant loop, end to end: a `KafkaTenant` applied to a real API server → the real
//! `kaas-controller run` (the chart's arguments and RBAC) commits its folder and its own Flux Kustomization to a
//! real bare Git repository → Flux itself (source-controller fetching that repository and the platform's charts
//! over HTTP, kustomize-controller applying the root Kustomization and then the tenant's, helm-controller
//! installing `charts/kaas`, whose Strimzi objects the real CRDs accept) → Strimzi's part (stand-in: the
//! cluster's real CA secrets and the `Kafka`'s status saying it serves; no operator runs Kafka here, the local
//! cluster is the tenant's) → the controller
//! marks the tenant Ready and publishes its route and upstream material → the proxy reads the route ConfigMap
//! and the upstream Secret as the chart mounts them (stand-in for the kubelet: the objects' keys written to
//! files) → a real Kafka client (confluent-kafka, with a tenant user's certificate) produces and consumes
//! through `<tenant>.<domain>` on a real Apache Kafka cluster over mutual TLS with its own identity. Then an
//! update (a new generation, a new commit, a Helm upgrade, a changed route) and a delete (Flux prunes and
//! uninstalls, the proxy refuses the name, the object goes).
//!
//! Both isolation modes run all three Flux controllers. A tenant on its own cluster gets a second etcd +
//! kube-apiserver as that cluster: the real helm-controller installs, through each rendered HelmRelease's
//! `kubeConfig`, the eight platform components (stand-in charts of the upstream names and versions, from a Helm
//! repository the test serves, [`kaas_testsupport::helm_repo`], which the platform's chart-mirror setting points
//! the releases at; the Strimzi one brings Strimzi's CRDs, the Prometheus one the monitoring CRDs) and then
//! the real `charts/kaas` with the rendered values, judged there by those CRDs and Kubernetes' own schemas;
//! `dependsOn`, `storageNamespace`, retries and upgrades are helm-controller's decisions, and the tenant is
//! Ready on helm-controller's own report. That cluster itself is built by the real Cluster API and CAPA on
//! moto ([`crate::own_cluster`]): the tenant waits while Cluster API reports its `Cluster` not Available, and
//! is Ready only once Cluster API's own report says Available; a throughput change rolls the broker pool's
//! instances in moto, and the delete empties the tenant's AWS resources there. What moto's instances cannot
//! do when they boot is bridged by `kaas_testsupport::capi::boot` (Node, static pods, etcd member).
//!
//! [`one_tenants_refused_object_does_not_hold_up_another_tenants_apply`]: a tenant whose object the API server
//! refuses stops only its own Kustomization.

use crate::{common, own_cluster};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use common::{all_rbac, eventually, put_strimzi_cas, Platform, SYSTEM};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kaas_controller::gitops;
use kaas_controller::names::tenant_id;
use kaas_controller::reconcile::ROUTES_KEY;
use kaas_controller::render;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::{raw, DOMAIN};
use kaas_testsupport::apiserver::{apply_yaml, TEST_MANAGER};
use kaas_testsupport::certs::Certs;
use kaas_testsupport::flux::{self, Flux, FLUX_NAMESPACE};
use kaas_testsupport::git_http::GitHttp;
use kaas_testsupport::helm_repo::HelmRepo;
use kaas_testsupport::python::run_client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use own_cluster::OwnCluster;
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

/// One isolation mode's run of the loop.
struct Case {
    /// `controller/examples/<name>.yaml`, in namespace `tenants`.
    name: &'static str,
    /// `isolation: cluster`: its own cluster (Cluster API), here a second API server.
    own_cluster: bool,
    /// A user of the example, whose certificate the client presents.
    user: &'static str,
    update: serde_json::Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_tenant_goes_from_kafkatenant_to_records_through_the_proxy_and_away() -> anyhow::Result<()>
{
    let update = json!({ "spec": { "throughput": { "ingressMBps": 50, "egressMBps": 100 } } });
    tenant_loop(Case { name: "beta", own_cluster: false, user: "app", update }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_tenant_goes_from_kafkatenant_to_records_through_the_proxy_and_away() -> anyhow::Result<()>
{
    let update = json!({ "spec": { "throughput": { "ingressMBps": 150, "egressMBps": 300 } } });
    tenant_loop(Case { name: "acme", own_cluster: true, user: "orders-service", update }).await
}

async fn tenant_loop(case: Case) -> anyhow::Result<()> {
    let cluster = KafkaCluster::start(ClusterOptions::named(&format!("tenant-{}", case.name)).nodes(1))?;
    let work = tempfile::tempdir()?;
    let upstream_dir = work.path().join("upstream");
    std::fs::create_dir(&upstream_dir)?;
    let routes_file = work.path().join("tenants.yaml");
    std::fs::write(&routes_file, "[]\n")?;

    // The chart with its defaults, except where this machine differs: the tenant's Kafka is the local
    // cluster's mutual-TLS listener, and the proxy's mounts are folders here.
    let prefix = format!("{}/{{tenant}}.", upstream_dir.display());
    let bootstrap = if case.own_cluster { "clusterBootstrapTemplate" } else { "namespaceBootstrapTemplate" };
    let mut values = json!({ "routes": {
        "upstreamFiles": prefix,
        "clientCaTemplate": format!("{prefix}clients-ca.crt"),
        bootstrap: cluster.bootstrap_tls(),
    }});
    // A tenant on its own cluster first gets its network, cloud controller, CSI driver and operators from
    // their public Helm repositories, which this machine cannot reach: the platform's mirror setting points
    // them at a repository of stand-in charts of the same names and versions, served here.
    let charts = match case.own_cluster {
        true => Some(HelmRepo::start(&common::component_charts(case.name)?)?),
        false => None,
    };
    if let Some(charts) = &charts {
        values["componentCharts"] = json!({ "url": charts.url() });
        values["machines"] = own_cluster::machines();
    }
    let p = Platform::start(values, all_rbac).await?;
    // The platform's Flux: its charts in one repository, the tenants' folders (kaas-controller's remote) in
    // another, both over HTTP; the root Kustomization applies each tenant's Kustomization, which applies the
    // tenant's folder, and prunes what leaves.
    flux::publish(&kaas_testsupport::repo_root(), &["charts/kaas"], &p.tmp.path().join("platform.git"))?;
    let git = GitHttp::start(p.tmp.path())?;
    let flux = Flux::start(&p.plane, &flux::CONTROLLERS).await?;
    let sources = [
        flux::git_repository("kaas", &git.url("platform.git"), "main", "2s"),
        gitops_sources(&git, case.own_cluster)?,
    ];
    apply_yaml(&p.admin, &sources.join("---\n"), TEST_MANAGER, Some(FLUX_NAMESPACE)).await?;
    let controller = p.controller("kaas-controller-0")?;
    let mounting = tokio::spawn(mount(p.admin.clone(), routes_file.clone(), upstream_dir.clone()));

    let id = tenant_id("tenants", case.name);
    let folder = format!("tenants/tenants/{}", case.name);
    let certs = Certs::generate(work.path(), DOMAIN, &[&id])?;
    let settings = format!("tenants_file: {}\n", routes_file.display());
    let proxy = ProxyHandle::start_with_config(&certs, &settings, "  []\n")?;

    // The tenant's own cluster: Cluster API and CAPA on moto build it; a second API server, empty (the charts
    // bring the CRDs), stands for it, reached through the kubeconfig Secret Cluster API reads.
    let own = match case.own_cluster {
        true => Some(OwnCluster::start(&p, &id).await?),
        false => None,
    };
    let workload = own.as_ref().map(|o| &o.workload);
    // Strimzi's part: no operator runs here, so its report on the Kafka helm-controller installed comes from a
    // stand-in, at each generation; the tenant is Ready only once Strimzi says its Kafka serves.
    let (kafka_client, kafka_ns, listener) = match workload {
        Some(plane) => (plane.admin().await?, "kafka".to_owned(), "proxy"),
        None => (p.admin.clone(), format!("tenant-{id}"), "tls"),
    };
    let strimzi = tokio::spawn(async move {
        loop {
            let _ = common::strimzi_reports(&kafka_client, &kafka_ns, listener).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // Cluster API bringing up the cluster and eight releases through a kubeconfig in dependency order take
    // longer than one release on this cluster (37–47 s measured on 2 shared cores).
    let within = Duration::from_secs(if case.own_cluster { 240 } else { 30 });

    // A tenant made before its StorageClass carried tags: the class exists, Helm's, with the parameters of
    // then. The API server refuses any change to them, so the release goes through only if the chart keeps them.
    let old_class = format!("kaas-{id}-gp3");
    let old_parameters = json!({ "type": "gp3", "encrypted": "true" });
    if !case.own_cluster {
        let class = json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": { "name": old_class, "labels": { "app.kubernetes.io/managed-by": "Helm" },
                          "annotations": { "meta.helm.sh/release-name": "kaas",
                                           "meta.helm.sh/release-namespace": format!("tenant-{id}") } },
            "provisioner": "ebs.csi.aws.com", "parameters": old_parameters,
            "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true, "reclaimPolicy": "Retain",
        });
        apply_yaml(&p.admin, &class.to_string(), TEST_MANAGER, None).await?;
    }

    p.create_example(case.name).await?;
    eventually("commit", Duration::from_secs(30), || async {
        Ok(Some(p.commits(&folder)?).filter(|c| !c.is_empty()))
    })
    .await?;
    let read = |path: &Path| std::fs::read(path).with_context(|| path.display().to_string());
    let material =
        [read(cluster.cluster_ca_pem())?, read(cluster.clients_ca_pem())?, read(cluster.clients_ca_key())?];
    let material = [&material[0][..], &material[1][..], &material[2][..]];
    match workload {
        Some(plane) => put_strimzi_cas(&plane.admin().await?, "kafka", material).await?,
        None => p.strimzi_cas(&id, material).await?,
    }
    if let Some(own) = &own {
        let waiting = own.tenant_waits_for_cluster_api(&p, case.name).await?;
        eprintln!("while Cluster API builds the cluster: {waiting}");
    }
    let started = std::time::Instant::now();
    ready(&p, &flux, case.name, &id, 1, within).await?;
    eprintln!("{} Ready in {:.0?}", case.name, started.elapsed());
    let release = helm_release(&p.admin, &id).await?.context("HelmRelease applied")?;
    assert!(applied_by_flux(&release), "HelmRelease applied by kustomize-controller");
    // Ready is helm-controller's own report: only it keeps the release history.
    assert!(release.data["status"]["history"][0]["status"] == "deployed", "{}", release.data["status"]);
    let (kafka_cluster, kafka_ns) = match workload {
        Some(plane) => {
            let cluster = capi_cluster(&p.admin, &id).await?.context("Cluster applied")?;
            assert!(applied_by_flux(&cluster), "Cluster applied by kustomize-controller");
            let tenant_cluster = plane.admin().await?;
            helm_storage_is_on_the_tenant_cluster(&tenant_cluster).await?;
            (tenant_cluster, "kafka".to_owned())
        }
        None => (p.admin.clone(), format!("tenant-{id}")),
    };
    if !case.own_cluster {
        let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(p.admin.clone());
        let class = classes.get(&old_class).await?;
        let parameters = serde_json::to_value(&class.parameters)?;
        assert_eq!(parameters, old_parameters, "the existing class kept its parameters");
        assert_eq!(class.annotations().get("meta.helm.sh/release-name").map(String::as_str), Some("kaas"));
    }
    let kafkas = strimzi_objects(&kafka_cluster, &kafka_ns, "Kafka").await?;
    assert_eq!(kafkas.len(), 1, "helm-controller installed the chart's Kafka");
    let release_name = kafkas[0].annotations().get("meta.helm.sh/release-name").cloned();
    assert_eq!(release_name.as_deref(), Some("kaas"));
    // KafkaTopic: the tenant's declared topics, accepted by the real Strimzi CRD.
    for kind in ["KafkaNodePool", "KafkaUser", "KafkaTopic"] {
        let objects = strimzi_objects(&kafka_cluster, &kafka_ns, kind).await?;
        assert!(!objects.is_empty(), "helm-controller installed the chart's {kind}s");
    }

    // A tenant user's client: the bootstrap name, the platform's CA, and a certificate from the tenant's
    // clients CA (as Strimzi's User Operator issues it for a KafkaUser).
    let (cert, key) = cluster.client_cert(case.user)?;
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

    // Cluster API's own report and what it built in moto (the cluster-mode example is `acme`).
    let platform = render::Platform::default();
    let built = match &own {
        Some(own) => {
            let plan = render::plan(&crate::cluster_api::acme()?, &platform)?;
            Some((own.built(&p, plan.sizing.brokers as usize).await?, plan))
        }
        None => None,
    };

    // Update: more throughput is a new generation, a new commit, a release upgrade and a new route (its quota).
    let before = p.routes().await?.unwrap_or_default();
    p.tenants().patch(case.name, &PatchParams::default(), &Patch::Merge(&case.update)).await?;
    let second = format!("tenant tenants/{}: generation 2", case.name);
    eventually("second commit", Duration::from_secs(30), || async {
        Ok((p.commits(&folder)?.first() == Some(&second)).then_some(()))
    })
    .await?;
    ready(&p, &flux, case.name, &id, 2, within).await?;
    let after = p.routes().await?.unwrap_or_default();
    let quota = |routes: &[kaas_route::TenantRoute]| {
        routes.iter().find(|r| r.name == id).map(|r| serde_json::to_value(&r.quota).unwrap_or_default())
    };
    assert_ne!(quota(&before), quota(&after), "the route follows the new throughput");
    let out = client("orders", "second").await??;
    assert_eq!(out["consumed"].as_array().map(Vec::len), Some(200), "{out}");
    if let (Some(own), Some((brokers, plan))) = (&own, &built) {
        // The new throughput sizes the brokers on another instance type (and count): the broker pool rolls.
        let mut updated = serde_json::to_value(crate::cluster_api::acme()?)?;
        json_merge(&mut updated, &case.update);
        let bigger = render::plan(&serde_json::from_value(updated)?, &platform)?.sizing;
        assert_ne!(bigger.instance_type, plan.sizing.instance_type, "the brokers change instance type");
        own.rolled(brokers, &bigger.instance_type, bigger.brokers as usize).await?;
    }

    // A chart edit without a version bump (a new commit of the platform's chart repository) reaches the
    // tenant's cluster: the release follows the chart's Git revision (`reconcileStrategy: Revision`).
    edit_chart(&p.tmp.path().join("platform.git"))?;
    let configmaps: Api<ConfigMap> = Api::namespaced(kafka_cluster.clone(), &kafka_ns);
    eventually("the chart edit installed", Duration::from_secs(90), || async {
        Ok(configmaps.get_opt(CHART_EDIT).await?.map(drop))
    })
    .await
    .with_context(|| flux.logs())?;
    // Drift: a topic deleted by hand on the tenant's side is created again at the release's next reconcile
    // (helm-controller v1.4.0 internal/action/diff.go:165, drift detection on).
    let topics = strimzi_objects(&kafka_cluster, &kafka_ns, "KafkaTopic").await?;
    let topic = topics.first().context("a KafkaTopic")?.name_any();
    let topic_api: Api<DynamicObject> = Api::namespaced_with(
        kafka_cluster.clone(),
        &kafka_ns,
        &resource("kafka.strimzi.io", "v1", "KafkaTopic", "kafkatopics"),
    );
    topic_api.delete(&topic, &DeleteParams::default()).await?;
    request_reconcile(&p.admin, &id).await?;
    eventually("the deleted topic put back", Duration::from_secs(60), || async {
        Ok(topic_api.get_opt(&topic).await?.map(drop))
    })
    .await
    .with_context(|| flux.logs())?;

    // Delete: the route leaves the ConfigMap, the proxy (reading the file) refuses the name, and the object goes
    // once Flux has pruned its Cluster and HelmRelease (helm-controller uninstalling the release first); a
    // Cluster goes once Cluster API and CAPA have deleted its machines and AWS resources (43 s measured).
    p.tenants().delete(case.name, &DeleteParams::default()).await?;
    let started = std::time::Instant::now();
    eventually("tenant gone", Duration::from_secs(90), || async {
        Ok(p.tenants().get_opt(case.name).await?.is_none().then_some(()))
    })
    .await?;
    eprintln!("{} gone in {:.0?}", case.name, started.elapsed());
    let name = format!("{id}.{DOMAIN}");
    eventually("the proxy refuses the name", Duration::from_secs(20), || async {
        match raw::connect(proxy.port, Some(&name), &certs.ca).await {
            Err(e) => Ok((raw::alert_of(&e) == Some(AlertDescription::UnrecognisedName)).then_some(())),
            Ok(_) => Ok(None),
        }
    })
    .await?;
    assert!(p.manifests(&folder)?.is_none(), "folder removed from Git");
    assert!(std::fs::read_dir(&upstream_dir)?.next().is_none(), "the tenant's upstream files are gone");
    // Flux prunes what left Git; helm-controller uninstalls the release before letting it go.
    eventually("Flux pruned the tenant", Duration::from_secs(60), || async {
        let mut gone = helm_release(&p.admin, &id).await?.is_none();
        gone &= strimzi_objects(&kafka_cluster, &kafka_ns, "Kafka").await?.is_empty();
        if workload.is_some() {
            gone &= capi_cluster(&p.admin, &id).await?.is_none();
        }
        Ok(gone.then_some(()))
    })
    .await
    .with_context(|| flux.logs())?;
    if let Some(own) = &own {
        own.emptied().await?;
    }
    mounting.abort();
    strimzi.abort();
    drop(controller);
    Ok(())
}

/// Waits for the tenant Ready at `generation`; a failure carries Flux's logs and the Kafka release's status,
/// where helm-controller says what it could not do.
async fn ready(
    p: &Platform,
    flux: &Flux,
    name: &str,
    id: &str,
    generation: i64,
    within: Duration,
) -> anyhow::Result<()> {
    let Err(e) = p.wait_state_within(name, "Ready", generation, within).await else { return Ok(()) };
    let api: Api<DynamicObject> =
        Api::namespaced_with(p.admin.clone(), &format!("kaas-{id}"), &release_resource());
    let releases = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    let report: Vec<String> = releases
        .iter()
        .map(|r| {
            let conditions = r.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let said: Vec<String> = conditions
                .iter()
                .map(|c| format!("{}={} {}: {}", c["type"], c["status"], c["reason"], c["message"]))
                .collect();
            format!("{}: {}", r.name_any(), said.join("; "))
        })
        .collect();
    Err(e.context(format!("{}\n--- the tenant's HelmReleases\n{}", flux.logs(), report.join("\n"))))
}

/// The ConfigMap [`edit_chart`] adds to `charts/kaas`.
const CHART_EDIT: &str = "kaas-chart-edit";

/// Commits to the platform's chart repository a change of `charts/kaas` that keeps its version: one more
/// template, a ConfigMap named [`CHART_EDIT`].
fn edit_chart(remote: &Path) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let dir = work.path().join("platform");
    common::git(&["clone", "--quiet", &remote.to_string_lossy(), &dir.to_string_lossy()])?;
    let template = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {CHART_EDIT}\n  namespace: {{{{ .Release.Namespace }}}}\n"
    );
    std::fs::write(dir.join("charts/kaas/templates/chart-edit.yaml"), template)?;
    let who = ["-c", "user.name=kaas-e2e", "-c", "user.email=kaas-e2e@kaas.dev"];
    kaas_testsupport::git(Some(&dir), &["add", "--all"])?;
    kaas_testsupport::git(Some(&dir), &[&who[..], &["commit", "--quiet", "-m", "chart edit"]].concat())?;
    kaas_testsupport::git(Some(&dir), &["push", "--quiet", "origin", "main"])?;
    Ok(())
}

/// Asks helm-controller to reconcile tenant `id`'s Kafka release now, as `flux reconcile helmrelease` does.
async fn request_reconcile(admin: &Client, id: &str) -> anyhow::Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &format!("kaas-{id}"), &release_resource());
    let now = format!("{:?}", std::time::SystemTime::now());
    let patch = json!({ "metadata": { "annotations": { "reconcile.fluxcd.io/requestedAt": now } } });
    api.patch(&format!("{id}-kafka"), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

fn applied_by_flux(object: &DynamicObject) -> bool {
    object.managed_fields().iter().any(|m| m.manager.as_deref() == Some("kustomize-controller"))
}

/// Every release helm-controller installed through the kubeconfig keeps its Helm storage on the tenant's
/// cluster in its own target namespace (`storageNamespace`), none in `kaas-<id>`, which exists only on the
/// management cluster; and the eight platform components are installed there.
async fn helm_storage_is_on_the_tenant_cluster(tenant_cluster: &Client) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::all(tenant_cluster.clone());
    let storage = secrets.list(&ListParams::default().labels("owner=helm")).await?.items;
    let mut releases: Vec<(String, String)> = storage
        .iter()
        .map(|s| (s.labels().get("name").cloned().unwrap_or_default(), s.namespace().unwrap_or_default()))
        .collect();
    releases.sort();
    releases.dedup();
    let want = [
        ("aws-cloud-controller-manager", "kube-system"),
        ("aws-ebs-csi-driver", "kube-system"),
        ("cert-manager", "cert-manager"),
        ("cilium", "kube-system"),
        ("external-dns", "external-dns"),
        ("kaas", "kafka"),
        ("prometheus-operator-crds", "kube-system"),
        ("strimzi", "strimzi"),
        ("strimzi-drain-cleaner", "strimzi-drain-cleaner"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(r, n)| ((*r).to_owned(), (*n).to_owned())).collect();
    assert_eq!(releases, want, "each release's Helm storage in its target namespace on the tenant's cluster");
    Ok(())
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn cluster_resource() -> ApiResource {
    resource("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters")
}

fn release_resource() -> ApiResource {
    resource("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases")
}

/// The tenant's Kafka release, `kaas-<id>/<id>-kafka`.
async fn helm_release(admin: &Client, id: &str) -> anyhow::Result<Option<DynamicObject>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &format!("kaas-{id}"), &release_resource());
    Ok(api.get_opt(&format!("{id}-kafka")).await?)
}

/// The tenant's Cluster API `Cluster`, `kaas-<id>/<id>`.
async fn capi_cluster(admin: &Client, id: &str) -> anyhow::Result<Option<DynamicObject>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &format!("kaas-{id}"), &cluster_resource());
    Ok(api.get_opt(id).await?)
}

/// The Strimzi objects of `kind` (Kafka, KafkaNodePool, KafkaUser) in namespace `ns` of the cluster `admin`
/// reaches.
async fn strimzi_objects(admin: &Client, ns: &str, kind: &str) -> anyhow::Result<Vec<DynamicObject>> {
    let plural = format!("{}s", kind.to_lowercase());
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), ns, &resource("kafka.strimzi.io", "v1", kind, &plural));
    Ok(api.list(&ListParams::default()).await?.items)
}

/// B9: one tenant's object the API server refuses (here a ConfigMap whose name is no DNS name; on AWS, an
/// AWSMachineTemplate edited in place, which CAPA's webhook refuses) must not hold up another tenant. Flux
/// applies a Kustomization as one server-side dry run then apply, so when every tenant is one Kustomization,
/// one refusal stops applies, new tenants and prunes for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_refused_object_does_not_hold_up_another_tenants_apply() -> anyhow::Result<()> {
    let p = Platform::start(json!({}), all_rbac).await?;
    let git = GitHttp::start(p.tmp.path())?;
    let flux = Flux::start(&p.plane, &flux::CONTROLLERS[..2]).await?;
    apply_yaml(&p.admin, &gitops_sources(&git, false)?, TEST_MANAGER, Some(FLUX_NAMESPACE)).await?;

    // A tenant whose folder holds an object the API server refuses, committed as the controller commits.
    let broken =
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kaas-tenants-broken\n---\napiVersion: v1\n\
                  kind: ConfigMap\nmetadata:\n  name: Not_A_Name\n  namespace: kaas-tenants-broken\n";
    let writer =
        gitops::Repo::clone_remote(&p.remote.to_string_lossy(), &p.tmp.path().join("writer"), "main")?;
    writer.write_tenant(
        "tenants/broken",
        Some(&gitops::tenant_files(broken.to_owned())),
        "tenant tenants/broken: generation 1",
    )?;
    let controller = p.controller("kaas-controller-0")?;
    p.create_example("beta").await?;
    let id = tenant_id("tenants", "beta");
    eventually("beta's release applied beside the refused tenant", Duration::from_secs(60), || async {
        Ok(helm_release(&p.admin, &id).await?.filter(applied_by_flux).map(drop))
    })
    .await
    .with_context(|| flux.logs())?;
    // The refused tenant's own Kustomization says why.
    let kustomizations: Api<DynamicObject> = Api::namespaced_with(
        p.admin.clone(),
        FLUX_NAMESPACE,
        &resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
    );
    let refused = eventually("the refused tenant's Kustomization fails", Duration::from_secs(30), || async {
        let k = kustomizations.get(&format!("kaas-{}", tenant_id("tenants", "broken"))).await?;
        let ready =
            k.data["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
        Ok(ready.filter(|c| c["status"] == "False").map(|c| c["message"].to_string()))
    })
    .await?;
    assert!(refused.contains("Not_A_Name"), "{refused}");
    drop(controller);
    Ok(())
}

/// The platform's Flux bootstrap for the tenants: the GitOps repository (kaas-controller's remote) as the
/// GitRepository the tenants' Kustomizations read, and one root Kustomization applying the tenants'
/// Kustomizations and pruning what leaves; with `emulated_aws`, patching them with the emulator's one
/// AWSCluster setting ([`own_cluster::emulator_patches`]).
fn gitops_sources(git: &GitHttp, emulated_aws: bool) -> anyhow::Result<String> {
    let mut root: serde_json::Value = serde_norway::from_str(&flux::kustomization(
        "tenants",
        gitops::FLUX_SOURCE,
        &format!("./{}", gitops::KUSTOMIZATIONS),
        "2s",
    ))?;
    if emulated_aws {
        root["spec"]["patches"] = own_cluster::emulator_patches();
    }
    let source = flux::git_repository(gitops::FLUX_SOURCE, &git.url("gitops.git"), "main", "2s");
    Ok(format!("{source}---\n{}\n", serde_json::to_string(&root)?))
}

/// `patch` merged into `target` as a JSON merge patch (RFC 7386) does, as the API server applies the update.
fn json_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                json_merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}
