//! Reload: polls the configuration file, its `tenants_file` (the route source kaas-controller writes; a mounted
//! ConfigMap changes in place) and every certificate, key, CA and CRL they name (mounted Secrets change in
//! place when Strimzi rotates a CA), and applies new tenants and material without a restart. A file that does
//! not validate is reported and ignored: the proxy keeps serving the routes it has; a `tenants_file` entry that
//! does not load (its files not mounted yet, say) is left out and named, and the others are applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config;
use crate::routes::Reloader;

fn contents(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

/// The watched files and their contents as the last load read them.
struct Seen {
    files: Vec<PathBuf>,
    last: Vec<Option<Vec<u8>>>,
}

impl Seen {
    /// The files `path` names, as they are now.
    fn now(path: &Path) -> Seen {
        let files = watched(path);
        let last = contents(&files);
        Seen { files, last }
    }

    /// Whether a watched file differs from what the last load read.
    fn changed(&self) -> bool {
        contents(&self.files) != self.last
    }

    /// Runs `load`, recording what it reads *before* it reads it: a file that changes while it loads (a
    /// Secret's files mounted just after the route naming them, as a kubelet does) then differs at the next
    /// check and brings another load, rather than being taken for seen and leaving its tenant out until
    /// something else changes.
    fn load(&mut self, path: &Path, load: impl FnOnce()) {
        let before = Seen::now(path);
        load();
        *self = before;
    }
}

/// Runs until the task is dropped: checks every `every` (never, when `None`), and at once on `now`.
pub async fn watch(path: &Path, every: Option<Duration>, now: Arc<Notify>, reloader: Reloader) {
    let mut seen = Seen::now(path);
    loop {
        let asked = tokio::select! {
            () = async {
                match every {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            } => false,
            () = now.notified() => true,
        };
        if asked {
            tracing::info!("reload asked for (SIGHUP)");
        } else if !seen.changed() {
            continue;
        }
        seen.load(path, || apply(path, &reloader));
    }
}

/// Loads the configuration at `path` and gives it to `reloader`, or keeps the current routes, saying why.
fn apply(path: &Path, reloader: &Reloader) {
    match config::load(path) {
        Ok(settings) => match reloader.reload(&settings) {
            Ok(n) if !settings.skipped.is_empty() => {
                settings.warn_skipped();
                tracing::info!(tenants = n, left_out = settings.skipped.len(), "routes reloaded");
            }
            Ok(n) => tracing::info!(tenants = n, "routes reloaded"),
            Err(e) => tracing::warn!(error = %e, "reload refused; keeping the current routes"),
        },
        Err(e) => {
            reloader.refused();
            tracing::warn!("reload refused; keeping the current routes: invalid configuration {e}")
        }
    }
}

/// The configuration file and every file it names.
fn watched(path: &Path) -> Vec<PathBuf> {
    config::watched_files(path)
}

#[cfg(test)]
mod tests {
    use super::Seen;

    /// A file the configuration names, written while a load runs (after the load began, before it ended):
    /// the next check sees it as changed, so it is loaded. Recording the contents after the load would take
    /// it for seen (the clean-clone run of c93ccf9 lost a tenant so for 60 s).
    #[test]
    fn a_file_written_during_a_load_is_loaded_at_the_next_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("kaas-proxy.yaml");
        std::fs::write(&config, "tls: {cert: server.crt, key: server.key}\n").expect("config");
        let key = dir.path().join("server.key");
        let mut seen = Seen::now(&config);
        assert!(!seen.changed(), "nothing changed yet");
        seen.load(&config, || std::fs::write(&key, "mounted while the load ran").expect("key"));
        assert!(seen.changed(), "the file written during the load is not taken for seen");
        seen.load(&config, || ());
        assert!(!seen.changed(), "loaded once more, it is seen");
    }
}
