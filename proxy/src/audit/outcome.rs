//! The broker's answers to the audited requests ([`outcomes`]): each resource's error code and message, read
//! with the bounded [`Reader`] (broker bytes are hostile too) and matched to what the request named
//! ([`super::requests::resources`]) by kind and name, or by position where Kafka answers by position (ACLs).
//! Neighbours: [`super::admin`] (the types), [`super::requests`] (the requests).

use std::collections::{HashMap, VecDeque};

use kafka_protocol::messages::ApiKey;
use serde_json::Value;

use super::admin::{
    config_kind, quota_entity, text, text_or_null, topic_id, AdminError, Named, Outcome, Resource,
    MAX_RESOURCES,
};
use crate::kafka::wire::{Reader, WireResult};

/// Puts each answer on the resource it answers: the first of its kind and name still without one, found by an
/// index (a response of a million answers costs a million lookups, not a scan each).
struct Settler<'a> {
    named: &'a mut Named,
    unsettled: HashMap<(&'static str, String), VecDeque<usize>>,
}

impl<'a> Settler<'a> {
    fn new(named: &'a mut Named) -> Self {
        let mut unsettled: HashMap<_, VecDeque<usize>> = HashMap::new();
        for (i, r) in named.resources.iter().enumerate().filter(|(_, r)| r.outcome.is_none()) {
            unsettled.entry((r.kind, r.name.clone())).or_default().push_back(i);
        }
        Settler { named, unsettled }
    }

    /// Settles (`kind`, `name`); false when the request named no such resource still unanswered.
    fn settle(&mut self, kind: &'static str, name: &str, outcome: &Outcome) -> bool {
        let Some(i) = self.unsettled.get_mut(&(kind, name.to_owned())).and_then(VecDeque::pop_front) else {
            return false;
        };
        self.named.resources[i].outcome = Some(outcome.clone());
        true
    }

    /// Settles (`kind`, `name`), or adds it when the request did not name it (an election of every partition)
    /// and there is room; an answer for a resource past the kept ones is not kept (it was counted already).
    fn settle_or_add(&mut self, kind: &'static str, name: String, outcome: Outcome) {
        let full = self.named.resources.len() >= MAX_RESOURCES || self.named.omitted > 0;
        if !self.settle(kind, &name, &outcome) && !full {
            self.named.resources.push(Resource { kind, name, detail: Value::Null, outcome: Some(outcome) });
        }
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
    super::requests::readable(api, v)?;
    let mut r = Reader::new(body, api.response_header_version(v) >= 1);
    let r = &mut r;
    let mut whole = None;
    // Every answer starts with throttle_time_ms but OffsetDelete's (after its error code), CreateTopics' before
    // v2 and DeleteTopics' v0.
    let throttled = match api {
        OffsetDelete => false,
        CreateTopics => v >= 2,
        DeleteTopics => v >= 1,
        _ => true,
    };
    if throttled {
        r.i32("throttle_time_ms")?;
    }
    let mut by_name = Settler::new(named);
    let settled = &mut by_name;
    match api {
        CreateTopics => r.each("topics", 1, |r| {
            let name = text(r, "topics.name")?;
            if v >= 7 {
                topic_id(r)?;
            }
            let code = r.i16("error_code")?;
            // The message is not kept: a refused config's message quotes its value.
            if v >= 1 {
                r.nullable_string("error_message")?;
            }
            let outcome = Outcome::new(code, None);
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
            settled.settle_or_add("topic", name, outcome);
            Ok(())
        })?,
        DeleteTopics => r.each("responses", 1, |r| {
            let name = text_or_null(r, "responses.name")?;
            let id = if v >= 6 { Some(topic_id(r)?) } else { None };
            let code = r.i16("error_code")?;
            let message = if v >= 5 { text_or_null(r, "error_message")? } else { None };
            r.skip_tagged_fields("responses tags")?;
            let outcome = Outcome::new(code, message.as_deref());
            // A topic deleted by id is answered with its name too: matched by either.
            let by_id = id.map(|id| format!("id:{id}"));
            let matched = name.as_deref().is_some_and(|n| settled.settle("topic", n, &outcome))
                || by_id.as_deref().is_some_and(|i| settled.settle("topic", i, &outcome));
            if !matched {
                settled.settle_or_add("topic", name.or(by_id).unwrap_or_default(), outcome);
            }
            Ok(())
        })?,
        CreatePartitions => r.each("results", 1, |r| {
            let name = text(r, "results.name")?;
            let outcome = error(r)?;
            r.skip_tagged_fields("results tags")?;
            settled.settle_or_add("topic", name, outcome);
            Ok(())
        })?,
        AlterConfigs | IncrementalAlterConfigs => r.each("responses", 1, |r| {
            // The message is not kept: Kafka's "Invalid value <value> for configuration <name>" quotes the value.
            let code = r.i16("error_code")?;
            r.nullable_string("error_message")?;
            let outcome = Outcome::new(code, None);
            let (kind, name) = (r.i8("resource_type")?, text(r, "resource_name")?);
            r.skip_tagged_fields("responses tags")?;
            settled.settle_or_add(config_kind(kind), name, outcome);
            Ok(())
        })?,
        // Answered by position: the i-th result is the i-th creation's, the i-th filter's.
        CreateAcls => {
            let mut i = 0;
            r.each("results", 1, |r| {
                let outcome = error(r)?;
                r.skip_tagged_fields("results tags")?;
                if let Some(resource) = settled.named.resources.get_mut(i) {
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
                    let removed = error(r)?.error_code == 0;
                    r.i8("resource_type")?;
                    text(r, "resource_name")?;
                    if v >= 1 {
                        r.i8("pattern_type")?;
                    }
                    text(r, "principal")?;
                    text(r, "host")?;
                    r.skip(2, "operation and permission_type")?;
                    r.skip_tagged_fields("matching_acls tags")?;
                    deleted += u64::from(removed);
                    Ok(())
                })?;
                r.skip_tagged_fields("filter_results tags")?;
                if let Some(resource) = settled.named.resources.get_mut(i) {
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
                r.i64("low_watermark")?;
                let code = r.i16("error_code")?;
                r.skip_tagged_fields("partitions tags")?;
                settled.settle_or_add("partition", format!("{topic}-{p}"), Outcome::new(code, None));
                Ok(())
            })?;
            r.skip_tagged_fields("topics tags")
        })?,
        DeleteGroups => r.each("results", 1, |r| {
            let group = text(r, "group_id")?;
            let code = r.i16("error_code")?;
            r.skip_tagged_fields("results tags")?;
            settled.settle_or_add("group", group, Outcome::new(code, None));
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
                    settled.settle_or_add("partition", format!("{topic}-{p}"), Outcome::new(code, None));
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
                    settled.settle_or_add("partition", format!("{topic}-{p}"), outcome);
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
                    settled.settle_or_add("partition", format!("{topic}-{p}"), outcome);
                    Ok(())
                })?;
                r.skip_tagged_fields("replica_election_results tags")
            })?;
        }
        AlterUserScramCredentials => r.each("results", 1, |r| {
            let user = text(r, "results.user")?;
            let outcome = error(r)?;
            r.skip_tagged_fields("results tags")?;
            settled.settle_or_add("user", user, outcome);
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
            settled.settle_or_add("client_quota", name, outcome);
            Ok(())
        })?,
        _ => return Err(AdminError::NotAudited(api)),
    }
    r.skip_tagged_fields("tags")?;
    Ok(whole)
}
