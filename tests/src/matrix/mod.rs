//! The client × broker compatibility matrix: every client runs the same scenario through kaas-proxy against
//! every broker, and the harness judges what each client reports.
//!
//! The scenario, for one client and one tenant (a topic and a group of its own per cell):
//! 1. create the topic ([`PARTITIONS`] partitions) and read the brokers the client sees;
//! 2. produce [`RECORDS`] keyed records ([`key`], [`value`]) with acks=all;
//! 3. a consumer in the group reads them, commits, leaves;
//! 4. produce [`MORE`] records;
//! 5. a second consumer in the same group must start at the commit: exactly the [`MORE`] new records;
//! 6. the group's coordinator, where the client can tell it.
//!
//! Each client is a small program in its own language (`tests/python/matrix_client.py`, `tests/java`,
//! `tests/go`; [`programs`]) or, for librdkafka through the `rdkafka` crate, a function in the test. Each
//! reports one JSON line, [`Report`]; the programs check nothing themselves, so one generator bug in one
//! language cannot hide in that language's own checks: [`check`] compares every byte with the reference
//! generator here. [`run`] runs the cells, [`table`] renders the result as Markdown, and [`cli_tools`] runs
//! Kafka's own command-line tools the same way.

pub mod cli_tools;
pub mod programs;
pub mod run;
pub mod table;

pub use run::{run_all, Client, Column, Matrix};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::DOMAIN;

/// Partitions of each cell's topic.
pub const PARTITIONS: i32 = 3;
/// Records of the first batch.
pub const RECORDS: usize = 1000;
/// Records produced after the first consumer's commit.
pub const MORE: usize = 100;

/// Record `i`'s key: `key-<i mod 32>`, so each key recurs and keyed partitioning shows.
pub fn key(i: usize) -> Vec<u8> {
    format!("key-{}", i % 32).into_bytes()
}

/// Record `i`'s value: `v<i>/` followed by 64 + (i mod 193) bytes, byte j being (31 i + j) mod 256, so that
/// every byte value occurs and the lengths vary. Every client program has the same function.
pub fn value(i: usize) -> Vec<u8> {
    let mut v = format!("v{i}/").into_bytes();
    v.extend((0..64 + i % 193).map(|j| ((31 * i + j) & 0xff) as u8));
    v
}

/// Where a cell's client connects, and what the check expects to see there.
#[derive(Debug, Clone)]
pub struct Target {
    pub tenant: String,
    /// `<tenant>.<domain>:<proxy port>`, or the broker's own plaintext address for a direct run.
    pub bootstrap: String,
    /// The CA that signed the proxy's certificate; `None` for a direct run: plaintext, straight to the broker,
    /// which the harness makes only to tell a broker's or client's own failure from the proxy's.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM files, the key PKCS#8) that the client presents to the proxy
    /// (mutual TLS, with `ca`); `None`: no client certificate, as in the matrix.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Whether the client creates the topic ([`PARTITIONS`] partitions, as the matrix has it) or uses it as it
    /// is, made beforehand with as many: a user may be allowed to write and read a topic but not create it.
    pub create_topic: bool,
    /// The producer's idempotence; `None`: the client's own default, as in the matrix (on in kafka-clients
    /// since 3.0 and in franz-go, off in librdkafka and kafka-python). An idempotent producer first asks for a
    /// producer id, which Kafka grants only to a user who may write some topic.
    pub idempotence: Option<bool>,
    pub proxy_port: u16,
    pub topic: String,
    pub group: String,
}

/// A broker as a client reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What one client reported about one run of the scenario: the JSON line of the programs,
/// `{"client", "version", "brokers": [{"id","host","port"}], "produced": [[partition, offset]] (one per record
/// index), "first": [[partition, offset, key base64, value base64]], "produced_more", "second",
/// "coordinator": [node] (empty when the client cannot tell), "error"}`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub client: String,
    pub version: String,
    pub brokers: Vec<Node>,
    pub coordinator: Vec<Node>,
    pub produced: Vec<(i32, i64)>,
    pub first: Vec<Seen>,
    pub produced_more: Vec<(i32, i64)>,
    pub second: Vec<Seen>,
    /// The client's own failure, if it stopped early.
    pub error: Option<String>,
}

impl Report {
    pub fn from_json(v: &Value) -> anyhow::Result<Report> {
        let version = v["version"].as_str().context("no \"version\"")?.to_owned();
        let mut r = Report {
            client: v["client"].as_str().context("no \"client\"")?.to_owned(),
            version,
            error: v.get("error").and_then(Value::as_str).map(str::to_owned),
            ..Report::default()
        };
        if r.error.is_some() {
            return Ok(r);
        }
        r.brokers = nodes(&v["brokers"]).context("brokers")?;
        r.coordinator = nodes(&v["coordinator"]).context("coordinator")?;
        r.produced = offsets(&v["produced"]).context("produced")?;
        r.produced_more = offsets(&v["produced_more"]).context("produced_more")?;
        r.first = records(&v["first"]).context("first")?;
        r.second = records(&v["second"]).context("second")?;
        Ok(r)
    }
}

fn array(v: &Value) -> anyhow::Result<&Vec<Value>> {
    match v {
        // Go's encoder writes an empty slice marked omitempty as nothing at all.
        Value::Null => Ok(const { &Vec::new() }),
        v => v.as_array().context("not an array"),
    }
}

fn int(v: &Value) -> anyhow::Result<i64> {
    v.as_i64().with_context(|| format!("{v} is not an integer"))
}

fn nodes(v: &Value) -> anyhow::Result<Vec<Node>> {
    array(v)?
        .iter()
        .map(|n| {
            Ok(Node {
                id: i32::try_from(int(&n["id"])?)?,
                host: n["host"].as_str().context("host")?.to_owned(),
                port: i32::try_from(int(&n["port"])?)?,
            })
        })
        .collect()
}

fn offsets(v: &Value) -> anyhow::Result<Vec<(i32, i64)>> {
    array(v)?.iter().map(|p| Ok((i32::try_from(int(&p[0])?)?, int(&p[1])?))).collect()
}

fn records(v: &Value) -> anyhow::Result<Vec<Seen>> {
    let b64 = |v: &Value| base64_decode(v.as_str().context("not a base64 string")?);
    array(v)?
        .iter()
        .map(|r| {
            Ok(Seen {
                partition: i32::try_from(int(&r[0])?)?,
                offset: int(&r[1])?,
                key: b64(&r[2])?,
                value: b64(&r[3])?,
            })
        })
        .collect()
}

/// Standard base64 (RFC 4648, padded), as every client's JSON writes bytes: the one decoder the harness needs.
fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    anyhow::ensure!(s.len().is_multiple_of(4), "base64 of length {}", s.len());
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            let d = ALPHABET
                .iter()
                .position(|&a| a == c)
                .with_context(|| format!("{:?} in base64", c as char))?;
            n = n << 6 | d as u32;
        }
        n <<= 6 * pad;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Ok(out)
}

/// Judges a report: `Err` names the first thing wrong, in words for the matrix's failure list.
pub fn check(target: &Target, r: &Report) -> anyhow::Result<()> {
    if let Some(e) = &r.error {
        bail!("the client failed: {e}");
    }
    // Only the proxy's names and port, ever (a direct run sees the broker's own, of course).
    anyhow::ensure!(!r.brokers.is_empty(), "the client saw no brokers");
    let through_proxy = if target.ca.is_some() { [&r.brokers, &r.coordinator] } else { [&vec![], &vec![]] };
    for (what, list) in ["broker", "coordinator"].into_iter().zip(through_proxy) {
        for n in list {
            let want = format!("b{}.{}.{DOMAIN}", n.id, target.tenant);
            anyhow::ensure!(
                n.host == want && n.port == i32::from(target.proxy_port),
                "{what} {} was shown as {}:{}, not {want}:{}",
                n.id,
                n.host,
                n.port,
                target.proxy_port
            );
        }
    }

    // Every record acknowledged at its own place in the log.
    anyhow::ensure!(
        (r.produced.len(), r.produced_more.len()) == (RECORDS, MORE),
        "{} + {} delivery reports for {RECORDS} + {MORE} records",
        r.produced.len(),
        r.produced_more.len()
    );
    let mut index = HashMap::new();
    for (i, &(partition, offset)) in r.produced.iter().chain(&r.produced_more).enumerate() {
        anyhow::ensure!((0..PARTITIONS).contains(&partition), "record {i} went to partition {partition}");
        if let Some(j) = index.insert((partition, offset), i) {
            bail!("records {j} and {i} were both acknowledged at partition {partition} offset {offset}");
        }
    }
    // Keyed records: one key, one partition (whatever the client's partitioner).
    let mut partition_of_key = HashMap::new();
    for (i, &(partition, _)) in r.produced.iter().chain(&r.produced_more).enumerate() {
        let first = *partition_of_key.entry(key(i)).or_insert(partition);
        anyhow::ensure!(first == partition, "key {:?} went to partitions {first} and {partition}", key(i));
    }

    check_consumed("the first consumer", &r.first, &index, 0..RECORDS)?;
    check_consumed("the consumer resuming after the commit", &r.second, &index, RECORDS..RECORDS + MORE)
}

/// `seen` must be exactly the records `want`, each byte-identical, in log order within each partition.
fn check_consumed(
    who: &str,
    seen: &[Seen],
    index: &HashMap<(i32, i64), usize>,
    want: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let mut got = HashSet::new();
    let mut last_offset = BTreeMap::new();
    for s in seen {
        let Some(&i) = index.get(&(s.partition, s.offset)) else {
            bail!("{who} got partition {} offset {}, where nothing was produced", s.partition, s.offset);
        };
        anyhow::ensure!(want.contains(&i), "{who} got record {i} (expected records {want:?})");
        anyhow::ensure!(got.insert(i), "{who} got record {i} twice");
        anyhow::ensure!(s.key == key(i), "{who}: record {i}'s key differs");
        anyhow::ensure!(s.value == value(i), "{who}: record {i}'s value differs");
        if let Some(prev) = last_offset.insert(s.partition, s.offset) {
            anyhow::ensure!(prev < s.offset, "{who}: partition {} went back from {prev}", s.partition);
        }
    }
    anyhow::ensure!(got.len() == want.len(), "{who} got {} of {} records", got.len(), want.len());
    Ok(())
}

/// The version of `package` in the workspace's Cargo.lock (the one the tests were built with).
pub fn locked_version(package: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(crate::repo_root().join("Cargo.lock"))?;
    let name = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == name {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    bail!("{package} is not in Cargo.lock")
}

/// `${KAAS_CACHE:-$HOME/.cache/kaas}`: where scripts/install-prereqs.sh puts what lives outside the repository.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    match std::env::var_os("KAAS_CACHE").filter(|c| !c.is_empty()) {
        Some(c) => Ok(PathBuf::from(c)),
        None => Ok(PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/kaas")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            tenant: "t".into(),
            bootstrap: format!("t.{DOMAIN}:9"),
            ca: Some(PathBuf::new()),
            cert: None,
            create_topic: true,
            idempotence: None,
            proxy_port: 9,
            topic: "x".into(),
            group: "g".into(),
        }
    }

    /// A report of a run where everything went right: 3 partitions, keys spread by key number.
    fn good() -> Report {
        let mut next = [0i64; 3];
        let mut place = |i: usize| {
            let p = (i % 32 % 3) as i32;
            next[p as usize] += 1;
            (p, next[p as usize] - 1)
        };
        let produced: Vec<_> = (0..RECORDS).map(&mut place).collect();
        let produced_more: Vec<_> = (RECORDS..RECORDS + MORE).map(&mut place).collect();
        let seen = |placed: &[(i32, i64)], from: usize| {
            placed
                .iter()
                .enumerate()
                .map(|(n, &(partition, offset))| Seen {
                    partition,
                    offset,
                    key: key(from + n),
                    value: value(from + n),
                })
                .collect()
        };
        let node = Node { id: 11, host: format!("b11.t.{DOMAIN}"), port: 9 };
        Report {
            client: "c".into(),
            version: "1".into(),
            brokers: vec![node.clone()],
            coordinator: vec![node],
            first: seen(&produced, 0),
            second: seen(&produced_more, RECORDS),
            produced,
            produced_more,
            error: None,
        }
    }

    fn reason(r: &Report) -> String {
        format!("{:#}", check(&target(), r).expect_err("check must fail"))
    }

    #[test]
    fn a_good_run_passes() {
        check(&target(), &good()).expect("a good run passes");
    }

    #[test]
    fn every_kind_of_wrong_run_fails() {
        let mut r = good();
        r.brokers[0].host = "127.0.0.1".into();
        assert!(reason(&r).contains("broker 11 was shown as 127.0.0.1:9"), "{}", reason(&r));

        let mut r = good();
        r.coordinator[0].port = 19092;
        assert!(reason(&r).contains("coordinator 11"), "{}", reason(&r));

        let mut r = good();
        r.first[10].value[20] ^= 1;
        assert!(reason(&r).contains("record 10's value differs"), "{}", reason(&r));

        let mut r = good();
        r.first.pop();
        assert!(reason(&r).contains("got 999 of 1000"), "{}", reason(&r));

        // A resume that did not start at the commit.
        let mut r = good();
        r.second.insert(0, r.first[0].clone());
        assert!(reason(&r).contains("got record 0 (expected records 1000..1100)"), "{}", reason(&r));

        let mut r = good();
        r.first.swap(0, 3);
        assert!(reason(&r).contains("went back"), "{}", reason(&r));

        let mut r = good();
        r.produced[1] = r.produced[0];
        assert!(reason(&r).contains("both acknowledged"), "{}", reason(&r));

        let mut r = good();
        r.error = Some("boom".into());
        assert_eq!(reason(&r), "the client failed: boom");

        // A direct run sees the broker's own addresses; its records are checked all the same.
        let direct = Target { ca: None, ..target() };
        let mut r = good();
        r.brokers[0].host = "127.0.0.1".into();
        check(&direct, &r).expect("a direct run shows the broker's address");
        r.second.pop();
        assert!(check(&direct, &r).is_err());
    }

    #[test]
    fn values_cover_every_byte_and_match_the_other_languages() {
        let all: HashSet<u8> = (0..256).flat_map(value).collect();
        assert_eq!(all.len(), 256);
        // The other languages' generators start the same way; the matrix itself fails any client whose bytes
        // differ from these.
        assert_eq!(&value(1)[..6], b"v1/\x1f\x20\x21");
        assert_eq!(value(1).len(), 3 + 65);
        assert_eq!(key(33), b"key-1");
    }

    #[test]
    fn base64_decodes_the_rfc_4648_vectors() {
        for (text, bytes) in [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob")]
        {
            assert_eq!(base64_decode(text).expect("valid"), bytes.as_bytes());
        }
        assert_eq!(base64_decode("+/8=").expect("valid"), [0xfb, 0xff]);
        assert!(base64_decode("Zm9").is_err() && base64_decode("Zm9*").is_err());
    }

    #[test]
    fn reports_parse_from_the_programs_json() {
        let line = r#"{"client":"franz-go","version":"v1.22.3",
            "brokers":[{"id":11,"host":"b11.t.kaas.localhost","port":9}],
            "produced":[[0,0]],"first":[[0,0,"a2V5LTA=","AA=="]],"produced_more":[[0,1]],"second":[],
            "coordinator":[{"id":11,"host":"b11.t.kaas.localhost","port":9}]}"#;
        let r = Report::from_json(&serde_json::from_str(line).expect("json")).expect("report");
        assert_eq!(r.first, [Seen { partition: 0, offset: 0, key: b"key-0".to_vec(), value: vec![0] }]);
        assert_eq!((r.produced_more.as_slice(), r.second.len()), (&[(0, 1)][..], 0));
        let failed = r#"{"client":"kafka-clients","version":"3.9.2","error":"TimeoutException"}"#;
        let r = Report::from_json(&serde_json::from_str(failed).expect("json")).expect("report");
        assert_eq!(r.error.as_deref(), Some("TimeoutException"));
    }
}
