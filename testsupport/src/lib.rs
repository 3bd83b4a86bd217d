//! Test harness that needs nothing of kaas-proxy, so the controller's tests can use it without building the
//! proxy (the end-to-end harness, `kaas_e2e`, re-exports all of it).
//!
//! [`apiserver`] is a real Kubernetes control plane (etcd + kube-apiserver), [`flux`] runs Flux's real
//! controllers against it, [`capi`] Cluster API's and its AWS provider's (with AWS emulated by moto),
//! [`git_http`] serves a GitOps repository over HTTP to them and [`helm_repo`] a Helm chart repository of charts
//! built by the test (both on [`loopback`]'s server); [`certs`] makes CAs, server and client certificates as PEM files; [`docs`] reads the documentation's
//! examples and checks its links; [`ports`] hands out the ports servers are told to bind; [`python`] drives the project's Python environment (the
//! Python Kafka clients, Helm chart rendering).

pub mod apiserver;
pub mod capi;
pub mod certs;
pub mod docs;
pub mod flux;
pub mod git_http;
pub mod helm_repo;
pub mod loopback;
pub mod ports;
pub mod python;

pub use ports::{free_port, free_ports};

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("testsupport/ has a parent").to_path_buf()
}

/// Runs `git args` in `dir` (the current folder when `None`); its standard output, or an error with git's
/// standard error.
pub fn git(dir: Option<&std::path::Path>, args: &[&str]) -> anyhow::Result<String> {
    let mut command = std::process::Command::new("git");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command.args(args).output()?;
    anyhow::ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("nothing listens on port {port} after {within:?}")
}

/// `GET /readyz` on controller-runtime's health endpoint answers 200 once the manager has started.
pub async fn readyz(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return false };
    let request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// Stops `children` together: SIGTERM to each, then SIGKILL to any still running after `within`.
pub fn stop(children: &mut [&mut std::process::Child], within: Duration) {
    for child in children.iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
    }
    let deadline = Instant::now() + within;
    for child in children.iter_mut() {
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
