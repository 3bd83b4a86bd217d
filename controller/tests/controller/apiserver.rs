//! kaas-controller against a real Kubernetes API server (etcd + kube-apiserver, built by
//! `scripts/install-k8s.sh`): the server accepts the CRDs and enforces the tenant rules itself; the real
//! `kaas-controller run` binary, started with the chart's arguments and exactly the RBAC the chart grants,
//! adds its finalizer, commits to a real bare Git repository, writes status by server-side apply, records
//! Events, publishes the route and cleans everything up on delete; a verb its role lacks stops it with an error
//! naming it; two replicas elect one leader and the other takes over when it dies; a leader killed in the
//! middle of its reconciles while tenants keep arriving leaves each tenant committed once and every status
//! going Provisioning → Ready without a step back; started where Cluster API's CRDs are not installed, it names
//! the kind at start-up (log and metric) and goes on serving the tenants that do not need it.
//!
//! Flux, Cluster API and Strimzi are not running here (real Flux runs in [`crate::tenant_loop`]): these tests
//! apply the committed folder by server-side apply as kustomize-controller would, and report the objects'
//! status as their controllers would, so they stay fast and exact about each step.

use crate::common;

use common::{all_rbac, eventually, Platform, SYSTEM};

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kaas_controller::crd::KafkaTenant;
use kaas_controller::names::tenant_id;
use kaas_controller::reconcile::{FIELD_MANAGER, FINALIZER};
use kaas_testsupport::apiserver::ControlPlane;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn the_server_accepts_the_crds_and_enforces_the_tenant_rules() -> anyhow::Result<()> {
    let plane = ControlPlane::start().await?;
    let upstream = plane.install_upstream_crds().await?;
    assert!(upstream.iter().any(|n| n == "kafkas.kafka.strimzi.io"), "{upstream:?}");
    assert!(upstream.iter().any(|n| n == "clusters.cluster.x-k8s.io"), "{upstream:?}");
    assert!(upstream.iter().any(|n| n == "helmreleases.helm.toolkit.fluxcd.io"), "{upstream:?}");
    let crd = std::fs::read_to_string(
        kaas_testsupport::repo_root().join("charts/kaas-controller/crds/kafkatenant.yaml"),
    )?;
    assert_eq!(plane.install_crds(&crd).await?, ["kafkatenants.kaas.dev"]);
    plane.namespace("tenants").await?;
    let api: Api<KafkaTenant> = Api::namespaced(plane.admin().await?, "tenants");
    let raw: Api<DynamicObject> =
        Api::namespaced_with(plane.admin().await?, "tenants", &ApiResource::erase::<KafkaTenant>(&()));

    let good = json!({
        "apiVersion": "kaas.dev/v1alpha1", "kind": "KafkaTenant",
        "metadata": { "name": "good", "namespace": "tenants" },
        "spec": { "throughput": { "ingressMBps": 10, "egressMBps": 20 }, "retentionHours": 24,
                  "users": [{ "name": "app", "acls": [{ "resource": "topic", "name": "t", "operations": ["Read"] }] }] },
    });
    let created = api.create(&PostParams::default(), &serde_json::from_value(good.clone())?).await?;
    // The server's defaults from the schema (topics: [] too, which the topic rules read).
    assert_eq!(created.spec.replication_factor, 3);
    assert!(created.spec.topics.is_empty());
    assert_eq!(created.spec.region, "eu-west-1");

    let bad: [(&str, serde_json::Value, &str); 21] = [
        (
            "duplicate user names",
            json!({ "users": [{ "name": "app" }, { "name": "app" }] }),
            "user names must be unique",
        ),
        ("retention of zero", json!({ "retentionHours": 0 }), "spec.retentionHours"),
        ("retention over a year", json!({ "retentionHours": 9000 }), "spec.retentionHours"),
        ("a region that is not one", json!({ "region": "Europe" }), "spec.region"),
        ("a user name that is no DNS label", json!({ "users": [{ "name": "App_1" }] }), "spec.users[0].name"),
        ("an unknown isolation", json!({ "isolation": "vm" }), "spec.isolation"),
        (
            "Kubernetes before 1.34",
            json!({ "versions": { "kubernetes": "v1.33.4" } }),
            "spec.versions.kubernetes",
        ),
        ("the proxy's user name", json!({ "users": [{ "name": "kaas-proxy" }] }), "the proxy's own"),
        (
            "duplicate topic names",
            json!({ "topics": [{ "name": "orders" }, { "name": "audit" }, { "name": "orders" }] }),
            "topic names must be unique",
        ),
        ("a topic name Kafka refuses", json!({ "topics": [{ "name": "or ders" }] }), "spec.topics[0].name"),
        ("a topic named ..", json!({ "topics": [{ "name": ".." }] }), "may not be named"),
        ("an internal topic", json!({ "topics": [{ "name": "__consumer_offsets" }] }), "internal"),
        (
            "a topic without partitions",
            json!({ "topics": [{ "name": "t", "partitions": 0 }] }),
            "spec.topics[0].partitions",
        ),
        (
            "a topic kept longer than the tenant",
            json!({ "topics": [{ "name": "t", "retentionHours": 25 }] }),
            "retentionHours may not exceed",
        ),
        (
            "a user quota past the tenant",
            json!({ "users": [{ "name": "app", "quota": { "ingressMBps": 11 } }] }),
            "quota may not exceed",
        ),
        // Topic settings: the allow-list of crd/topic_config.rs as CEL, each refusal naming the setting.
        (
            "a topic setting that loses acknowledged records",
            json!({ "topics": [{ "name": "t", "config": { "unclean.leader.election.enable": "true" } }] }),
            "a topic's config may set only cleanup.policy, compression.type",
        ),
        (
            "segments of a megabyte",
            json!({ "topics": [{ "name": "t", "config": { "segment.bytes": "1048576" } }] }),
            "segment.bytes must be an integer in 52428800..=1073741824",
        ),
        (
            "a cleanup policy that is none",
            json!({ "topics": [{ "name": "t", "config": { "cleanup.policy": "compact,archive" } }] }),
            "cleanup.policy must be a comma-separated list of delete, compact",
        ),
        (
            "a size past what an integer holds",
            json!({ "topics": [{ "name": "t", "config": { "retention.bytes": "99999999999999999999" } }] }),
            "retention.bytes must be an integer in -1..=",
        ),
        (
            "more in-sync replicas than the topic's copies",
            json!({ "topics": [{ "name": "t", "replicas": 2, "config": { "min.insync.replicas": "3" } }] }),
            "min.insync.replicas may not exceed its replicas",
        ),
        (
            "more in-sync replicas than the tenant's copies",
            json!({ "topics": [{ "name": "t", "config": { "min.insync.replicas": "4" } }] }),
            "min.insync.replicas may not exceed its replicas",
        ),
    ];
    for (i, (what, change, expected)) in bad.iter().enumerate() {
        let mut tenant = good.clone();
        tenant["metadata"]["name"] = json!(format!("bad-{i}"));
        for (k, v) in change.as_object().context("change")? {
            tenant["spec"][k] = v.clone();
        }
        // Untyped, so what reaches the server is exactly the bad object.
        let object: DynamicObject = serde_json::from_value(tenant)?;
        let err = raw
            .create(&PostParams::default(), &object)
            .await
            .err()
            .with_context(|| format!("{what}: accepted"))?;
        let text = err.to_string();
        assert!(text.contains(expected), "{what}: {text}");
        assert!(matches!(&err, kube::Error::Api(s) if s.code == 422), "{what}: {err:?}");
    }
    // Topics with configs, capitals and underscores, a user with Create and a quota: the acme example as it is.
    let acme: KafkaTenant = serde_norway::from_str(&std::fs::read_to_string(
        kaas_testsupport::repo_root().join("controller/examples/acme.yaml"),
    )?)?;
    let created = api.create(&PostParams::default(), &acme).await?;
    assert_eq!(created.spec.topics, acme.spec.topics);
    // The rule holds on update too: a good tenant cannot be changed into a bad one.
    let patch = json!({ "spec": { "users": [{ "name": "x" }, { "name": "x" }] } });
    let err =
        api.patch("good", &PatchParams::default(), &Patch::Merge(&patch)).await.err().context("accepted")?;
    assert!(err.to_string().contains("user names must be unique"), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_controller_runs_the_tenant_loop_with_exactly_the_charts_rbac() -> anyhow::Result<()> {
    // The chart's defaults: client certificates from Strimzi's clients CA, copied to the proxy.
    let p = Platform::start(json!({}), all_rbac).await?;
    let controller = p.controller("kaas-controller-0")?;
    let id = tenant_id("tenants", "beta");
    let folder = "tenants/tenants/beta";
    // The route source exists before any tenant, so the proxy can start.
    eventually("route source", Duration::from_secs(30), || async { p.routes().await }).await?;
    assert!(controller.leading().await?, "a lone replica leads");

    p.create_example("beta").await?;
    eventually("finalizer", Duration::from_secs(20), || async {
        Ok(p.tenants().get("beta").await?.finalizers().iter().any(|f| f == FINALIZER).then_some(()))
    })
    .await?;
    let commits = eventually("commit", Duration::from_secs(20), || async {
        Ok(Some(p.commits(folder)?).filter(|c| !c.is_empty()))
    })
    .await?;
    assert_eq!(commits, ["tenant tenants/beta: generation 1"]);
    p.wait_state("beta", "Provisioning", 1).await?;
    // Status by server-side apply on the status subresource, as the controller's field manager.
    let tenant = p.tenants().get("beta").await?;
    let managed = tenant.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managed.iter().any(|m| m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.operation.as_deref() == Some("Apply")
            && m.subresource.as_deref() == Some("status")),
        "{managed:?}"
    );

    // Flux applies the folder (the real server checks every object against the upstream CRD schemas), then
    // helm-controller reports the release, and Strimzi has made its CAs.
    let applied = p.flux_apply(folder).await?;
    assert!(applied.iter().any(|a| a.starts_with("HelmRelease/")), "{applied:?}");
    p.helm_ready(&id).await?;
    p.strimzi_serving(&id).await?;
    let (cluster_ca, _) = kaas_testsupport::certs::strimzi_ca("cluster-ca v0")?;
    let (clients_ca, clients_key) = kaas_testsupport::certs::strimzi_ca("clients-ca v0")?;
    p.strimzi_cas(&id, [cluster_ca.as_bytes(), clients_ca.as_bytes(), clients_key.as_bytes()]).await?;
    p.wait_state("beta", "Ready", 1).await?;
    let routes = p.routes().await?.unwrap_or_default();
    let route = routes.iter().find(|r| r.name == id).context("route published")?;
    assert_eq!(route.bootstrap, [format!("kaas-kafka-bootstrap.tenant-{id}.svc:9093")]);
    assert_eq!(route.client_ca, Some(format!("/etc/kaas-proxy/upstream/{id}.clients-ca.crt").into()));
    let proxy_secret: Api<Secret> = Api::namespaced(p.admin.clone(), SYSTEM);
    let keys: Vec<String> =
        proxy_secret.get("kaas-proxy-upstream").await?.data.unwrap_or_default().into_keys().collect();
    let files =
        ["clients-ca-intermediate.crt", "clients-ca-intermediate.key", "clients-ca.crt", "cluster-ca.crt"];
    assert_eq!(keys, files.map(|f| format!("{id}.{f}")), "the clients CA's key is not among them");
    // The controller reads exactly the Secrets the tenant's folder grants it, and no other: none in another
    // namespace, none other of the tenant's own (the chart's ClusterRole has no Secrets at all).
    let kafka_ns = format!("tenant-{id}");
    for (ns, name, allowed) in [
        (kafka_ns.as_str(), "kaas-clients-ca", true),
        (kafka_ns.as_str(), "kaas-cluster-ca-cert", true),
        (kafka_ns.as_str(), "kaas-kafka-brokers", false),
        (&format!("kaas-{id}"), "anything", false),
        ("kube-system", "anything", false),
    ] {
        let can = can_get_secret(&p, ns, name).await?;
        assert_eq!(can, allowed, "the controller may get Secret {ns}/{name}: {can}");
    }

    // A new generation: a new commit, and Provisioning until Flux has applied it.
    let patch = json!({ "spec": { "retentionHours": 72 } });
    p.tenants().patch("beta", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    eventually("second commit", Duration::from_secs(20), || async {
        Ok((p.commits(folder)?.first().map(String::as_str) == Some("tenant tenants/beta: generation 2"))
            .then_some(()))
    })
    .await?;
    p.wait_state("beta", "Provisioning", 2).await?;
    p.flux_apply(folder).await?;
    p.helm_ready(&id).await?;
    p.strimzi_serving(&id).await?;
    p.wait_state("beta", "Ready", 2).await?;

    // Every transition is an Event on the tenant.
    let events: Api<Event> = Api::namespaced(p.admin.clone(), "tenants");
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("beta"))
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Committed", "Waiting", "Published"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason} not among {reasons:?}");
    }

    // Delete: the finalizer removes the route, the proxy's copies and the folder, holds the object (Deleting)
    // while its HelmRelease is still there, and lets it go once Flux pruned that.
    p.tenants().delete("beta", &DeleteParams::default()).await?;
    eventually("held for the teardown", Duration::from_secs(30), || async {
        let Some(t) = p.tenants().get_opt("beta").await? else { anyhow::bail!("gone before Flux pruned") };
        let waiting = t
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.type_ == "Deleting" && c.status == "True" && c.reason == "WaitingForTeardown");
        Ok((waiting && p.manifests(folder)?.is_none()).then_some(()))
    })
    .await?;
    p.flux_prune(&id).await?;
    eventually("tenant gone", Duration::from_secs(30), || async {
        Ok(p.tenants().get_opt("beta").await?.is_none().then_some(()))
    })
    .await?;
    assert!(p.manifests(folder)?.is_none(), "folder removed from Git");
    assert_eq!(p.commits(folder)?.first().map(String::as_str), Some("remove tenant tenants/beta"));
    assert!(p.routes().await?.unwrap_or_default().iter().all(|r| r.name != id), "route removed");
    let keys = proxy_secret.get("kaas-proxy-upstream").await?.data.unwrap_or_default();
    assert!(keys.keys().all(|k| !k.starts_with(&id)), "{keys:?}");
    assert!(controller.log().contains("leading"), "{}", controller.log());
    Ok(())
}

#[tokio::test]
async fn a_verb_the_role_lacks_stops_the_controller_naming_it() -> anyhow::Result<()> {
    // Without the Role on the route ConfigMap the controller cannot publish routes: it must not run blind.
    let p = Platform::start(json!({}), |o| {
        !(o["kind"] == "Role" && o["metadata"]["name"] == "kaas-controller-routes")
    })
    .await?;
    let mut controller = p.controller("kaas-controller-0")?;
    let status = controller.wait_exit(Duration::from_secs(30))?;
    assert!(!status.success());
    let log = controller.log();
    assert!(log.contains("forbidden") && log.contains("configmaps") && log.contains("kaas-system"), "{log}");
    Ok(())
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_the_other_takes_over() -> anyhow::Result<()> {
    let values =
        json!({ "leaderElection": { "leaseDurationSeconds": 4 }, "routes": { "clientCaTemplate": "" } });
    let p = Platform::start(values, all_rbac).await?;
    let a = p.controller("kaas-controller-a")?;
    eventually("a leads", Duration::from_secs(30), || async {
        Ok((p.lease_holder().await?.as_deref() == Some("kaas-controller-a")).then_some(()))
    })
    .await?;
    let mut b = p.controller("kaas-controller-b")?;
    eventually("b serves metrics", Duration::from_secs(10), || async { Ok(Some(b.leading().await?)) })
        .await?;
    p.create_example("acme").await?;
    eventually("acme committed", Duration::from_secs(20), || async {
        Ok(Some(p.commits("tenants/tenants/acme")?).filter(|c| !c.is_empty()))
    })
    .await?;
    assert!(a.leading().await? && !b.leading().await?, "a leads, b follows");
    assert_eq!(p.lease_holder().await?.as_deref(), Some("kaas-controller-a"));

    // The leader dies without a word: b takes over once the lease has run out (4 s), and a tenant created
    // meanwhile is committed once.
    drop(a);
    let died = Instant::now();
    p.create_example("beta").await?;
    eventually("b leads", Duration::from_secs(15), || async {
        Ok((p.lease_holder().await?.as_deref() == Some("kaas-controller-b")).then_some(()))
    })
    .await?;
    let takeover = died.elapsed();
    assert!(takeover >= Duration::from_secs(3), "took over before the lease ran out: {takeover:?}");
    eventually("beta committed", Duration::from_secs(20), || async {
        Ok(Some(p.commits("tenants/tenants/beta")?).filter(|c| !c.is_empty()))
    })
    .await?;
    p.wait_state("acme", "Provisioning", 1).await?;
    p.wait_state("beta", "Provisioning", 1).await?;
    assert_eq!(p.commits("tenants/tenants/acme")?, ["tenant tenants/acme: generation 1"]);
    assert_eq!(p.commits("tenants/tenants/beta")?, ["tenant tenants/beta: generation 1"]);
    assert!(b.leading().await?);

    // A leader stopped by the kubelet hands the lease over at once: the next replica need not wait it out.
    b.terminate()?;
    assert!(b.wait_exit(Duration::from_secs(10))?.success(), "{}", b.log());
    assert_eq!(p.lease_holder().await?, None, "released");
    let c = p.controller("kaas-controller-c")?;
    let started = Instant::now();
    eventually("c leads", Duration::from_secs(10), || async {
        Ok((p.lease_holder().await?.as_deref() == Some("kaas-controller-c")).then_some(()))
    })
    .await?;
    let handover = started.elapsed();
    assert!(handover < Duration::from_secs(3), "a released lease was waited out: {handover:?}");
    println!("takeover after a crash: {takeover:?}; after a graceful stop: {handover:?}");
    assert!(c.leading().await?);
    // Nothing was committed twice across the three leaders.
    assert_eq!(p.commits("tenants")?.len(), 2, "{:?}", p.commits("tenants")?);
    Ok(())
}

#[tokio::test]
async fn a_leader_killed_while_tenants_arrive_commits_each_once_and_no_status_flaps() -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use kube::runtime::watcher;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    let values =
        json!({ "leaderElection": { "leaseDurationSeconds": 4 }, "routes": { "clientCaTemplate": "" } });
    let p = Platform::start(values, all_rbac).await?;
    // Every state each tenant is seen in, in order, from a watch (no change is missed between polls).
    type States = BTreeMap<String, Vec<(String, i64)>>;
    let seen: Arc<Mutex<States>> = Arc::default();
    let record = seen.clone();
    let watching = tokio::spawn(watcher(p.tenants(), watcher::Config::default()).for_each(move |event| {
        if let Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) = event {
            if let Some(state) = Platform::state_of(&t) {
                let mut seen = record.lock().unwrap_or_else(|e| e.into_inner());
                let states = seen.entry(t.name_any()).or_default();
                if states.last() != Some(&state) {
                    states.push(state);
                }
            }
        }
        std::future::ready(())
    }));
    let a = p.controller("kaas-controller-a")?;
    eventually("a leads", Duration::from_secs(30), || async {
        Ok((p.lease_holder().await?.as_deref() == Some("kaas-controller-a")).then_some(()))
    })
    .await?;
    let b = p.controller("kaas-controller-b")?;

    // Six tenants arrive; the leader is killed once it has committed the first of three, in the middle of
    // its reconciles, and three more arrive while no one leads.
    let names: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    for name in &names[..3] {
        p.create_example_as("beta", name).await?;
    }
    eventually("t0 committed", Duration::from_secs(20), || async {
        Ok(Some(p.commits("tenants/tenants/t0")?).filter(|c| !c.is_empty()))
    })
    .await?;
    drop(a);
    for name in &names[3..] {
        p.create_example_as("beta", name).await?;
    }
    // Flux, helm-controller and Strimzi answer each tenant once it is committed, as they would.
    for name in &names {
        let folder = format!("tenants/tenants/{name}");
        eventually(&format!("{name} committed"), Duration::from_secs(40), || async {
            Ok(Some(p.commits(&folder)?).filter(|c| !c.is_empty()))
        })
        .await?;
        p.flux_apply(&folder).await?;
        let id = tenant_id("tenants", name);
        p.helm_ready(&id).await?;
        p.strimzi_serving(&id).await?;
        p.strimzi_serving(&id).await?;
        let (cluster_ca, _) = kaas_testsupport::certs::strimzi_ca("cluster-ca v0")?;
        let (clients_ca, clients_key) = kaas_testsupport::certs::strimzi_ca("clients-ca v0")?;
        p.strimzi_cas(&id, [cluster_ca.as_bytes(), clients_ca.as_bytes(), clients_key.as_bytes()]).await?;
    }
    for name in &names {
        p.wait_state(name, "Ready", 1).await?;
    }
    assert!(b.leading().await?, "b took over");
    // Settled: nothing moves any more for a few reconciles of the new leader.
    tokio::time::sleep(Duration::from_secs(3)).await;
    watching.abort();

    for name in &names {
        let commits = p.commits(&format!("tenants/tenants/{name}"))?;
        assert_eq!(commits, [format!("tenant tenants/{name}: generation 1")], "{name}: committed once");
    }
    assert_eq!(p.commits("tenants")?.len(), names.len(), "nothing else committed");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for name in &names {
        let states = seen.get(name).cloned().unwrap_or_default();
        let kinds: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
        // Provisioning, then Ready, and nothing after: no state left and come back to, none skipped back.
        assert!(
            kinds == ["Provisioning", "Ready"] || kinds == ["Ready"],
            "{name}: states flapped or went back: {states:?}"
        );
        assert!(states.iter().all(|(_, g)| *g == 1), "{name}: {states:?}");
    }
    println!("states seen: {seen:?}");
    Ok(())
}

/// Started against an API server with Flux's CRDs but not Cluster API's, the controller says so at start-up:
/// one log line naming the kind and its group/version, and `kaas_controller_api_served` 0 for it, 1 for the
/// others. It goes on serving: the namespace-mode tenant, which needs no Cluster API, is committed and waits
/// for its release; the cluster-mode one is `Degraded` (`ApiNotServed`) naming the kind until Cluster API's
/// CRD is installed, then waits for its Cluster, and its deletion completes.
#[tokio::test]
async fn started_without_cluster_api_the_controller_reports_it_and_serves_namespace_tenants(
) -> anyhow::Result<()> {
    let flux =
        ["helm.toolkit.fluxcd.io_helmreleases.yaml", "kustomize.toolkit.fluxcd.io_kustomizations.yaml"];
    let p = platform_serving(&flux).await?;
    let controller = p.controller("kaas-controller-0")?;
    let line = |what: &'static str| {
        let log = controller.log();
        async move { Ok(log.lines().find(|l| l.contains(what)).map(str::to_owned)) }
    };
    let report =
        eventually("the start-up report", Duration::from_secs(30), || line("APIs not served")).await?;
    assert!(report.contains("Cluster (cluster.x-k8s.io/v1beta2)"), "{report}");
    assert!(!report.contains("HelmRelease") && !report.contains("Kustomization"), "{report}");

    let endpoint =
        eventually("the endpoint's line", Duration::from_secs(5), || line("serving /metrics")).await?;
    let port: String = endpoint
        .split("127.0.0.1:")
        .nth(1)
        .context("the endpoint's address")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let metrics = http_get(&format!("127.0.0.1:{port}"), "/metrics").await?;
    for (kind, group, version, served) in [
        ("Cluster", "cluster.x-k8s.io", "v1beta2", 0),
        ("HelmRelease", "helm.toolkit.fluxcd.io", "v2", 1),
        ("Kustomization", "kustomize.toolkit.fluxcd.io", "v1", 1),
    ] {
        let sample = format!(
            "kaas_controller_api_served{{group=\"{group}\",version=\"{version}\",kind=\"{kind}\"}} {served}"
        );
        assert!(metrics.lines().any(|l| l == sample), "{sample} not in:\n{metrics}");
    }

    p.create_example("beta").await?;
    p.create_example("acme").await?;
    p.wait_state("beta", "Provisioning", 1).await?;
    assert_eq!(p.commits("tenants/tenants/beta")?, ["tenant tenants/beta: generation 1"]);
    p.wait_state("acme", "Degraded", 1).await?;
    let acme = p.tenants().get("acme").await?;
    let degraded = acme.status.iter().flat_map(|s| &s.conditions).find(|c| c.type_ == "Degraded");
    let degraded = degraded.context("Degraded")?;
    assert_eq!(degraded.reason, "ApiNotServed", "{degraded:?}");
    assert!(degraded.message.contains("Cluster (cluster.x-k8s.io/v1beta2)"), "{degraded:?}");

    // Cluster API installed: without a restart, the tenant's next read finds the kind (it waits for its
    // Cluster now) and the metric follows.
    let crd = kaas_testsupport::repo_root().join("../shared/crds/cluster.x-k8s.io_clusters.yaml");
    p.plane.install_crds(&std::fs::read_to_string(crd)?).await?;
    state_within(&p, "acme", "Provisioning", Duration::from_secs(60)).await?;
    let cluster =
        "kaas_controller_api_served{group=\"cluster.x-k8s.io\",version=\"v1beta2\",kind=\"Cluster\"} 1";
    let metrics = http_get(&format!("127.0.0.1:{port}"), "/metrics").await?;
    assert!(metrics.lines().any(|l| l == cluster), "{cluster} not in:\n{metrics}");

    p.tenants().delete("acme", &DeleteParams::default()).await?;
    eventually("acme deleted", Duration::from_secs(30), || async {
        Ok(p.tenants().get_opt("acme").await?.is_none().then_some(()))
    })
    .await
    .with_context(|| controller.log())?;
    Ok(())
}

/// Whether the API server lets the chart's controller (its ServiceAccount) get Secret `ns/name`.
async fn can_get_secret(p: &Platform, ns: &str, name: &str) -> anyhow::Result<bool> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{SYSTEM}:{}", common::RELEASE)),
            groups: Some(vec!["system:serviceaccounts".into(), "system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.into()),
                verb: Some("get".into()),
                resource: Some("secrets".into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(p.admin.clone());
    let answer = reviews.create(&PostParams::default(), &review).await?;
    Ok(answer.status.context("a review's status")?.allowed)
}

/// [`Platform::start`] with only these upstream CRDs (files of `../shared/crds/`) installed.
async fn platform_serving(files: &[&str]) -> anyhow::Result<Platform> {
    use kaas_testsupport::apiserver::{apply_yaml, documents, TEST_MANAGER};
    let plane = ControlPlane::start().await?;
    for file in files {
        let path = kaas_testsupport::repo_root().join("../shared/crds").join(file);
        plane.install_crds(&std::fs::read_to_string(path)?).await?;
    }
    let root = kaas_testsupport::repo_root();
    plane
        .install_crds(&std::fs::read_to_string(root.join("charts/kaas-controller/crds/kafkatenant.yaml"))?)
        .await?;
    let admin = plane.admin().await?;
    for ns in [SYSTEM, "tenants"] {
        plane.namespace(ns).await?;
    }
    let values = json!({ "machines": { "imageLookupOrg": "123456789012" } });
    let rendered =
        kaas_testsupport::python::render_chart("kaas-controller", &values, common::RELEASE, SYSTEM)?;
    let chart = documents(&rendered)?;
    let rbac = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
    for object in chart.iter().filter(|o| rbac.contains(&o["kind"].as_str().unwrap_or_default())) {
        apply_yaml(&admin, &object.to_string(), TEST_MANAGER, Some(SYSTEM)).await?;
    }
    let kubeconfig = plane.service_account(SYSTEM, common::RELEASE).await?;
    let tmp = tempfile::tempdir()?;
    let remote = tmp.path().join("gitops.git");
    common::git(&["init", "--quiet", "--bare", "--initial-branch=main", &remote.to_string_lossy()])?;
    Ok(Platform { plane, admin, chart, kubeconfig, remote, tmp })
}

/// The body of a plain HTTP GET of `path` at `address`.
async fn http_get(address: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

/// [`Platform::wait_state`] at any generation with a longer bound: a tenant stopped by a kind not served is
/// re-read on its requeue (30 s), not on a watch.
async fn state_within(p: &Platform, name: &str, state: &str, within: Duration) -> anyhow::Result<()> {
    eventually(&format!("{name} {state}"), within, || async {
        Ok(p.state(name).await?.filter(|(s, _, _)| s == state).map(drop))
    })
    .await
}

/// The chart's admission policy on the real API server: a namespace named like a tenant's (`kaas-*`,
/// `tenant-*`) is made only by Flux's appliers, refused to anyone else (even a cluster admin) with a message
/// naming who may; other names, the exempt ones and the release's own namespace are anyone's with the right.
#[tokio::test]
async fn only_flux_makes_namespaces_named_like_tenants() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let values = json!({ "tenantNamespaces": { "exempt": ["kaas-platform"] } });
    let p = Platform::start(values, all_rbac).await?;
    let policy = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"];
    for object in p.chart.iter().filter(|o| policy.contains(&o["kind"].as_str().unwrap_or_default())) {
        kaas_testsupport::apiserver::apply_yaml(&p.admin, &object.to_string(), "test", None).await?;
    }
    // Flux's kustomize-controller, with the right to make namespaces (as Flux's own RBAC gives it).
    p.plane.namespace("flux-system").await?;
    let flux = p.plane.service_account("flux-system", "kustomize-controller").await?;
    let binding = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": { "name": "flux-applies" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "kind": "ServiceAccount", "name": "kustomize-controller", "namespace": "flux-system" }] });
    kaas_testsupport::apiserver::apply_yaml(&p.admin, &binding.to_string(), "test", None).await?;
    let flux = kaas_testsupport::apiserver::client_from(&flux).await?;
    let make = |client: kube::Client, name: String| async move {
        let ns = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(name), ..Default::default() },
            ..Default::default()
        };
        Api::<Namespace>::all(client).create(&PostParams::default(), &ns).await.map(|_| ())
    };
    // The policy is compiled and watched by the server a moment after it is created (a name made before
    // then stays taken: no namespace controller runs here to delete it, so each try takes a new one).
    let tries = std::sync::atomic::AtomicU32::new(0);
    let refusal = eventually("policy in force", Duration::from_secs(30), || async {
        let name = format!("tenant-squatted-{}", tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        match make(p.admin.clone(), name).await {
            Err(kube::Error::Api(e)) => Ok(Some(e)),
            Ok(()) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    assert_eq!(refusal.code, 403, "{refusal:?}");
    assert!(
        refusal.message.contains("is named like a tenant namespace (kaas-*, tenant-*)")
            && refusal.message.contains("system:serviceaccount:flux-system:kustomize-controller"),
        "{}",
        refusal.message
    );
    assert!(make(p.admin.clone(), "kaas-squatted".into()).await.is_err(), "kaas-* is a tenant's too");
    make(flux.clone(), "tenant-made-by-flux".into()).await.context("Flux makes tenant namespaces")?;
    make(flux, "kaas-made-by-flux".into()).await.context("Flux makes tenant namespaces")?;
    make(p.admin.clone(), "team-a".into()).await.context("other names are anyone's")?;
    make(p.admin.clone(), "kaas-platform".into()).await.context("exempt names")?;
    Ok(())
}
