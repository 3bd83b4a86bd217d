//! Where usage records go: a file of JSON lines, rotated by size (`usage.jsonl`, then `usage.jsonl.1` …
//! `usage.jsonl.<keep>`), written by a thread of its own so that a slow or failing disk never holds up a
//! session. Records reach it through a bounded queue ([`super::Usage`] counts what does not fit); a write that
//! fails is retried, the same batch, every second, until it succeeds or the proxy stops.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
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

/// What the writer thread reports: `kaas_proxy_usage_*` series.
#[derive(Debug, Clone, Default)]
pub struct SinkCounters {
    /// Records written.
    pub written: Counter,
    /// Failed attempts to write a batch.
    pub errors: Counter,
    /// Records waiting in the queue (the sender adds, the writer takes away).
    pub queued: Gauge,
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
pub fn spawn(
    mut sink: FileSink,
    mut records: mpsc::Receiver<String>,
    counters: SinkCounters,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("kaas-usage-sink".into()).spawn(move || {
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
                        tracing::warn!(file = %sink.path.display(), error = %e, records = batch.len(),
                            "usage records not written; retrying (they wait in the buffer)");
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
