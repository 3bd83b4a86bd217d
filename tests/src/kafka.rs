//! Real Apache Kafka clusters: KRaft nodes as `java` processes, run from the jars `scripts/install-kafka.sh`
//! puts in `${KAAS_CACHE:-~/.cache/kaas}/kafka/<version>/libs` (versions pinned in
//! `scripts/kafka/versions.env`), every process killed and the cluster's folder removed on drop, also when a
//! test panics. Each node logs into `node-<id>/server.log` of the cluster's folder, nothing to the test's
//! output; a node that fails to come up is reported with its first errors and last lines from that log
//! (`KAAS_KEEP_KAFKA=1` keeps the folder).
//!
//! Every node has three listeners, each on its own loopback port, advertised as `127.0.0.1:<port>`:
//! - `PLAIN`: plaintext, for traffic between brokers, the fixture's own requests and the proxy's upstream
//!   connections (until the proxy speaks TLS to brokers);
//! - `TLS`: mutual TLS (`ssl.client.auth=required`), as a Strimzi cluster's `authentication: tls` listener:
//!   broker certificates from the cluster's own CA, client certificates from its clients CA, both distinct
//!   from the proxy's CA;
//! - `CONTROLLER`: the KRaft quorum.
//!
//! Node ids start at 11, so that no test passes by mistaking an index for an id. Each node is broker and
//! controller in one JVM (combined mode; the nodes are the static quorum `controller.quorum.voters`, which
//! 3.9 and 4.x both accept): 3 JVMs for 3 brokers, where separate controllers would add one to three more on
//! a 2-core machine. The price: killing a node also takes a quorum voter away, which 3 voters survive.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use kaas_proxy::kafka::client::KafkaClient;
use kafka_protocol::messages::MetadataRequest;
use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};

use crate::certs::{new_ca, ClientCa};
use crate::repo_root;

/// The id of a cluster's first node; the others follow (11, 12, 13).
pub const FIRST_NODE_ID: i32 = 11;

/// How long until every broker is registered, at start or after a restart: generous, since other tests
/// share the 2 cores (3 brokers alone take about 8 s).
pub const READY_WITHIN: Duration = Duration::from_secs(120);

/// JVM flags for brokers on a 2-core test machine: a small heap with the single-threaded serial collector
/// (no GC threads competing for the cores; pauses on a heap this size are a few milliseconds), the C1 JIT
/// only (a third less start time and CPU than with C2, whose peak speed test traffic does not need), class
/// data sharing (the JDK's archive, and Kafka's own when installed: see `KafkaCluster::java`), no hsperfdata
/// file, and an exit rather than a limping broker on OutOfMemoryError.
pub const JVM_FLAGS: &[&str] = &[
    "-Xms128m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
];

/// Metadata v12: the newest both 3.9 and 4.x answer (4.0 dropped v0–v3).
const METADATA_VERSION: i16 = 12;

const VERSIONS_ENV: &str = include_str!("../../scripts/kafka/versions.env");

/// A Kafka version pinned in `scripts/kafka/versions.env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// `KAFKA_VERSION`, the current line.
    #[default]
    Latest,
    /// `KAFKA_3_VERSION`, the last 3.x line.
    Kafka3,
}

impl Version {
    /// The version number, e.g. `4.4.0`.
    pub fn number(self) -> &'static str {
        let key = match self {
            Version::Latest => "KAFKA_VERSION=",
            Version::Kafka3 => "KAFKA_3_VERSION=",
        };
        VERSIONS_ENV
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
            .expect("scripts/kafka/versions.env sets KAFKA_VERSION and KAFKA_3_VERSION")
    }

    /// 3.x logs through reload4j (log4j 1 syntax), 4.x through log4j2: the flag naming the matching file.
    fn logging_flag(self) -> String {
        let dir = repo_root().join("scripts/kafka");
        if self.number().starts_with("3.") {
            format!("-Dlog4j.configuration=file:{}", dir.join("log4j.properties").display())
        } else {
            format!("-Dlog4j2.configurationFile={}", dir.join("log4j2.properties").display())
        }
    }
}

/// `${KAAS_CACHE:-$HOME/.cache/kaas}/kafka/<version>`, once `scripts/install-kafka.sh` completed it: the jars
/// in `libs/`, and the class-data archive `kafka.jsa` when its training run succeeded.
pub fn install_dir(version: Version) -> anyhow::Result<PathBuf> {
    let cache = match std::env::var_os("KAAS_CACHE").filter(|c| !c.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/kaas"),
    };
    let dir = cache.join("kafka").join(version.number());
    if !dir.join("complete").is_file() {
        bail!(
            "Kafka {} is not installed in {} (run scripts/install-prereqs.sh)",
            version.number(),
            dir.display()
        );
    }
    Ok(dir)
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Names the cluster's folder, certificates and log lines.
    pub name: String,
    pub version: Version,
    /// Nodes (each broker and controller): 3 as a tenant cluster has, 1 where a test needs no replication.
    pub nodes: usize,
    /// Broker properties written after the fixture's own, so they override them.
    pub config: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions { name: "kafka".into(), version: Version::Latest, nodes: 3, config: Vec::new() }
    }
}

impl ClusterOptions {
    pub fn named(name: &str) -> Self {
        ClusterOptions { name: name.into(), ..Self::default() }
    }

    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }
}

/// A client-facing listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Plain,
    Tls,
}

#[derive(Debug)]
struct Node {
    id: i32,
    plain: u16,
    tls: u16,
    controller: u16,
    dir: PathBuf,
    process: Option<Child>,
}

impl Node {
    fn addr(&self, listener: Listener) -> String {
        let port = match listener {
            Listener::Plain => self.plain,
            Listener::Tls => self.tls,
        };
        format!("127.0.0.1:{port}")
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// The brokers one Metadata response lists, and the cluster id it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    /// (node id, host, port), sorted by node id.
    pub brokers: Vec<(i32, String, i32)>,
}

impl ClusterView {
    pub fn node_ids(&self) -> BTreeSet<i32> {
        self.brokers.iter().map(|b| b.0).collect()
    }
}

/// A running cluster; see the module documentation.
#[derive(Debug)]
pub struct KafkaCluster {
    name: String,
    version: Version,
    cluster_id: String,
    /// The Kafka installation: `libs/` and maybe `kafka.jsa`.
    install: PathBuf,
    nodes: Vec<Node>,
    node_ids: Vec<i32>,
    ca: PathBuf,
    clients: ClientCa,
    // Dropped after `Drop::drop` has stopped every process.
    dir: tempfile::TempDir,
}

impl KafkaCluster {
    /// Formats and starts every node at once and returns when each lists all brokers.
    pub fn start(opts: ClusterOptions) -> anyhow::Result<KafkaCluster> {
        let started = Instant::now();
        let mut cluster = Self::prepare(&opts)?;
        cluster.format()?;
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        let ids = cluster.node_ids.clone();
        cluster.wait_for_brokers(&ids, READY_WITHIN)?;
        eprintln!(
            "kafka cluster {} (Kafka {}, nodes {:?}) ready in {:.1?} at {}",
            cluster.name,
            cluster.version.number(),
            ids,
            started.elapsed(),
            cluster.dir.path().display()
        );
        Ok(cluster)
    }

    /// Starts several independent clusters side by side (their own folders, ports, ids and CAs), as tests
    /// with several tenants need; if one fails, the others are stopped.
    pub fn start_many(opts: Vec<ClusterOptions>) -> anyhow::Result<Vec<KafkaCluster>> {
        std::thread::scope(|s| {
            let starting: Vec<_> =
                opts.into_iter().map(|o| s.spawn(move || KafkaCluster::start(o))).collect();
            // Join all before judging, so a failure cannot leave a cluster running unowned.
            let results: Vec<_> = starting
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("starting a cluster panicked"))))
                .collect();
            results.into_iter().collect()
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The id every node was formatted with.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn node_ids(&self) -> &[i32] {
        &self.node_ids
    }

    /// The cluster's folder: a `node-<id>/` per node (properties, data, `server.log`), the CAs and the client
    /// certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `host:port` of `node`'s listener.
    pub fn broker_addr(&self, node: i32, listener: Listener) -> anyhow::Result<String> {
        Ok(self.node(node)?.addr(listener))
    }

    /// Every node's address on `listener`, killed ones included.
    pub fn addrs(&self, listener: Listener) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr(listener)).collect()
    }

    /// Every port of every node — plaintext, TLS and controller listeners: what a client of the proxy must
    /// never see in any form.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().flat_map(|n| [n.plain, n.tls, n.controller]).collect()
    }

    /// `bootstrap.servers` for the plaintext listener.
    pub fn bootstrap_plain(&self) -> String {
        self.addrs(Listener::Plain).join(",")
    }

    /// `bootstrap.servers` for the mutual-TLS listener.
    pub fn bootstrap_tls(&self) -> String {
        self.addrs(Listener::Tls).join(",")
    }

    /// The CA that signed the broker certificates (clients' `ssl.ca.location`).
    pub fn cluster_ca_pem(&self) -> &Path {
        &self.ca
    }

    /// The CA the TLS listener accepts client certificates from.
    pub fn clients_ca_pem(&self) -> &Path {
        &self.clients.ca
    }

    /// A client certificate for `user` from the cluster's clients CA: (cert PEM, key PEM).
    pub fn client_cert(&self, user: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.clients.issue(user)
    }

    /// `node`'s log: the broker's own log4j output and the JVM's stdout and stderr.
    pub fn log(&self, node: i32) -> anyhow::Result<PathBuf> {
        Ok(self.node(node)?.dir.join("server.log"))
    }

    /// Kills `node` at once (SIGKILL, as a crash): no controlled shutdown, its leaderships move only once
    /// the controller fences it (`broker.session.timeout.ms`).
    pub fn kill_broker(&mut self, node: i32) -> anyhow::Result<()> {
        self.node_mut(node)?.stop();
        Ok(())
    }

    /// Stops `node` with SIGTERM: a controlled shutdown that moves its leaderships away first.
    pub fn stop_broker(&mut self, node: i32) -> anyhow::Result<()> {
        let n = self.node_mut(node)?;
        let Some(p) = n.process.as_mut() else { return Ok(()) };
        let status = Command::new("kill").args(["-TERM", &p.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM node {node}: {status}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while p.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("node {node} still running 60 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        n.process = None;
        Ok(())
    }

    /// Starts a killed or stopped `node` again on its data, ports and certificates, and waits until every
    /// running node lists every running node.
    pub fn restart_broker(&mut self, node: i32) -> anyhow::Result<()> {
        let i = self.nodes.iter().position(|n| n.id == node).ok_or_else(|| self.unknown(node))?;
        anyhow::ensure!(self.nodes[i].process.is_none(), "node {node} is running");
        self.spawn(i)?;
        let running: Vec<i32> = self.nodes.iter().filter(|n| n.process.is_some()).map(|n| n.id).collect();
        self.wait_for_brokers(&running, READY_WITHIN)
    }

    /// Waits until every running node's Metadata lists exactly the brokers `ids` (registered, not fenced).
    /// A node that exits meanwhile fails the wait, quoting its log.
    pub fn wait_for_brokers(&mut self, ids: &[i32], within: Duration) -> anyhow::Result<()> {
        let want: BTreeSet<i32> = ids.iter().copied().collect();
        let deadline = Instant::now() + within;
        loop {
            for node in &mut self.nodes {
                if let Some(status) = node.process.as_mut().map(Child::try_wait).transpose()?.flatten() {
                    node.process = None;
                    bail!(
                        "kafka node {} of cluster {} exited ({status}); {}",
                        node.id,
                        self.name,
                        excerpt(&node.dir.join("server.log"))
                    );
                }
            }
            let waiting = self.nodes.iter().filter(|n| n.process.is_some()).find_map(|n| {
                match metadata(&n.addr(Listener::Plain)) {
                    Ok(view) if view.node_ids() == want => None,
                    Ok(view) => Some((n, format!("it lists brokers {:?}", view.node_ids()))),
                    Err(e) => Some((n, format!("{e:#}"))),
                }
            });
            let Some((node, why)) = waiting else { return Ok(()) };
            if Instant::now() >= deadline {
                bail!(
                    "kafka node {} of cluster {} does not list brokers {want:?} after {within:?}: {why}; {}",
                    node.id,
                    self.name,
                    excerpt(&node.dir.join("server.log"))
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// What `node` answers to Metadata on its plaintext listener.
    pub fn metadata(&self, node: i32) -> anyhow::Result<ClusterView> {
        metadata(&self.node(node)?.addr(Listener::Plain))
    }

    fn node(&self, id: i32) -> anyhow::Result<&Node> {
        self.nodes.iter().find(|n| n.id == id).ok_or_else(|| self.unknown(id))
    }

    fn node_mut(&mut self, id: i32) -> anyhow::Result<&mut Node> {
        let unknown = self.unknown(id);
        self.nodes.iter_mut().find(|n| n.id == id).ok_or(unknown)
    }

    fn unknown(&self, id: i32) -> anyhow::Error {
        anyhow!("cluster {} has no node {id} (its nodes: {:?})", self.name, self.node_ids)
    }

    /// The folder, ports, certificates and each node's `server.properties`.
    fn prepare(opts: &ClusterOptions) -> anyhow::Result<KafkaCluster> {
        anyhow::ensure!(opts.nodes >= 1, "a cluster needs at least one node");
        let install = install_dir(opts.version)?;
        let dir = tempfile::Builder::new().prefix(&format!("kafka-{}-", opts.name)).tempdir()?;
        let ports = free_ports(3 * opts.nodes)?;
        let nodes: Vec<Node> = ports
            .chunks(3)
            .zip(FIRST_NODE_ID..)
            .map(|(p, id)| Node {
                id,
                plain: p[0],
                tls: p[1],
                controller: p[2],
                dir: dir.path().join(format!("node-{id}")),
                process: None,
            })
            .collect();
        let ca = ClusterCa::generate(dir.path(), &opts.name)?;
        let clients = ClientCa::generate(dir.path(), &opts.name)?;
        let voters: Vec<String> =
            nodes.iter().map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller)).collect();
        for node in &nodes {
            std::fs::create_dir(&node.dir)?;
            let keystore = ca.keystore(&node.dir, &format!("{}-node-{}", opts.name, node.id))?;
            let props = properties(opts, node, &voters.join(","), &keystore, &clients.ca);
            std::fs::write(node.dir.join("server.properties"), props)?;
        }
        Ok(KafkaCluster {
            name: opts.name.clone(),
            version: opts.version,
            cluster_id: random_cluster_id(),
            install,
            node_ids: nodes.iter().map(|n| n.id).collect(),
            nodes,
            ca: ca.pem,
            clients,
            dir,
        })
    }

    /// `java` with the flags, logging and class path every Kafka process of `node` runs with.
    fn java(&self, node: &Node) -> Command {
        let mut c = Command::new("java");
        c.args(JVM_FLAGS);
        // Classes mapped from the archive instead of loaded and verified: ~40 % less start time and CPU.
        // With -Xshare:auto a stale archive (another JVM) is ignored rather than fatal.
        let archive = self.install.join("kafka.jsa");
        if archive.is_file() {
            c.arg(format!("-XX:SharedArchiveFile={}", archive.display()));
        }
        c.arg(format!("-Dkafka.logs.dir={}", node.dir.display()))
            .arg(self.version.logging_flag())
            .arg("-cp")
            .arg(self.install.join("libs/*"))
            .current_dir(&node.dir)
            .stdin(Stdio::null());
        c
    }

    /// Formats every node's storage with the cluster id, all at once, with the class `kafka-storage.sh`
    /// runs (the same in 3.9 and 4.x).
    fn format(&self) -> anyhow::Result<()> {
        let mut running = Vec::new();
        for node in &self.nodes {
            let out = File::create(node.dir.join("format.log"))?;
            let child = self
                .java(node)
                .args(["kafka.tools.StorageTool", "format", "--cluster-id", &self.cluster_id])
                .args(["--config", "server.properties"])
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .context("cannot run java (run scripts/install-prereqs.sh)")?;
            running.push((node, child));
        }
        // Wait for every one before judging, so none is left running.
        let statuses: Vec<_> = running.into_iter().map(|(node, mut c)| (node, c.wait())).collect();
        for (node, status) in statuses {
            let status = status?;
            if !status.success() {
                let log = node.dir.join("format.log");
                bail!("formatting kafka node {} failed ({status}): {}", node.id, excerpt(&log));
            }
        }
        Ok(())
    }

    /// Starts node `i`'s broker (`kafka.Kafka server.properties`, as `kafka-server-start.sh` does), its
    /// stdout and stderr appended to its `server.log`.
    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        let log = OpenOptions::new().create(true).append(true).open(node.dir.join("server.log"))?;
        // The JVM stays in the test's process group: nextest and Ctrl-C stop it with the test even when
        // `Drop` never runs.
        let child = self
            .java(node)
            .args(["kafka.Kafka", "server.properties"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot run java (run scripts/install-prereqs.sh)")?;
        self.nodes[i].process = Some(child);
        Ok(())
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        if std::env::var_os("KAAS_KEEP_KAFKA").is_some_and(|v| !v.is_empty()) {
            self.dir.disable_cleanup(true);
            eprintln!("kafka cluster {} kept in {}", self.name, self.dir.path().display());
        }
    }
}

/// A node's `server.properties`: combined broker and controller, the three listeners, and what a small test
/// cluster needs (internal topics replicated as far as the nodes allow, no waiting before rebalances, few
/// threads, small segments), then `opts.config`.
fn properties(
    opts: &ClusterOptions,
    node: &Node,
    voters: &str,
    keystore: &Path,
    clients_ca: &Path,
) -> String {
    let n = opts.nodes;
    // Replicas of internal topics, and the ISR they require: 3 and 2 as in production when there are 3 nodes.
    let min_isr = n.min(2);
    let mut p = format!(
        "# Node {id} of the test cluster {name} (Kafka {version}), written by tests/src/kafka.rs.\n\
         process.roles=broker,controller\n\
         node.id={id}\n\
         controller.quorum.voters={voters}\n\
         controller.listener.names=CONTROLLER\n\
         listeners=PLAIN://127.0.0.1:{plain},TLS://127.0.0.1:{tls},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners=PLAIN://127.0.0.1:{plain},TLS://127.0.0.1:{tls}\n\
         listener.security.protocol.map=PLAIN:PLAINTEXT,TLS:SSL,CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=PLAIN\n\
         listener.name.tls.ssl.client.auth=required\n\
         listener.name.tls.ssl.keystore.type=PEM\n\
         listener.name.tls.ssl.keystore.location={keystore}\n\
         listener.name.tls.ssl.truststore.type=PEM\n\
         listener.name.tls.ssl.truststore.location={clients_ca}\n\
         log.dirs={data}\n\
         num.partitions=1\n\
         default.replication.factor={n}\n\
         min.insync.replicas={min_isr}\n\
         offsets.topic.replication.factor={n}\n\
         offsets.topic.num.partitions=5\n\
         transaction.state.log.replication.factor={n}\n\
         transaction.state.log.min.isr={min_isr}\n\
         transaction.state.log.num.partitions=5\n\
         group.initial.rebalance.delay.ms=0\n\
         auto.create.topics.enable=false\n\
         log.segment.bytes=8388608\n\
         log.index.size.max.bytes=1048576\n\
         num.network.threads=2\n\
         num.io.threads=2\n\
         background.threads=2\n\
         num.recovery.threads.per.data.dir=1\n\
         broker.heartbeat.interval.ms=1000\n\
         broker.session.timeout.ms=6000\n",
        id = node.id,
        name = opts.name,
        version = opts.version.number(),
        plain = node.plain,
        tls = node.tls,
        controller = node.controller,
        keystore = keystore.display(),
        clients_ca = clients_ca.display(),
        data = node.dir.join("data").display(),
    );
    if !opts.version.number().starts_with("3.") {
        // Share groups (4.x): their state topic defaults to 3 replicas, too many for a single node.
        p.push_str(&format!(
            "share.coordinator.state.topic.replication.factor={n}\n\
             share.coordinator.state.topic.min.isr={min_isr}\n\
             share.coordinator.state.topic.num.partitions=5\n"
        ));
    }
    for (k, v) in &opts.config {
        p.push_str(&format!("{k}={v}\n"));
    }
    p
}

/// The cluster's own CA (Strimzi's "cluster CA"): it signs the broker certificates clients verify.
struct ClusterCa {
    pem: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    fn generate(dir: &Path, name: &str) -> anyhow::Result<ClusterCa> {
        let (ca_pem, issuer) = new_ca(&format!("{name} cluster CA"))?;
        let pem = dir.join(format!("{name}-cluster-ca.pem"));
        std::fs::write(&pem, &ca_pem)?;
        Ok(ClusterCa { pem, ca_pem, issuer })
    }

    /// Writes `keystore.pem` into `dir`: a broker's key, its certificate for the advertised host (and
    /// `localhost`), and the CA, as Kafka's PEM keystore reads them.
    fn keystore(&self, dir: &Path, cn: &str) -> anyhow::Result<PathBuf> {
        let key = KeyPair::generate()?;
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        let path = dir.join("keystore.pem");
        std::fs::write(&path, format!("{}{}{}", key.serialize_pem(), cert.pem(), self.ca_pem))?;
        Ok(path)
    }
}

/// `n` distinct free loopback ports: all bound at once so none is handed out twice.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let held = (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
    Ok(held.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<Vec<_>, _>>()?)
}

/// A fresh cluster id: 16 random bytes in unpadded URL-safe base64, like `kafka-storage.sh random-uuid`.
fn random_cluster_id() -> String {
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        // RandomState is seeded randomly per process and differs per instance: enough to tell clusters apart.
        let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
        half.copy_from_slice(&r.to_be_bytes());
    }
    // A leading '-' would read as an option on a command line; Kafka's own random ids avoid it too.
    bytes[0] &= 0x7f;
    base64url(&bytes)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Sends Metadata (no topics) to `addr` on a plaintext listener and returns the brokers it lists. Blocking for
/// the fixture's callers (the tests' runtimes are busy elsewhere): the exchange runs through
/// `kaas_proxy::kafka::client` on a runtime of its own thread.
pub fn metadata(addr: &str) -> anyhow::Result<ClusterView> {
    let addr = addr.to_owned();
    let exchange = move || -> anyhow::Result<ClusterView> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            // A broker still starting may accept connections before it answers them.
            let within = Duration::from_secs(3);
            let stream =
                tokio::time::timeout(within, tokio::net::TcpStream::connect(addr.as_str())).await??;
            let mut client = KafkaClient::new(stream, 1 << 24, "kaas-e2e-fixture");
            let request = MetadataRequest::default().with_topics(Some(Vec::new()));
            let response =
                tokio::time::timeout(within, client.call_decoded(METADATA_VERSION, &request)).await??;
            let mut brokers: Vec<_> =
                response.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
            brokers.sort();
            Ok(ClusterView {
                cluster_id: response.cluster_id.map(|c| c.to_string()),
                controller_id: response.controller_id.0,
                brokers,
            })
        })
    };
    std::thread::spawn(exchange).join().map_err(|_| anyhow::anyhow!("metadata thread panicked"))?
}

/// What a failure report quotes from a node's log: its ERROR lines, each message once, the first and last
/// few (a broker that gives up logs the cause near the end, then pages of orderly shutdown), and its last
/// lines.
fn excerpt(path: &Path) -> String {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("cannot read {}: {e}", path.display()),
    };
    let lines: Vec<&str> = text.lines().collect();
    // "[time] LEVEL message": the message without the time tells repeats apart.
    let message = |l: &str| l.split_once("] ").map_or(l, |(_, m)| m).to_owned();
    let mut errors: Vec<&str> = Vec::new();
    for l in lines.iter().filter(|l| l.contains("] ERROR ") || l.contains("] FATAL ")) {
        if !errors.iter().any(|e| message(e) == message(l)) {
            errors.push(l);
        }
    }
    if errors.len() > 6 {
        errors.drain(3..errors.len() - 3);
    }
    let last = &lines[lines.len().saturating_sub(20)..];
    format!(
        "{} (set KAAS_KEEP_KAFKA=1 to keep it)\nerrors:\n{}\nlast lines:\n{}",
        path.display(),
        if errors.is_empty() { "(none)".to_owned() } else { errors.join("\n") },
        last.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_characters() {
        for _ in 0..100 {
            let id = random_cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
            assert!(!id.starts_with(['-', '_']), "{id}");
        }
        assert_ne!(random_cluster_id(), random_cluster_id());
    }

    #[test]
    fn base64url_matches_the_rfc_4648_vectors() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn excerpt_quotes_each_error_once_first_and_last_and_the_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!("[00:00:0{i}] ERROR timed out (x)\n"));
        }
        for i in 0..8 {
            text.push_str(&format!("[00:00:1{i}] ERROR cause {i} (x)\n[00:00:1{i}] INFO step (x)\n"));
        }
        for i in 0..30 {
            text.push_str(&format!("[00:00:2{i}] INFO shutdown {i} (x)\n"));
        }
        std::fs::write(&log, text).expect("write log");
        let e = excerpt(&log);
        assert_eq!(e.matches("timed out").count(), 1, "{e}");
        for shown in ["cause 0 ", "cause 1 ", "cause 5 ", "cause 7 ", "shutdown 10 ", "shutdown 29 "] {
            assert!(e.contains(shown), "{shown:?} missing: {e}");
        }
        for hidden in ["cause 2 ", "cause 4 ", "shutdown 9 "] {
            assert!(!e.contains(hidden), "{hidden:?} shown: {e}");
        }
    }

    #[test]
    fn versions_are_pinned() {
        assert!(Version::Latest.number().starts_with("4."), "{}", Version::Latest.number());
        assert!(Version::Kafka3.number().starts_with("3."), "{}", Version::Kafka3.number());
    }
}
