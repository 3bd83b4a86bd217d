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
//!
//! What needs nothing of kaas-proxy ([`apiserver`], [`flux`], [`git_http`], [`certs`], [`python`] and the
//! helpers [`repo_root`], [`git`], [`free_port`], [`wait_for_port`]) lives in the `kaas_testsupport` crate, which
//! the controller's tests use without building the proxy; it is re-exported here under the same names.

pub use kaas_testsupport::{
    apiserver, certs, flux, free_port, git, git_http, python, repo_root, wait_for_port,
};

pub mod hostile_broker;
pub mod kafka;
pub mod matrix;
pub mod pebble;
pub mod proxy;
pub mod raw;
pub mod relay;
pub mod soak;
pub mod tansu;

/// The domain every test serves tenants under; `*.localhost` resolves to loopback (libnss-myhostname).
pub const DOMAIN: &str = "kaas.localhost";

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
