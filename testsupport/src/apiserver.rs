//! A real Kubernetes control plane for the controller's tests: etcd and kube-apiserver, built from the Go
//! module proxy by `scripts/install-k8s.sh`, started on loopback ports with certificates and service-account
//! keys made here, RBAC authorization on. Everything stops on `Drop`.
//!
//! What the fake client could not: the real server adds and keeps finalizers, checks structural schemas and
//! evaluates CEL rules, enforces RBAC on a service account's token, and runs server-side apply.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};

use crate::certs::new_ca;
use crate::free_port;

/// The field manager the tests' own server-side applies use (the stand-in for Flux's appliers).
pub const TEST_MANAGER: &str = "kaas-e2e";

/// Where `scripts/install-k8s.sh` puts the binaries.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let cache = std::env::var_os("KAAS_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/kaas")
    });
    let path = cache.join("k8s").join(name).join(name);
    anyhow::ensure!(path.exists(), "{} missing: run scripts/install-k8s.sh", path.display());
    Ok(path)
}

/// The CRD files a build in `~/.cache/kaas/k8s` copied beside binary `name` (`crds/*.yaml`), in name order.
pub fn crd_files(name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let crds = binary(name)?.with_file_name("crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&crds)
        .with_context(|| format!("{}: run scripts/install-k8s.sh", crds.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// etcd + kube-apiserver, running.
#[derive(Debug)]
pub struct ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    ca_pem: String,
    /// The cluster CA's signer: kubelets' serving certificates ([`Self::kubelet_certificate`]).
    issuer: Issuer<'static, KeyPair>,
    admin_kubeconfig: PathBuf,
    etcd: Child,
    apiserver: Child,
    dir: tempfile::TempDir,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the server is ready (`/readyz`, which includes the
    /// bootstrap RBAC roles and the CRD machinery).
    pub async fn start() -> anyhow::Result<ControlPlane> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let started = Instant::now();
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let (ca_pem, issuer) = new_ca("kaas e2e kubernetes CA")?;
        std::fs::write(d.join("ca.crt"), &ca_pem)?;

        // The server's certificate: the names clients dial.
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // kubeadm's name for it, which Cluster API's control-plane provider looks for when it reads the
        // certificate's expiry (cluster-api v1.13.4 `controlplane/kubeadm/internal/workload_cluster.go` line 270).
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        std::fs::write(d.join("server.crt"), params.signed_by(&key, &issuer)?.pem())?;
        std::fs::write(d.join("server.key"), key.serialize_pem())?;

        // The tests' own identity: a client certificate in system:masters, which RBAC lets do anything.
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "kaas-e2e-admin");
        params.distinguished_name.push(DnType::OrganizationName, "system:masters");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = params.signed_by(&key, &issuer)?.pem();
        let admin_key = key.serialize_pem();

        // Service-account tokens are signed with this key and checked against its public half.
        let sa = KeyPair::generate()?;
        std::fs::write(d.join("sa.key"), sa.serialize_pem())?;
        std::fs::write(d.join("sa.pub"), sa.public_key_pem())?;

        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let etcd = spawn(
            Command::new(binary("etcd")?).args([
                "--name=e2e",
                &format!("--data-dir={}", d.join("etcd").display()),
                &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-cluster=e2e=http://127.0.0.1:{peer_port}"),
                // A test's data is thrown away with it: fsync would only make every write wait for the disk.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]),
            &d.join("etcd.log"),
        )?;
        let path = |name: &str| d.join(name).display().to_string();
        let apiserver = spawn(
            Command::new(binary("kube-apiserver")?).args([
                &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                &format!("--secure-port={api_port}"),
                &format!("--cert-dir={}", path("pki")),
                &format!("--tls-cert-file={}", path("server.crt")),
                &format!("--tls-private-key-file={}", path("server.key")),
                &format!("--client-ca-file={}", path("ca.crt")),
                // Kubelets serve with certificates of the cluster CA, which the server checks when it proxies
                // to them (`pods/portforward`); without it, it would not verify them at all (k8s.io/kubernetes
                // v1.36.3 `pkg/kubelet/client/kubelet_client.go` line 126).
                &format!("--kubelet-certificate-authority={}", path("ca.crt")),
                &format!("--service-account-key-file={}", path("sa.pub")),
                &format!("--service-account-signing-key-file={}", path("sa.key")),
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=RBAC",
                "--profiling=false",
                "-v=1",
            ]),
            &d.join("kube-apiserver.log"),
        )?;
        let url = format!("https://127.0.0.1:{api_port}");
        let admin_kubeconfig = d.join("admin.kubeconfig");
        std::fs::write(
            &admin_kubeconfig,
            kubeconfig(
                &url,
                &ca_pem,
                &format!(
                    "client-certificate-data: {}\n      client-key-data: {}",
                    b64(&admin_cert),
                    b64(&admin_key)
                ),
                "default",
            ),
        )?;
        let plane = ControlPlane { url, ca_pem, issuer, admin_kubeconfig, etcd, apiserver, dir };
        plane.wait_ready(Duration::from_secs(90)).await?;
        tracing::info!(elapsed = ?started.elapsed(), url = %plane.url, "control plane ready");
        Ok(plane)
    }

    async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let client = self.admin().await?;
        let mut last = String::new();
        while Instant::now() < deadline {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(request).await {
                Ok(text) if text.trim() == "ok" => return Ok(()),
                Ok(text) => last = text,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::bail!("kube-apiserver not ready after {within:?}: {last}\n{}", self.logs())
    }

    /// A kubelet's serving certificate for `names` (the addresses the server dials it at), signed by the
    /// cluster CA the server checks kubelets against: (certificate PEM, key PEM).
    pub fn kubelet_certificate(&self, names: &[&str]) -> anyhow::Result<(String, String)> {
        crate::certs::server_certificate(&self.issuer, names)
    }

    /// A client with the tests' system:masters identity.
    pub async fn admin(&self) -> anyhow::Result<Client> {
        client_from(&self.admin_kubeconfig).await
    }

    /// The kubeconfig of the tests' system:masters identity (what Flux's controllers run with here).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The folder the control plane keeps its files in (kubeconfigs written by [`Self::service_account`]).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of both logs, for a failure message.
    pub fn logs(&self) -> String {
        ["etcd.log", "kube-apiserver.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!("--- {f}\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A new namespace named `<prefix>-<n>`, for one test's objects.
    pub async fn namespace(&self, name: &str) -> anyhow::Result<String> {
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
            ..Default::default()
        };
        Api::<Namespace>::all(self.admin().await?).create(&PostParams::default(), &ns).await?;
        Ok(name.to_owned())
    }

    /// The service account `namespace/name` (created if missing) and a kubeconfig file carrying a token of
    /// it, as a pod of that account would have: what a deployed program authenticates as.
    pub async fn service_account(&self, namespace: &str, name: &str) -> anyhow::Result<PathBuf> {
        let api: Api<ServiceAccount> = Api::namespaced(self.admin().await?, namespace);
        if api.get_opt(name).await?.is_none() {
            let sa = ServiceAccount {
                metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
                ..Default::default()
            };
            api.create(&PostParams::default(), &sa).await?;
        }
        let request = TokenRequest {
            spec: TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() },
            ..Default::default()
        };
        let token = api
            .create_token_request(name, &PostParams::default(), &request)
            .await?
            .status
            .context("token request without a status")?
            .token;
        let path = self.dir.path().join(format!("{namespace}.{name}.kubeconfig"));
        std::fs::write(&path, kubeconfig(&self.url, &self.ca_pem, &format!("token: {token}"), namespace))?;
        Ok(path)
    }

    /// Creates every CustomResourceDefinition in `yaml` (one or more documents) and waits until each is
    /// established, so its kind can be used at once. The server checks each schema is structural and
    /// compiles its CEL rules: an error here is the server refusing the CRD.
    pub async fn install_crds(&self, yaml: &str) -> anyhow::Result<Vec<String>> {
        let api: Api<CustomResourceDefinition> = Api::all(self.admin().await?);
        let mut names = Vec::new();
        for doc in documents(yaml)? {
            let crd: CustomResourceDefinition = serde_json::from_value(doc)?;
            let name = crd.name_any();
            api.patch(&name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(&crd))
                .await
                .with_context(|| format!("the API server refused CRD {name}"))?;
            names.push(name);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for name in &names {
            loop {
                let crd = api.get(name).await?;
                let established = crd
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
                if established {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "CRD {name} not established after 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(names)
    }

    /// Every upstream CRD in `../shared/crds/` (Cluster API, CAPA, Flux, Strimzi, Prometheus Operator), and
    /// Cluster API's MachineHealthCheck, which that folder lacks and tenants' folders carry, from the Cluster API
    /// build (`scripts/install-k8s.sh`).
    pub async fn install_upstream_crds(&self) -> anyhow::Result<Vec<String>> {
        let dir = crate::repo_root().join("../shared/crds");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("read {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let health_checks = crd_files("cluster-api")?
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("machinehealthchecks")));
        files.extend(health_checks);
        let mut names = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            names.extend(self.install_crds(&text).await.with_context(|| file.display().to_string())?);
        }
        Ok(names)
    }
}

/// Server-side applies every object in `yaml` as `manager`, the way Flux's kustomize-controller applies a
/// folder: each kind resolved through discovery, each object patched by name with force. `namespace` is used
/// for namespaced objects that name none. Returns `kind/namespace/name` of each.
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    manager: &str,
    namespace: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let mut applied = Vec::new();
    for doc in documents(yaml)? {
        let obj: DynamicObject = serde_json::from_value(doc)?;
        let types = obj.types.clone().context("an object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("the server does not serve {}/{}", types.api_version, types.kind))?;
        let name = obj.name_any();
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
            kube::discovery::Scope::Namespaced => {
                let ns = obj.namespace().or(namespace.map(str::to_owned)).unwrap_or_else(|| "default".into());
                Api::namespaced_with(client.clone(), &ns, &resource)
            }
        };
        api.patch(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&obj))
            .await
            .with_context(|| format!("apply {} {name}", types.kind))?;
        applied.push(format!("{}/{}/{name}", types.kind, obj.namespace().unwrap_or_default()));
    }
    Ok(applied)
}

/// The non-empty YAML documents of `yaml`, as JSON values.
pub fn documents(yaml: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(doc)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// A kube client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn kubeconfig(url: &str, ca_pem: &str, user: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n  - name: e2e\n    cluster:\n      server: {url}\n      certificate-authority-data: {}\nusers:\n  - name: e2e\n    user:\n      {user}\ncontexts:\n  - name: e2e\n    context:\n      cluster: e2e\n      user: e2e\n      namespace: {namespace}\ncurrent-context: e2e\n",
        b64(ca_pem)
    )
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Starts `command` with its output to `log`.
pub(crate) fn spawn(command: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)?;
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("start {program}"))
}
