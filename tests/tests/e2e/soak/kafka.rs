//! Soak: a steady mixed load through the real `kaas-proxy` binary to a 3-broker Apache Kafka cluster for
//! `SOAK_MINUTES` (2 in the test command; `scripts/soak.sh MINUTES` runs it long). The load: an idempotent
//! producer (acks=all, ~460 records/s on 2 cores), a consumer group of two with a third member joining for
//! 20 s every minute (rebalances), a probe timing single produce round trips, a new client connecting every 2 s
//! (reconnect churn), and a tenant reload (SIGHUP, a second tenant added or removed) every minute. Every 10 s
//! the proxy process is sampled (resident memory, open descriptors, threads, connections) into
//! `soak.csv`, charted in `soak.svg`, summarised in `summary.txt`, beside the proxy's log (in `SOAK_OUT`, default `target/soak`).
//!
//! It fails on any client error, any acknowledged record missing from the topic (read back in full through
//! the proxy at the end), a reload not applied, descriptors left open after the clients are gone, or the proxy
//! exiting.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::producing::{Plan, Producing};
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Listener};
use kaas_e2e::soak::{self, ProxyProcess, Sample};
use kaas_e2e::DOMAIN;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

const INTERVAL: Duration = Duration::from_secs(10);
const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// What every load thread shares: stop flag, error count and log, records seen.
#[derive(Default)]
struct Shared {
    started: Mutex<Option<Instant>>,
    stop: AtomicBool,
    errors: AtomicU64,
    error_log: Mutex<Vec<String>>,
    seen: Mutex<BTreeSet<usize>>,
    duplicates: AtomicU64,
    probe_ms: Mutex<Vec<f64>>,
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::SeqCst);
        let mut log = self.error_log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() < 20 {
            let at =
                self.started.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.elapsed().as_secs_f64());
            log.push(format!("at {:.1} s: {what}", at.unwrap_or(0.0)));
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn tenants_yaml(cluster: &KafkaCluster, with_churn: bool) -> String {
    let bootstrap =
        cluster.addrs(Listener::Plain).iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    let mut yaml = format!("- name: soak\n  bootstrap: [{bootstrap}]\n  upstream: {{ plaintext: true }}\n");
    if with_churn {
        yaml.push_str(&format!(
            "- name: churn\n  bootstrap: [{bootstrap}]\n  upstream: {{ plaintext: true }}\n"
        ));
    }
    yaml
}

/// A member of group `soak-g` until `until` says stop, recording every record's index.
fn consumer(
    config: ClientConfig,
    shared: Arc<Shared>,
    until: impl Fn() -> bool + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let consumer: BaseConsumer = match config
            .clone()
            .set("group.id", "soak-g")
            .set("auto.offset.reset", "earliest")
            .set("auto.commit.interval.ms", "1000")
            .create()
        {
            Ok(c) => c,
            Err(e) => return shared.error(format!("consumer: {e}")),
        };
        if let Err(e) = consumer.subscribe(&["soak"]) {
            return shared.error(format!("subscribe: {e}"));
        }
        while !until() {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let index = m.payload().and_then(index_of);
                    match index {
                        Some(i) => {
                            if !shared.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(i) {
                                // Redelivery after a rebalance (at-least-once): counted, not an error.
                                shared.duplicates.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        None => shared.error(format!("unexpected record at offset {}", m.offset())),
                    }
                }
                Some(Err(e)) => shared.error(format!("consume: {e}")),
                None => {}
            }
        }
        consumer.unsubscribe();
    })
}

/// Every record index in `soak`'s `partitions`, read from the beginning by assignment (no group) through the
/// proxy until each partition reports its end.
fn log_indices(config: &ClientConfig, partitions: i32, within: Duration) -> anyhow::Result<BTreeSet<usize>> {
    let mut indices = BTreeSet::new();
    common::read_to_end(config, "soak", partitions, "read_uncommitted", 0, within, |m| {
        let index = m.payload().and_then(index_of).ok_or_else(|| anyhow::anyhow!("unexpected record"))?;
        indices.insert(index);
        Ok(())
    })?;
    Ok(indices)
}

/// The index of a record of `common::value`: `soak/<index>/`, then binary filler.
fn index_of(value: &[u8]) -> Option<usize> {
    std::str::from_utf8(value.split(|b| *b == b'/').nth(1)?).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_through_the_proxy_process_stays_flat() {
    // librdkafka's own log lines into the test's output, for a failing run.
    kaas_e2e::proxy::init();
    let minutes: f64 = std::env::var("SOAK_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(2.0);
    let out = std::env::var_os("SOAK_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| kaas_e2e::repo_root().join("target/soak"));
    std::fs::create_dir_all(&out).expect("output folder");
    let cluster = KafkaCluster::start(ClusterOptions::named("soak")).expect("kafka");
    cluster.create_topic("soak", 6).expect("topic soak");
    cluster.create_topic("probe", 1).expect("topic probe");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["soak", "churn"]).expect("certs");
    let mut proxy =
        ProxyProcess::start(&certs, dir.path(), &tenants_yaml(&cluster, false)).expect("kaas-proxy");
    let (_, baseline_fds, _) = soak::process_stats(proxy.pid()).expect("proxy stats");
    let baseline_tasks = proxy.metric("kaas_proxy_runtime_tasks").expect("metrics");
    let config = common::client_config(&format!("soak.{DOMAIN}:{}", proxy.port), &certs.ca);
    let shared = Arc::new(Shared::default());

    let plan =
        Plan { topic: "soak", run: "soak", batch: 10, pause: Duration::from_millis(20), recovery: INTERVAL };
    let producing = Producing::start(&config, plan).expect("producer");
    let members: Vec<_> = (0..2)
        .map(|_| {
            consumer(config.clone(), shared.clone(), {
                let s = shared.clone();
                move || s.stopped()
            })
        })
        .collect();
    let probe = {
        let (config, shared) = (config.clone(), shared.clone());
        tokio::spawn(async move {
            let producer: FutureProducer =
                config.clone().set("acks", "all").create().expect("probe producer");
            while !shared.stopped() {
                let started = Instant::now();
                let record = FutureRecord::to("probe").key("probe").payload("ping");
                match producer.send(record, Duration::from_secs(30)).await {
                    Ok(_) => shared
                        .probe_ms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(started.elapsed().as_secs_f64() * 1e3),
                    Err((e, _)) => shared.error(format!("probe: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let churn = {
        let (config, shared) = (config.clone(), shared.clone());
        std::thread::spawn(move || {
            let mut connects = 0u64;
            while !shared.stopped() {
                match config.create::<BaseConsumer>() {
                    Ok(c) => match c.fetch_metadata(Some("soak"), Duration::from_secs(15)) {
                        Ok(m) if m.brokers().len() == 3 => connects += 1,
                        Ok(m) => shared.error(format!("churn: {} brokers in metadata", m.brokers().len())),
                        Err(e) => shared.error(format!("churn metadata: {e}")),
                    },
                    Err(e) => shared.error(format!("churn client: {e}")),
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            connects
        })
    };

    let started = Instant::now();
    *shared.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
    let end = started + Duration::from_secs_f64(minutes * 60.0);
    let mut samples: Vec<Sample> = Vec::new();
    let mut csv = format!("{}\n", soak::CSV_HEADER);
    let (mut reloads, mut with_churn, mut next_reload) = (0u32, false, started + RELOAD_EVERY);
    let mut rebalancer: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)> = None;
    let mut next_rebalance = started + RELOAD_EVERY / 2;
    while Instant::now() < end {
        tokio::time::sleep(INTERVAL).await;
        assert!(proxy.running(), "kaas-proxy exited; its log:\n{}", proxy.log());
        let now = Instant::now();
        if now >= next_reload {
            with_churn = !with_churn;
            proxy.reload(&tenants_yaml(&cluster, with_churn)).expect("reload");
            reloads += 1;
            next_reload += RELOAD_EVERY;
        }
        if now >= next_rebalance {
            // A third member joins for 20 s, then leaves: two rebalances a minute.
            match rebalancer.take() {
                Some((member, leave)) => {
                    leave.store(true, Ordering::SeqCst);
                    member.join().expect("third member");
                    next_rebalance += RELOAD_EVERY - Duration::from_secs(20);
                }
                None => {
                    let leave = Arc::new(AtomicBool::new(false));
                    let (l, s) = (leave.clone(), shared.clone());
                    rebalancer = Some((
                        consumer(config.clone(), shared.clone(), move || {
                            l.load(Ordering::SeqCst) || s.stopped()
                        }),
                        leave,
                    ));
                    next_rebalance += Duration::from_secs(20);
                }
            }
        }
        let (rss_kib, open_fds, threads) = soak::process_stats(proxy.pid()).expect("proxy stats");
        let mut window = std::mem::take(&mut *shared.probe_ms.lock().unwrap_or_else(|p| p.into_inner()));
        window.sort_by(f64::total_cmp);
        let sample = Sample {
            elapsed_seconds: started.elapsed().as_secs_f64(),
            rss_kib,
            open_fds,
            threads,
            connections: proxy.metric("kaas_proxy_listener_connections_open").unwrap_or(-1.0),
            tasks: proxy.metric("kaas_proxy_runtime_tasks").unwrap_or(-1.0),
            produce_p50_ms: window.get(window.len() / 2).copied().unwrap_or(0.0),
            produce_max_ms: window.last().copied().unwrap_or(0.0),
            acked: producing.acked() as u64,
            consumed: shared.seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64,
            errors: shared.errors.load(Ordering::SeqCst),
        };
        eprintln!("soak {}", soak::csv_row(&sample));
        csv.push_str(&soak::csv_row(&sample));
        csv.push('\n');
        std::fs::write(out.join("soak.csv"), &csv).expect("write soak.csv");
        samples.push(sample);
    }

    // Wind down: the producer reports every record acknowledged once; the group reads them all.
    shared.stop.store(true, Ordering::SeqCst);
    let connects = churn.join().expect("churn thread");
    probe.await.expect("probe");
    if let Some((member, leave)) = rebalancer.take() {
        leave.store(true, Ordering::SeqCst);
        member.join().expect("third member");
    }
    let sent = tokio::task::spawn_blocking(move || producing.finish()).await.expect("producer");
    for member in members {
        member.join().expect("group member");
    }
    // What the group had read when it stopped (it stops mid-stream by design), and what the log holds: every
    // acknowledged record must be in it.
    let unread_by_group = {
        let seen = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
        (0..sent).filter(|i| !seen.contains(i)).count()
    };
    let in_log = tokio::task::spawn_blocking({
        let config = config.clone();
        move || log_indices(&config, 6, Duration::from_secs(300))
    })
    .await
    .expect("log reader")
    .expect("read the topic through the proxy");
    let lost = (0..sent).filter(|i| !in_log.contains(i)).count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_end, fds_end, _) = soak::process_stats(proxy.pid()).expect("proxy stats");
    let tasks_end = proxy.metric("kaas_proxy_runtime_tasks").expect("metrics");
    let applied = proxy.metric("kaas_proxy_routes_reloads_total{outcome=\"applied\"}").expect("metrics");

    let slope_after = if minutes >= 4.0 { 60.0 } else { 30.0 };
    let slope = soak::rss_slope_kib_per_minute(&samples, slope_after);
    let max_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let summary = format!(
        "minutes {minutes}\nsamples {}\nrecords acknowledged {sent}\nrecords lost {lost}\nunread by the group when it stopped {unread_by_group}\n\
         redelivered after rebalances {}\n\
         client errors {}\nreloads {reloads} (applied {applied})\nreconnect-churn clients {connects}\n\
         rss first {} KiB, max {max_rss} KiB, end {rss_end} KiB\nrss slope after {slope_after} s: {} KiB/min\n\
         open fds baseline {baseline_fds}, max {}, after the clients left {fds_end}\n\
         runtime tasks baseline {baseline_tasks}, max {}, after the clients left {tasks_end}\n",
        samples.len(),
        shared.duplicates.load(Ordering::SeqCst),
        shared.errors.load(Ordering::SeqCst),
        samples.first().map_or(0, |s| s.rss_kib),
        slope.map_or("n/a".to_owned(), |s| format!("{s:.1}")),
        samples.iter().map(|s| s.open_fds).max().unwrap_or(0),
        samples.iter().map(|s| s.tasks).fold(0.0, f64::max),
    );
    eprint!("{summary}");
    std::fs::write(out.join("summary.txt"), &summary).expect("write summary.txt");
    let title = format!("kaas-proxy soak: {minutes} min, {sent} records, {reloads} reloads");
    std::fs::write(out.join("soak.svg"), soak::svg(&samples, &title)).expect("write soak.svg");

    std::fs::write(out.join("kaas-proxy.log"), proxy.log()).expect("write kaas-proxy.log");
    let errors = shared.error_log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(errors.is_empty(), "client errors: {errors:?}");
    assert_eq!(lost, 0, "acknowledged records missing from the log");
    assert_eq!(applied, f64::from(reloads), "every reload applied");
    assert!(connects > 0 && sent > 0, "the load ran");
    // Every connection's two sockets are gone with its client (the admin socket of the last scrape may linger).
    assert!(fds_end <= baseline_fds + 2, "descriptors left open: {fds_end} against {baseline_fds} at start");
    // Every session's tasks end with it (the scrape's own connection may still be open).
    assert!(tasks_end <= baseline_tasks + 2.0, "tasks left: {tasks_end} against {baseline_tasks} at start");
    assert!(proxy.running(), "kaas-proxy exited");
}
