//! Flux itself against the test control plane: source-controller, kustomize-controller and helm-controller,
//! built from the Go module proxy by `scripts/install-k8s.sh`, installed with their own CRDs (from the same
//! module versions) and run as processes with the control plane's admin kubeconfig, as `flux install` runs
//! them with cluster-admin. None of them needs a kubelet: they fetch Git over HTTP ([`crate::git_http`]),
//! serve artifacts to each other on loopback, and write only API objects.
//!
//! Neighbours: [`crate::apiserver`] (the control plane), and the controller's tests, which point a
//! `GitRepository` and a `Kustomization` at the repository kaas-controller commits to.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::apiserver::{apply_yaml, binary, crd_files, ControlPlane, TEST_MANAGER};
use crate::{free_port, readyz};

/// The namespace Flux runs in and keeps its sources in.
pub const FLUX_NAMESPACE: &str = "flux-system";

/// Flux's controllers, in the order they start.
pub const CONTROLLERS: [&str; 3] = ["source-controller", "kustomize-controller", "helm-controller"];

/// The three controllers, running; stopped on `Drop`.
#[derive(Debug)]
pub struct Flux {
    children: Vec<(&'static str, Child)>,
    dir: tempfile::TempDir,
}

impl Drop for Flux {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Flux {
    /// Installs the CRDs of all of Flux and its namespace, starts `controllers` (of [`CONTROLLERS`]) and
    /// waits until each reports ready.
    pub async fn start(plane: &ControlPlane, controllers: &[&'static str]) -> anyhow::Result<Flux> {
        let started = Instant::now();
        for name in CONTROLLERS {
            for file in crd_files(name)? {
                let text = std::fs::read_to_string(&file)?;
                plane.install_crds(&text).await.with_context(|| file.display().to_string())?;
            }
        }
        let admin = plane.admin().await?;
        let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {FLUX_NAMESPACE}\n");
        apply_yaml(&admin, &namespace, TEST_MANAGER, None).await?;

        let dir = tempfile::tempdir()?;
        let storage = free_port();
        let mut flux = Flux { children: Vec::new(), dir };
        let mut health = Vec::new();
        for &name in controllers {
            let port = free_port();
            let mut args = vec![
                "--enable-leader-election=false".to_owned(),
                "--metrics-addr=0".to_owned(),
                format!("--health-addr=127.0.0.1:{port}"),
                "--log-level=info".to_owned(),
            ];
            if name == "source-controller" {
                let storage_path = flux.dir.path().join("storage");
                std::fs::create_dir_all(&storage_path)?;
                args.extend([
                    format!("--storage-path={}", storage_path.display()),
                    format!("--storage-addr=127.0.0.1:{storage}"),
                    format!("--storage-adv-addr=127.0.0.1:{storage}"),
                ]);
            }
            if name == "kustomize-controller" {
                args.push("--no-remote-bases=true".to_owned());
            }
            if name == "helm-controller" {
                // A release waiting on another (`dependsOn`) is looked at again after this; the default 30 s
                // (helm-controller v1.4.0 main.go:120) would make a chain of three releases wait a minute.
                args.push("--requeue-dependency=2s".to_owned());
            }
            let log = std::fs::File::create(flux.dir.path().join(format!("{name}.log")))?;
            let child = Command::new(binary(name)?)
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", flux.dir.path())
                .env("KUBECONFIG", plane.admin_kubeconfig())
                .env("RUNTIME_NAMESPACE", FLUX_NAMESPACE)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("start {name}"))?;
            flux.children.push((name, child));
            health.push((name, port));
        }
        for (name, port) in health {
            flux.wait_ready(name, port, Duration::from_secs(60)).await?;
        }
        eprintln!("flux ({}) ready in {:.1?}", controllers.join(", "), started.elapsed());
        Ok(flux)
    }

    async fn wait_ready(&mut self, name: &str, port: u16, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| *n == name) {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!("{name} exited ({status}):\n{}", self.logs());
                }
            }
            if readyz(port).await {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} not ready after {within:?}:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of each controller's log, for a failure message.
    pub fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(name, _)| {
                let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!("--- {name}\n{}", lines[lines.len().saturating_sub(40)..].join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

/// A `GitRepository` named `name` in [`FLUX_NAMESPACE`] following `branch` of `url`, polled every
/// `interval` (a Go duration such as `2s`).
pub fn git_repository(name: &str, url: &str, branch: &str, interval: &str) -> String {
    format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: {name}\n  namespace: \
         {FLUX_NAMESPACE}\nspec:\n  url: {url}\n  ref:\n    branch: {branch}\n  interval: {interval}\n  timeout: 20s\n"
    )
}

/// A `Kustomization` named `name` applying `path` of GitRepository `source` with pruning, as a platform's Flux
/// bootstrap would point one at the tenants' folder.
pub fn kustomization(name: &str, source: &str, path: &str, interval: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: \
         {FLUX_NAMESPACE}\nspec:\n  interval: {interval}\n  retryInterval: {interval}\n  path: {path}\n  prune: \
         true\n  sourceRef:\n    kind: GitRepository\n    name: {source}\n"
    )
}

/// A bare repository at `remote` (created) whose `main` holds a copy of `files` (paths relative to `root`), as
/// a platform repository holding the charts.
pub fn publish(root: &Path, files: &[&str], remote: &Path) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let who = ["-c", "user.name=kaas-e2e", "-c", "user.email=kaas-e2e@kaas.dev"];
    let git = |dir: &Path, args: &[&str]| crate::git(Some(dir), &[&who[..], args].concat()).map(drop);
    git(work.path(), &["init", "--quiet", "--initial-branch=main"])?;
    for file in files {
        let out =
            Command::new("cp").args(["-r", "--parents", file]).arg(work.path()).current_dir(root).output()?;
        anyhow::ensure!(out.status.success(), "cp {file}: {}", String::from_utf8_lossy(&out.stderr));
    }
    git(work.path(), &["add", "--all"])?;
    git(work.path(), &["commit", "--quiet", "-m", "platform charts"])?;
    let remote = remote.to_string_lossy();
    git(work.path(), &["init", "--quiet", "--bare", "--initial-branch=main", &remote])?;
    git(work.path(), &["push", "--quiet", &remote, "main"])?;
    Ok(())
}
