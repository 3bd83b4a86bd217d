//! End-to-end harness: real parts wired together for the tests in `tests/tests/e2e/`.
//!
//! [`certs`] makes a CA and the proxy's certificate, [`tansu`] starts real Tansu brokers, [`proxy`] runs
//! kaas-proxy in-process from a real configuration file and captures its log, [`relay`] counts upstream
//! connections, [`python`] drives the Python clients, [`raw`] speaks Kafka over TLS byte by byte,
//! [`hostile_broker`] answers with corrupted responses, and [`kafka`] starts real Apache Kafka clusters
//! (KRaft, mutual-TLS listeners, several at once); [`matrix`] runs every client against every broker;
//! [`soak`] runs the real binary as its own process and samples it; [`pebble`] is a real ACME server;
//! [`apiserver`] is a real Kubernetes control plane (etcd + kube-apiserver) for the controller, and [`git_http`]
//! serves its GitOps repository over HTTP to [`flux`]'s real controllers.

pub mod apiserver;
pub mod certs;
pub mod flux;
pub mod git_http;
pub mod hostile_broker;
pub mod kafka;
pub mod matrix;
pub mod pebble;
pub mod proxy;
pub mod python;
pub mod raw;
pub mod relay;
pub mod soak;
pub mod tansu;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The domain every test serves tenants under; `*.localhost` resolves to loopback (libnss-myhostname).
pub const DOMAIN: &str = "kaas.localhost";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
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

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
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

/// The common arrangement: one tenant `acme` whose cluster is one real Tansu broker, behind a proxy.
#[derive(Debug)]
pub struct SingleTenant {
    pub certs: certs::Certs,
    pub tansu: tansu::Tansu,
    pub proxy: proxy::ProxyHandle,
    _dir: tempfile::TempDir,
}

impl SingleTenant {
    pub fn start() -> anyhow::Result<SingleTenant> {
        let dir = tempfile::tempdir()?;
        let certs = certs::Certs::generate(dir.path(), DOMAIN, &["acme"])?;
        let tansu = tansu::Tansu::start("acme-cluster")?;
        let proxy = proxy::ProxyHandle::start(&certs, &[("acme", vec![tansu.addr()])])?;
        Ok(SingleTenant { certs, tansu, proxy, _dir: dir })
    }

    /// `acme.kaas.localhost:<proxy port>`.
    pub fn bootstrap(&self) -> String {
        self.proxy.bootstrap("acme")
    }
}
