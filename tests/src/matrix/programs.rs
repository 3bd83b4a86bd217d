//! The matrix's clients that are programs of their own, each run once per cell with the cell's bootstrap, CA,
//! topic and group (and, where the target sets them, the client certificate to present and the producer's
//! idempotence), reporting one JSON line on stdout ([`super::Report`]):
//! - confluent-kafka and kafka-python: `tests/python/matrix_client.py` in the project's `.venv`;
//! - Java kafka-clients, one build per Kafka version in `scripts/kafka/versions.env`: `tests/java`, compiled by
//!   scripts/install-prereqs.sh into `<cache>/matrix/java/<version>/{classes,libs}`;
//! - franz-go: `tests/go`, built by scripts/install-prereqs.sh into `<cache>/matrix/go/matrix-client`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{cache_dir, Client, Report, Target};
use crate::kafka::Version;
use crate::repo_root;

/// A client program gets this long for the whole scenario; its own waits are shorter, so reaching this means
/// it hung.
const RUN_WITHIN: Duration = Duration::from_secs(150);

/// JVM flags for a short-lived client: the C1 JIT only and the serial collector start faster and leave the
/// second core to the broker and the proxy; class data sharing as far as the JDK's own archive goes.
pub const JAVA_FLAGS: &[&str] =
    &["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto", "-XX:-UsePerfData", "-Xmx256m"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    ConfluentKafka,
    KafkaPython,
    Java(Version),
    FranzGo,
}

impl Program {
    pub fn all() -> [Program; 5] {
        [
            Program::ConfluentKafka,
            Program::KafkaPython,
            Program::Java(Version::Latest),
            Program::Java(Version::Kafka3),
            Program::FranzGo,
        ]
    }

    /// The Java client's build for `version`, as scripts/install-prereqs.sh leaves it.
    fn java_build(version: Version) -> anyhow::Result<PathBuf> {
        let dir = cache_dir()?.join("matrix/java").join(version.number());
        anyhow::ensure!(
            dir.join("complete").is_file(),
            "the Java matrix client for kafka-clients {} is not built in {} (run scripts/install-prereqs.sh)",
            version.number(),
            dir.display()
        );
        Ok(dir)
    }

    fn command(&self) -> anyhow::Result<Command> {
        let root = repo_root();
        Ok(match self {
            Program::ConfluentKafka | Program::KafkaPython => {
                let python = root.join(".venv/bin/python");
                anyhow::ensure!(
                    python.exists(),
                    "{} missing; run scripts/install-prereqs.sh",
                    python.display()
                );
                let mut c = Command::new(python);
                c.arg(root.join("tests/python/matrix_client.py"));
                c.args([
                    "--client",
                    if *self == Program::KafkaPython { "kafka-python" } else { "confluent" },
                ]);
                c
            }
            Program::Java(version) => {
                let dir = Self::java_build(*version)?;
                let mut c = Command::new("java");
                c.args(JAVA_FLAGS)
                    // kafka-clients' warnings go to stderr, which a failure report quotes.
                    .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
                    .arg("-cp")
                    .arg(format!("{}:{}", dir.join("classes").display(), dir.join("libs/*").display()))
                    .arg("dev.kaas.matrix.MatrixClient");
                c
            }
            Program::FranzGo => {
                let binary = cache_dir()?.join("matrix/go/matrix-client");
                anyhow::ensure!(
                    binary.is_file(),
                    "{} missing; run scripts/install-prereqs.sh",
                    binary.display()
                );
                Command::new(binary)
            }
        })
    }
}

impl Client for Program {
    fn name(&self) -> String {
        match self {
            Program::ConfluentKafka => "confluent-kafka (Python)".into(),
            Program::KafkaPython => "kafka-python".into(),
            Program::Java(_) => "Java kafka-clients".into(),
            Program::FranzGo => "franz-go (Go)".into(),
        }
    }

    fn slug(&self) -> String {
        match self {
            Program::ConfluentKafka => "confluent".into(),
            Program::KafkaPython => "kafka-python".into(),
            Program::Java(v) => format!("java-{}", v.number()),
            Program::FranzGo => "franz-go".into(),
        }
    }

    fn run(&self, target: &Target) -> anyhow::Result<Report> {
        let mut c = self.command()?;
        // Partitions 0: the programs use the topic as it is.
        let partitions = if target.create_topic { super::PARTITIONS } else { 0 };
        let (partitions, records, more) =
            (partitions.to_string(), super::RECORDS.to_string(), super::MORE.to_string());
        c.args(["--bootstrap", &target.bootstrap, "--topic", &target.topic, "--group", &target.group]);
        c.args(["--partitions", &partitions, "--records", &records, "--more", &more]);
        if let Some(ca) = &target.ca {
            c.arg("--ca").arg(ca);
        }
        if let Some((cert, key)) = &target.cert {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(on) = target.idempotence {
            c.args(["--idempotence", if on { "true" } else { "false" }]);
        }
        let (status, stdout, stderr) = run_with_deadline(c.stdin(Stdio::null()), RUN_WITHIN)?;
        let line = stdout.lines().rev().find(|l| l.starts_with('{'));
        let report = line
            .with_context(|| format!("no JSON line on stdout (exit {status})"))
            .and_then(|l| Report::from_json(&serde_json::from_str(l)?))
            .with_context(|| format!("stderr ends: {}", tail(&stderr, 15)))?;
        if let Some(e) = &report.error {
            eprintln!("{} failed: {e}\nits stderr ends:\n{}", self.name(), tail(&stderr, 30));
        }
        Ok(report)
    }
}

/// Runs `c` with stdout and stderr into files (a report is hundreds of kilobytes: more than a pipe holds
/// while nobody reads it), killed if it is still running after `within`: (exit status, stdout, stderr).
pub fn run_with_deadline(c: &mut Command, within: Duration) -> anyhow::Result<(ExitStatus, String, String)> {
    let dir = tempfile::tempdir()?;
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = c
        .stdout(File::create(&out)?)
        .stderr(File::create(&err)?)
        .spawn()
        .with_context(|| format!("cannot run {:?}", c.get_program()))?;
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {within:?}, killed; stderr ends: {}", tail(&read(&err), 15));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok((status, read(&out), read(&err)))
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
