//! CA rotation on a running cluster, in Strimzi's order, so that no client or broker is ever asked to trust a
//! certificate its peer does not yet trust:
//!
//! - cluster CA (signs broker certificates; clients verify brokers with it):
//!   [`KafkaCluster::begin_cluster_ca_rotation`] makes a new CA and puts old and new into the bundle
//!   [`KafkaCluster::cluster_ca_pem`] (clients that re-read it accept brokers of either);
//!   [`KafkaCluster::roll_broker_certificates`] re-issues every node's keystore from the new CA and restarts
//!   the nodes one at a time, each with a controlled shutdown and waited for, with all replicas back in sync
//!   before the next; [`KafkaCluster::finish_cluster_ca_rotation`] leaves only the new CA in the bundle.
//!   Strimzi then rolls once more to drop the old CA from the brokers' own truststores; here the brokers talk
//!   to one another in plaintext (`PLAIN`) and trust no cluster CA, so there is nothing to drop.
//! - clients CA (signs client certificates; the `TLS` listener verifies clients with it):
//!   [`KafkaCluster::begin_clients_ca_rotation`] makes a new CA, has every node trust old and new, and only
//!   then puts both into the bundle [`KafkaCluster::clients_ca_pem`] and the new key into
//!   [`KafkaCluster::clients_ca_key`] (whoever signs with that key, a proxy minting client certificates say,
//!   is trusted by every broker from the moment it reads it); [`KafkaCluster::finish_clients_ca_rotation`]
//!   has the nodes trust the new CA only; [`KafkaCluster::drop_previous_clients_ca`] leaves only the new CA
//!   in the bundle, once no client should present an old certificate any more.
//!
//! The nodes' truststores change without a restart, through Kafka's dynamic reconfiguration: an
//! IncrementalAlterConfigs of the per-broker setting `listener.name.tls.ssl.truststore.location`, pointing
//! each node at a new PEM file (a new name, so the change is a change of configuration, not a file Kafka
//! would have to notice). Kafka applies it to new connections; open ones stay as they were authenticated.
//! The setting lives in the cluster's metadata, per node, so it outlives a restart. Each step is awaited with
//! TLS handshakes against every node ([`KafkaCluster::tls_accepts`]) with certificates of the old and the new
//! CA (subject `CN=kaas-e2e-probe`).
//!
//! Every file a client or proxy may read is replaced as a Kubernetes Secret volume changes: the new content
//! written beside it, then renamed over it, so a reader sees the old content or the new, never a mix.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::admin::{connect_within, METADATA_VERSION};
use super::setup::ClusterCa;
use super::{error_text, exchange, KafkaCluster, Listener, EXCHANGE_WITHIN, READY_WITHIN};
use crate::certs::ClientCa;

/// The per-broker setting a clients CA rotation changes.
const TRUSTSTORE: &str = "listener.name.tls.ssl.truststore.location";

/// IncrementalAlterConfigs v1: answered by 3.9 and 4.x alike.
const ALTER_CONFIGS_VERSION: i16 = 1;

/// Kafka's resource type BROKER and config operation SET.
const RESOURCE_BROKER: i8 = 4;
const OPERATION_SET: i8 = 0;

/// How long nodes may take to apply a truststore change (the metadata log replays in milliseconds, but other
/// tests share the 2 cores).
const RECONFIGURED_WITHIN: Duration = Duration::from_secs(30);

/// Bound on each step of one TLS probe.
const PROBE_WITHIN: Duration = Duration::from_secs(5);

/// What a rotation under way replaces.
#[derive(Debug, Default)]
pub(super) struct Rotation {
    cluster_generation: u32,
    /// The cluster CA being replaced, from `begin_` to `finish_cluster_ca_rotation`, and whether brokers may
    /// still present its certificates (until `roll_broker_certificates`).
    cluster_previous: Option<(ClusterCa, bool)>,
    clients_generation: u32,
    clients_previous: Option<PreviousClientsCa>,
    /// Truststore files written so far: each node's are `truststore-<n>.pem`.
    truststores: u32,
}

#[derive(Debug)]
struct PreviousClientsCa {
    ca: ClientCa,
    /// Probe certificates of the old and of the new CA: (cert PEM, key PEM).
    probe_old: (PathBuf, PathBuf),
    probe_new: (PathBuf, PathBuf),
    /// Whether the nodes still trust it (until `finish_clients_ca_rotation`).
    trusted: bool,
}

impl KafkaCluster {
    /// Starts replacing the cluster CA: a new CA (`<name> cluster CA v<n>`), [`KafkaCluster::cluster_ca_pem`]
    /// now old and new, [`KafkaCluster::cluster_ca_key`] the new key. Brokers still present certificates of
    /// the old CA until [`KafkaCluster::roll_broker_certificates`]; whoever verifies them must have re-read the
    /// bundle before then.
    pub fn begin_cluster_ca_rotation(&mut self) -> anyhow::Result<()> {
        ensure!(self.rotation.cluster_previous.is_none(), "a cluster CA rotation is already under way");
        let generation = self.rotation.cluster_generation + 1;
        let dir = self.dir().join(format!("cluster-ca-v{generation}"));
        std::fs::create_dir(&dir)?;
        let new = ClusterCa::generate(&dir, &self.name, generation)?;
        replace_file(&self.ca, &format!("{}{}", self.cluster_ca.ca_pem(), new.ca_pem()))?;
        replace_file(&self.ca_key, &std::fs::read_to_string(&new.key)?)?;
        let old = std::mem::replace(&mut self.cluster_ca, new);
        self.rotation.cluster_previous = Some((old, true));
        self.rotation.cluster_generation = generation;
        Ok(())
    }

    /// Re-issues every node's broker certificate from the current cluster CA and restarts the running nodes
    /// one at a time, as Strimzi's rolling update does: waits until every replica on a running node is in
    /// sync, stops the node with a controlled shutdown (its leaderships move first), starts it on its data
    /// with the new keystore, waits until every node lists it. A stopped node only gets its new keystore.
    pub fn roll_broker_certificates(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            let started = Instant::now();
            let id = self.nodes[i].id;
            let keystore = self.cluster_ca.keystore_pem(&format!("{}-node-{id}", self.name))?;
            replace_file(&self.nodes[i].dir.join("keystore.pem"), &keystore)?;
            if !self.nodes[i].is_running() {
                continue;
            }
            self.wait_for_in_sync(READY_WITHIN)?;
            self.stop_broker(id).with_context(|| format!("rolling node {id}"))?;
            self.restart_broker(id).with_context(|| format!("rolling node {id}"))?;
            eprintln!("kafka cluster {}: node {id} rolled in {:.1?}", self.name, started.elapsed());
        }
        self.wait_for_in_sync(READY_WITHIN)?;
        if let Some((_, on_previous)) = &mut self.rotation.cluster_previous {
            *on_previous = false;
        }
        Ok(())
    }

    /// Ends a cluster CA rotation: [`KafkaCluster::cluster_ca_pem`] holds the new CA only. Refused before
    /// [`KafkaCluster::roll_broker_certificates`], which would leave brokers nobody trusts.
    pub fn finish_cluster_ca_rotation(&mut self) -> anyhow::Result<()> {
        match &self.rotation.cluster_previous {
            None => bail!("no cluster CA rotation under way"),
            Some((_, true)) => {
                bail!("brokers still present certificates of the old cluster CA: roll them first")
            }
            Some((_, false)) => {}
        }
        replace_file(&self.ca, self.cluster_ca.ca_pem())?;
        self.rotation.cluster_previous = None;
        Ok(())
    }

    /// Starts replacing the clients CA: a new CA (`<name> clients CA v<n>`, issuing into `clients-ca-v<n>/` of
    /// the cluster's folder), trusted with the old one by every node (all must be running), awaited; then
    /// [`KafkaCluster::clients_ca_pem`] holds old and new, and after it [`KafkaCluster::clients_ca_key`] the
    /// new key, in that order, so the key never names a CA missing from the bundle. From here
    /// [`KafkaCluster::client_cert`] and [`KafkaCluster::clients_ca`] issue from the new CA,
    /// [`KafkaCluster::previous_clients_ca`] from the old.
    pub fn begin_clients_ca_rotation(&mut self) -> anyhow::Result<()> {
        ensure!(self.rotation.clients_previous.is_none(), "a clients CA rotation is already under way");
        let generation = self.rotation.clients_generation + 1;
        let dir = self.dir().join(format!("clients-ca-v{generation}"));
        std::fs::create_dir(&dir)?;
        let new = ClientCa::generate_version(&dir, &self.name, generation)?;
        let mut old = std::mem::replace(&mut self.clients, new);
        // Generation 0 was made at the bundle's and key's own paths, about to change: keep its own files aside.
        if old.ca == self.clients_bundle {
            let aside = self.dir().join(format!("clients-ca-v{}", generation - 1));
            std::fs::create_dir_all(&aside)?;
            for file in [&mut old.ca, &mut old.key] {
                let kept =
                    aside.join(file.file_name().ok_or_else(|| anyhow!("{} has no name", file.display()))?);
                std::fs::copy(&*file, &kept)?;
                *file = kept;
            }
        }
        let (old_pem, new_pem) =
            (std::fs::read_to_string(&old.ca)?, std::fs::read_to_string(&self.clients.ca)?);
        let probe_old = old.issue("kaas-e2e-probe")?;
        let probe_new = self.clients.issue("kaas-e2e-probe")?;
        let both = format!("{old_pem}{new_pem}");
        self.set_truststores(&both)?;
        self.wait_for_truststores(&probe_new, None)?;
        replace_file(&self.clients_bundle, &both)?;
        replace_file(&self.clients_key, &std::fs::read_to_string(&self.clients.key)?)?;
        self.rotation.clients_previous =
            Some(PreviousClientsCa { ca: old, probe_old, probe_new, trusted: true });
        self.rotation.clients_generation = generation;
        Ok(())
    }

    /// Has every node (all must be running) trust the new clients CA only, awaited: certificates of the old
    /// one are refused on new connections from here. [`KafkaCluster::clients_ca_pem`] still holds both, for
    /// whoever still admits clients with old certificates (a proxy that presents its own, signed with the new
    /// key, upstream), until [`KafkaCluster::drop_previous_clients_ca`].
    pub fn finish_clients_ca_rotation(&mut self) -> anyhow::Result<()> {
        let previous = self
            .rotation
            .clients_previous
            .as_ref()
            .ok_or_else(|| anyhow!("no clients CA rotation under way"))?;
        ensure!(previous.trusted, "the nodes already trust the new clients CA only");
        let (probe_old, probe_new) = (previous.probe_old.clone(), previous.probe_new.clone());
        self.set_truststores(&std::fs::read_to_string(&self.clients.ca)?)?;
        self.wait_for_truststores(&probe_new, Some(&probe_old))?;
        if let Some(previous) = &mut self.rotation.clients_previous {
            previous.trusted = false;
        }
        Ok(())
    }

    /// The last step of a clients CA rotation: [`KafkaCluster::clients_ca_pem`] holds the new CA only (what
    /// Strimzi does once the old one's certificates are renewed). Refused before
    /// [`KafkaCluster::finish_clients_ca_rotation`].
    pub fn drop_previous_clients_ca(&mut self) -> anyhow::Result<()> {
        let previous = self
            .rotation
            .clients_previous
            .as_ref()
            .ok_or_else(|| anyhow!("no clients CA rotation under way"))?;
        ensure!(
            !previous.trusted,
            "the nodes still trust the old clients CA: finish_clients_ca_rotation first"
        );
        replace_file(&self.clients_bundle, &std::fs::read_to_string(&self.clients.ca)?)?;
        self.rotation.clients_previous = None;
        Ok(())
    }

    /// The clients CA a rotation under way replaces, to issue certificates the old way.
    pub fn previous_clients_ca(&self) -> Option<&ClientCa> {
        self.rotation.clients_previous.as_ref().map(|p| &p.ca)
    }

    /// `node`'s PEM keystore (key, broker certificate, cluster CA), as its `TLS` listener presents it now.
    pub fn keystore(&self, node: i32) -> anyhow::Result<PathBuf> {
        Ok(self.node(node)?.dir.join("keystore.pem"))
    }

    /// Whether `node`'s `TLS` listener takes a client presenting `cert` (cert PEM, key PEM): a TLS handshake
    /// verifying the broker against [`KafkaCluster::cluster_ca_pem`], then a Metadata request, `true` once
    /// answered, `false` when the broker refuses the certificate (a TLS alert or a close before any answer;
    /// with TLS 1.3 the refusal comes after the client's side of the handshake). An error when the node
    /// cannot be reached or its certificate does not verify.
    pub fn tls_accepts(&self, node: i32, cert: &(PathBuf, PathBuf)) -> anyhow::Result<bool> {
        let addr = self.broker_addr(node, Listener::Tls)?;
        let config = Arc::new(client_config(&self.ca, cert)?);
        let probe = move || -> anyhow::Result<bool> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let tcp = connect_within(&addr, PROBE_WITHIN).await?;
                let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
                let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
                let mut tls = match tokio::time::timeout(PROBE_WITHIN, handshake).await {
                    Err(_) => bail!("TLS to {addr}: no handshake after {PROBE_WITHIN:?}"),
                    Ok(Err(e)) if refused(&e) => return Ok(false),
                    Ok(Err(e)) => return Err(e).with_context(|| format!("TLS to {addr}")),
                    Ok(Ok(tls)) => tls,
                };
                let request = MetadataRequest::default().with_topics(Some(Vec::new()));
                let frame = kaas_proxy::kafka::codec::encode_request(
                    1,
                    METADATA_VERSION,
                    "kaas-e2e-probe",
                    &request,
                )?;
                let mut length = [0u8; 4];
                let answer = async {
                    tls.write_all(&frame).await?;
                    tls.read_exact(&mut length).await
                };
                match tokio::time::timeout(PROBE_WITHIN, answer).await {
                    Err(_) => bail!("TLS to {addr}: no answer to Metadata after {PROBE_WITHIN:?}"),
                    Ok(Ok(_)) => Ok(true),
                    Ok(Err(e)) if refused(&e) => Ok(false),
                    Ok(Err(e)) => Err(e).with_context(|| format!("TLS to {addr}")),
                }
            })
        };
        std::thread::spawn(probe).join().map_err(|_| anyhow!("TLS probe thread panicked"))?
    }

    /// Writes `pem` as every node's next truststore file and points the node's `TLS` listener at it with an
    /// IncrementalAlterConfigs sent to that node (which checks the file before the controller commits it).
    fn set_truststores(&mut self, pem: &str) -> anyhow::Result<()> {
        if let Some(node) = self.nodes.iter().find(|n| !n.is_running()) {
            bail!("node {} is not running: a truststore changes through the node itself", node.id);
        }
        self.rotation.truststores += 1;
        let n = self.rotation.truststores;
        for node in &self.nodes {
            let path = node.dir.join(format!("truststore-{n}.pem"));
            // A new file, read by no one before the request names it.
            std::fs::write(&path, pem)?;
            let config = AlterableConfig::default()
                .with_name(StrBytes::from_static_str(TRUSTSTORE))
                .with_config_operation(OPERATION_SET)
                .with_value(Some(StrBytes::from_string(path.display().to_string())));
            let resource = AlterConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(StrBytes::from_string(node.id.to_string()))
                .with_configs(vec![config]);
            let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
            let what = || format!("setting {TRUSTSTORE} of node {} to {}", node.id, path.display());
            let response = exchange(&node.plain_addr(), ALTER_CONFIGS_VERSION, request, EXCHANGE_WITHIN)
                .with_context(what)?;
            for r in &response.responses {
                if let Some(e) = ResponseError::try_from_code(r.error_code) {
                    bail!("{}: {}", what(), error_text(e, r.error_message.as_ref()));
                }
            }
        }
        Ok(())
    }

    /// Polls every node until it accepts `accepted` and, if given, refuses `refused`, three probes in a row: a
    /// broker swapping its SSL context can drop a connection without an alert, which a single probe would take
    /// for a refusal while the old truststore is still in effect.
    fn wait_for_truststores(
        &self,
        accepted: &(PathBuf, PathBuf),
        refused: Option<&(PathBuf, PathBuf)>,
    ) -> anyhow::Result<()> {
        for &id in &self.node_ids {
            let deadline = Instant::now() + RECONFIGURED_WITHIN;
            let mut in_a_row = 0;
            loop {
                let state = (|| -> anyhow::Result<Option<String>> {
                    if !self.tls_accepts(id, accepted)? {
                        return Ok(Some(format!("it refuses {}", accepted.0.display())));
                    }
                    match refused {
                        Some(cert) if self.tls_accepts(id, cert)? => {
                            Ok(Some(format!("it accepts {}", cert.0.display())))
                        }
                        _ => Ok(None),
                    }
                })();
                let why = match state {
                    Ok(None) => {
                        in_a_row += 1;
                        if in_a_row == 3 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    Ok(Some(why)) => why,
                    Err(e) => format!("{e:#}"),
                };
                in_a_row = 0;
                if Instant::now() >= deadline {
                    bail!(
                        "node {id} of cluster {}: truststore not in effect after {RECONFIGURED_WITHIN:?}: {why}",
                        self.name
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }
}

/// A TLS client trusting the CAs in `ca` and presenting `cert` (cert PEM, key PEM).
fn client_config(ca: &Path, (cert, key): &(PathBuf, PathBuf)) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
        roots.add(c?)?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?)
}

/// Whether `e` is the server refusing the client: a TLS alert it sent, or its close (or reset) before any
/// answer.
fn refused(e: &io::Error) -> bool {
    let alert = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    matches!(alert, Some(rustls::Error::AlertReceived(_)))
        || matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset)
}

/// Replaces `path`'s content at once: written to a file beside it, renamed over it.
fn replace_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let name = path.file_name().ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let next = path.with_file_name(format!(".{}.next", name.to_string_lossy()));
    std::fs::write(&next, contents).with_context(|| format!("writing {}", next.display()))?;
    std::fs::rename(&next, path)
        .with_context(|| format!("renaming {} over {}", next.display(), path.display()))
}
