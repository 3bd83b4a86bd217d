//! kaas-controller against a real Kubernetes API server (etcd + kube-apiserver, built by
//! `scripts/install-k8s.sh`): the server accepts the CRDs and enforces the tenant rules itself; the real
//! `kaas-controller run` binary, started with the chart's arguments and exactly the RBAC the chart grants,
//! adds its finalizer, commits to a real bare Git repository, writes status by server-side apply, records
//! Events, publishes the route and cleans everything up on delete; a verb its role lacks stops it with an error
//! naming it; two replicas elect one leader and the other takes over when it dies.
//!
//! Flux, Cluster API and Strimzi are not running: the test applies the committed folder by server-side apply
//! as kustomize-controller would, and reports the objects' status as their controllers would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::ByteString;
use kaas_controller::crd::KafkaTenant;
use kaas_controller::reconcile::{FIELD_MANAGER, FINALIZER, ROUTES_KEY};
use kaas_controller::render::tenant_id;
use kaas_controller::watched::HelmRelease;
use kaas_e2e::apiserver::{apply_yaml, documents, ControlPlane, TEST_MANAGER};
use kaas_e2e::python::render_chart;
use kaas_route::TenantRoute;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;

const RELEASE: &str = "kaas-controller";
const SYSTEM: &str = "kaas-system";

/// Polls `check` every 200 ms until it returns `Some` or `within` has passed.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) if Instant::now() < deadline => {}
            Ok(None) => anyhow::bail!("{what}: not within {within:?}"),
            Err(e) if Instant::now() < deadline => tracing::debug!(error = %e, "{what}"),
            Err(e) => return Err(e.context(format!("{what}: not within {within:?}"))),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn git(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git").args(args).output()?;
    anyhow::ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A control plane with every CRD, the chart's RBAC applied, its service account's kubeconfig, and an empty
/// bare GitOps repository.
struct Platform {
    plane: ControlPlane,
    admin: Client,
    chart: Vec<serde_json::Value>,
    kubeconfig: PathBuf,
    remote: PathBuf,
    tmp: tempfile::TempDir,
}

impl Platform {
    /// `values` over the chart's defaults; `keep` chooses which of the chart's RBAC objects are applied.
    async fn start(
        values: serde_json::Value,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<Self> {
        let plane = ControlPlane::start().await?;
        plane.install_upstream_crds().await?;
        let crd = std::fs::read_to_string(
            kaas_e2e::repo_root().join("charts/kaas-controller/crds/kafkatenant.yaml"),
        )?;
        plane.install_crds(&crd).await?;
        let admin = plane.admin().await?;
        for ns in [SYSTEM, "tenants"] {
            plane.namespace(ns).await?;
        }
        let chart = documents(&render_chart("kaas-controller", &values, RELEASE, SYSTEM)?)?;
        let rbac = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
        for object in chart.iter().filter(|o| rbac.contains(&o["kind"].as_str().unwrap_or_default())) {
            if keep(object) {
                apply_yaml(&admin, &object.to_string(), TEST_MANAGER, Some(SYSTEM)).await?;
            }
        }
        let kubeconfig = plane.service_account(SYSTEM, RELEASE).await?;
        let tmp = tempfile::tempdir()?;
        let remote = tmp.path().join("gitops.git");
        git(&["init", "--quiet", "--bare", "--initial-branch=main", &remote.to_string_lossy()])?;
        Ok(Platform { plane, admin, chart, kubeconfig, remote, tmp })
    }

    /// Starts `kaas-controller` as the chart's Deployment runs it: its arguments and environment, with this
    /// machine's paths and ports, as the pod `identity`.
    fn controller(&self, identity: &str) -> anyhow::Result<Controller> {
        let deployment = self.chart.iter().find(|o| o["kind"] == "Deployment").context("no Deployment")?;
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let metrics_port = kaas_e2e::free_port();
        let workdir = self.tmp.path().join(identity);
        let args: Vec<String> = container["args"]
            .as_array()
            .context("container args")?
            .iter()
            .filter_map(|a| a.as_str())
            .map(|a| match a.split_once('=') {
                Some(("--workdir", _)) => format!("--workdir={}", workdir.display()),
                Some(("--metrics-listen", _)) => format!("--metrics-listen=127.0.0.1:{metrics_port}"),
                _ => a.to_owned(),
            })
            .collect();
        let log = self.tmp.path().join(format!("{identity}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_kaas-controller"));
        command.args(&args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for env in container["env"].as_array().into_iter().flatten() {
            let name = env["name"].as_str().unwrap_or_default();
            let value = match name {
                "KAAS_GITOPS_URL" => self.remote.display().to_string(),
                "POD_NAMESPACE" => SYSTEM.to_owned(),
                "POD_NAME" => identity.to_owned(),
                "HOME" => self.tmp.path().display().to_string(),
                _ => env["value"].as_str().context("env value")?.to_owned(),
            };
            command.env(name, value);
        }
        let out = std::fs::File::create(&log)?;
        let child = command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info")
            .env("GIT_AUTHOR_NAME", "kaas-controller")
            .env("GIT_AUTHOR_EMAIL", "kaas-controller@kaas.dev")
            .env("GIT_COMMITTER_NAME", "kaas-controller")
            .env("GIT_COMMITTER_EMAIL", "kaas-controller@kaas.dev")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Controller { child, log, metrics_port })
    }

    fn tenants(&self) -> Api<KafkaTenant> {
        Api::namespaced(self.admin.clone(), "tenants")
    }

    async fn create_example(&self, name: &str) -> anyhow::Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.yaml"));
        let tenant: KafkaTenant = serde_norway::from_str(&std::fs::read_to_string(path)?)?;
        self.tenants().create(&PostParams::default(), &tenant).await?;
        Ok(())
    }

    /// Commit subjects on the remote's main branch touching `folder` (newest first).
    fn commits(&self, folder: &str) -> anyhow::Result<Vec<String>> {
        let dir = format!("--git-dir={}", self.remote.display());
        if git(&[&dir, "branch", "--list", "main"])?.trim().is_empty() {
            return Ok(Vec::new());
        }
        Ok(git(&[&dir, "log", "--format=%s", "main", "--", folder])?.lines().map(str::to_owned).collect())
    }

    fn manifests(&self, folder: &str) -> anyhow::Result<Option<String>> {
        let dir = format!("--git-dir={}", self.remote.display());
        Ok(git(&[&dir, "show", &format!("main:{folder}/manifests.yaml")]).ok())
    }

    /// What Flux's kustomize-controller does with a tenant's folder: server-side applies every object.
    async fn flux_apply(&self, folder: &str) -> anyhow::Result<Vec<String>> {
        let yaml = self.manifests(folder)?.context("folder not committed")?;
        apply_yaml(&self.admin, &yaml, "kustomize-controller", None).await
    }

    /// helm-controller reporting release `<id>-kafka` upgraded at its current generation.
    async fn helm_ready(&self, id: &str) -> anyhow::Result<()> {
        let api: Api<HelmRelease> = Api::namespaced(self.admin.clone(), &format!("kaas-{id}"));
        let name = format!("{id}-kafka");
        let generation = api.get(&name).await?.metadata.generation;
        let status = json!({ "status": {
            "observedGeneration": generation,
            "lastAttemptedGeneration": generation,
            "conditions": [{ "type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
                "message": "Helm upgrade succeeded", "observedGeneration": generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z" }],
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
        Ok(())
    }

    /// Strimzi's three CA secrets of a namespace-mode tenant, in `tenant-<id>`.
    async fn strimzi_cas(&self, id: &str) -> anyhow::Result<()> {
        let ns = format!("tenant-{id}");
        let namespaces: Api<Namespace> = Api::all(self.admin.clone());
        if namespaces.get_opt(&ns).await?.is_none() {
            self.plane.namespace(&ns).await?;
        }
        let api: Api<Secret> = Api::namespaced(self.admin.clone(), &ns);
        for (name, key, value) in [
            ("kaas-cluster-ca-cert", "ca.crt", "cluster CA"),
            ("kaas-clients-ca-cert", "ca.crt", "clients CA"),
            ("kaas-clients-ca", "ca.key", "clients CA key"),
        ] {
            let secret = Secret {
                metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
                data: Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
                ..Default::default()
            };
            api.create(&PostParams::default(), &secret).await?;
        }
        Ok(())
    }

    async fn routes(&self) -> anyhow::Result<Option<Vec<TenantRoute>>> {
        let api: Api<ConfigMap> = Api::namespaced(self.admin.clone(), SYSTEM);
        let Some(cm) = api.get_opt("kaas-proxy-routes").await? else { return Ok(None) };
        let text = cm.data.and_then(|d| d.get(ROUTES_KEY).cloned()).unwrap_or_default();
        Ok(Some(serde_norway::from_str(&text)?))
    }

    /// The state (the `True` condition) and its reason, with the generation the status describes.
    async fn state(&self, name: &str) -> anyhow::Result<Option<(String, String, Option<i64>)>> {
        let Some(t) = self.tenants().get_opt(name).await? else { return Ok(None) };
        let Some(status) = t.status else { return Ok(None) };
        let on = status.conditions.iter().find(|c| c.status == "True");
        Ok(on.map(|c| (c.type_.clone(), c.reason.clone(), status.observed_generation)))
    }

    async fn wait_state(&self, name: &str, state: &str, generation: i64) -> anyhow::Result<()> {
        let want = (state.to_owned(), generation);
        eventually(&format!("{name} {state} at generation {generation}"), Duration::from_secs(30), || async {
            Ok(self.state(name).await?.filter(|(s, _, g)| (s.clone(), g.unwrap_or(0)) == want).map(drop))
        })
        .await
    }

    async fn lease_holder(&self) -> anyhow::Result<Option<String>> {
        let api: Api<Lease> = Api::namespaced(self.admin.clone(), SYSTEM);
        Ok(api.get_opt(RELEASE).await?.and_then(|l| l.spec?.holder_identity))
    }
}

/// A running `kaas-controller run`.
struct Controller {
    child: Child,
    log: PathBuf,
    metrics_port: u16,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kaas_controller_leader` from its /metrics.
    async fn leading(&self) -> anyhow::Result<bool> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        let line =
            body.lines().find(|l| l.starts_with("kaas_controller_leader ")).context("no leader gauge")?;
        Ok(line.ends_with(" 1"))
    }

    fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM");
        Ok(())
    }

    fn wait_exit(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(Instant::now() < deadline, "still running after {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn all_rbac(_: &serde_json::Value) -> bool {
    true
}

#[tokio::test]
async fn the_server_accepts_the_crds_and_enforces_the_tenant_rules() -> anyhow::Result<()> {
    let plane = ControlPlane::start().await?;
    let upstream = plane.install_upstream_crds().await?;
    assert!(upstream.iter().any(|n| n == "kafkas.kafka.strimzi.io"), "{upstream:?}");
    assert!(upstream.iter().any(|n| n == "clusters.cluster.x-k8s.io"), "{upstream:?}");
    assert!(upstream.iter().any(|n| n == "helmreleases.helm.toolkit.fluxcd.io"), "{upstream:?}");
    let crd =
        std::fs::read_to_string(kaas_e2e::repo_root().join("charts/kaas-controller/crds/kafkatenant.yaml"))?;
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
    // The server's defaults from the schema.
    assert_eq!(created.spec.replication_factor, 3);
    assert_eq!(created.spec.region, "eu-west-1");

    let bad: [(&str, serde_json::Value, &str); 6] = [
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
    p.strimzi_cas(&id).await?;
    p.wait_state("beta", "Ready", 1).await?;
    let routes = p.routes().await?.unwrap_or_default();
    let route = routes.iter().find(|r| r.name == id).context("route published")?;
    assert_eq!(route.bootstrap, [format!("kaas-kafka-bootstrap.tenant-{id}.svc:9093")]);
    assert_eq!(route.client_ca, Some(format!("/etc/kaas-proxy/upstream/{id}.clients-ca.crt").into()));
    let proxy_secret: Api<Secret> = Api::namespaced(p.admin.clone(), SYSTEM);
    let keys: Vec<String> =
        proxy_secret.get("kaas-proxy-upstream").await?.data.unwrap_or_default().into_keys().collect();
    assert_eq!(
        keys,
        [format!("{id}.clients-ca.crt"), format!("{id}.clients-ca.key"), format!("{id}.cluster-ca.crt")]
    );

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

    // Delete: the finalizer removes the route, the proxy's copies and the folder, then lets the object go.
    p.tenants().delete("beta", &DeleteParams::default()).await?;
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
