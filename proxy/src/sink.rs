//! Where records go, the usage records ([`crate::usage`]) and the audit trail ([`crate::audit`]) alike: a file of
//! JSON lines, rotated by size (`usage.jsonl`, then `usage.jsonl.1` … `usage.jsonl.<keep>`), written by a thread
//! of its own so that a slow or failing disk never holds up a session. Lines reach it through a bounded queue
//! ([`Sink::send`] counts what does not fit); a write that fails is retried, the same batch, every second, until
//! it succeeds or the proxy stops ([`Sink::finish`] waits a while for what is queued).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Tells when the writer has written everything and ended.
    done: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Set when the proxy stops waiting: the writer stops retrying and ends.
    give_up: Arc<AtomicBool>,
    counters: SinkCounters,
    /// What the lines are, for logs: "usage records", "audit events".
    what: &'static str,
    /// When a drop was last logged.
    last_warning: Mutex<Option<std::time::Instant>>,
}

impl Sink {
    /// Starts the writer of `file`, behind a queue of `capacity` lines.
    pub fn start(file: FileSink, capacity: usize, what: &'static str) -> std::io::Result<Sink> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = SinkCounters::default();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let give_up = Arc::new(AtomicBool::new(false));
        spawn(file, rx, counters.clone(), give_up.clone(), done_tx)?;
        let (queue, done) = (Mutex::new(Some(tx)), Mutex::new(Some(done)));
        Ok(Sink { queue, done, give_up, counters, what, last_warning: Mutex::new(None) })
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
        let mut dropped = 0u64;
        for line in lines {
            self.counters.queued.inc();
            // After the stop (a session dropped late) there is no queue: counted like a full one.
            if queue.as_ref().is_none_or(|tx| tx.try_send(line).is_err()) {
                self.counters.queued.dec();
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.counters.dropped.inc_by(dropped);
            // Once a second at most: a stalled disk must not also flood the log.
            let now = std::time::Instant::now();
            let mut last = self.last_warning.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
                *last = Some(now);
                let total = self.counters.dropped.get();
                tracing::warn!(
                    dropped,
                    total,
                    "{} dropped: the queue to the file is full or closed",
                    self.what
                );
            }
        }
    }

    /// Closes the queue, then waits up to `within` for the writer to write what it holds. Past that, the
    /// writer gives up at its next attempt (what it held is counted as dropped) and nothing waits for it: a
    /// file that cannot be written never holds the process up.
    pub async fn finish(&self, within: Duration) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(done) = self.done.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        if tokio::time::timeout(within, done).await.is_err() {
            self.give_up.store(true, Ordering::SeqCst);
            tracing::warn!(
                within_seconds = within.as_secs(),
                "{} still unwritten at exit: given up",
                self.what
            );
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
        let mut size = file.metadata()?.len();
        if size > 0 && size + text.len() as u64 > self.max_bytes {
            drop(file);
            rotate(&self.path, self.keep)?;
            file = open(&self.path)?;
            size = file.metadata()?.len();
        }
        // A line cut short (a crash mid-write, a failed write that could not be undone) stays a line of its
        // own: the lines written now start on a new line.
        if size > 0 && !ends_with_newline(&mut file, size)? {
            text.insert(0, '\n');
        }
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.sync_data()) {
            // Undo a partial write, so the retry does not leave half a line behind; best effort.
            let _ = file.set_len(size);
            return Err(e);
        }
        Ok(())
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).read(true).open(path)
}

fn ends_with_newline(file: &mut File, size: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(size - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
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

/// Runs `sink` on a thread of its own until `records` closes and is empty (then says so on `done`), or until
/// `give_up` is set while a write keeps failing.
fn spawn(
    mut sink: FileSink,
    mut records: mpsc::Receiver<String>,
    counters: SinkCounters,
    give_up: Arc<AtomicBool>,
    done: tokio::sync::oneshot::Sender<()>,
) -> std::io::Result<()> {
    let thread = std::thread::Builder::new().name("kaas-sink".into()).spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = records.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH {
                match records.try_recv() {
                    Ok(line) => batch.push(line),
                    Err(_) => break,
                }
            }
            while let Err(e) = sink.write(&batch) {
                counters.errors.inc();
                if give_up.load(Ordering::SeqCst) {
                    let lost = batch.len() + records.len();
                    counters.dropped.inc_by(lost as u64);
                    counters.queued.dec_by(lost as i64);
                    tracing::error!(file = %sink.path.display(), error = %e, lost, "lines not written at exit");
                    return;
                }
                tracing::warn!(file = %sink.path.display(), error = %e, lines = batch.len(),
                    "lines not written to the file; retrying (they wait in the queue)");
                std::thread::sleep(RETRY);
            }
            counters.written.inc_by(batch.len() as u64);
            counters.queued.dec_by(batch.len() as i64);
            batch.clear();
        }
        let _ = done.send(());
    });
    thread.map(drop)
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
        let sink = Sink::start(FileSink::new(path.clone(), 1 << 20, 1), 100, "test lines").expect("thread");
        sink.send(lines(5, 3));
        while sink.counters.errors.get() == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        sink.send(lines(5, 4));
        std::fs::remove_dir(&path).expect("rmdir");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(sink.finish(Duration::from_secs(10)));
        let counters = &sink.counters;
        let text = std::fs::read_to_string(&path).expect("written");
        let want: Vec<String> = lines(5, 3).into_iter().chain(lines(5, 4)).collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
        assert_eq!((counters.written.get(), counters.dropped.get()), (10, 0));
    }

    #[test]
    fn a_file_that_can_never_be_written_does_not_hold_up_the_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usage.jsonl");
        std::fs::create_dir(&path).expect("a folder where the file should be");
        let sink = Sink::start(FileSink::new(path, 1 << 20, 1), 100, "test lines").expect("thread");
        sink.send(lines(3, 3));
        // The runtime is dropped at the end of the test: nothing of the writer may be left for it to wait on.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let started = std::time::Instant::now();
        runtime.block_on(sink.finish(Duration::from_millis(200)));
        drop(runtime);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // The writer notices at its next attempt (within a second) and counts what it held.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.counters.dropped.get() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(sink.counters.dropped.get(), 3);
        assert_eq!(sink.counters.queued.get(), 0, "what was given up no longer waits");
        // A line sent after the stop (a session dropped late) is counted, not silently lost.
        sink.send(lines(1, 3));
        assert_eq!(sink.counters.dropped.get(), 4);
    }

    #[test]
    fn a_line_cut_short_stays_a_line_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usage.jsonl");
        std::fs::write(&path, "{\"complete\":1}\n{\"cut sh").expect("a torn write");
        FileSink::new(path.clone(), 1 << 20, 1).write(&lines(2, 3)).expect("writes");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().collect::<Vec<_>>(), ["{\"complete\":1}", "{\"cut sh", "000", "001"]);
    }
}
