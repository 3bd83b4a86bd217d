//! The walk of each audited request ([`resources`]): the resources it names, read with the bounded [`Reader`] (the
//! layouts are Kafka's message definitions, checked against kafka-protocol's encoder at every version by the
//! tests of [`super::admin`]). Values that could be secret (config values, SCRAM salts and salted passwords)
//! are stepped over, never read. Neighbours: [`super::admin`] (the types and names), [`super::outcome`] (the
//! responses).

use kafka_protocol::messages::ApiKey;
use serde_json::{json, Value};

use super::admin::{acl_detail, acl_name, config_kind, quota_entity, resource, text, text_or_null, topic_id};
use super::admin::{AdminError, Named, MAX_ENTITY_PARTS, MAX_LIST};
use crate::kafka::wire::{Reader, WireResult};

/// Kafka's `PatternType.LITERAL`.
const LITERAL: i8 = 3;

fn names_value(names: Vec<String>) -> Value {
    json!(names)
}

/// A name kept while the list is short.
fn keep(list: &mut Vec<String>, name: String) {
    match list.len() {
        n if n < MAX_LIST => list.push(name),
        n if n == MAX_LIST => list.push("…".into()),
        _ => {}
    }
}

/// What an audited request of `api` at `version` names; `body` is the request after its header.
pub fn resources(api: ApiKey, version: i16, body: &[u8]) -> Result<Named, AdminError> {
    readable(api, version)?;
    let mut r = Reader::new(body, api.request_header_version(version) >= 2);
    let mut named = Named::default();
    walk(api, version, &mut r, &mut named)?;
    Ok(named)
}

/// Whether the walks know `api` at `version`: from v0 (older brokers, Kafka 3.9, still accept the versions
/// kafka-protocol has dropped; their differences are walked here) up to the newest kafka-protocol knows. A newer
/// version may have moved a field: it is not guessed at.
pub(super) fn readable(api: ApiKey, version: i16) -> Result<(), AdminError> {
    let known = api.valid_versions();
    if (0..=known.max).contains(&version) {
        Ok(())
    } else {
        Err(AdminError::Version { api, version, newest: known.max })
    }
}

/// Walks the body of an audited request of `api` at `version`, adding each resource it names to `named`.
fn walk(api: ApiKey, v: i16, r: &mut Reader<'_>, named: &mut Named) -> Result<(), AdminError> {
    use ApiKey::*;
    match api {
        CreateTopics => create_topics(r, named)?,
        DeleteTopics => delete_topics(r, v, named)?,
        CreatePartitions => r.each("topics", 1, |r| {
            let name = text(r, "topics.name")?;
            let count = r.i32("topics.count")?;
            r.each_nullable("assignments", 1, |r| {
                r.skip_array("assignments.broker_ids", 4)?;
                r.skip_tagged_fields("assignments tags")
            })?;
            r.skip_tagged_fields("topics tags")?;
            named.push(resource("topic", name, json!({ "count": count })));
            Ok(())
        })?,
        AlterConfigs | IncrementalAlterConfigs => alter_configs(r, api == IncrementalAlterConfigs, named)?,
        CreateAcls => r.each("creations", 1, |r| {
            let (kind, name) = (r.i8("resource_type")?, text(r, "resource_name")?);
            // v0 has no pattern type: its names are literal.
            let pattern = if v >= 1 { r.i8("pattern_type")? } else { LITERAL };
            let (principal, host) = (text(r, "principal")?, text(r, "host")?);
            let (operation, permission) = (r.i8("operation")?, r.i8("permission_type")?);
            r.skip_tagged_fields("creations tags")?;
            let detail = acl_detail(Some(&principal), Some(&host), operation, permission);
            named.push(resource("acl", acl_name(kind, pattern, &name), detail));
            Ok(())
        })?,
        DeleteAcls => r.each("filters", 1, |r| {
            let (kind, name) = (r.i8("resource_type_filter")?, text_or_null(r, "resource_name_filter")?);
            let pattern = if v >= 1 { r.i8("pattern_type_filter")? } else { LITERAL };
            let (principal, host) = (text_or_null(r, "principal_filter")?, text_or_null(r, "host_filter")?);
            let (operation, permission) = (r.i8("operation")?, r.i8("permission_type")?);
            r.skip_tagged_fields("filters tags")?;
            let detail = acl_detail(principal.as_deref(), host.as_deref(), operation, permission);
            named.push(resource(
                "acl_filter",
                acl_name(kind, pattern, name.as_deref().unwrap_or("*")),
                detail,
            ));
            Ok(())
        })?,
        DeleteRecords => r.each("topics", 1, |r| {
            let topic = text(r, "topics.name")?;
            r.each("partitions", 12, |r| {
                let (p, offset) = (r.i32("partition_index")?, r.i64("offset")?);
                r.skip_tagged_fields("partitions tags")?;
                named.push(resource("partition", format!("{topic}-{p}"), json!({ "before_offset": offset })));
                Ok(())
            })?;
            r.skip_tagged_fields("topics tags")
        })?,
        DeleteGroups => r.each("groups_names", 1, |r| {
            named.push(resource("group", text(r, "groups_names")?, Value::Null));
            Ok(())
        })?,
        OffsetDelete => {
            let group = text(r, "group_id")?;
            r.each("topics", 1, |r| {
                let topic = text(r, "topics.name")?;
                r.each("partitions", 4, |r| {
                    let p = r.i32("partition_index")?;
                    named.push(resource("partition", format!("{topic}-{p}"), json!({ "group": group })));
                    Ok(())
                })
            })?;
        }
        AlterPartitionReassignments => {
            r.i32("timeout_ms")?;
            if v >= 1 {
                r.i8("allow_replication_factor_change")?;
            }
            r.each("topics", 1, |r| {
                let topic = text(r, "topics.name")?;
                r.each("partitions", 4, |r| {
                    let p = r.i32("partition_index")?;
                    let mut replicas = Vec::new();
                    let listed = r.nullable_count("replicas", 4)?;
                    for _ in 0..listed.unwrap_or(0) {
                        let replica = r.i32("replicas")?;
                        if replicas.len() < MAX_LIST {
                            replicas.push(replica);
                        }
                    }
                    r.skip_tagged_fields("partitions tags")?;
                    let detail = json!({ "replicas": listed.map(|_| replicas) });
                    named.push(resource("partition", format!("{topic}-{p}"), detail));
                    Ok(())
                })?;
                r.skip_tagged_fields("topics tags")
            })?;
        }
        ElectLeaders => {
            let election = if v >= 1 && r.i8("election_type")? == 1 { "UNCLEAN" } else { "PREFERRED" };
            let listed = r.nullable_count("topic_partitions", 1)?;
            if listed.is_none() {
                named.push(resource("partition", "*", json!({ "election": election })));
            }
            for _ in 0..listed.unwrap_or(0) {
                let topic = text(r, "topic_partitions.topic")?;
                r.each("partitions", 4, |r| {
                    let p = r.i32("partitions")?;
                    named.push(resource(
                        "partition",
                        format!("{topic}-{p}"),
                        json!({ "election": election }),
                    ));
                    Ok(())
                })?;
                r.skip_tagged_fields("topic_partitions tags")?;
            }
        }
        AlterUserScramCredentials => {
            let mechanism = |m: i8| ["UNKNOWN", "SCRAM-SHA-256", "SCRAM-SHA-512"].get(m as usize).copied();
            r.each("deletions", 1, |r| {
                let (name, m) = (text(r, "deletions.name")?, r.i8("deletions.mechanism")?);
                r.skip_tagged_fields("deletions tags")?;
                named.push(resource("user", name, json!({ "delete": mechanism(m) })));
                Ok(())
            })?;
            r.each("upsertions", 1, |r| {
                let (name, m, iterations) =
                    (text(r, "upsertions.name")?, r.i8("mechanism")?, r.i32("iterations")?);
                // The salt and the salted password: stepped over, never read.
                r.skip_nullable_bytes("upsertions.salt")?;
                r.skip_nullable_bytes("upsertions.salted_password")?;
                r.skip_tagged_fields("upsertions tags")?;
                named.push(resource(
                    "user",
                    name,
                    json!({ "upsert": mechanism(m), "iterations": iterations }),
                ));
                Ok(())
            })?;
        }
        AlterClientQuotas => r.each("entries", 1, |r| {
            let mut entity = Vec::new();
            r.each("entity", 1, |r| {
                let (kind, name) = (text(r, "entity_type")?, text_or_null(r, "entity_name")?);
                if entity.len() < MAX_ENTITY_PARTS {
                    entity.push((kind, name));
                }
                r.skip_tagged_fields("entity tags")
            })?;
            let mut ops = Vec::new();
            r.each("ops", 1, |r| {
                let key = text(r, "ops.key")?;
                let value = f64::from_bits(r.i64("ops.value")? as u64);
                let remove = r.i8("ops.remove")? != 0;
                r.skip_tagged_fields("ops tags")?;
                if ops.len() < MAX_LIST {
                    ops.push(if remove {
                        json!({ "remove": key })
                    } else {
                        json!({ "set": key, "value": value })
                    });
                }
                Ok(())
            })?;
            r.skip_tagged_fields("entries tags")?;
            let name = quota_entity(entity.iter().map(|(k, n)| (k.as_str(), n.as_deref())));
            named.push(resource("client_quota", name, json!({ "operations": ops })));
            Ok(())
        })?,
        _ => return Err(AdminError::NotAudited(api)),
    }
    Ok(())
}

fn create_topics(r: &mut Reader<'_>, named: &mut Named) -> WireResult<()> {
    r.each("topics", 1, |r| {
        let name = text(r, "topics.name")?;
        let (partitions, replication_factor) = (r.i32("num_partitions")?, r.i16("replication_factor")?);
        r.each("assignments", 4, |r| {
            r.i32("assignments.partition_index")?;
            r.skip_array("assignments.broker_ids", 4)?;
            r.skip_tagged_fields("assignments tags")
        })?;
        let mut configs = Vec::new();
        r.each("configs", 1, |r| {
            keep(&mut configs, text(r, "configs.name")?);
            r.nullable_string("configs.value")?;
            r.skip_tagged_fields("configs tags")
        })?;
        r.skip_tagged_fields("topics tags")?;
        let detail = json!({ "partitions": partitions, "replication_factor": replication_factor,
                             "configs": names_value(configs) });
        named.push(resource("topic", name, detail));
        Ok(())
    })
}

fn delete_topics(r: &mut Reader<'_>, v: i16, named: &mut Named) -> WireResult<()> {
    if v <= 5 {
        return r.each("topic_names", 1, |r| {
            named.push(resource("topic", text(r, "topic_names")?, Value::Null));
            Ok(())
        });
    }
    r.each("topics", 1, |r| {
        let name = text_or_null(r, "topics.name")?;
        let id = topic_id(r)?;
        r.skip_tagged_fields("topics tags")?;
        named.push(resource("topic", name.unwrap_or_else(|| format!("id:{id}")), Value::Null));
        Ok(())
    })
}

fn alter_configs(r: &mut Reader<'_>, incremental: bool, named: &mut Named) -> WireResult<()> {
    r.each("resources", 1, |r| {
        let (kind, name) = (r.i8("resource_type")?, text(r, "resource_name")?);
        let mut configs = Vec::new();
        r.each("configs", 1, |r| {
            let config = text(r, "configs.name")?;
            let op = if incremental { Some(r.i8("config_operation")?) } else { None };
            // The value: stepped over, never read (a password, a JAAS configuration).
            r.nullable_string("configs.value")?;
            r.skip_tagged_fields("configs tags")?;
            let op = op.map(|o| {
                ["SET", "DELETE", "APPEND", "SUBTRACT"].get(o as usize).copied().unwrap_or("UNKNOWN")
            });
            keep(&mut configs, op.map_or(config.clone(), |op| format!("{op} {config}")));
            Ok(())
        })?;
        r.skip_tagged_fields("resources tags")?;
        let detail = if incremental { json!({ "operations": configs }) } else { json!({ "set": configs }) };
        named.push(resource(config_kind(kind), name, detail));
        Ok(())
    })
}
