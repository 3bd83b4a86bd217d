//! The client × broker compatibility matrix (`kaas_e2e::matrix`): librdkafka (the `rdkafka` crate, here),
//! confluent-kafka, kafka-python, Java kafka-clients of each pinned Kafka version and franz-go, each against
//! Apache Kafka of each pinned version and Tansu, all through one kaas-proxy; the table goes to
//! `target/matrix.md` and README.md (`UPDATE_MATRIX=1`). And Kafka's own command-line tools through the
//! proxy with nothing but a `client.properties` a user would write.

use std::time::{Duration, Instant};

use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Version};
use kaas_e2e::matrix::cli_tools::Tools;
use kaas_e2e::matrix::programs::Program;
use kaas_e2e::matrix::{self, Client, Column, Node, Report, Seen, Target};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::tansu::{tansu_binary, Tansu};
use kaas_e2e::DOMAIN;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::Message;

/// Cells at a time: two client processes keep both cores busy.
const PARALLEL: usize = 2;

#[test]
fn every_client_works_with_every_broker_through_the_proxy() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    // One node each: the matrix is about protocol versions, not replication, and every JVM costs CPU.
    let clusters = KafkaCluster::start_many(
        [Version::Latest, Version::Kafka3]
            .into_iter()
            .map(|v| ClusterOptions::named(&format!("matrix-{}", v.number())).version(v).nodes(1))
            .collect(),
    )
    .expect("kafka clusters");
    let tansu = Tansu::start("matrix-tansu").expect("tansu");

    let mut columns: Vec<Column> = clusters
        .iter()
        .map(|c| Column {
            broker: format!("Apache Kafka {}", c.version().number()),
            tenant: format!("kafka{}", c.version().number().replace('.', "")),
            direct: c.bootstrap_plain(),
        })
        .collect();
    columns.push(Column { broker: tansu_version(), tenant: "tansu".into(), direct: tansu.addr() });
    let tenants: Vec<&str> = columns.iter().map(|c| c.tenant.as_str()).collect();
    let certs = Certs::generate(dir.path(), DOMAIN, &tenants).expect("certificates");
    let mut routes: Vec<(&str, Vec<String>)> =
        clusters.iter().zip(&tenants).map(|(c, t)| (*t, vec![c.bootstrap_plain()])).collect();
    routes.push(("tansu", vec![tansu.addr()]));
    let proxy = ProxyHandle::start(&certs, &routes).expect("proxy");
    eprintln!("matrix: brokers and proxy up in {:.1?}", started.elapsed());

    let programs = Program::all();
    let mut clients: Vec<&dyn Client> = vec![&Librdkafka];
    clients.extend(programs.iter().map(|p| p as &dyn Client));
    let m = matrix::run_all(&clients, &columns, proxy.port, &certs.ca, PARALLEL);

    let published = matrix::table::publish(&m);
    eprintln!(
        "{}\nmatrix: {} cells in {:.1?}",
        matrix::table::markdown(&m, true),
        m.cells.len(),
        started.elapsed()
    );
    let failed: Vec<String> = m
        .failures()
        .map(|c| format!("{} × {}: {:?}", m.rows[c.row], m.columns[c.column], c.outcome))
        .collect();
    assert!(failed.is_empty(), "{} of {} cells failed:\n{}", failed.len(), m.cells.len(), failed.join("\n"));
    let file = published.expect("the matrix is published");
    eprintln!("matrix written to {}", file.display());
}

/// `Tansu <version>`, as the binary the tests run says.
fn tansu_version() -> String {
    let out = std::process::Command::new(tansu_binary()).arg("--version").output().expect("tansu --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().last().expect("tansu prints its version");
    format!("Tansu {version}")
}

/// Kafka's CLI tools of each version against a broker of the same version, through the proxy, configured as a
/// user would: `--bootstrap-server <tenant>.<domain>:<port>` and a `client.properties` with the truststore.
#[test]
fn kafka_cli_tools_work_through_the_proxy_with_only_a_truststore() {
    let dir = tempfile::tempdir().expect("temp dir");
    let versions = [Version::Latest, Version::Kafka3];
    let clusters = KafkaCluster::start_many(
        versions
            .iter()
            .map(|v| ClusterOptions::named(&format!("cli-{}", v.number())).version(*v).nodes(1))
            .collect(),
    )
    .expect("kafka clusters");
    let tenants: Vec<String> =
        versions.iter().map(|v| format!("cli{}", v.number().replace('.', ""))).collect();
    let names: Vec<&str> = tenants.iter().map(String::as_str).collect();
    let certs = Certs::generate(dir.path(), DOMAIN, &names).expect("certificates");
    let routes: Vec<(&str, Vec<String>)> =
        names.iter().zip(&clusters).map(|(t, c)| (*t, vec![c.bootstrap_plain()])).collect();
    let proxy = ProxyHandle::start(&certs, &routes).expect("proxy");

    for ((version, tenant), cluster) in versions.iter().zip(&tenants).zip(&clusters) {
        let work = dir.path().join(tenant);
        std::fs::create_dir_all(&work).expect("tool folder");
        let tools = Tools::new(*version, &proxy.bootstrap(tenant), &certs.ca, &work).expect("tools");

        tools
            .topics(&["--create", "--topic", "cli", "--partitions", "3", "--replication-factor", "1"])
            .expect("create");
        let described = tools.topics(&["--describe", "--topic", "cli"]).expect("describe");
        let leader = format!("Leader: {}", cluster.node_ids()[0]);
        assert!(described.contains("PartitionCount: 3") && described.contains(&leader), "{described}");
        let listed = tools.topics(&["--list"]).expect("list");
        assert!(listed.lines().any(|l| l == "cli"), "{listed}");

        // Keys and values with the separator's neighbours and non-ASCII text, as typed.
        let first: Vec<String> =
            (0..200).map(|i| format!("k{}:value {i} ünïcode/{}", i % 7, "x".repeat(i))).collect();
        tools.produce("cli", &first).expect("console producer");
        let idle = Duration::from_secs(20);
        let mut got = tools.consume("cli", "cli-group", first.len(), idle).expect("console consumer");
        got.sort();
        let mut want = first.clone();
        want.sort();
        assert!(
            got == want,
            "Kafka {}: the console consumer read {} lines, not the {} produced",
            version.number(),
            got.len(),
            want.len()
        );

        // The tool's group committed on exit: a second run of it gets only what came after.
        let more: Vec<String> = (0..10).map(|i| format!("k{i}:after the commit {i}")).collect();
        tools.produce("cli", &more).expect("console producer");
        let mut resumed = tools.consume("cli", "cli-group", more.len(), idle).expect("console consumer");
        resumed.sort();
        assert_eq!(resumed, more, "Kafka {}: the resumed console consumer", version.number());
    }
}

/// librdkafka through the `rdkafka` crate, in the test's process: the same scenario as the programs.
struct Librdkafka;

impl Client for Librdkafka {
    fn name(&self) -> String {
        "librdkafka (rdkafka crate)".into()
    }

    fn slug(&self) -> String {
        "rdkafka".into()
    }

    fn run(&self, target: &Target) -> anyhow::Result<Report> {
        let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
        let version = format!("{librdkafka} (rdkafka {})", matrix::locked_version("rdkafka")?);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let report = match runtime.block_on(rdkafka_scenario(target)) {
            Ok(r) => r,
            Err(e) => Report { error: Some(format!("{e:#}")), ..Report::default() },
        };
        Ok(Report { client: "rdkafka".into(), version, ..report })
    }
}

async fn rdkafka_scenario(t: &Target) -> anyhow::Result<Report> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &t.bootstrap).set("client.id", "matrix-rdkafka");
    // Without a CA: plaintext straight to the broker, the harness's second opinion on a failed cell.
    if let Some(ca) = &t.ca {
        config.set("security.protocol", "SSL").set("ssl.ca.location", ca.to_string_lossy().as_ref());
    }
    if let Some((cert, key)) = &t.cert {
        config
            .set("ssl.certificate.location", cert.to_string_lossy().as_ref())
            .set("ssl.key.location", key.to_string_lossy().as_ref());
    }

    let admin: AdminClient<DefaultClientContext> = config.create()?;
    if t.create_topic {
        let topic = NewTopic::new(&t.topic, matrix::PARTITIONS, TopicReplication::Fixed(1));
        for r in admin.create_topics(&[topic], &AdminOptions::new()).await? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, e)) => anyhow::bail!("create topic {name}: {e}"),
            }
        }
    }
    let md = admin.inner().fetch_metadata(None, Duration::from_secs(30))?;
    let brokers =
        md.brokers().iter().map(|b| Node { id: b.id(), host: b.host().to_owned(), port: b.port() }).collect();

    let mut producer = config.clone();
    producer.set("acks", "all").set("linger.ms", "5");
    if let Some(on) = t.idempotence {
        producer.set("enable.idempotence", on.to_string());
    }
    let producer: FutureProducer = producer.create()?;
    let produced = produce(&producer, &t.topic, 0..matrix::RECORDS).await?;
    let first = consume(&config, t, matrix::RECORDS)?;
    let more = matrix::RECORDS..matrix::RECORDS + matrix::MORE;
    let produced_more = produce(&producer, &t.topic, more).await?;
    producer.flush(Duration::from_secs(10))?;
    let second = consume(&config, t, matrix::MORE)?;
    // librdkafka does not tell which broker coordinates a group.
    Ok(Report { brokers, produced, first, produced_more, second, ..Report::default() })
}

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    indexes: std::ops::Range<usize>,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let mut pending = Vec::new();
    for i in indexes.clone() {
        let (key, value) = (matrix::key(i), matrix::value(i));
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        pending.push(producer.send_result(record).map_err(|(e, _)| anyhow::anyhow!("enqueue {i}: {e}"))?);
    }
    let mut placed = Vec::new();
    for (i, delivery) in indexes.zip(pending) {
        match delivery.await? {
            Ok(d) => placed.push((d.partition, d.offset)),
            Err((e, _)) => anyhow::bail!("record {i}: {e}"),
        }
    }
    Ok(placed)
}

/// A new consumer in the target's group reads until `expect` records came, commits, and leaves.
fn consume(config: &ClientConfig, t: &Target, expect: usize) -> anyhow::Result<Vec<Seen>> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", &t.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&t.topic])?;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < expect && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m?;
            seen.push(Seen {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().unwrap_or_default().to_vec(),
            });
        }
    }
    // librdkafka refuses to commit when nothing was consumed; the harness then reports the missing records.
    if !seen.is_empty() {
        consumer.commit_consumer_state(CommitMode::Sync)?;
    }
    consumer.unsubscribe();
    Ok(seen)
}
