//! Where records go, the usage records ([`crate::usage`]) and the audit trail ([`crate::audit`]) alike: a file of
//! JSON lines, rotated by size (`usage.jsonl`, then `usage.jsonl.1` … `usage.jsonl.<keep>`), written by a thread
//! of its own so that a slow or failing disk never holds up a session. Lines reach it through a bounded queue
//! ([`Sink::send`] counts what does not fit); a write that fails is retried, the same batch, every second, until
//! it succeeds or the proxy stops ([`Sink::finish`] waits a while for what is queued).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

/// Records a write takes at most (so one batch stays small).
const BATCH: usize = 4096;
/// Time between attempts while the file cannot be written.
const RETRY: Duration = Duration::from_secs(1);

/// An append-only file of lines, rotated by size. Opened for each write (once a window): a file moved away or
/// deleted (by an operator, by a log shipper) is simply made anew, never written to where no one reads it.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

/// A sink's series, `kaas_proxy_<name>_*` ([`Sink::register`]).
#[derive(Debug, Clone, Default)]
pub struct SinkCounters {
    /// Lines written.
    pub written: Counter,
    /// Failed attempts to write a batch.
    pub errors: Counter,
    /// Lines waiting in the queue (the sender adds, the writer takes away).
    pub queued: Gauge,
    /// Lines dropped because the queue was full.
    pub dropped: Counter,
}

/// A file sink behind a bounded queue, written by a thread of its own.
#[derive(Debug)]
pub struct Sink {
    queue: Mutex<Option<mpsc::Sender<String>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    counters: SinkCounters,
    /// What the lines are, for logs: "usage records", "audit events".
    what: &'static str,
}

impl Sink {
    /// Starts the writer of `file`, behind a queue of `capacity` lines.
    pub fn start(file: FileSink, capacity: usize, what: &'static str) -> std::io::Result<Sink> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = SinkCounters::default();
        let writer = spawn(file, rx, counters.clone())?;
        Ok(Sink { queue: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)), counters, what })
    }

    /// Registers `kaas_proxy_<name>_records_written_total` and the rest.
    pub fn register(&self, registry: &mut Registry, name: &str) {
        let c = &self.counters;
        let what = self.what;
        registry.register(format!("{name}_records_written"), format!("{what} written"), c.written.clone());
        registry.register(
            format!("{name}_records_dropped"),
            format!("{what} dropped because the queue to the file was full"),
            c.dropped.clone(),
        );
        registry.register(
            format!("{name}_sink_errors"),
            format!("Attempts to write {what} that failed (each is retried)"),
            c.errors.clone(),
        );
        registry.register(
            format!("{name}_queued_records"),
            format!("{what} waiting for the file"),
            c.queued.clone(),
        );
    }

    /// Queues `lines`; those that do not fit are dropped, counted and logged. After [`Sink::finish`], nothing is
    /// queued.
    pub fn send(&self, lines: impl IntoIterator<Item = String>) {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = queue.as_ref() else { return };
        let mut dropped = 0u64;
        for line in lines {
            self.counters.queued.inc();
            if tx.try_send(line).is_err() {
                self.counters.queued.dec();
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.counters.dropped.inc_by(dropped);
            tracing::warn!(dropped, "{} dropped: the queue to the file is full", self.what);
        }
    }

    /// Closes the queue, then waits up to `within` for the writer to write what it holds.
    pub async fn finish(&self, within: Duration) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(writer) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        let joined = tokio::task::spawn_blocking(move || writer.join());
        if tokio::time::timeout(within, joined).await.is_err() {
            tracing::warn!(within_seconds = within.as_secs(), "{} still unwritten at exit", self.what);
        }
    }
}

impl FileSink {
    /// A sink appending to `path`, rotated once it would pass `max_bytes`, keeping `keep` rotated files.
    pub fn new(path: PathBuf, max_bytes: u64, keep: u32) -> Self {
        FileSink { path, max_bytes, keep }
    }

    /// Appends `lines`, each with a newline, in one write; rotates first when they would not fit.
    pub fn write(&mut self, lines: &[String]) -> std::io::Result<()> {
        let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let mut file = open(&self.path)?;
        let size = file.metadata()?.len();
        if size > 0 && size + text.len() as u64 > self.max_bytes {
            drop(file);
            rotate(&self.path, self.keep)?;
            file = open(&self.path)?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `path.<keep-1>` → `path.<keep>` … `path` → `path.1`; the oldest beyond `keep` is overwritten.
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    for n in (1..keep).rev() {
        match std::fs::rename(numbered(n), numbered(n + 1)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, numbered(1))
}

/// Runs `sink` on a thread of its own until `records` closes and is empty; returns the thread.
fn spawn(
    mut sink: FileSink,
    mut records: mpsc::Receiver<String>,
    counters: SinkCounters,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("kaas-sink".into()).spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = records.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH {
                match records.try_recv() {
                    Ok(line) => batch.push(line),
                    Err(_) => break,
                }
            }
            loop {
                match sink.write(&batch) {
                    Ok(()) => break,
                    Err(e) => {
                        counters.errors.inc();
                        tracing::warn!(file = %sink.path.display(), error = %e, lines = batch.len(),
                            "lines not written to the file; retrying (they wait in the queue)");
                        std::thread::sleep(RETRY);
                    }
                }
            }
            counters.written.inc_by(batch.len() as u64);
            counters.queued.dec_by(batch.len() as i64);
            batch.clear();
        }
    })
}

/// `at` as RFC 3339 in UTC with milliseconds: `2026-12-07T20:01:00.000Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let nanos = i128::try_from(since.as_nanos()).unwrap_or(0);
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, width: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:0width$}")).collect()
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usage.jsonl");
        // 10 lines of 10 bytes (newline included) per write, 250 bytes per file.
        let mut sink = FileSink::new(path.clone(), 250, 2);
        for _ in 0..7 {
            sink.write(&lines(10, 9)).expect("writes");
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let numbered = |n| PathBuf::from(format!("{}.{n}", path.display()));
        assert_eq!(size(&path), Some(100), "the seventh write started a new file");
        assert_eq!(size(&numbered(1)), Some(200));
        assert_eq!(size(&numbered(2)), Some(200));
        assert_eq!(size(&numbered(3)), None, "only two rotated files are kept");
        // A batch larger than the limit is written whole, into a file of its own.
        sink.write(&lines(30, 9)).expect("writes");
        assert_eq!(size(&path), Some(300));
        assert_eq!(size(&numbered(1)), Some(100));
    }

    #[test]
    fn a_failed_write_is_retried_until_the_file_can_be_written_and_nothing_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usage.jsonl");
        // A folder where the file should be: every open fails.
        std::fs::create_dir(&path).expect("mkdir");
        let (tx, rx) = mpsc::channel(100);
        let counters = SinkCounters::default();
        let thread = spawn(FileSink::new(path.clone(), 1 << 20, 1), rx, counters.clone()).expect("thread");
        for l in lines(5, 3) {
            tx.try_send(l).expect("room");
        }
        while counters.errors.get() == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        for l in lines(5, 4) {
            tx.try_send(l).expect("room");
        }
        std::fs::remove_dir(&path).expect("rmdir");
        drop(tx);
        thread.join().expect("the writer ends once the queue is closed and written");
        let text = std::fs::read_to_string(&path).expect("written");
        let want: Vec<String> = lines(5, 3).into_iter().chain(lines(5, 4)).collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
        assert_eq!(counters.written.get(), 10);
    }
}
