//! The administrative requests the audit trail records ([`AUDITED`]) and the types of what it reads of them:
//! the [`Resource`]s each names (topics, partitions, groups, ACLs, config resources, users, quota entities,
//! read by [`super::requests`]) and the broker's [`Outcome`] for each (read by [`super::outcome`]), with the
//! helpers both walks share. Pure.
//!
//! Client and broker bytes are walked with the bounded [`Reader`] of [`crate::kafka::wire`], never decoded with
//! kafka-protocol (which sizes each array by the count it reads, before checking the bytes hold it: six bytes
//! claiming 2^31 topics abort the process). At most [`MAX_RESOURCES`] resources are kept per request; the rest
//! are counted. Config values, SCRAM salts and passwords are never read into a resource: config names and
//! operations only.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use serde::Serialize;
use serde_json::{json, Value};

use crate::kafka::wire::{Reader, WireError, WireResult};

/// The APIs whose requests the audit trail records.
pub const AUDITED: [ApiKey; 14] = [
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::DeleteRecords,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ElectLeaders,
    ApiKey::AlterUserScramCredentials,
    ApiKey::AlterClientQuotas,
];

/// Resources kept per request; past it they are counted in [`Named::omitted`].
pub const MAX_RESOURCES: usize = 1000;

/// Why a message's resources or outcomes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// Not a message of its API and version.
    #[error("unreadable: {0}")]
    Unreadable(#[from] WireError),
    /// An API the audit trail does not read (a bug in the caller).
    #[error("{0:?} is not audited")]
    NotAudited(ApiKey),
    /// A version newer than the walks know.
    #[error("{api:?} v{version} is newer than the audit trail reads (v{newest})")]
    Version {
        /// The API.
        api: ApiKey,
        /// The version used.
        version: i16,
        /// The newest the walks know.
        newest: i16,
    },
}

/// What a request names: its first [`MAX_RESOURCES`] resources, and how many more there were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Named {
    /// The resources, in the request's order.
    pub resources: Vec<Resource>,
    /// Resources past [`MAX_RESOURCES`], counted, not kept.
    pub omitted: usize,
}

impl Named {
    pub(super) fn push(&mut self, r: Resource) {
        if self.resources.len() < MAX_RESOURCES {
            self.resources.push(r);
        } else {
            self.omitted += 1;
        }
    }
}

/// One thing an administrative request names, and the broker's answer for it once the response is read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// `topic`, `partition`, `group`, `acl`, `acl_filter`, `user`, `client_quota`, or `<kind>_config`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The topic, `topic-partition`, group, user; for ACLs `RESOURCE_TYPE:PATTERN:name`; for quotas
    /// `entity=name,...`.
    pub name: String,
    /// What was asked of it: partitions and replication factor, config names and operations (never values),
    /// an ACL's principal, host, operation and permission, an offset.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
    /// The broker's answer; `None` while (or if) no response came.
    pub outcome: Option<Outcome>,
}

/// The broker's answer for one resource, or for the whole request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Kafka's error code, 0 for success.
    pub error_code: i16,
    /// Kafka's name of it: `NONE`, `TOPIC_AUTHORIZATION_FAILED`, …
    pub error: String,
    /// The broker's message, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Outcome {
    pub(super) fn new(code: i16, message: Option<&str>) -> Outcome {
        Outcome { error_code: code, error: error_name(code), message: message.map(str::to_owned) }
    }
}

/// Kafka's name of an error code (`TOPIC_AUTHORIZATION_FAILED`), `NONE` for 0, the number when unknown.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(ResponseError::Unknown(n)) => format!("UNKNOWN_{n}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

pub(super) fn resource(kind: &'static str, name: impl Into<String>, detail: Value) -> Resource {
    Resource { kind, name: name.into(), detail, outcome: None }
}

pub(super) fn config_kind(resource_type: i8) -> &'static str {
    match resource_type {
        2 => "topic_config",
        4 => "broker_config",
        8 => "broker_logger_config",
        16 => "client_metrics_config",
        32 => "group_config",
        _ => "config",
    }
}

pub(super) fn acl_name(resource_type: i8, pattern: i8, name: &str) -> String {
    let kind = match resource_type {
        1 => "ANY",
        2 => "TOPIC",
        3 => "GROUP",
        4 => "CLUSTER",
        5 => "TRANSACTIONAL_ID",
        6 => "DELEGATION_TOKEN",
        7 => "USER",
        _ => "UNKNOWN",
    };
    let pattern = match pattern {
        1 => "ANY",
        2 => "MATCH",
        3 => "LITERAL",
        4 => "PREFIXED",
        _ => "UNKNOWN",
    };
    format!("{kind}:{pattern}:{name}")
}

pub(super) fn acl_detail(
    principal: Option<&str>,
    host: Option<&str>,
    operation: i8,
    permission: i8,
) -> Value {
    const OPERATIONS: [&str; 15] = [
        "UNKNOWN",
        "ANY",
        "ALL",
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
        "CREATE_TOKENS",
        "DESCRIBE_TOKENS",
    ];
    let permission = match permission {
        1 => "ANY",
        2 => "DENY",
        3 => "ALLOW",
        _ => "UNKNOWN",
    };
    let operation = OPERATIONS.get(operation as usize).copied().unwrap_or("UNKNOWN");
    json!({ "principal": principal, "host": host, "operation": operation, "permission": permission })
}

/// A string that must be text.
pub(super) fn text(r: &mut Reader<'_>, field: &'static str) -> WireResult<String> {
    let at = r.string(field)?;
    r.text(at, field).map(kept)
}

/// A nullable string that must be text.
pub(super) fn text_or_null(r: &mut Reader<'_>, field: &'static str) -> WireResult<Option<String>> {
    match r.nullable_string(field)? {
        Some(at) => r.text(at, field).map(|t| Some(kept(t))),
        None => Ok(None),
    }
}

/// Longest name or message kept whole: Kafka's names are at most 249 bytes, so only made-up ones are cut.
pub const MAX_TEXT_BYTES: usize = 256;

/// `text`, cut to [`MAX_TEXT_BYTES`] (with its length said): what an event keeps of a client's or broker's
/// string, so a request of long names cannot make the proxy hold many copies of them.
fn kept(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

/// A topic id, as Kafka prints it.
pub(super) fn topic_id(r: &mut Reader<'_>) -> WireResult<String> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r.take(16, "topic_id")?))
}

/// A quota entity's name, its parts sorted by type: the broker answers them in its own (hash) order. Kafka's
/// entities have at most three parts (user, client-id, ip); past [`MAX_ENTITY_PARTS`] the rest are not kept.
pub(super) fn quota_entity<'a>(parts: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut parts: Vec<String> = parts
        .take(MAX_ENTITY_PARTS)
        .map(|(kind, name)| format!("{kind}={}", name.unwrap_or("<default>")))
        .collect();
    parts.sort_unstable();
    parts.join(",")
}

/// Longest list kept in a resource's detail (replicas, config names, quota operations); past it, `…`.
pub const MAX_LIST: usize = 100;

/// Parts of a quota entity kept in its name.
pub const MAX_ENTITY_PARTS: usize = 4;

#[cfg(test)]
mod tests;
