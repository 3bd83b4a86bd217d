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
//! - `CONTROLLER`: the KRaft quorum;
//!
//! and, once a test names SCRAM users ([`ClusterOptions::scram_user`]), a fourth:
//! - `SASL`: SASL_SSL with SCRAM-SHA-512, as a Strimzi `authentication: scram-sha-512` listener: the broker
//!   certificate of `TLS`, no client certificate, the users' credentials written at format time; a client
//!   there is `User:<name>`. The same users may log in with PLAIN too (their passwords in the listener's JAAS
//!   line), for clients that pass PLAIN through.
//!
//! [`ClusterOptions::authorizer`] makes the cluster authorize every request by ACL, as a Strimzi cluster with
//! `authorization: simple`; [`KafkaCluster::create_topic`] and [`KafkaCluster::create_acls`] set up what the
//! test then runs against, over `PLAIN`, where the fixture is a super user. On `TLS` a client is
//! `User:<its certificate's subject>`, e.g. `User:CN=alice`.
//!
//! Submodules: `setup` writes what the nodes start from (properties, CA, keystores), `admin` holds the
//! fixture's own requests (Metadata, CreateTopics), `acl` the ACL types and CreateAcls/DescribeAcls,
//! `rotation` replaces the cluster CA and the clients CA of a running cluster as Strimzi does
//! ([`KafkaCluster::begin_cluster_ca_rotation`], [`KafkaCluster::begin_clients_ca_rotation`]).
//!
//! Node ids start at 11, so that no test passes by mistaking an index for an id. Each node is broker and
//! controller in one JVM (combined mode; the nodes are the static quorum `controller.quorum.voters`, which
//! 3.9 and 4.x both accept): 3 JVMs for 3 brokers, where separate controllers would add one to three more on
//! a 2-core machine. The price: killing a node also takes a quorum voter away, which 3 voters survive.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::certs::ClientCa;
use crate::repo_root;

mod acl;
mod admin;
mod rotation;
mod setup;

pub use acl::{Acl, AclOperation, AclResource, ACLS_WITHIN};
pub use admin::metadata;
use admin::{error_text, exchange, EXCHANGE_WITHIN};
use setup::{check_scram_user, properties, random_cluster_id, ClusterCa};

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

/// SCRAM iterations of the credentials written at format time: Kafka's minimum and its tools' default is
/// 4096; twice that, as Kafka's own examples use, still costs a client under a millisecond.
pub const SCRAM_ITERATIONS: u32 = 8192;

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
    /// Authorize every request by ACL: see [`ClusterOptions::authorizer`].
    pub authorizer: bool,
    /// SCRAM-SHA-512 users (name, password) of the `SASL` listener, which exists only when there are some:
    /// see [`ClusterOptions::scram_user`].
    pub scram_users: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            name: "kafka".into(),
            version: Version::Latest,
            nodes: 3,
            config: Vec::new(),
            authorizer: false,
            scram_users: Vec::new(),
        }
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

    /// Authorization by ACL, as a Strimzi cluster with `authorization: simple` has: KRaft's
    /// `StandardAuthorizer`, nothing allowed without an ACL (`allow.everyone.if.no.acl.found=false`), and
    /// the super users `User:ANONYMOUS` and `User:CN=admin` (a client certificate for `admin`). ANONYMOUS is
    /// the principal of the `PLAIN` listener, which carries the traffic between brokers, to the controllers
    /// and the fixture's own requests ([`KafkaCluster::create_topic`], [`KafkaCluster::create_acls`]):
    /// without it the cluster could not even form. So a test of authorization connects over `TLS` or `SASL`.
    ///
    /// Each denial is logged at INFO by the broker's `kafka.authorizer.logger` (`Principal = User:CN=bob is
    /// Denied operation = WRITE ...`), which the tests' log configurations (`scripts/kafka/log4j.properties`
    /// for 3.x, `log4j2.properties` for 4.x: INFO and up of every logger) write into the node's
    /// `server.log`: a test greps [`KafkaCluster::log`] for it.
    pub fn authorizer(mut self) -> Self {
        self.authorizer = true;
        self
    }

    /// A SCRAM-SHA-512 user of the `SASL` listener (repeatable; the first one adds the listener to every
    /// node), its credential written into the metadata log when the nodes are formatted, as
    /// `kafka-storage.sh format --add-scram` does: no request needed before clients log in. `kafka-storage`
    /// cannot quote, so name and password must be non-empty and free of `,[]"=` and spaces
    /// ([`KafkaCluster::start`] refuses them otherwise).
    pub fn scram_user(mut self, name: &str, password: &str) -> Self {
        self.scram_users.push((name.into(), password.into()));
        self
    }
}

/// A client-facing listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Plain,
    Tls,
    /// SASL_SSL with SCRAM-SHA-512 (and PLAIN), on clusters with [`ClusterOptions::scram_user`] only.
    Sasl,
}

#[derive(Debug)]
struct Node {
    id: i32,
    plain: u16,
    tls: u16,
    controller: u16,
    /// The `SASL` listener's port, when the cluster has SCRAM users.
    sasl: Option<u16>,
    dir: PathBuf,
    process: Option<Child>,
}

impl Node {
    /// `listener`'s address, if the node has that listener.
    fn addr(&self, listener: Listener) -> Option<String> {
        let port = match listener {
            Listener::Plain => self.plain,
            Listener::Tls => self.tls,
            Listener::Sasl => self.sasl?,
        };
        Some(format!("127.0.0.1:{port}"))
    }

    fn plain_addr(&self) -> String {
        format!("127.0.0.1:{}", self.plain)
    }

    fn is_running(&self) -> bool {
        self.process.is_some()
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
    /// The cluster CA bundle and key files ([`KafkaCluster::cluster_ca_pem`]): their paths never change, a
    /// rotation replaces their content.
    ca: PathBuf,
    ca_key: PathBuf,
    /// The cluster CA that signs broker certificates now.
    cluster_ca: ClusterCa,
    /// The clients CA that issues client certificates now.
    clients: ClientCa,
    /// The clients CA bundle and key files ([`KafkaCluster::clients_ca_pem`]): fixed paths, as `ca`.
    clients_bundle: PathBuf,
    clients_key: PathBuf,
    /// What a CA rotation under way replaces.
    rotation: rotation::Rotation,
    scram_users: Vec<(String, String)>,
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
        self.node(node)?.addr(listener).ok_or_else(|| self.no_sasl())
    }

    /// Every node's address on `listener`, killed ones included (none on `Sasl` without SCRAM users).
    pub fn addrs(&self, listener: Listener) -> Vec<String> {
        self.nodes.iter().filter_map(|n| n.addr(listener)).collect()
    }

    /// Every port of every node — plaintext, TLS, controller and SASL listeners: what a client of the proxy
    /// must never see in any form.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().flat_map(|n| [n.plain, n.tls, n.controller].into_iter().chain(n.sasl)).collect()
    }

    /// `bootstrap.servers` for the plaintext listener.
    pub fn bootstrap_plain(&self) -> String {
        self.addrs(Listener::Plain).join(",")
    }

    /// `bootstrap.servers` for the mutual-TLS listener.
    pub fn bootstrap_tls(&self) -> String {
        self.addrs(Listener::Tls).join(",")
    }

    /// `bootstrap.servers` for the SASL_SSL listener (SCRAM-SHA-512, the broker certificates of
    /// [`KafkaCluster::cluster_ca_pem`]); an error on a cluster without [`ClusterOptions::scram_user`], which
    /// has no such listener.
    pub fn bootstrap_sasl(&self) -> anyhow::Result<String> {
        let addrs = self.addrs(Listener::Sasl);
        if addrs.is_empty() {
            return Err(self.no_sasl());
        }
        Ok(addrs.join(","))
    }

    /// The CA that signed the broker certificates (clients' `ssl.ca.location`): a bundle file, as Strimzi's
    /// `<cluster>-cluster-ca-cert` `ca.crt`, holding the old and the new CA during a rotation
    /// ([`KafkaCluster::begin_cluster_ca_rotation`]). Its path stays; a rotation replaces its content at once.
    pub fn cluster_ca_pem(&self) -> &Path {
        &self.ca
    }

    /// The cluster CA's private key, a PKCS#8 PEM file beside [`KafkaCluster::cluster_ca_pem`] (Strimzi's
    /// `<cluster>-cluster-ca` `ca.key`): for a test that signs certificates brokers' peers would trust. The
    /// current CA's key: a rotation replaces it with the new one's.
    pub fn cluster_ca_key(&self) -> &Path {
        &self.ca_key
    }

    /// The CA the TLS listener accepts client certificates from: a bundle file, as Strimzi's
    /// `<cluster>-clients-ca-cert` `ca.crt`, holding the old and the new CA during a rotation
    /// ([`KafkaCluster::begin_clients_ca_rotation`]). Its path stays; a rotation replaces its content at once.
    pub fn clients_ca_pem(&self) -> &Path {
        &self.clients_bundle
    }

    /// The clients CA's private key, a PKCS#8 PEM file beside [`KafkaCluster::clients_ca_pem`] (Strimzi's
    /// `<cluster>-clients-ca` `ca.key`): so a proxy can sign client certificates the TLS listener accepts.
    /// The current CA's key: a rotation replaces it with the new one's.
    pub fn clients_ca_key(&self) -> &Path {
        &self.clients_key
    }

    /// The current clients CA itself, to issue certificates of any subject and validity
    /// ([`ClientCa::issue_for`]); the new one once a rotation began.
    pub fn clients_ca(&self) -> &ClientCa {
        &self.clients
    }

    /// A client certificate for `user` from the cluster's (current) clients CA: (cert PEM, key PEM).
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

    /// Freezes `node` (SIGSTOP): its sockets stay open and the kernel still completes TCP handshakes on its
    /// ports, but nothing is answered, as a client sees a network partition. [`KafkaCluster::resume_broker`]
    /// thaws it.
    pub fn pause_broker(&mut self, node: i32) -> anyhow::Result<()> {
        self.signal(node, "-STOP")
    }

    /// Thaws a node frozen by [`KafkaCluster::pause_broker`] (SIGCONT).
    pub fn resume_broker(&mut self, node: i32) -> anyhow::Result<()> {
        self.signal(node, "-CONT")
    }

    fn signal(&mut self, node: i32, signal: &str) -> anyhow::Result<()> {
        let n = self.node_mut(node)?;
        let p = n.process.as_ref().ok_or_else(|| anyhow::anyhow!("node {node} is not running"))?;
        let status = Command::new("kill").args([signal, &p.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill {signal} node {node}: {status}");
        Ok(())
    }

    /// Starts a killed or stopped `node` again on its data, ports and certificates, and waits until every
    /// running node lists every running node.
    pub fn restart_broker(&mut self, node: i32) -> anyhow::Result<()> {
        let i = self.nodes.iter().position(|n| n.id == node).ok_or_else(|| self.unknown(node))?;
        anyhow::ensure!(self.nodes[i].process.is_none(), "node {node} is running");
        self.spawn(i)?;
        let running: Vec<i32> = self.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect();
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
            let waiting =
                self.nodes.iter().filter(|n| n.is_running()).find_map(|n| match metadata(&n.plain_addr()) {
                    Ok(view) if view.node_ids() == want => None,
                    Ok(view) => Some((n, format!("it lists brokers {:?}", view.node_ids()))),
                    Err(e) => Some((n, format!("{e:#}"))),
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
        metadata(&self.node(node)?.plain_addr())
    }

    fn no_sasl(&self) -> anyhow::Error {
        anyhow!("cluster {} has no SASL listener (it comes with ClusterOptions::scram_user)", self.name)
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
        for (name, password) in &opts.scram_users {
            check_scram_user(name, password)?;
        }
        let per_node = if opts.scram_users.is_empty() { 3 } else { 4 };
        let ports = kaas_testsupport::free_ports(per_node * opts.nodes);
        let nodes: Vec<Node> = ports
            .chunks(per_node)
            .zip(FIRST_NODE_ID..)
            .map(|(p, id)| Node {
                id,
                plain: p[0],
                tls: p[1],
                controller: p[2],
                sasl: p.get(3).copied(),
                dir: dir.path().join(format!("node-{id}")),
                process: None,
            })
            .collect();
        let ca = ClusterCa::generate(dir.path(), &opts.name, 0)?;
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
            ca: ca.pem.clone(),
            ca_key: ca.key.clone(),
            cluster_ca: ca,
            clients_bundle: clients.ca.clone(),
            clients_key: clients.key.clone(),
            clients,
            rotation: rotation::Rotation::default(),
            scram_users: opts.scram_users.clone(),
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
    /// runs (the same in 3.9 and 4.x), and the SCRAM credentials: `--add-scram` takes
    /// `SCRAM-SHA-512=[name=alice,password=...,iterations=8192]` alike in 3.9 and 4.4 and salts the
    /// password itself.
    fn format(&self) -> anyhow::Result<()> {
        let scram: Vec<String> = self
            .scram_users
            .iter()
            .flat_map(|(name, password)| {
                let credential =
                    format!("SCRAM-SHA-512=[name={name},password={password},iterations={SCRAM_ITERATIONS}]");
                ["--add-scram".to_owned(), credential]
            })
            .collect();
        let mut running = Vec::new();
        for node in &self.nodes {
            let out = File::create(node.dir.join("format.log"))?;
            let child = self
                .java(node)
                .args(["kafka.tools.StorageTool", "format", "--cluster-id", &self.cluster_id])
                .args(["--config", "server.properties"])
                .args(&scram)
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
