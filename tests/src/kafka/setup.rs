//! What a cluster is made of before its nodes start: each node's `server.properties`, the cluster CA and the
//! brokers' keystores, ports, the cluster id.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};

use super::{ClusterOptions, Node};
use crate::certs::new_ca;

/// A node's `server.properties`: combined broker and controller, the three or four listeners, the authorizer
/// if asked for, and what a small test cluster needs (internal topics replicated as far as the nodes allow,
/// no waiting before rebalances, few threads, small segments), then `opts.config`.
pub(super) fn properties(
    opts: &ClusterOptions,
    node: &Node,
    voters: &str,
    keystore: &Path,
    clients_ca: &Path,
) -> String {
    let n = opts.nodes;
    // Replicas of internal topics, and the ISR they require: 3 and 2 as in production when there are 3 nodes.
    let min_isr = n.min(2);
    let mut advertised = format!("PLAIN://127.0.0.1:{},TLS://127.0.0.1:{}", node.plain, node.tls);
    let mut protocols = "PLAIN:PLAINTEXT,TLS:SSL,CONTROLLER:PLAINTEXT".to_owned();
    if let Some(sasl) = node.sasl {
        advertised.push_str(&format!(",SASL://127.0.0.1:{sasl}"));
        protocols.push_str(",SASL:SASL_SSL");
    }
    let listeners = format!("{advertised},CONTROLLER://127.0.0.1:{}", node.controller);
    let mut p = format!(
        "# Node {id} of the test cluster {name} (Kafka {version}), written by tests/src/kafka/setup.rs.\n\
         process.roles=broker,controller\n\
         node.id={id}\n\
         controller.quorum.voters={voters}\n\
         controller.listener.names=CONTROLLER\n\
         listeners={listeners}\n\
         advertised.listeners={advertised}\n\
         listener.security.protocol.map={protocols}\n\
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
    if node.sasl.is_some() {
        // Every SASL user may log in with PLAIN as well, its password in the JAAS line (the names and passwords
        // were checked to need no quoting).
        let plain_users: String =
            opts.scram_users.iter().map(|(name, password)| format!(" user_{name}=\"{password}\"")).collect();
        // The lower-case listener name prefixes its settings; the mechanism's own ones take it as well.
        p.push_str(&format!(
            "listener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN\n\
             listener.name.sasl.scram-sha-512.sasl.jaas.config=\
             org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
             listener.name.sasl.plain.sasl.jaas.config=\
             org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};\n\
             listener.name.sasl.ssl.client.auth=none\n\
             listener.name.sasl.ssl.keystore.type=PEM\n\
             listener.name.sasl.ssl.keystore.location={}\n",
            keystore.display()
        ));
    }
    if opts.authorizer {
        p.push_str(
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
             allow.everyone.if.no.acl.found=false\n\
             # ANONYMOUS is whoever comes over PLAIN: the brokers among themselves, to the controllers (CONTROLLER\n\
             # is plaintext too), and the fixture's own requests (create_topic, create_acls).\n\
             super.users=User:ANONYMOUS;User:CN=admin\n",
        );
    }
    for (k, v) in &opts.config {
        p.push_str(&format!("{k}={v}\n"));
    }
    p
}

/// The cluster's own CA (Strimzi's "cluster CA"): it signs the broker certificates clients verify.
#[derive(Debug)]
pub(super) struct ClusterCa {
    pub(super) pem: PathBuf,
    /// Its private key, PKCS#8 PEM.
    pub(super) key: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// Generation 0 of `name`'s cluster CA, `<name> cluster CA`; a later one, made by a rotation, carries its
    /// number as Strimzi's do (`<name> cluster CA v1`), so the old and the new one in a bundle differ by name
    /// as well as by key. Writes `<name>-cluster-ca.pem` and `.key` into `dir`.
    pub(super) fn generate(dir: &Path, name: &str, generation: u32) -> anyhow::Result<ClusterCa> {
        let common_name = match generation {
            0 => format!("{name} cluster CA"),
            n => format!("{name} cluster CA v{n}"),
        };
        let (ca_pem, issuer) = new_ca(&common_name)?;
        let pem = dir.join(format!("{name}-cluster-ca.pem"));
        std::fs::write(&pem, &ca_pem)?;
        let key = dir.join(format!("{name}-cluster-ca.key"));
        std::fs::write(&key, issuer.key().serialize_pem())?;
        Ok(ClusterCa { pem, key, ca_pem, issuer })
    }

    /// Writes `keystore.pem` into `dir`: a broker's key, its certificate for the advertised host (and
    /// `localhost`), and the CA, as Kafka's PEM keystore reads them.
    pub(super) fn keystore(&self, dir: &Path, cn: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join("keystore.pem");
        std::fs::write(&path, self.keystore_pem(cn)?)?;
        Ok(path)
    }

    /// The CA's own certificate, PEM.
    pub(super) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// What `keystore.pem` holds: a fresh key, its certificate for `cn` signed by this CA, and the CA.
    pub(super) fn keystore_pem(&self, cn: &str) -> anyhow::Result<String> {
        let key = KeyPair::generate()?;
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(format!("{}{}{}", key.serialize_pem(), cert.pem(), self.ca_pem))
    }
}

/// A fresh cluster id: 16 random bytes in unpadded URL-safe base64, like `kafka-storage.sh random-uuid`.
pub(super) fn random_cluster_id() -> String {
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

/// Refuses a SCRAM user `kafka-storage format --add-scram` would misread: it splits on `,` and `=` inside
/// `[...]` and cannot quote.
pub(super) fn check_scram_user(name: &str, password: &str) -> anyhow::Result<()> {
    for (what, value) in [("name", name), ("password", password)] {
        anyhow::ensure!(
            !value.is_empty()
                && !value.contains([',', '[', ']', '"', '='])
                && !value.contains(char::is_whitespace),
            "SCRAM user {name:?}: its {what} must be non-empty and free of , [ ] \" = and spaces \
             (kafka-storage format --add-scram cannot quote them)"
        );
    }
    Ok(())
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
    fn scram_users_and_the_authorizer_add_their_properties() {
        let node = Node {
            id: 11,
            plain: 1001,
            tls: 1002,
            controller: 1003,
            sasl: Some(1004),
            dir: PathBuf::from("/k/node-11"),
            process: None,
        };
        let opts = ClusterOptions::named("t").nodes(1).authorizer().scram_user("alice", "s3cret");
        let p = properties(&opts, &node, "11@127.0.0.1:1003", Path::new("/k/ks.pem"), Path::new("/k/ca.pem"));
        let lines: Vec<&str> = p.lines().collect();
        for want in [
            "listeners=PLAIN://127.0.0.1:1001,TLS://127.0.0.1:1002,SASL://127.0.0.1:1004,CONTROLLER://127.0.0.1:1003",
            "advertised.listeners=PLAIN://127.0.0.1:1001,TLS://127.0.0.1:1002,SASL://127.0.0.1:1004",
            "listener.security.protocol.map=PLAIN:PLAINTEXT,TLS:SSL,CONTROLLER:PLAINTEXT,SASL:SASL_SSL",
            "listener.name.sasl.ssl.client.auth=none",
            "listener.name.sasl.ssl.keystore.location=/k/ks.pem",
            "listener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
            "listener.name.sasl.plain.sasl.jaas.config=\
             org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"s3cret\";",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            "super.users=User:ANONYMOUS;User:CN=admin",
        ] {
            assert!(lines.contains(&want), "{want:?} missing:\n{p}");
        }
        let plain = properties(
            &ClusterOptions::named("t").nodes(1),
            &Node { sasl: None, ..node },
            "11@127.0.0.1:1003",
            Path::new("/k/ks.pem"),
            Path::new("/k/ca.pem"),
        );
        assert!(!plain.contains("SASL") && !plain.contains("authorizer"), "{plain}");
    }

    #[test]
    fn scram_users_kafka_storage_would_misread_are_refused() {
        check_scram_user("alice", "alice-secret_0.9").expect("plain name and password");
        for (name, password) in
            [("", "x"), ("a,b", "x"), ("alice", ""), ("alice", "p=w"), ("alice", "p w"), ("alice", "[x]")]
        {
            assert!(check_scram_user(name, password).is_err(), "{name:?} {password:?} accepted");
        }
    }

    #[test]
    fn base64url_matches_the_rfc_4648_vectors() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
