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

/// Runs until the task is dropped: checks every `every` (never, when `None`), and at once on `now`.
pub async fn watch(path: &Path, every: Option<Duration>, now: Arc<Notify>, reloader: Reloader) {
    let mut files = watched(path);
    let mut last = contents(&files);
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
        } else if contents(&files) == last {
            continue;
        }
        // What the load below reads, taken before it reads: a file that changes while it loads (a Secret's
        // files mounted just after the route naming them) then differs at the next check and brings another
        // load, rather than being taken for seen and leaving its tenant out until something else changes.
        let named = watched(path);
        let seen = contents(&named);
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
        (files, last) = (named, seen);
    }
}

/// The configuration file and every file it names.
fn watched(path: &Path) -> Vec<PathBuf> {
    config::watched_files(path)
}
