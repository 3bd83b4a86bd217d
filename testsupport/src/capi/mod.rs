//! Cluster API itself against the test control plane: core, the kubeadm bootstrap and control-plane providers
//! and the AWS provider (CAPA), built from the Go module proxy by `scripts/install-k8s.sh`, installed with
//! their CRDs and admission webhooks and run as processes with the control plane's admin kubeconfig; every AWS
//! call CAPA makes goes to [`moto`], seeded with what a platform's account holds.
//!
//! The emulator stops where real machines would boot: no instance runs kubeadm, so no workload cluster comes
//! up by itself. A test starts another [`ControlPlane`] to stand for the workload cluster, points
//! `<cluster>-kubeconfig` at it ([`workload_kubeconfig`]) and lets [`boot::Boot`] do on it what each running
//! instance would (its Node, static pods, etcd member).
//!
//! Neighbours: [`crate::apiserver`] (the control plane, owned here when given, so it stops after the
//! managers), [`crate::certs`] (the webhooks' serving certificate), `webhooks`, [`moto`] and [`boot`].

pub mod boot;
pub mod moto;
mod webhooks;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;

use crate::apiserver::{binary, client_from, crd_files, documents, ControlPlane};
use crate::certs::{new_ca, server_certificate};
use crate::{free_port, readyz, stop};
use moto::{Moto, Seed};

/// A Cluster API manager: its folder in the cache (binary, `crds/`, `webhooks.yaml`) and the contract labels
/// its release's kustomization adds to its CRDs, which the bases lack.
#[derive(Debug, Clone, Copy)]
pub struct Provider {
    pub name: &'static str,
    pub labels: &'static [(&'static str, &'static str)],
}

/// The four managers, in the order they start. Labels: cluster-api v1.13.4
/// `bootstrap/kubeadm/config/crd/kustomization.yaml` and `controlplane/kubeadm/config/crd/kustomization.yaml`
/// lines 1–6; cluster-api-provider-aws v2.13.0 `config/crd/kustomization.yaml` lines 1–4 (without the
/// v1beta1 one Cluster API core refuses an AWSCluster: "cannot find any versions matching contract versions").
/// Core's own CRDs carry none (its `config/crd/kustomization.yaml` adds none).
pub const PROVIDERS: [Provider; 4] = [
    Provider { name: "cluster-api", labels: &[] },
    Provider {
        name: "kubeadm-bootstrap",
        labels: &[("cluster.x-k8s.io/v1beta1", "v1beta1"), ("cluster.x-k8s.io/v1beta2", "v1beta2")],
    },
    Provider {
        name: "kubeadm-control-plane",
        labels: &[("cluster.x-k8s.io/v1beta1", "v1beta1"), ("cluster.x-k8s.io/v1beta2", "v1beta2")],
    },
    Provider {
        name: "cluster-api-provider-aws",
        labels: &[
            ("cluster.x-k8s.io/v1alpha3", "v1alpha3"),
            ("cluster.x-k8s.io/v1alpha4", "v1alpha4"),
            ("cluster.x-k8s.io/v1beta1", "v1beta1_v1beta2"),
        ],
    },
];

/// How long a manager may take to report ready (four of them start on two shared cores).
const READY_WITHIN: Duration = Duration::from_secs(180);
/// How long a manager gets to stop on SIGTERM before SIGKILL (CAPA's manager often outlasts 30 s).
const STOP_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Manager {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// Cluster API's managers and moto, running on a control plane; on `Drop` the managers stop first, then moto,
/// then the control plane if it was given to [`ClusterApi::start`] (API server, then etcd).
#[derive(Debug)]
pub struct ClusterApi {
    managers: Vec<Manager>,
    moto: Arc<Moto>,
    /// The management cluster's admin kubeconfig, which the managers run with.
    kubeconfig: PathBuf,
    plane: Option<ControlPlane>,
    dir: tempfile::TempDir,
}

impl Drop for ClusterApi {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let mut children: Vec<&mut Child> = self.managers.iter_mut().map(|m| &mut m.child).collect();
        stop(&mut children, STOP_WITHIN);
    }
}

impl ClusterApi {
    /// [`Self::start_on`] `plane`, which then stops with this.
    pub async fn start(plane: ControlPlane, region: &str, seed: &Seed) -> anyhow::Result<ClusterApi> {
        let mut capi = ClusterApi::start_on(&plane, region, seed).await?;
        capi.plane = Some(plane);
        Ok(capi)
    }

    /// Installs the four providers' CRDs and webhooks on `plane`, starts moto with `seed` (CAPA's calls for
    /// `region` go to it) and the four managers, and waits until each reports ready. `plane` must outlive the
    /// result (the managers stop on its `Drop`).
    pub async fn start_on(plane: &ControlPlane, region: &str, seed: &Seed) -> anyhow::Result<ClusterApi> {
        let started = Instant::now();
        let dir = tempfile::tempdir()?;
        let admin = plane.admin().await?;
        for provider in PROVIDERS {
            for file in crd_files(provider.name)? {
                let text = std::fs::read_to_string(&file)?;
                for crd in documents(&text)? {
                    let crd = webhooks::labelled(crd, provider.labels);
                    plane
                        .install_crds(&serde_json::to_string(&crd)?)
                        .await
                        .with_context(|| file.display().to_string())?;
                }
            }
        }

        // One serving certificate for every manager: each listens on 127.0.0.1, on its own port.
        let (ca_pem, issuer) = new_ca("kaas e2e cluster-api webhooks CA")?;
        let (cert, key) = server_certificate(&issuer, &["127.0.0.1"])?;
        let certs = dir.path().join("webhook-certs");
        std::fs::create_dir_all(&certs)?;
        std::fs::write(certs.join("tls.crt"), cert)?;
        std::fs::write(certs.join("tls.key"), key)?;

        let moto = Moto::start(dir.path(), region, seed)?;
        let kubeconfig = plane.admin_kubeconfig().to_path_buf();
        let mut capi =
            ClusterApi { managers: Vec::new(), moto: Arc::new(moto), kubeconfig, plane: None, dir };
        let mut health = Vec::new();
        for provider in PROVIDERS {
            let webhook_port = free_port();
            let manifests = binary(provider.name)?.with_file_name("webhooks.yaml");
            let text =
                std::fs::read_to_string(&manifests).with_context(|| manifests.display().to_string())?;
            let n = webhooks::register(&admin, provider.name, &text, webhook_port, &ca_pem).await?;
            tracing::info!(provider = provider.name, webhooks = n, "webhooks registered");
            let health_port = free_port();
            capi.spawn(provider.name, webhook_port, health_port, &certs, region)?;
            health.push((provider.name, health_port));
        }
        for (name, port) in health {
            capi.wait_ready(name, port).await?;
        }
        eprintln!("cluster api (core, kubeadm, aws) and moto ready in {:.1?}", started.elapsed());
        Ok(capi)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        webhook_port: u16,
        health_port: u16,
        certs: &std::path::Path,
        region: &str,
    ) -> anyhow::Result<()> {
        let mut args = vec![
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--webhook-port={webhook_port}"),
            format!("--webhook-cert-dir={}", certs.display()),
            format!("--health-addr=127.0.0.1:{health_port}"),
            // Each manager's own metrics port (the default, 8443, is the same for all four).
            format!("--diagnostics-address=127.0.0.1:{}", free_port()),
            "--insecure-diagnostics".to_owned(),
            "--leader-elect=false".to_owned(),
            "--v=4".to_owned(),
        ];
        let mut command = Command::new(binary(name)?);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path());
        if name == "cluster-api-provider-aws" {
            // Every service CAPA has an endpoint flag for, to the one moto port (CAPA's `--service-endpoints`
            // help: `${SigningRegion}:${ServiceID}=${URL},...`; `Elastic Load Balancing v2` is the SDK v2
            // ServiceID, without it ELBv2 falls back to `elasticloadbalancing`'s).
            let m = self.moto.endpoint();
            let services =
                ["ec2", "elasticloadbalancing", "Elastic Load Balancing v2", "secretsmanager", "ssm", "sts"]
                    .iter()
                    .chain(&["tagging", "s3", "sqs", "events", "eks"])
                    .map(|s| format!("{s}={m}"))
                    .collect::<Vec<_>>()
                    .join(",");
            args.push(format!("--service-endpoints={region}:{services}"));
            command
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", region)
                .env("AWS_EC2_METADATA_DISABLED", "true");
        }
        let log = self.dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        self.managers.push(Manager { name, child, log });
        Ok(())
    }

    async fn wait_ready(&mut self, name: &str, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(m) = self.managers.iter_mut().find(|m| m.name == name) {
                if let Some(status) = m.child.try_wait()? {
                    anyhow::bail!("{name} exited ({status}):\n{}", self.logs());
                }
            }
            if readyz(port).await {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{name} not ready after {READY_WITHIN:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A system:masters client of the control plane the managers run on (the management cluster).
    pub async fn admin(&self) -> anyhow::Result<kube::Client> {
        client_from(&self.kubeconfig).await
    }

    /// The AWS emulator.
    pub fn moto(&self) -> &Moto {
        &self.moto
    }

    /// The AWS emulator, shared (with [`boot::Boot`]).
    pub fn shared_moto(&self) -> Arc<Moto> {
        self.moto.clone()
    }

    /// A manager's whole log (its name as in [`PROVIDERS`]).
    pub fn log(&self, name: &str) -> String {
        self.managers
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| std::fs::read_to_string(&m.log).ok())
            .unwrap_or_default()
    }

    /// The last lines of each manager's log and moto's, for a failure message.
    pub fn logs(&self) -> String {
        let mut out: Vec<String> = self
            .managers
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.log).unwrap_or_default();
                // klog marks errors with a leading `E`.
                let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('E')).collect();
                format!(
                    "--- {} (errors, last 15)\n{}",
                    m.name,
                    lines[lines.len().saturating_sub(15)..].join("\n")
                )
            })
            .collect();
        out.push(self.moto.logs());
        out.join("\n")
    }

    /// Where the managers' logs and moto's are kept while this runs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// The `<cluster>-kubeconfig` Secret Cluster API reads a workload cluster's address and credentials from
/// (type `cluster.x-k8s.io/secret`, key `value`, labelled with the cluster's name), here pointing at
/// `workload`: what the kubeadm control-plane provider would write once the first control-plane machine had
/// booted. Created before the Cluster, the provider keeps it: it writes one only when there is none, and
/// rotates only a client certificate near its expiry (cluster-api v1.13.4,
/// `controlplane/kubeadm/internal/controllers/helpers.go` lines 57–96).
pub fn workload_kubeconfig(
    cluster: &str,
    namespace: &str,
    workload: &ControlPlane,
) -> anyhow::Result<String> {
    let kubeconfig = std::fs::read_to_string(workload.admin_kubeconfig())?;
    let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
    Ok(serde_json::to_string(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "cluster.x-k8s.io/secret",
        "metadata": {
            "name": format!("{cluster}-kubeconfig"),
            "namespace": namespace,
            "labels": { "cluster.x-k8s.io/cluster-name": cluster },
        },
        "data": { "value": value },
    }))?)
}

/// Condition `type_` of Cluster API `kind` (a v1beta2 object of `group`) `namespace/name`, as its controller
/// last wrote it; `None` while the object or the condition is missing.
pub async fn condition(
    admin: &kube::Client,
    (group, kind): (&str, &str),
    namespace: &str,
    name: &str,
    type_: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let resource =
        kube::api::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, "v1beta2", kind));
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(admin.clone(), namespace, &resource);
    let Some(object) = api.get_opt(name).await? else { return Ok(None) };
    let conditions = object.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
    Ok(conditions.into_iter().find(|c| c["type"] == type_))
}
