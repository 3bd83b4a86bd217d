//! The broker's answers to the audited requests ([`outcomes`]): each resource's error code and message, read
//! with the bounded [`Reader`] (broker bytes are hostile too) and matched to what the request named
//! ([`super::requests::resources`]) by kind and name, or by position where Kafka answers by position (ACLs).
//! Neighbours: [`super::admin`] (the types), [`super::requests`] (the requests).

use kafka_protocol::messages::ApiKey;
use serde_json::Value;

use super::admin::{
    config_kind, quota_entity, text, text_or_null, topic_id, AdminError, Named, Outcome, Resource,
};
use super::requests::i64_at;
use crate::kafka::wire::{Reader, WireResult};

/// Puts the answer for (`kind`, `name`) on the first resource of that kind and name still without one; a
/// resource the request did not name (an election of every partition, say) is added.
fn settle(named: &mut Named, kind: &'static str, name: String, outcome: Outcome) {
    match named.resources.iter_mut().find(|r| r.kind == kind && r.name == name && r.outcome.is_none()) {
        Some(r) => r.outcome = Some(outcome),
        None => named.push(Resource { kind, name, detail: Value::Null, outcome: Some(outcome) }),
    }
}

/// An error code and its nullable message.
fn error(r: &mut Reader<'_>) -> WireResult<Outcome> {
    let code = r.i16("error_code")?;
    Ok(Outcome::new(code, text_or_null(r, "error_message")?.as_deref()))
}

/// Reads the response (`body`, after its header) to an audited request of `api` at `version` into what its
/// request named; returns the answer for the request as a whole, where the API has one.
pub fn outcomes(api: ApiKey, v: i16, body: &[u8], named: &mut Named) -> Result<Option<Outcome>, AdminError> {
    use ApiKey::*;
    let mut r = Reader::new(body, api.response_header_version(v) >= 1);
    let r = &mut r;
    let mut whole = None;
    if api != OffsetDelete {
        r.i32("throttle_time_ms")?;
    }
    match api {
        CreateTopics => r.each("topics", 1, |r| {
            let name = text(r, "topics.name")?;
            if v >= 7 {
                topic_id(r)?;
            }
            let outcome = error(r)?;
            if v >= 5 {
                r.skip(4 + 2, "num_partitions and replication_factor")?;
                r.each_nullable("configs", 1, |r| {
                    text(r, "configs.name")?;
                    r.nullable_string("configs.value")?;
                    r.skip(3, "read_only, config_source and is_sensitive")?;
                    r.skip_tagged_fields("configs tags")
                })?;
            }
            r.skip_tagged_fields("topics tags")?;
            settle(named, "topic", name, outcome);
            Ok(())
        })?,
        DeleteTopics => r.each("responses", 1, |r| {
            let name = text_or_null(r, "responses.name")?;
            let id = if v >= 6 { Some(topic_id(r)?) } else { None };
            let code = r.i16("error_code")?;
            let message = if v >= 5 { text_or_null(r, "error_message")? } else { None };
            r.skip_tagged_fields("responses tags")?;
            let name = name.or(id.map(|id| format!("id:{id}"))).unwrap_or_default();
            settle(named, "topic", name, Outcome::new(code, message.as_deref()));
            Ok(())
        })?,
        CreatePartitions => r.each("results", 1, |r| {
            let name = text(r, "results.name")?;
            let outcome = error(r)?;
            r.skip_tagged_fields("results tags")?;
            settle(named, "topic", name, outcome);
            Ok(())
        })?,
        AlterConfigs | IncrementalAlterConfigs => r.each("responses", 1, |r| {
            let outcome = error(r)?;
            let (kind, name) = (r.i8("resource_type")?, text(r, "resource_name")?);
            r.skip_tagged_fields("responses tags")?;
            settle(named, config_kind(kind), name, outcome);
            Ok(())
        })?,
        // Answered by position: the i-th result is the i-th creation's, the i-th filter's.
        CreateAcls => {
            let mut i = 0;
            r.each("results", 1, |r| {
                let outcome = error(r)?;
                r.skip_tagged_fields("results tags")?;
                if let Some(resource) = named.resources.get_mut(i) {
                    resource.outcome = Some(outcome);
                }
                i += 1;
                Ok(())
            })?;
        }
        DeleteAcls => {
            let mut i = 0;
            r.each("filter_results", 1, |r| {
                let outcome = error(r)?;
                let mut deleted = 0u64;
                r.each("matching_acls", 1, |r| {
                    error(r)?;
                    r.i8("resource_type")?;
                    text(r, "resource_name")?;
                    r.i8("pattern_type")?;
                    text(r, "principal")?;
                    text(r, "host")?;
                    r.skip(2, "operation and permission_type")?;
                    r.skip_tagged_fields("matching_acls tags")?;
                    deleted += 1;
                    Ok(())
                })?;
                r.skip_tagged_fields("filter_results tags")?;
                if let Some(resource) = named.resources.get_mut(i) {
                    if let Value::Object(detail) = &mut resource.detail {
                        detail.insert("deleted".into(), deleted.into());
                    }
                    resource.outcome = Some(outcome);
                }
                i += 1;
                Ok(())
            })?;
        }
        DeleteRecords => r.each("topics", 1, |r| {
            let topic = text(r, "topics.name")?;
            r.each("partitions", 14, |r| {
                let p = r.i32("partition_index")?;
                i64_at(r, "low_watermark")?;
                let code = r.i16("error_code")?;
                r.skip_tagged_fields("partitions tags")?;
                settle(named, "partition", format!("{topic}-{p}"), Outcome::new(code, None));
                Ok(())
            })?;
            r.skip_tagged_fields("topics tags")
        })?,
        DeleteGroups => r.each("results", 1, |r| {
            let group = text(r, "group_id")?;
            let code = r.i16("error_code")?;
            r.skip_tagged_fields("results tags")?;
            settle(named, "group", group, Outcome::new(code, None));
            Ok(())
        })?,
        OffsetDelete => {
            whole = Some(Outcome::new(r.i16("error_code")?, None));
            r.i32("throttle_time_ms")?;
            r.each("topics", 1, |r| {
                let topic = text(r, "topics.name")?;
                r.each("partitions", 6, |r| {
                    let p = r.i32("partition_index")?;
                    let code = r.i16("error_code")?;
                    settle(named, "partition", format!("{topic}-{p}"), Outcome::new(code, None));
                    Ok(())
                })
            })?;
        }
        AlterPartitionReassignments => {
            if v >= 1 {
                r.i8("allow_replication_factor_change")?;
            }
            whole = Some(error(r)?);
            r.each("responses", 1, |r| {
                let topic = text(r, "responses.name")?;
                r.each("partitions", 1, |r| {
                    let p = r.i32("partition_index")?;
                    let outcome = error(r)?;
                    r.skip_tagged_fields("partitions tags")?;
                    settle(named, "partition", format!("{topic}-{p}"), outcome);
                    Ok(())
                })?;
                r.skip_tagged_fields("responses tags")
            })?;
        }
        ElectLeaders => {
            if v >= 1 {
                whole = Some(Outcome::new(r.i16("error_code")?, None));
            }
            r.each("replica_election_results", 1, |r| {
                let topic = text(r, "topic")?;
                r.each("partition_result", 1, |r| {
                    let p = r.i32("partition_id")?;
                    let outcome = error(r)?;
                    r.skip_tagged_fields("partition_result tags")?;
                    settle(named, "partition", format!("{topic}-{p}"), outcome);
                    Ok(())
                })?;
                r.skip_tagged_fields("replica_election_results tags")
            })?;
        }
        AlterUserScramCredentials => r.each("results", 1, |r| {
            let user = text(r, "results.user")?;
            let outcome = error(r)?;
            r.skip_tagged_fields("results tags")?;
            settle(named, "user", user, outcome);
            Ok(())
        })?,
        AlterClientQuotas => r.each("entries", 1, |r| {
            let outcome = error(r)?;
            let mut entity = Vec::new();
            r.each("entity", 1, |r| {
                entity.push((text(r, "entity_type")?, text_or_null(r, "entity_name")?));
                r.skip_tagged_fields("entity tags")
            })?;
            r.skip_tagged_fields("entries tags")?;
            let name = quota_entity(entity.iter().map(|(k, n)| (k.as_str(), n.as_deref())));
            settle(named, "client_quota", name, outcome);
            Ok(())
        })?,
        _ => return Err(AdminError::NotAudited(api)),
    }
    r.skip_tagged_fields("tags")?;
    Ok(whole)
}
