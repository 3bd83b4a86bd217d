//! The `usage` section: where and how often the usage records are written ([`crate::usage`]), as written
//! ([`UsageConfig`]) and validated ([`UsageSettings`]). Read at start-up; a reload does not change it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Collector;

/// Usage records (docs/operate/usage.md): per tenant, principal, topic and direction, the bytes and records
/// produced and fetched, requests and connection time, written as JSON lines every `interval_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    /// The file the records are appended to (relative to the configuration file's folder); rotated by size
    /// to `<file>.1` … `<file>.<file_keep>`.
    pub file: PathBuf,
    /// Length of a window: records are written at each multiple of it (UTC), one per (tenant, principal,
    /// topic, direction) that moved anything, and one per principal for its connections.
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u64,
    /// (principal, topic) entries one tenant may have in a window; volumes past it are folded into the topic
    /// `(other)` and counted, so a client creating topics cannot grow the proxy.
    #[serde(default = "default_max_keys_per_tenant")]
    pub max_keys_per_tenant: usize,
    /// Size past which the file is rotated.
    #[serde(default = "default_file_max_bytes")]
    pub file_max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_file_keep")]
    pub file_keep: u32,
    /// Records that may wait for the file (while it cannot be written) before new ones are dropped and
    /// counted.
    #[serde(default = "default_buffer_records")]
    pub buffer_records: usize,
    /// The name records give this proxy replica; default: the host name (a pod's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

fn default_interval_seconds() -> u64 {
    60
}
fn default_max_keys_per_tenant() -> usize {
    10_000
}
fn default_file_max_bytes() -> u64 {
    100 << 20
}
fn default_file_keep() -> u32 {
    5
}
fn default_buffer_records() -> usize {
    100_000
}

/// The `usage` section, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSettings {
    /// The records' file, resolved against the configuration file's folder.
    pub file: PathBuf,
    /// Window length, 1 s to 1 h.
    pub interval: Duration,
    /// (principal, topic) entries per tenant and window, at least 1.
    pub max_keys_per_tenant: usize,
    /// Rotation size, at least 4 KiB.
    pub file_max_bytes: u64,
    /// Rotated files kept.
    pub file_keep: u32,
    /// Queue length, at least 1.
    pub buffer_records: usize,
    /// This replica's name in the records.
    pub replica: String,
}

pub(super) fn validate(c: &UsageConfig, base: &Path, errs: &mut Collector) -> Option<UsageSettings> {
    let before = errs.0.len();
    if !(1..=3600).contains(&c.interval_seconds) {
        errs.push("usage.interval_seconds", "must be between 1 and 3600");
    }
    if c.max_keys_per_tenant == 0 {
        errs.push("usage.max_keys_per_tenant", "must be at least 1");
    }
    if c.file_max_bytes < 4096 {
        errs.push("usage.file_max_bytes", "must be at least 4096");
    }
    if c.buffer_records == 0 {
        errs.push("usage.buffer_records", "must be at least 1");
    }
    if c.file.as_os_str().is_empty() {
        errs.push("usage.file", "must name a file");
    }
    let replica = match &c.replica {
        Some(r) if r.is_empty() || r.chars().any(char::is_control) => {
            errs.push("usage.replica", "must be a non-empty name without control characters");
            None
        }
        Some(r) => Some(r.clone()),
        None => Some(hostname()),
    };
    (errs.0.len() == before).then(|| UsageSettings {
        file: base.join(&c.file),
        interval: Duration::from_secs(c.interval_seconds),
        max_keys_per_tenant: c.max_keys_per_tenant,
        file_max_bytes: c.file_max_bytes,
        file_keep: c.file_keep,
        buffer_records: c.buffer_records,
        replica: replica.unwrap_or_default(),
    })
}

/// The host's name (a pod's name in Kubernetes), or `kaas-proxy` when it cannot be read.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kaas-proxy".into())
}
