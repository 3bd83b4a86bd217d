//! What the controller's API-server tests share: a control plane with every CRD and the chart's RBAC, the
//! real `kaas-controller run` binary started as the chart's Deployment runs it, a bare GitOps repository, and
//! stand-ins for Flux (server-side apply of a committed folder), helm-controller and Strimzi.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::ByteString;
use kaas_controller::crd::KafkaTenant;
use kaas_controller::reconcile::ROUTES_KEY;
use kaas_controller::watched::{Cluster, HelmRelease};
use kaas_route::TenantRoute;
use kaas_testsupport::apiserver::{apply_yaml, documents, ControlPlane, TEST_MANAGER};
use kaas_testsupport::python::render_chart;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::Client;
use serde_json::json;

pub const RELEASE: &str = "kaas-controller";
pub const SYSTEM: &str = "kaas-system";

/// Polls `check` every 200 ms until it returns `Some` or `within` has passed.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> anyhow::Result<T>
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

pub fn git(args: &[&str]) -> anyhow::Result<String> {
    kaas_testsupport::git(None, args)
}

/// A control plane with every CRD, the chart's RBAC applied, its service account's kubeconfig, and an empty
/// bare GitOps repository.
pub struct Platform {
    pub plane: ControlPlane,
    pub admin: Client,
    pub chart: Vec<serde_json::Value>,
    pub kubeconfig: PathBuf,
    pub remote: PathBuf,
    pub tmp: tempfile::TempDir,
}

impl Platform {
    /// `values` over the chart's defaults; `keep` chooses which of the chart's RBAC objects are applied.
    pub async fn start(
        values: serde_json::Value,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<Self> {
        let plane = ControlPlane::start().await?;
        plane.install_upstream_crds().await?;
        let crd = std::fs::read_to_string(
            kaas_testsupport::repo_root().join("charts/kaas-controller/crds/kafkatenant.yaml"),
        )?;
        plane.install_crds(&crd).await?;
        let admin = plane.admin().await?;
        for ns in [SYSTEM, "tenants"] {
            plane.namespace(ns).await?;
        }
        // The chart refuses to install without the owner of the tenant machines' images; a platform sets it.
        let mut values = values;
        if values.get("machines").is_none() {
            values["machines"] = serde_json::json!({ "imageLookupOrg": "123456789012" });
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
    pub fn controller(&self, identity: &str) -> anyhow::Result<Controller> {
        let deployment = self.chart.iter().find(|o| o["kind"] == "Deployment").context("no Deployment")?;
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let metrics_port = kaas_testsupport::free_port();
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

    pub fn tenants(&self) -> Api<KafkaTenant> {
        Api::namespaced(self.admin.clone(), "tenants")
    }

    pub async fn create_example(&self, name: &str) -> anyhow::Result<()> {
        self.create_example_as(name, name).await
    }

    /// `controller/examples/<example>.yaml`, created under the name `name`.
    pub async fn create_example_as(&self, example: &str, name: &str) -> anyhow::Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{example}.yaml"));
        let mut tenant: KafkaTenant = serde_norway::from_str(&std::fs::read_to_string(path)?)?;
        tenant.metadata.name = Some(name.to_owned());
        self.tenants().create(&PostParams::default(), &tenant).await?;
        Ok(())
    }

    /// The state (the True condition's type) and observed generation of `tenant`, if it has a status.
    pub fn state_of(tenant: &KafkaTenant) -> Option<(String, i64)> {
        let status = tenant.status.as_ref()?;
        let on = status.conditions.iter().find(|c| c.status == "True")?;
        Some((on.type_.clone(), status.observed_generation.unwrap_or(0)))
    }

    /// Commit subjects on the remote's main branch touching `folder` (newest first).
    pub fn commits(&self, folder: &str) -> anyhow::Result<Vec<String>> {
        let dir = format!("--git-dir={}", self.remote.display());
        if git(&[&dir, "branch", "--list", "main"])?.trim().is_empty() {
            return Ok(Vec::new());
        }
        Ok(git(&[&dir, "log", "--format=%s", "main", "--", folder])?.lines().map(str::to_owned).collect())
    }

    pub fn manifests(&self, folder: &str) -> anyhow::Result<Option<String>> {
        let dir = format!("--git-dir={}", self.remote.display());
        Ok(git(&[&dir, "show", &format!("main:{folder}/manifests.yaml")]).ok())
    }

    /// What Flux's kustomize-controller does with a tenant's folder: server-side applies every object.
    pub async fn flux_apply(&self, folder: &str) -> anyhow::Result<Vec<String>> {
        let yaml = self.manifests(folder)?.context("folder not committed")?;
        apply_yaml(&self.admin, &yaml, "kustomize-controller", None).await
    }

    /// What Flux does once tenant `id`'s folder left Git: prunes its Cluster (if any) and Kafka HelmRelease.
    pub async fn flux_prune(&self, id: &str) -> anyhow::Result<()> {
        flux_prune(&self.admin, id).await
    }

    /// helm-controller reporting release `<id>-kafka` upgraded at its current generation.
    pub async fn helm_ready(&self, id: &str) -> anyhow::Result<()> {
        helm_ready(&self.admin, id).await
    }

    /// Strimzi reporting a namespace-mode tenant's `Kafka` serving ([`strimzi_serving`]).
    pub async fn strimzi_serving(&self, id: &str) -> anyhow::Result<()> {
        strimzi_serving(&self.admin, &format!("tenant-{id}"), "tls").await
    }

    /// Strimzi's three CA secrets of a namespace-mode tenant, in `tenant-<id>`.
    pub async fn strimzi_cas(&self, id: &str, material: [&[u8]; 3]) -> anyhow::Result<()> {
        put_strimzi_cas(&self.admin, &format!("tenant-{id}"), material).await
    }

    pub async fn routes(&self) -> anyhow::Result<Option<Vec<TenantRoute>>> {
        let api: Api<ConfigMap> = Api::namespaced(self.admin.clone(), SYSTEM);
        let Some(cm) = api.get_opt("kaas-proxy-routes").await? else { return Ok(None) };
        let text = cm.data.and_then(|d| d.get(ROUTES_KEY).cloned()).unwrap_or_default();
        Ok(Some(serde_norway::from_str(&text)?))
    }

    /// The state (the `True` condition) and its reason, with the generation the status describes.
    pub async fn state(&self, name: &str) -> anyhow::Result<Option<(String, String, Option<i64>)>> {
        let Some(t) = self.tenants().get_opt(name).await? else { return Ok(None) };
        let Some(status) = t.status else { return Ok(None) };
        let on = status.conditions.iter().find(|c| c.status == "True");
        Ok(on.map(|c| (c.type_.clone(), c.reason.clone(), status.observed_generation)))
    }

    pub async fn wait_state(&self, name: &str, state: &str, generation: i64) -> anyhow::Result<()> {
        self.wait_state_within(name, state, generation, Duration::from_secs(30)).await
    }

    pub async fn wait_state_within(
        &self,
        name: &str,
        state: &str,
        generation: i64,
        within: Duration,
    ) -> anyhow::Result<()> {
        let want = (state.to_owned(), generation);
        eventually(&format!("{name} {state} at generation {generation}"), within, || async {
            Ok(self.state(name).await?.filter(|(s, _, g)| (s.clone(), g.unwrap_or(0)) == want).map(drop))
        })
        .await
    }

    pub async fn lease_holder(&self) -> anyhow::Result<Option<String>> {
        let api: Api<Lease> = Api::namespaced(self.admin.clone(), SYSTEM);
        Ok(api.get_opt(RELEASE).await?.and_then(|l| l.spec?.holder_identity))
    }
}

/// A running `kaas-controller run`.
pub struct Controller {
    pub child: Child,
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
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kaas_controller_leader` from its /metrics.
    pub async fn leading(&self) -> anyhow::Result<bool> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        let line =
            body.lines().find(|l| l.starts_with("kaas_controller_leader ")).context("no leader gauge")?;
        Ok(line.ends_with(" 1"))
    }

    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM");
        Ok(())
    }

    pub fn wait_exit(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
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

/// Strimzi's three CA secrets of release `kaas`, in namespace `ns` (created if missing) of the cluster `client`
/// reaches: the cluster CA certificate, the clients CA certificate and the clients CA key.
/// What Flux does once tenant `id`'s folder left Git: prunes its Cluster (if any) and Kafka HelmRelease.
pub async fn flux_prune(admin: &Client, id: &str) -> anyhow::Result<()> {
    let ns = format!("kaas-{id}");
    let releases: Api<HelmRelease> = Api::namespaced(admin.clone(), &ns);
    if releases.get_opt(&format!("{id}-kafka")).await?.is_some() {
        releases.delete(&format!("{id}-kafka"), &Default::default()).await?;
    }
    let clusters: Api<Cluster> = Api::namespaced(admin.clone(), &ns);
    if clusters.get_opt(id).await?.is_some() {
        clusters.delete(id, &Default::default()).await?;
    }
    Ok(())
}

/// Objects of `kind` (`group`/`version`) in namespace `ns` of the cluster `client` reaches, untyped.
pub fn api(client: &Client, ns: &str, group: &str, version: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Strimzi's `Kafka`s in namespace `ns` of the cluster `client` reaches.
pub fn kafkas(client: &Client, ns: &str) -> Api<DynamicObject> {
    api(client, ns, "kafka.strimzi.io", "v1", "Kafka")
}

/// Strimzi's part for a tenant whose Kafka is in namespace `ns` of the cluster `client` reaches: the `Kafka`
/// `kaas` (created, minimal, when no chart installed it) reported serving ([`strimzi_reports`]).
pub async fn strimzi_serving(client: &Client, ns: &str, listener: &str) -> anyhow::Result<()> {
    if strimzi_reports(client, ns, listener).await? {
        return Ok(());
    }
    ensure_namespace(client, ns).await?;
    let minimal = json!({
        "apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
        "metadata": { "name": "kaas", "namespace": ns },
        "spec": { "kafka": { "listeners": [
            { "name": listener, "port": 9093, "type": "internal", "tls": true }] } },
    });
    apply_yaml(client, &minimal.to_string(), TEST_MANAGER, None).await?;
    anyhow::ensure!(strimzi_reports(client, ns, listener).await?, "Kafka {ns}/kaas created but not found");
    Ok(())
}

/// Strimzi's report on the `Kafka` `kaas` in namespace `ns`, as the cluster operator writes it once the
/// brokers run: `Ready` at its current generation, listener `listener` at an address
/// (`kaas_controller::strimzi::status`). `false` when there is no such `Kafka`. No Strimzi operator runs
/// here: it is not published to any registry this project builds from.
pub async fn strimzi_reports(client: &Client, ns: &str, listener: &str) -> anyhow::Result<bool> {
    let api = kafkas(client, ns);
    let Some(kafka) = api.get_opt("kaas").await? else { return Ok(false) };
    let generation = kafka.metadata.generation;
    if kafka.data["status"]["observedGeneration"].as_i64() == generation {
        return Ok(true);
    }
    let status = json!({ "status": {
        "observedGeneration": generation,
        "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" }],
        "listeners": [{ "name": listener,
            "addresses": [{ "host": format!("kaas-kafka-bootstrap.{ns}.svc"), "port": 9093 }] }],
    }});
    api.patch_status("kaas", &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(true)
}

/// helm-controller reporting tenant `id`'s release `<id>-kafka` upgraded at its current generation.
pub async fn helm_ready(admin: &Client, id: &str) -> anyhow::Result<()> {
    let api: Api<HelmRelease> = Api::namespaced(admin.clone(), &format!("kaas-{id}"));
    let name = format!("{id}-kafka");
    let generation = api.get(&name).await?.metadata.generation;
    let status = json!({ "status": {
        "observedGeneration": generation,
        "lastAttemptedGeneration": generation,
        "lastAttemptedRevision": "0.1.0",
        "conditions": [{ "type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
            "message": "Helm upgrade succeeded", "observedGeneration": generation,
            "lastTransitionTime": "2026-01-01T00:00:00Z" }],
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// Namespace `ns`, created when missing, as helm-controller creates a release's (`install.createNamespace`).
pub async fn ensure_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(ns).await?.is_none() {
        let namespace = Namespace {
            metadata: ObjectMeta { name: Some(ns.to_owned()), ..Default::default() },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &namespace).await?;
    }
    Ok(())
}

pub async fn put_strimzi_cas(client: &Client, ns: &str, material: [&[u8]; 3]) -> anyhow::Result<()> {
    ensure_namespace(client, ns).await?;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let [cluster_ca, clients_ca, clients_key] = material;
    for (name, key, value) in [
        ("kaas-cluster-ca-cert", "ca.crt", cluster_ca),
        ("kaas-clients-ca-cert", "ca.crt", clients_ca),
        ("kaas-clients-ca", "ca.key", clients_key),
    ] {
        let secret = Secret {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            data: Some([(key.to_owned(), ByteString(value.to_vec()))].into()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &secret).await?;
    }
    Ok(())
}

pub fn all_rbac(_: &serde_json::Value) -> bool {
    true
}

/// The platform components' charts that the releases of example tenant `example` ask for (names and versions
/// as the controller renders them), as small stand-ins for a Helm repository the test serves in place of the
/// public ones: the Strimzi operator's installs Strimzi 1.2.0's CRDs and the Prometheus Operator CRDs' the
/// monitoring CRDs (both in `crds/`, as the real charts ship them, so `crds: CreateReplace` applies), on the
/// tenant's cluster, where they judge what `charts/kaas` creates; every chart writes a ConfigMap of its name
/// holding the values it was given. No operator, CNI or CSI driver runs: there is no kubelet.
pub fn component_charts(example: &str) -> anyhow::Result<Vec<kaas_testsupport::helm_repo::Chart>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{example}.yaml"));
    let mut tenant: KafkaTenant = serde_norway::from_str(&std::fs::read_to_string(path)?)?;
    tenant.metadata.namespace = Some("tenants".into());
    let manifests = kaas_controller::render::render(&tenant, &Default::default())?;
    let crds = kaas_testsupport::repo_root().join("../shared/crds");
    let crd_files = |prefix: &str| -> anyhow::Result<Vec<(String, String)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&crds)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.ends_with(".yaml") {
                files.push((format!("crds/{name}"), std::fs::read_to_string(entry.path())?));
            }
        }
        files.sort();
        Ok(files)
    };
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}\n  namespace: \
                     {{ .Release.Namespace }}\ndata:\n  version: {{ .Chart.Version | quote }}\n  values: {{ toJson \
                     .Values | quote }}\n";
    let mut charts = Vec::new();
    for release in manifests.iter().filter(|o| o["kind"] == "HelmRelease") {
        let spec = &release["spec"]["chart"]["spec"];
        let (Some(name), Some(version)) = (spec["chart"].as_str(), spec["version"].as_str()) else {
            continue;
        };
        let mut files = vec![("templates/configmap.yaml".to_owned(), configmap.to_owned())];
        match name {
            "strimzi-kafka-operator" => files.extend(crd_files("04")?),
            "prometheus-operator-crds" => files.extend(crd_files("monitoring.coreos.com_")?),
            _ => {}
        }
        charts.push(kaas_testsupport::helm_repo::Chart { name: name.into(), version: version.into(), files });
    }
    anyhow::ensure!(charts.len() == 8, "eight platform components, found {}", charts.len());
    Ok(charts)
}
