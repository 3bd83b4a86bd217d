//! The arrangement every hostile case runs in: one proxy with two tenants. `steady` is a real Tansu broker with
//! a librdkafka producer writing through the proxy the whole time (a new producer, so new connections and
//! handshakes, every round); `target` is what the case attacks, backed by the same Tansu broker or by a
//! [`Script`]ed broker for the broker-side cases. [`Arena::finish`] proves the attack cost nobody else anything:
//! the steady producer saw no error, every record was acknowledged, the proxy's memory did not grow past a
//! bound, and the proxy still serves `target`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kaas_e2e::certs::Certs;
use kaas_e2e::proxy::{wait_for_log, ProxyHandle};
use kaas_e2e::raw;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::DOMAIN;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinHandle;

use super::script::{Script, ScriptedBroker};
use crate::common::{client_config, create_topic, Errors};

/// How long a log line or a counter may take to appear after the client saw the refusal.
pub const SOON: Duration = Duration::from_secs(5);

/// Limits small enough for a test to reach: short hello, handshake and idle timeouts, a 1 MiB frame limit.
pub const SETTINGS: &str =
    "hello_timeout_seconds: 1\nhandshake_timeout_seconds: 1\nidle_timeout_seconds: 2\nmax_frame_bytes: 1048576\n";

/// What backs tenant `target`.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The steady tenant's real Tansu broker.
    Tansu,
    /// A broker that answers as the script says.
    Scripted(Script),
}

/// A running arrangement (see the module docs).
#[derive(Debug)]
pub struct Arena {
    pub certs: Certs,
    pub proxy: ProxyHandle,
    /// The scripted broker, for [`Target::Scripted`].
    pub broker: Option<ScriptedBroker>,
    steady: Steady,
    rss_before_kib: u64,
    _tansu: Tansu,
    _dir: tempfile::TempDir,
}

impl Arena {
    /// Starts it with the suite's [`SETTINGS`].
    pub async fn start(target: Target) -> Arena {
        Arena::start_with(target, SETTINGS).await
    }

    /// Starts it with `settings` (top-level YAML lines) instead of [`SETTINGS`].
    pub async fn start_with(target: Target, settings: &str) -> Arena {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = Certs::generate(dir.path(), DOMAIN, &["target", "steady"]).expect("certs");
        let tansu = Tansu::start("hostile-suite").expect("tansu");
        let broker = match target {
            Target::Tansu => None,
            Target::Scripted(script) => Some(ScriptedBroker::start(script).await),
        };
        let target_addr = broker.as_ref().map_or_else(|| tansu.addr(), ScriptedBroker::addr);
        let proxy = ProxyHandle::start_with_config(
            &certs,
            settings,
            &format!(
                "  - name: target\n    bootstrap: [\"{target_addr}\"]\n    upstream: {{ plaintext: true }}\n  - name: steady\n    bootstrap: [\"{}\"]\n    upstream: {{ plaintext: true }}\n",
                tansu.addr()
            ),
        )
        .expect("proxy");
        let config = client_config(&proxy.bootstrap("steady"), &certs.ca);
        create_topic(&config, "steady", 1).await.expect("create the steady topic");
        let steady = Steady::start(config);
        steady.wait_for_rounds(1).await;
        Arena { certs, proxy, broker, steady, rss_before_kib: resident_kib(), _tansu: tansu, _dir: dir }
    }

    /// `target.kaas.localhost`.
    pub fn sni(&self) -> String {
        format!("target.{DOMAIN}")
    }

    /// A TLS connection to `target`, handshake done.
    pub async fn connect(&self) -> raw::Tls {
        raw::connect(self.proxy.port, Some(&self.sni()), &self.certs.ca).await.expect("TLS to target")
    }

    /// Asserts the proxy logged `needle` (soon).
    pub fn expect_log(&self, needle: &str) {
        assert!(wait_for_log(needle, SOON), "no log line with {needle:?}");
    }

    /// The value of a metric sample (name and labels as exposed).
    pub fn metric(&self, series: &str) -> f64 {
        self.proxy.metric(series).expect("scrape /metrics")
    }

    /// Asserts `series` reaches `want` (soon): refusals are counted just after the client sees them.
    pub fn expect_metric(&self, series: &str, want: f64) {
        let got = self.proxy.wait_for_metric(series, want, SOON).expect("scrape /metrics");
        assert_eq!(got, want, "{series}");
    }

    /// Ends the case: the steady producer did at least one more round after it and never failed, the proxy's
    /// resident memory grew by less than `max_growth_mib` over the case, and `target` still answers when its
    /// broker is the real one.
    pub async fn finish(self, max_growth_mib: u64) {
        let grown_mib = resident_kib().saturating_sub(self.rss_before_kib) / 1024;
        assert!(grown_mib < max_growth_mib, "memory grew {grown_mib} MiB during the case");
        if self.broker.is_none() {
            let mut conn = self.connect().await;
            let request = kafka_protocol::messages::MetadataRequest::default();
            raw::call(&mut conn, 1, 12, &request).await.expect("target still served after the case");
        }
        let rounds = self.steady.finish().await;
        assert!(rounds >= 2, "the steady producer ran {rounds} rounds");
    }
}

/// The steady tenant's producer: rounds of [`ROUND`] records acks=all, each from a new producer, until stopped.
#[derive(Debug)]
struct Steady {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    task: JoinHandle<Result<usize, String>>,
}

/// Records per steady round.
const ROUND: usize = 20;

impl Steady {
    fn start(config: ClientConfig) -> Steady {
        let (stop, rounds) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (s, r) = (stop.clone(), rounds.clone());
        let task = tokio::spawn(async move {
            // Stop is checked before a round, so the round after the case's last step always runs.
            while !s.load(Ordering::SeqCst) {
                round(&config, r.load(Ordering::SeqCst)).await?;
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            round(&config, r.load(Ordering::SeqCst)).await?;
            Ok(r.fetch_add(1, Ordering::SeqCst) + 1)
        });
        Steady { stop, rounds, task }
    }

    async fn wait_for_rounds(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.rounds.load(Ordering::SeqCst) < n {
            assert!(tokio::time::Instant::now() < deadline, "the steady producer made no progress");
            assert!(!self.task.is_finished(), "the steady producer stopped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        match self.task.await.expect("steady task") {
            Ok(rounds) => rounds,
            Err(e) => panic!("the steady tenant saw an error: {e}"),
        }
    }
}

/// One round: a new producer, [`ROUND`] records, every one acknowledged, and no error reported by the client.
async fn round(config: &ClientConfig, n: usize) -> Result<(), String> {
    let errors = Errors::default();
    let producer: FutureProducer<Errors> = config
        .clone()
        .set("acks", "all")
        .set("message.timeout.ms", "15000")
        .create_with_context(errors.clone())
        .map_err(|e| format!("producer: {e}"))?;
    let mut pending = Vec::with_capacity(ROUND);
    for i in 0..ROUND {
        let value = format!("steady/{n}/{i}");
        let record = FutureRecord::<(), _>::to("steady").payload(&value);
        pending.push(producer.send_result(record).map_err(|(e, _)| format!("enqueue: {e}"))?);
    }
    for (i, delivery) in pending.into_iter().enumerate() {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(format!("round {n} record {i}: {e}")),
            Err(_) => return Err(format!("round {n} record {i}: delivery dropped")),
        }
    }
    drop(producer);
    let errors = errors.0.lock().unwrap_or_else(|p| p.into_inner());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("round {n}: client errors {errors:?}"))
    }
}

/// This process's resident memory, KiB (the proxy runs in it).
pub fn resident_kib() -> u64 {
    kaas_e2e::soak::process_stats(std::process::id()).expect("/proc/self").0
}
