//! kaas-bench: what does kaas-proxy cost in front of a tenant? The same workload, interleaved, against the broker
//! directly, through kaas-proxy (TLS termination, Kafka-aware) and through nginx `stream` TLS termination (the
//! non-Kafka-aware baseline), on Tansu, Apache Kafka or a synthetic broker that is never the bottleneck. On
//! Apache Kafka also through kaas-proxy carrying each client's identity: client certificates to the proxy, and
//! mutual TLS to the brokers with a certificate minted for the client's subject.

mod client;
mod consume;
mod e2e;
mod report;
mod synthetic;
mod targets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, Subcommand, ValueEnum};
use client::{Endpoint, Workload};
use report::Row;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Load tests through kaas-proxy, side by side with direct access and nginx TLS termination"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the synthetic broker alone (used by the harness as its own process).
    SyntheticBroker {
        #[arg(long)]
        port: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Upstream {
    /// A synthetic broker that acknowledges at once: measures the proxy's own ceiling.
    Synthetic,
    /// A real Tansu broker (in-memory storage).
    Tansu,
    /// A real single-node Apache Kafka 4.4 (KRaft), from the jars scripts/install-prereqs.sh caches.
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Throughput,
    Latency,
    IdleConnections,
    Handshakes,
    MetadataStorm,
    /// Produce → consume latency (a real broker only: the synthetic broker stores nothing).
    EndToEnd,
    /// Consumers reading a pre-filled topic with Fetch v16+ (a real broker only).
    Consume,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenarios to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Upstream broker(s) to run against.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "synthetic")]
    upstream: Vec<Upstream>,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 8)]
    duration_seconds: u64,
    /// Rounds: each round runs every target once, interleaved.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Producer connections in the throughput scenario.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Record size in the throughput scenario, bytes.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per Produce request in the throughput scenario.
    #[arg(long, default_value_t = 64)]
    batch_records: usize,
    /// Requests in flight per connection in the throughput scenario.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Spread the throughput scenario's connections over this many tenants (proxy names bench0, bench1, …, and
    /// bench-mtls0, … for the mutual-TLS target).
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Target rate for the throughput scenario in MB/s, all connections together; default: flat out.
    #[arg(long)]
    rate_mbps: Option<f64>,
    /// Clients bootstrapping (connect, ApiVersions, Metadata) in the metadata-storm scenario.
    #[arg(long, default_value_t = 500)]
    storm_clients: usize,
    /// acks for the throughput scenario (0, 1 or -1).
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    acks: i16,
    /// Idle TLS connections to open in the idle-connections scenario (10000 needs `ulimit -n 65536`).
    #[arg(long, default_value_t = 1000)]
    idle_connections: usize,
    /// MB written into each partition of the consume scenario's topic before it runs.
    #[arg(long, default_value_t = 32)]
    consume_fill_mb: usize,
    /// The kaas-proxy binary (build it with `cargo build --release -p kaas-proxy`).
    #[arg(long, default_value = "target/release/kaas-proxy")]
    proxy_bin: PathBuf,
    /// Where results go (a timestamped folder is made inside).
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.command {
        Some(Cmd::SyntheticBroker { port }) => rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            synthetic::serve(listener).await
        }),
        None => rt.block_on(run(args.run)),
    }
}

fn row(scenario: &str, target: &str, upstream: &str, round: usize) -> Row {
    Row {
        scenario: scenario.into(),
        target: target.into(),
        upstream: upstream.into(),
        round,
        mb_per_s: None,
        records_per_s: None,
        requests: None,
        errors: 0,
        p50_us: None,
        p99_us: None,
        p999_us: None,
        value: None,
        value_unit: None,
        cpu_seconds: None,
        cpu_s_per_gb: None,
        peak_rss_mib: None,
    }
}

/// The target process's CPU per GB moved and peak memory, from its usage `before` the run and now.
fn record_cost(r: &mut Row, before: Option<targets::Usage>, pid: Option<u32>, bytes: u64) {
    if let (Some(b), Some(pid)) = (before, pid) {
        let after = targets::usage(pid);
        let cpu = after.cpu_seconds - b.cpu_seconds;
        r.cpu_seconds = Some(cpu);
        r.cpu_s_per_gb = (bytes > 0).then(|| cpu / (bytes as f64 / 1e9));
        r.peak_rss_mib = Some(after.peak_rss_kib as f64 / 1024.0);
    }
}

struct Target {
    name: &'static str,
    endpoint: Endpoint,
    pid: Option<u32>,
    tls: bool,
    /// The client certificate (cert PEM, key PEM) this target demands, so that scenarios building their own TLS
    /// configuration (handshakes) present it too.
    client_cert: Option<(PathBuf, PathBuf)>,
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let scenarios = if a.scenarios.is_empty() {
        vec![
            Scenario::Throughput,
            Scenario::Latency,
            Scenario::IdleConnections,
            Scenario::Handshakes,
            Scenario::MetadataStorm,
            Scenario::EndToEnd,
            Scenario::Consume,
        ]
    } else {
        a.scenarios.clone()
    };
    anyhow::ensure!(
        a.proxy_bin.exists(),
        "{} not found: run cargo build --release -p kaas-proxy",
        a.proxy_bin.display()
    );
    let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    let dir = a.out.join(stamp.to_string());
    std::fs::create_dir_all(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let (ca, cert, key) = targets::certs(&dir)?;
    let duration = Duration::from_secs(a.duration_seconds);
    let mut rows = Vec::new();
    let started = Instant::now();

    for upstream in &a.upstream {
        let up_name = match upstream {
            Upstream::Synthetic => "synthetic",
            Upstream::Tansu => "tansu",
            Upstream::Kafka => "kafka",
        };
        let (up_port, broker) = match upstream {
            Upstream::Synthetic => {
                let port = targets::free_port()?;
                (port, targets::Broker::Process(targets::start_synthetic(&dir, port)?))
            }
            Upstream::Tansu => {
                let port = targets::free_port()?;
                (port, targets::Broker::Process(targets::start_tansu(&dir, port)?))
            }
            Upstream::Kafka => targets::start_kafka()?,
        };
        let stores = *upstream != Upstream::Synthetic;
        // Only Apache Kafka has a mutual-TLS listener: the identity-carrying target exists for it alone.
        let mtls = broker.mutual_tls("bench")?;
        let (proxy_port, nginx_port) = (targets::free_port()?, targets::free_port()?);
        let proxy = targets::start_proxy(
            &a.proxy_bin,
            &dir,
            proxy_port,
            up_port,
            a.tenants,
            (&cert, &key),
            mtls.as_ref(),
        )?;
        let nginx = targets::start_nginx(&dir, nginx_port, up_port, &cert, &key)?;
        let sni = "bench.kaas.localhost".to_string();
        let local = |p: u16| -> SocketAddr { ([127, 0, 0, 1], p).into() };
        let tls_fresh = client::tls_config(&ca, None, false)?;
        let mut all = vec![
            Target {
                name: "direct",
                endpoint: Endpoint::Plain(local(up_port)),
                pid: None,
                tls: false,
                client_cert: None,
            },
            Target {
                name: "kaas-proxy",
                endpoint: Endpoint::Tls { addr: local(proxy_port), sni: sni.clone(), tls: tls_fresh.clone() },
                pid: Some(proxy.child.id()),
                tls: true,
                client_cert: None,
            },
            Target {
                name: "nginx",
                endpoint: Endpoint::Tls { addr: local(nginx_port), sni: sni.clone(), tls: tls_fresh.clone() },
                pid: Some(nginx.child.id()),
                tls: true,
                client_cert: None,
            },
        ];
        if let Some(m) = &mtls {
            all.push(Target {
                name: "kaas-proxy-mtls",
                endpoint: Endpoint::Tls {
                    addr: local(proxy_port),
                    sni: format!("{}.kaas.localhost", targets::MTLS_TENANT),
                    tls: client::tls_config(&ca, Some(&m.client_cert), false)?,
                },
                // The same proxy process as `kaas-proxy`: CPU is counted per run, peak RSS is the process's.
                pid: Some(proxy.child.id()),
                tls: true,
                client_cert: Some(m.client_cert.clone()),
            });
        }
        if stores {
            client::create_topic(local(up_port), "bench", a.connections.max(1) as i32).await?;
            client::create_topic(local(up_port), "bench-e2e", 1).await?;
            if scenarios.contains(&Scenario::Consume) {
                client::create_topic(local(up_port), "bench-consume", a.connections.max(1) as i32).await?;
                consume::fill(&all[0].endpoint, "bench-consume", a.connections.max(1), a.consume_fill_mb)
                    .await?;
            }
        }

        for scenario in &scenarios {
            if *scenario == Scenario::Consume && stores {
                // Filled just before it is read: brokers with small test retention drop old segments.
                client::create_topic(local(up_port), "bench-consume", a.connections.max(1) as i32).await?;
                consume::fill(&all[0].endpoint, "bench-consume", a.connections.max(1), a.consume_fill_mb)
                    .await?;
            }
            for round in 0..a.rounds {
                for t in &all {
                    let name = format!("{scenario:?}").to_lowercase();
                    eprint!(
                        "[{:>5.1}s] {up_name:<9} {name:<16} {:<10} round {round} … ",
                        started.elapsed().as_secs_f64(),
                        t.name
                    );
                    let before = t.pid.map(targets::usage);
                    let r = match scenario {
                        Scenario::Throughput | Scenario::Latency => {
                            let w = if *scenario == Scenario::Throughput {
                                Workload {
                                    connections: a.connections,
                                    record_bytes: a.record_bytes,
                                    batch_records: a.batch_records,
                                    inflight: a.inflight,
                                    acks: a.acks,
                                    duration,
                                    topic: "bench".into(),
                                    partitions: a.connections,
                                    tenants: a.tenants,
                                    rate_mbps: a.rate_mbps,
                                }
                            } else {
                                Workload::one_at_a_time("bench", 100, 1, duration)
                            };
                            let o = client::run(&t.endpoint, &w).await?;
                            let secs = o.elapsed.as_secs_f64().max(1e-9);
                            let mut r = row(
                                if *scenario == Scenario::Throughput { "throughput" } else { "latency" },
                                t.name,
                                up_name,
                                round,
                            );
                            r.mb_per_s = Some(o.bytes as f64 / 1e6 / secs);
                            r.records_per_s = Some(o.records as f64 / secs);
                            r.requests = Some(o.requests);
                            r.errors = o.errors;
                            if !o.latency_us.is_empty() {
                                r.p50_us = Some(o.latency_us.value_at_quantile(0.5));
                                r.p99_us = Some(o.latency_us.value_at_quantile(0.99));
                                r.p999_us = Some(o.latency_us.value_at_quantile(0.999));
                            }
                            record_cost(&mut r, before, t.pid, o.bytes);
                            r
                        }
                        Scenario::IdleConnections if t.tls => {
                            let Some(pid) = t.pid else { continue };
                            let before = targets::usage(pid).rss_kib;
                            let conns = client::open_idle(&t.endpoint, a.idle_connections).await?;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            let after = targets::usage(pid);
                            drop(conns);
                            let mut r = row("idle-connections", t.name, up_name, round);
                            r.value =
                                Some(after.rss_kib.saturating_sub(before) as f64 / a.idle_connections as f64);
                            r.value_unit = Some(format!("KiB/conn at {}", a.idle_connections));
                            r.peak_rss_mib = Some(after.peak_rss_kib as f64 / 1024.0);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            r
                        }
                        Scenario::Handshakes if t.tls => {
                            let Some(pid) = t.pid else { continue };
                            let mut last = row("handshakes", t.name, up_name, round);
                            for (label, resume) in [("handshakes-full", false), ("handshakes-resumed", true)]
                            {
                                let Endpoint::Tls { addr, sni, .. } = &t.endpoint else { continue };
                                let ep = Endpoint::Tls {
                                    addr: *addr,
                                    sni: sni.clone(),
                                    tls: client::tls_config(&ca, t.client_cert.as_ref(), resume)?,
                                };
                                let b = targets::usage(pid);
                                let rate = client::handshakes(&ep, duration / 2, 8).await?;
                                let mut r = row(label, t.name, up_name, round);
                                r.value = Some(rate);
                                r.value_unit = Some("handshakes/s".into());
                                r.cpu_seconds = Some(targets::usage(pid).cpu_seconds - b.cpu_seconds);
                                if !resume {
                                    rows.push(r);
                                } else {
                                    last = r;
                                }
                            }
                            last
                        }
                        Scenario::MetadataStorm => {
                            let b = t.pid.map(targets::usage);
                            let (rate, h) =
                                client::metadata_storm(&t.endpoint, a.storm_clients, 50, "bench").await?;
                            let mut r = row("metadata-storm", t.name, up_name, round);
                            r.value = Some(rate);
                            r.value_unit = Some(format!("bootstraps/s of {}", a.storm_clients));
                            r.p50_us = Some(h.value_at_quantile(0.5));
                            r.p99_us = Some(h.value_at_quantile(0.99));
                            r.p999_us = Some(h.value_at_quantile(0.999));
                            if let (Some(b), Some(pid)) = (b, t.pid) {
                                r.cpu_seconds = Some(targets::usage(pid).cpu_seconds - b.cpu_seconds);
                            }
                            r
                        }
                        Scenario::Consume if stores => {
                            let o =
                                consume::run(&t.endpoint, "bench-consume", a.connections.max(1), duration)
                                    .await?;
                            let mut r = row("consume", t.name, up_name, round);
                            r.mb_per_s = Some(o.bytes as f64 / 1e6 / o.elapsed.as_secs_f64().max(1e-9));
                            r.requests = Some(o.fetches);
                            r.errors = o.errors;
                            if let Some(code) = o.first_error {
                                eprint!("(first error code {code}) ");
                            }
                            record_cost(&mut r, before, t.pid, o.bytes);
                            r
                        }
                        Scenario::EndToEnd if stores => {
                            let h = e2e::run(&t.endpoint, "bench-e2e", 200, duration).await?;
                            let mut r = row("end-to-end", t.name, up_name, round);
                            r.p50_us = Some(h.value_at_quantile(0.5) * 1000);
                            r.p99_us = Some(h.value_at_quantile(0.99) * 1000);
                            r.p999_us = Some(h.value_at_quantile(0.999) * 1000);
                            r.value = Some(h.len() as f64);
                            r.value_unit = Some("records timed (ms resolution)".into());
                            r
                        }
                        Scenario::EndToEnd | Scenario::Consume => {
                            eprintln!("skipped (the synthetic broker stores nothing; use --upstream tansu or kafka)");
                            continue;
                        }
                        _ => {
                            eprintln!("skipped (no TLS)");
                            continue;
                        }
                    };
                    if r.value.is_some() {
                        eprintln!(
                            "{:.1} {}",
                            r.value.unwrap_or(0.0),
                            r.value_unit.clone().unwrap_or_default()
                        );
                    } else {
                        eprintln!(
                            "{:.1} MB/s, p99 {} µs, errors {}",
                            r.mb_per_s.unwrap_or(0.0),
                            r.p99_us.map_or("–".into(), |v| v.to_string()),
                            r.errors
                        );
                    }
                    rows.push(r);
                }
            }
        }
    }
    let command = format!(
        "cargo run --release -p kaas-bench -- {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&rows)?)?;
    let md = report::markdown(&rows, command.trim());
    std::fs::write(dir.join("summary.md"), &md)?;
    std::fs::write(dir.join("chart.svg"), report::svg(&rows))?;
    println!("{md}");
    println!("Results: {}", dir.display());
    Ok(())
}
