//! kaas-proxy run in-process from a real configuration file (and its reload watcher, as the binary runs it), on
//! its own runtime thread, with its log captured
//! so tests can assert on what operators would read. (nextest runs each test in its own process, so the
//! captured log holds only that test's proxy.)

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tempfile::TempDir;

use crate::certs::Certs;
use crate::DOMAIN;

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// How often a test proxy checks its configuration and the files it names for changes.
pub const RELOAD_EVERY: Duration = Duration::from_millis(200);
static INIT: OnceLock<()> = OnceLock::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the log capture and the process's crypto provider, once.
pub fn init() {
    INIT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,kaas_proxy=debug")
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

/// Everything the proxy logged so far in this process.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Waits until the log contains `needle` (log lines are written just after the event they describe).
pub fn wait_for_log(needle: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if logs().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A running proxy; stopped on drop.
#[derive(Debug)]
pub struct ProxyHandle {
    pub port: u16,
    /// The admin endpoint's port (`/metrics`, `/healthz`, `/readyz`).
    pub admin_port: u16,
    pub config_dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyHandle {
    /// Starts a proxy for `tenants` (name, bootstrap servers) on a free port, all interfaces (so both the
    /// IPv4 and IPv6 loopback addresses of `*.localhost` reach it).
    pub fn start(certs: &Certs, tenants: &[(&str, Vec<String>)]) -> anyhow::Result<ProxyHandle> {
        let with_ca: Vec<_> = tenants.iter().map(|(n, b)| (*n, b.clone(), None)).collect();
        Self::start_with_client_cas(certs, &with_ca)
    }

    /// Like [`ProxyHandle::start`], with an optional client CA file per tenant (mutual TLS).
    pub fn start_with_client_cas(
        certs: &Certs,
        tenants: &[(&str, Vec<String>, Option<std::path::PathBuf>)],
    ) -> anyhow::Result<ProxyHandle> {
        let mut yaml = String::new();
        for (name, bootstrap, client_ca) in tenants {
            let list: Vec<String> = bootstrap.iter().map(|b| format!("\"{b}\"")).collect();
            yaml.push_str(&format!(
                "  - name: {name}\n    bootstrap: [{}]\n    upstream: {{ plaintext: true }}\n",
                list.join(", ")
            ));
            if let Some(ca) = client_ca {
                yaml.push_str(&format!("    client_ca: {}\n", ca.display()));
            }
        }
        Self::start_with_tenants_yaml(certs, &yaml)
    }

    /// Like [`ProxyHandle::start`], with the `tenants:` list given as YAML (items indented two spaces), for
    /// keys the other constructors do not cover (`upstream`).
    pub fn start_with_tenants_yaml(certs: &Certs, tenants_yaml: &str) -> anyhow::Result<ProxyHandle> {
        Self::start_with_config(certs, "", tenants_yaml)
    }

    /// Like [`ProxyHandle::start_with_tenants_yaml`], with further top-level keys (limits, timeouts) as YAML
    /// lines.
    pub fn start_with_config(
        certs: &Certs,
        settings_yaml: &str,
        tenants_yaml: &str,
    ) -> anyhow::Result<ProxyHandle> {
        let stop = kaas_proxy::Shutdown { delay: Duration::ZERO, drain: Duration::from_millis(100) };
        Self::start_stopping_with(certs, settings_yaml, tenants_yaml, stop)
    }

    /// Like [`ProxyHandle::start_with_config`], stopping (on drop or [`ProxyHandle::begin_shutdown`]) as `stop`
    /// says.
    pub fn start_stopping_with(
        certs: &Certs,
        settings_yaml: &str,
        tenants_yaml: &str,
        stop: kaas_proxy::Shutdown,
    ) -> anyhow::Result<ProxyHandle> {
        Self::start_listening(certs, 0, settings_yaml, tenants_yaml, stop)
    }

    /// Like [`ProxyHandle::start_with_config`], on the TLS port `port` (for an ACME server that must know it
    /// before the proxy starts).
    pub fn start_on_port(
        certs: &Certs,
        port: u16,
        settings_yaml: &str,
        tenants_yaml: &str,
    ) -> anyhow::Result<ProxyHandle> {
        let stop = kaas_proxy::Shutdown { delay: Duration::ZERO, drain: Duration::from_millis(100) };
        Self::start_listening(certs, port, settings_yaml, tenants_yaml, stop)
    }

    fn start_listening(
        certs: &Certs,
        port: u16,
        settings_yaml: &str,
        tenants_yaml: &str,
        stop: kaas_proxy::Shutdown,
    ) -> anyhow::Result<ProxyHandle> {
        init();
        let dir = tempfile::tempdir()?;
        let admin_port = crate::free_port();
        let path = dir.path().join("kaas-proxy.yaml");
        let listen = format!("listen: \"[::]:{port}\"\n");
        std::fs::write(
            &path,
            config_yaml(certs, admin_port, &format!("{listen}{settings_yaml}"), tenants_yaml),
        )?;
        let settings = kaas_proxy::config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let path_for_watch = path.clone();

        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            let Ok(rt) = rt else { return };
            rt.block_on(async move {
                match kaas_proxy::Server::bind(&settings).await {
                    Ok(proxy) => {
                        // Files are watched as `kaas-proxy --reload-seconds` does, faster.
                        let reloader = proxy.reloader();
                        let now = std::sync::Arc::new(tokio::sync::Notify::new());
                        let watch = tokio::spawn(async move {
                            kaas_proxy::reload::watch(&path_for_watch, Some(RELOAD_EVERY), now, reloader)
                                .await
                        });
                        let _ = port_tx.send(proxy.local_addr().map(|a| a.port()).map_err(|e| e.to_string()));
                        proxy.run(async { drop(stop_rx.await) }, stop).await;
                        watch.abort();
                    }
                    Err(e) => drop(port_tx.send(Err(e.to_string()))),
                }
            });
        });
        let port = port_rx.recv_timeout(Duration::from_secs(10))?.map_err(|e| anyhow::anyhow!(e))?;
        Ok(ProxyHandle { port, admin_port, config_dir: dir, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// Rewrites the configuration file (the proxy reloads it within [`RELOAD_EVERY`]).
    pub fn rewrite_config(
        &self,
        certs: &Certs,
        settings_yaml: &str,
        tenants_yaml: &str,
    ) -> anyhow::Result<()> {
        let listen = "listen: \"[::]:0\"\n";
        let yaml = config_yaml(certs, self.admin_port, &format!("{listen}{settings_yaml}"), tenants_yaml);
        Ok(std::fs::write(self.config_dir.path().join("kaas-proxy.yaml"), yaml)?)
    }

    /// Stops the proxy and waits until it has (drained, its last usage records written); its files stay.
    pub fn stop_and_wait(&mut self) {
        self.begin_shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Sends the shutdown signal without waiting for the proxy to stop (dropping the handle waits).
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// The status line of `GET path` on the admin endpoint (`HTTP/1.0 200 OK`).
    pub fn admin_status(&self, path: &str) -> anyhow::Result<String> {
        Ok(admin_get(self.admin_port, path)?.lines().next().unwrap_or_default().to_owned())
    }

    /// The `/metrics` exposition, fetched over HTTP as Prometheus would.
    pub fn metrics(&self) -> anyhow::Result<String> {
        metrics(self.admin_port)
    }

    /// The value of the metric sample `series` (name and labels exactly as exposed), 0 when absent.
    pub fn metric(&self, series: &str) -> anyhow::Result<f64> {
        Ok(sample(&self.metrics()?, series))
    }

    /// Polls `series` until it reads `want` or `within` passes; returns the last value read. (A refusal is
    /// counted just after the client sees it, so a test reading at once can be a moment early.)
    pub fn wait_for_metric(&self, series: &str, want: f64, within: Duration) -> anyhow::Result<f64> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let value = self.metric(series)?;
            if value == want || std::time::Instant::now() >= deadline {
                return Ok(value);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `<tenant>.<domain>:<port>`, the one setting a tenant's users are given.
    pub fn bootstrap(&self, tenant: &str) -> String {
        format!("{tenant}.{DOMAIN}:{}", self.port)
    }
}

/// The whole HTTP response to `GET path` on the admin endpoint at `port` (in this process or another).
fn admin_get(port: u16, path: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: kaas-proxy\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    Ok(response)
}

/// The `/metrics` exposition of the admin endpoint at `port`, fetched over HTTP as Prometheus would.
pub fn metrics(port: u16) -> anyhow::Result<String> {
    let response = admin_get(port, "/metrics")?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no HTTP body"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "GET /metrics: {head}");
    Ok(body.to_owned())
}

/// The value of the sample `series` (name and labels exactly as exposed) in an exposition, 0 when absent.
pub fn sample(exposition: &str, series: &str) -> f64 {
    let line = exposition.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')));
    line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// The configuration file [`ProxyHandle`] writes; `settings_yaml` starts with the `listen` line.
fn config_yaml(certs: &Certs, admin_port: u16, settings_yaml: &str, tenants_yaml: &str) -> String {
    format!(
        "domain: {DOMAIN}\nadmin_listen: \"127.0.0.1:{admin_port}\"\n{settings_yaml}tls:\n  \
         cert: {}\n  key: {}\ntenants:\n{tenants_yaml}",
        certs.cert.display(),
        certs.key.display()
    )
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
