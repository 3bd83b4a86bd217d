//! The `usage` and `audit` sections: where and how often the usage records ([`crate::usage`]) and the audit
//! events ([`crate::audit`]) are written, as written ([`UsageConfig`], [`AuditConfig`]) and validated
//! ([`UsageSettings`], [`AuditSettings`]); both write rotated files through [`crate::sink`], and share those
//! keys and their checks. Read at start-up; a reload does not change them.

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
    /// The name records give this proxy replica; default: `$POD_NAME`, else the host name (a pod's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// Upper bounds: far above any use, below what would take the proxy down at start-up (a queue reserved at
/// that size) or make every rotation walk billions of names.
const MAX_BUFFER_RECORDS: usize = 10_000_000;
const MAX_FILE_KEEP: u32 = 1000;
const MAX_KEYS_PER_TENANT: usize = 10_000_000;

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

/// The keys both sections have, validated: (file, replica), or `None` after pushing the errors.
fn file_keys(
    section: &str,
    file: &Path,
    (file_max_bytes, file_keep): (u64, u32),
    buffer_records: usize,
    replica: &Option<String>,
    base: &Path,
    errs: &mut Collector,
) -> Option<(PathBuf, String)> {
    let before = errs.0.len();
    if file_max_bytes < 4096 {
        errs.push(format!("{section}.file_max_bytes"), "must be at least 4096");
    }
    if !(1..=MAX_BUFFER_RECORDS).contains(&buffer_records) {
        errs.push(format!("{section}.buffer_records"), format!("must be between 1 and {MAX_BUFFER_RECORDS}"));
    }
    if file_keep > MAX_FILE_KEEP {
        errs.push(format!("{section}.file_keep"), format!("must be at most {MAX_FILE_KEEP}"));
    }
    if file.as_os_str().is_empty() {
        errs.push(format!("{section}.file"), "must name a file");
    }
    let replica = match replica {
        Some(r) if r.is_empty() || r.chars().any(char::is_control) => {
            errs.push(format!("{section}.replica"), "must be a non-empty name without control characters");
            String::new()
        }
        Some(r) => r.clone(),
        // As the ACME store's Lease names it; `kaas-proxy` when nothing names the host.
        None => super::replica_name().unwrap_or_else(|| "kaas-proxy".into()),
    };
    (errs.0.len() == before).then(|| (base.join(file), replica))
}

pub(super) fn validate(c: &UsageConfig, base: &Path, errs: &mut Collector) -> Option<UsageSettings> {
    let before = errs.0.len();
    if !(1..=3600).contains(&c.interval_seconds) {
        errs.push("usage.interval_seconds", "must be between 1 and 3600");
    }
    if !(1..=MAX_KEYS_PER_TENANT).contains(&c.max_keys_per_tenant) {
        errs.push("usage.max_keys_per_tenant", format!("must be between 1 and {MAX_KEYS_PER_TENANT}"));
    }
    let sizes = (c.file_max_bytes, c.file_keep);
    let files = file_keys("usage", &c.file, sizes, c.buffer_records, &c.replica, base, errs);
    let (file, replica) = files.filter(|_| errs.0.len() == before)?;
    Some(UsageSettings {
        file,
        interval: Duration::from_secs(c.interval_seconds),
        max_keys_per_tenant: c.max_keys_per_tenant,
        file_max_bytes: c.file_max_bytes,
        file_keep: c.file_keep,
        buffer_records: c.buffer_records,
        replica,
    })
}

/// The audit trail (docs/operate/audit.md): one CloudEvents JSON line per session authenticated or refused and
/// per administrative request with the broker's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The file the events are appended to (relative to the configuration file's folder); rotated by size to
    /// `<file>.1` … `<file>.<file_keep>`.
    pub file: PathBuf,
    /// Size past which the file is rotated.
    #[serde(default = "default_file_max_bytes")]
    pub file_max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_file_keep")]
    pub file_keep: u32,
    /// Events that may wait for the file (while it cannot be written) before new ones are dropped and counted.
    #[serde(default = "default_buffer_records")]
    pub buffer_records: usize,
    /// The name events give this proxy replica (`source`, `id`); default: `$POD_NAME`, else the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Tenants whose events are not written (every tenant's are, by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tenants: Vec<String>,
}

/// The `audit` section, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    /// The events' file, resolved against the configuration file's folder.
    pub file: PathBuf,
    /// Rotation size, at least 4 KiB.
    pub file_max_bytes: u64,
    /// Rotated files kept.
    pub file_keep: u32,
    /// Queue length, at least 1.
    pub buffer_records: usize,
    /// This replica's name in the events.
    pub replica: String,
    /// Tenants whose events are not written.
    pub exclude_tenants: Vec<String>,
}

pub(super) fn validate_audit(c: &AuditConfig, base: &Path, errs: &mut Collector) -> Option<AuditSettings> {
    let (file, replica) = file_keys(
        "audit",
        &c.file,
        (c.file_max_bytes, c.file_keep),
        c.buffer_records,
        &c.replica,
        base,
        errs,
    )?;
    Some(AuditSettings {
        file,
        file_max_bytes: c.file_max_bytes,
        file_keep: c.file_keep,
        buffer_records: c.buffer_records,
        replica,
        exclude_tenants: c.exclude_tenants.clone(),
    })
}
