//! Kafka's own command-line tools — `kafka-topics`, `kafka-console-producer`, `kafka-console-consumer` — run
//! the way a user would, against `<tenant>.<domain>:<port>` with a `client.properties` holding nothing but
//! TLS and the CA as a PEM truststore. They run from the cached Kafka jars (`kafka::install_dir`) with the
//! main classes the `bin/` scripts name, which moved between 3.9 and 4.x, as did the option names (4.x
//! deprecates `--producer.config`/`--consumer.config` and `--property` for `--command-config` and
//! `--reader-property`/`--formatter-property`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use super::programs::{run_with_deadline, tail, JAVA_FLAGS};
use crate::kafka::{install_dir, Version};

/// A tool run gets this long; the consumer's own `--timeout-ms` is well inside it.
const TOOL_WITHIN: Duration = Duration::from_secs(90);

/// The tools of one Kafka version, pointed at one bootstrap address.
#[derive(Debug)]
pub struct Tools {
    version: Version,
    libs: PathBuf,
    bootstrap: String,
    /// The `client.properties` every tool is given.
    config: PathBuf,
    dir: PathBuf,
}

impl Tools {
    /// Writes `dir/client.properties` for the CA file `ca` and returns the tools of `version`.
    pub fn new(version: Version, bootstrap: &str, ca: &Path, dir: &Path) -> anyhow::Result<Tools> {
        let config = dir.join("client.properties");
        std::fs::write(&config, client_properties(ca))?;
        Ok(Tools {
            version,
            libs: install_dir(version)?.join("libs"),
            bootstrap: bootstrap.to_owned(),
            config,
            dir: dir.to_owned(),
        })
    }

    /// The same tools presenting the client certificate `cert` with its unencrypted PKCS#8 `key` (PEM files):
    /// a PEM keystore (KIP-651) holding both, added to `client.properties`.
    pub fn with_client_cert(self, cert: &Path, key: &Path) -> anyhow::Result<Tools> {
        let keystore = self.dir.join("keystore.pem");
        std::fs::write(&keystore, [std::fs::read(key)?, std::fs::read(cert)?].concat())?;
        let mut config = std::fs::read_to_string(&self.config)?;
        config.push_str(&format!("ssl.keystore.type=PEM\nssl.keystore.location={}\n", keystore.display()));
        std::fs::write(&self.config, config)?;
        Ok(self)
    }

    fn kafka4(&self) -> bool {
        !self.version.number().starts_with("3.")
    }

    fn java(&self, main: &str) -> Command {
        let mut c = Command::new("java");
        c.args(JAVA_FLAGS).arg("-cp").arg(self.libs.join("*")).arg(main);
        c.args(["--bootstrap-server", &self.bootstrap]);
        c
    }

    /// Runs `c` and returns its stdout, or fails quoting stderr when it exits non-zero.
    fn run(&self, what: &str, c: &mut Command) -> anyhow::Result<String> {
        let (status, stdout, stderr) = run_with_deadline(c, TOOL_WITHIN)?;
        anyhow::ensure!(
            status.success(),
            "{what} ({}) exited with {status}; stderr ends:\n{}",
            self.version.number(),
            tail(&stderr, 20)
        );
        Ok(stdout)
    }

    /// `kafka-topics.sh --bootstrap-server B --command-config client.properties ARGS`.
    pub fn topics(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = self.java("org.apache.kafka.tools.TopicCommand");
        c.arg("--command-config").arg(&self.config).args(args).stdin(Stdio::null());
        self.run("kafka-topics", &mut c)
    }

    /// `kafka-acls.sh --bootstrap-server B --command-config client.properties ARGS` (Kafka 4).
    pub fn acls(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = self.java("org.apache.kafka.tools.AclCommand");
        c.arg("--command-config").arg(&self.config).args(args).stdin(Stdio::null());
        self.run("kafka-acls", &mut c)
    }

    /// `kafka-configs.sh --bootstrap-server B --command-config client.properties ARGS` (Kafka 4).
    pub fn configs(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = self.java("org.apache.kafka.tools.ConfigCommand");
        c.arg("--command-config").arg(&self.config).args(args).stdin(Stdio::null());
        self.run("kafka-configs", &mut c)
    }

    /// `kafka-console-producer.sh` with `key:value` lines on stdin, the tool's default acks (all).
    pub fn produce(&self, topic: &str, lines: &[String]) -> anyhow::Result<()> {
        let input = self.dir.join(format!("{topic}-input.txt"));
        std::fs::write(&input, lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
        let (main, config, property) = if self.kafka4() {
            ("org.apache.kafka.tools.ConsoleProducer", "--command-config", "--reader-property")
        } else {
            ("kafka.tools.ConsoleProducer", "--producer.config", "--property")
        };
        let mut c = self.java(main);
        c.arg(config).arg(&self.config).args(["--topic", topic]);
        c.args([property, "parse.key=true", property, "key.separator=:"]);
        c.stdin(File::open(&input).context("producer input")?);
        self.run("kafka-console-producer", &mut c).map(drop)
    }

    /// `kafka-console-consumer.sh` in `group`: up to `max` records as `key:value` lines, giving up after
    /// `idle` without a record.
    pub fn consume(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        idle: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let (config, property) = if self.kafka4() {
            ("--command-config", "--formatter-property")
        } else {
            ("--consumer.config", "--property")
        };
        let mut c = self.java("org.apache.kafka.tools.consumer.ConsoleConsumer");
        c.arg(config).arg(&self.config).args(["--topic", topic, "--group", group, "--from-beginning"]);
        c.args(["--max-messages", &max.to_string(), "--timeout-ms", &idle.as_millis().to_string()]);
        c.args([property, "print.key=true", property, "key.separator=:"]).stdin(Stdio::null());
        let out = self.run("kafka-console-consumer", &mut c)?;
        Ok(out.lines().map(str::to_owned).collect())
    }
}

/// What a user puts in `client.properties` for a tenant: TLS, and the CA as a PEM truststore (Kafka 2.7+),
/// no keystore tool needed.
pub fn client_properties(ca: &Path) -> String {
    format!("security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n", ca.display())
}
