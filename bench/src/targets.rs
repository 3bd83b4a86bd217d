//! The things measured: an upstream broker (Tansu or the synthetic one, each its own process, or the
//! end-to-end tests' Apache Kafka), kaas-proxy (the release binary, its own process) and nginx `stream` TLS
//! termination (Debian nginx) — plus their CPU time and peak memory, read from /proc.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_for(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("{what} did not start listening on {addr}; see its log in the results folder")
}

/// A child process, killed on drop.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(log)?;
    let child = cmd
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
    Ok(Proc { child })
}

pub fn start_synthetic(dir: &Path, port: u16) -> anyhow::Result<Proc> {
    let me = std::env::current_exe()?;
    let p = spawn(
        "synthetic-broker",
        Command::new(me).args(["synthetic-broker", "--port", &port.to_string()]),
        &dir.join("synthetic.log"),
    )?;
    wait_for(([127, 0, 0, 1], port).into(), "the synthetic broker")?;
    Ok(p)
}

/// The broker a run measures against: a process of ours, or an Apache Kafka cluster. Held to be stopped on
/// drop, and asked for the cluster's mutual-TLS material.
#[derive(Debug)]
pub enum Broker {
    Process(#[allow(dead_code)] Proc),
    Kafka(Box<kaas_e2e::kafka::KafkaCluster>),
}

/// What a kaas-proxy tenant with `identity: client` needs to reach the cluster's mutual-TLS listener, and the
/// client certificate the bench presents to that tenant: the proxy verifies it against the clients CA and
/// mints the upstream certificate for its subject with the clients CA key.
#[derive(Debug, Clone)]
pub struct MutualTls {
    /// `host:port` of each broker's TLS listener.
    pub bootstrap: Vec<String>,
    /// The CA that signed the broker certificates (the proxy's upstream trust).
    pub cluster_ca: PathBuf,
    /// The CA whose client certificates the broker's TLS listener accepts: the tenant's `client_ca` too.
    pub clients_ca: PathBuf,
    /// Its private key, with which the proxy mints each client subject's upstream certificate.
    pub clients_ca_key: PathBuf,
    /// (cert PEM, key PEM) of the bench's own client, issued by the clients CA.
    pub client_cert: (PathBuf, PathBuf),
}

impl Broker {
    /// The mutual-TLS way in, with a client certificate for `user`: Apache Kafka only, since Tansu and the
    /// synthetic broker listen in plaintext alone.
    pub fn mutual_tls(&self, user: &str) -> anyhow::Result<Option<MutualTls>> {
        let Broker::Kafka(cluster) = self else { return Ok(None) };
        Ok(Some(MutualTls {
            bootstrap: cluster.bootstrap_tls().split(',').map(str::to_owned).collect(),
            cluster_ca: cluster.cluster_ca_pem().to_owned(),
            clients_ca: cluster.clients_ca_pem().to_owned(),
            clients_ca_key: cluster.clients_ca_key().to_owned(),
            client_cert: cluster.client_cert(user)?,
        }))
    }
}

/// A single-node Apache Kafka 4.4 (the end-to-end tests' fixture); returns its plaintext port.
pub fn start_kafka() -> anyhow::Result<(u16, Broker)> {
    use kaas_e2e::kafka::{ClusterOptions, KafkaCluster};
    let cluster = KafkaCluster::start(ClusterOptions::named("bench").nodes(1))?;
    let bootstrap = cluster.bootstrap_plain();
    let port = bootstrap
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {bootstrap}"))?;
    Ok((port, Broker::Kafka(Box::new(cluster))))
}

pub fn start_tansu(dir: &Path, port: u16) -> anyhow::Result<Proc> {
    let url = format!("tcp://127.0.0.1:{port}");
    let bin =
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")).filter(|p| p.exists());
    let mut cmd = Command::new(bin.unwrap_or_else(|| "tansu".into()));
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        "memory://tansu/",
    ]);
    let p = spawn("tansu", &mut cmd, &dir.join("tansu.log"))?;
    wait_for(([127, 0, 0, 1], port).into(), "tansu (scripts/install-prereqs.sh installs it)")?;
    Ok(p)
}

/// Certificates for `*.bench.localhost` under a fresh CA: (ca, cert, key).
pub fn certs(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let names = vec![
        "bench.kaas.localhost".to_string(),
        "*.bench.kaas.localhost".to_string(),
        "*.kaas.localhost".to_string(),
    ];
    let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
    let paths = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&paths.0, ca.pem())?;
    std::fs::write(&paths.1, cert.pem())?;
    std::fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

/// Tenant `name` and, for `tenants` > 1, `<name>0`..`<name><n-1>`: the names over which
/// [`crate::client::Endpoint::for_connection`] spreads connections.
fn tenant_names(name: &str, tenants: usize) -> impl Iterator<Item = String> + '_ {
    let extra = if tenants > 1 { tenants } else { 0 };
    std::iter::once(name.to_owned()).chain((0..extra).map(move |i| format!("{name}{i}")))
}

/// A path as a YAML double-quoted scalar (a JSON string is one), so that no character of it is YAML syntax.
fn yaml_path(p: &Path) -> anyhow::Result<String> {
    let text = p.to_str().ok_or_else(|| anyhow::anyhow!("path {} is not UTF-8", p.display()))?;
    Ok(serde_json::to_string(text)?)
}

/// The tenant of kaas-proxy carrying each client's identity to the broker: clients authenticate with a
/// certificate of the clients CA, and the proxy reaches the brokers over mutual TLS as that same subject.
pub const MTLS_TENANT: &str = "bench-mtls";

/// kaas-proxy with tenant `bench` and, for `tenants` > 1, `bench0`..`bench<n-1>`, all on the same plaintext
/// upstream; with `mtls`, also tenant [`MTLS_TENANT`] (and `bench-mtls0`.. likewise) on the cluster's
/// mutual-TLS listener with `identity: client`.
pub fn start_proxy(
    bin: &Path,
    dir: &Path,
    port: u16,
    upstream: u16,
    tenants: usize,
    (cert, key): (&Path, &Path),
    mtls: Option<&MutualTls>,
) -> anyhow::Result<Proc> {
    let config = dir.join("kaas-proxy.yaml");
    let mut yaml = format!(
        "listen: \"127.0.0.1:{port}\"\ndomain: kaas.localhost\ntls: {{ cert: {}, key: {} }}\ntenants:\n",
        cert.display(),
        key.display()
    );
    for name in tenant_names("bench", tenants) {
        yaml.push_str(&format!("  - name: {name}\n    bootstrap: [\"127.0.0.1:{upstream}\"]\n    upstream: {{ plaintext: true }}\n"));
    }
    if let Some(m) = mtls {
        let bootstrap = serde_json::to_string(&m.bootstrap)?;
        let (clients_ca, cluster_ca, ca_key) =
            (yaml_path(&m.clients_ca)?, yaml_path(&m.cluster_ca)?, yaml_path(&m.clients_ca_key)?);
        for name in tenant_names(MTLS_TENANT, tenants) {
            yaml.push_str(&format!(
                "  - name: {name}\n    bootstrap: {bootstrap}\n    client_ca: {clients_ca}\n"
            ));
            yaml.push_str(&format!(
                "    upstream: {{ tls: {{ ca: {cluster_ca} }}, identity: client, clients_ca_key: {ca_key} }}\n"
            ));
        }
    }
    std::fs::write(&config, yaml)?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&config).env("RUST_LOG", "warn");
    let p = spawn("kaas-proxy", &mut cmd, &dir.join("kaas-proxy.log"))
        .map_err(|e| anyhow::anyhow!("{e}; build it with cargo build --release -p kaas-proxy"))?;
    wait_for(([127, 0, 0, 1], port).into(), "kaas-proxy")?;
    Ok(p)
}

pub fn start_nginx(dir: &Path, port: u16, upstream: u16, cert: &Path, key: &Path) -> anyhow::Result<Proc> {
    let module =
        ["/usr/lib/nginx/modules/ngx_stream_module.so", "/usr/share/nginx/modules/ngx_stream_module.so"]
            .into_iter()
            .find(|m| Path::new(m).exists())
            .ok_or_else(|| {
                anyhow::anyhow!("nginx's stream module is missing: apt-get install nginx libnginx-mod-stream")
            })?;
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module {module};\nworker_processes auto;\ndaemon off;\nmaster_process on;\nuser root;\n\
             pid {pid};\nerror_log stderr warn;\nworker_rlimit_nofile 65536;\nevents {{ worker_connections 30000; }}\n\
             stream {{\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n\
             ssl_certificate_key {key};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:SSL:10m;\n\
             proxy_pass 127.0.0.1:{upstream};\n  }}\n}}\n",
            pid = dir.join("nginx.pid").display(),
            cert = cert.display(),
            key = key.display()
        ),
    )?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-c").arg(&conf).arg("-p").arg(dir).arg("-e").arg("stderr");
    let p = spawn("nginx", &mut cmd, &dir.join("nginx.log"))
        .map_err(|e| anyhow::anyhow!("{e}; apt-get install nginx libnginx-mod-stream"))?;
    wait_for(([127, 0, 0, 1], port).into(), "nginx")?;
    Ok(p)
}

/// CPU seconds and memory of a process and its children (nginx's workers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

fn pids_of(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
                s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
            });
            if ppid == Some(root) {
                pids.push(pid);
            }
        }
    }
    pids
}

pub fn usage(root: u32) -> Usage {
    let ticks = 100.0; // USER_HZ on Linux
    let mut u = Usage::default();
    for pid in pids_of(root) {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
            let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            u.cpu_seconds += (utime + stime) / ticks;
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let kib = |key: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            u.rss_kib += kib("VmRSS:");
            u.peak_rss_kib += kib("VmHWM:");
        }
    }
    u
}
