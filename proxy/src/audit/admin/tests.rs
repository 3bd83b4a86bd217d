//! Each audited API at every version kafka-protocol knows: a request naming two things, the broker's answer
//! allowing one and refusing the other; the audit reads both names and both answers.

use super::*;
use crate::audit::outcome::outcomes;
use crate::audit::requests::resources;
use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Message, StrBytes};

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(name: &'static str) -> TopicName {
    TopicName(s(name))
}

fn encode<M: Encodable>(m: &M, version: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    m.encode(&mut b, version).expect("encodes");
    b.to_vec()
}

/// Each resource read (kind, name, error code) and the answer for the whole request.
type Read = (Vec<(String, String, Option<i16>)>, Option<i16>);

/// The resources and answers the audit reads from `request` and `response` at `version`.
fn audited<Q: Encodable, R: Encodable>(api: ApiKey, version: i16, request: &Q, response: &R) -> Read {
    let mut named = resources(api, version, &encode(request, version)).expect("request reads");
    assert!(named.resources.iter().all(|r| r.outcome.is_none()), "{api:?} v{version}: no answers yet");
    let whole = outcomes(api, version, &encode(response, version), &mut named).expect("response reads");
    let read = named
        .resources
        .into_iter()
        .map(|r| (r.kind.to_owned(), r.name, r.outcome.map(|o| o.error_code)))
        .collect();
    (read, whole.map(|o| o.error_code))
}

fn pair(kind: &str, a: &str, b: &str) -> Vec<(String, String, Option<i16>)> {
    vec![(kind.into(), a.into(), Some(0)), (kind.into(), b.into(), Some(29))]
}

/// Every version of `M` kafka-protocol encodes.
fn versions<M: Message>() -> std::ops::RangeInclusive<i16> {
    M::VERSIONS.min..=M::VERSIONS.max
}

#[test]
fn topics_created_deleted_and_grown() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    for v in versions::<CreateTopicsRequest>() {
        let req = CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(3)
                .with_replication_factor(3),
            CreatableTopic::default().with_name(topic("secret")).with_num_partitions(1),
        ]);
        let resp = CreateTopicsResponse::default().with_topics(vec![
            CreatableTopicResult::default().with_name(topic("secret")).with_error_code(29),
            CreatableTopicResult::default().with_name(topic("orders")),
        ]);
        assert_eq!(
            audited(ApiKey::CreateTopics, v, &req, &resp),
            (pair("topic", "orders", "secret"), None),
            "v{v}"
        );
    }
    for v in versions::<DeleteTopicsRequest>() {
        let req = if v >= 6 {
            let state = |n| DeleteTopicState::default().with_name(Some(topic(n)));
            DeleteTopicsRequest::default().with_topics(vec![state("orders"), state("secret")])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic("orders"), topic("secret")])
        };
        let result = |n| DeletableTopicResult::default().with_name(Some(topic(n)));
        let resp = DeleteTopicsResponse::default()
            .with_responses(vec![result("orders"), result("secret").with_error_code(29)]);
        assert_eq!(
            audited(ApiKey::DeleteTopics, v, &req, &resp),
            (pair("topic", "orders", "secret"), None),
            "v{v}"
        );
    }
    for v in versions::<CreatePartitionsRequest>() {
        let t = |n| CreatePartitionsTopic::default().with_name(topic(n)).with_count(6);
        let req = CreatePartitionsRequest::default().with_topics(vec![t("orders"), t("secret")]);
        let r = |n| CreatePartitionsTopicResult::default().with_name(topic(n));
        let resp = CreatePartitionsResponse::default()
            .with_results(vec![r("orders"), r("secret").with_error_code(29)]);
        let got = audited(ApiKey::CreatePartitions, v, &req, &resp);
        assert_eq!(got, (pair("topic", "orders", "secret"), None), "v{v}");
    }
}

#[test]
fn configs_are_named_and_their_values_never_read() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    use kafka_protocol::messages::incremental_alter_configs_request as inc;
    use kafka_protocol::messages::incremental_alter_configs_response as inc_r;
    for v in versions::<AlterConfigsRequest>() {
        let config = AlterableConfig::default()
            .with_name(s("sasl.jaas.config"))
            .with_value(Some(s("password=hunter2")));
        let r = |n| {
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(n))
                .with_configs(vec![config.clone()])
        };
        let req = AlterConfigsRequest::default().with_resources(vec![r("orders"), r("secret")]);
        let a = |n| AlterConfigsResourceResponse::default().with_resource_type(2).with_resource_name(s(n));
        let resp = AlterConfigsResponse::default()
            .with_responses(vec![a("orders"), a("secret").with_error_code(29)]);
        assert_eq!(
            audited(ApiKey::AlterConfigs, v, &req, &resp),
            (pair("topic_config", "orders", "secret"), None),
            "v{v}"
        );
        let read = resources(ApiKey::AlterConfigs, v, &encode(&req, v)).expect("reads");
        let text = serde_json::to_string(&read.resources).expect("json");
        assert!(
            text.contains("sasl.jaas.config") && !text.contains("hunter2"),
            "names, never values: {text}"
        );
    }
    for v in versions::<IncrementalAlterConfigsRequest>() {
        let config = inc::AlterableConfig::default()
            .with_name(s("retention.ms"))
            .with_config_operation(1)
            .with_value(Some(s("1")));
        let r = |n| {
            inc::AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s(n))
                .with_configs(vec![config.clone()])
        };
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![r("1"), r("2")]);
        let a =
            |n| inc_r::AlterConfigsResourceResponse::default().with_resource_type(4).with_resource_name(s(n));
        let resp = IncrementalAlterConfigsResponse::default()
            .with_responses(vec![a("1"), a("2").with_error_code(29)]);
        assert_eq!(
            audited(ApiKey::IncrementalAlterConfigs, v, &req, &resp),
            (pair("broker_config", "1", "2"), None),
            "v{v}"
        );
        let read = resources(ApiKey::IncrementalAlterConfigs, v, &encode(&req, v)).expect("reads");
        assert_eq!(read.resources[0].detail, json!({ "operations": ["DELETE retention.ms"] }), "v{v}");
    }
}

#[test]
fn acls_are_answered_by_position() {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::create_acls_response::AclCreationResult;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
    for v in versions::<CreateAclsRequest>() {
        let acl = |n| {
            AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s(n))
                .with_resource_pattern_type(3)
                .with_principal(s("User:CN=bob"))
                .with_host(s("*"))
                .with_operation(4)
                .with_permission_type(3)
        };
        let req = CreateAclsRequest::default().with_creations(vec![acl("orders"), acl("secret")]);
        let resp = CreateAclsResponse::default().with_results(vec![
            AclCreationResult::default(),
            AclCreationResult::default().with_error_code(29),
        ]);
        let got = audited(ApiKey::CreateAcls, v, &req, &resp);
        assert_eq!(got, (pair("acl", "TOPIC:LITERAL:orders", "TOPIC:LITERAL:secret"), None), "v{v}");
        let read = resources(ApiKey::CreateAcls, v, &encode(&req, v)).expect("reads");
        assert_eq!(
            read.resources[0].detail,
            json!({ "principal": "User:CN=bob", "host": "*", "operation": "WRITE", "permission": "ALLOW" })
        );
    }
    for v in versions::<DeleteAclsRequest>() {
        let filter = |n| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s(n)))
                .with_pattern_type_filter(3)
                .with_operation(1)
                .with_permission_type(1)
        };
        let req = DeleteAclsRequest::default().with_filters(vec![filter("orders"), filter("secret")]);
        let resp = DeleteAclsResponse::default().with_filter_results(vec![
            DeleteAclsFilterResult::default().with_matching_acls(vec![DeleteAclsMatchingAcl::default()]),
            DeleteAclsFilterResult::default().with_error_code(29),
        ]);
        let got = audited(ApiKey::DeleteAcls, v, &req, &resp);
        assert_eq!(got, (pair("acl_filter", "TOPIC:LITERAL:orders", "TOPIC:LITERAL:secret"), None), "v{v}");
    }
}

#[test]
fn partitions_groups_users_and_quotas() {
    use kafka_protocol::messages::alter_client_quotas_request as q;
    use kafka_protocol::messages::alter_client_quotas_response as qr;
    use kafka_protocol::messages::alter_partition_reassignments_request as ar;
    use kafka_protocol::messages::alter_partition_reassignments_response as arr;
    use kafka_protocol::messages::alter_user_scram_credentials_request as sc;
    use kafka_protocol::messages::alter_user_scram_credentials_response as scr;
    use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
    use kafka_protocol::messages::delete_records_request as dr;
    use kafka_protocol::messages::delete_records_response as drr;
    use kafka_protocol::messages::elect_leaders_request as el;
    use kafka_protocol::messages::elect_leaders_response as elr;
    use kafka_protocol::messages::offset_delete_request as od;
    use kafka_protocol::messages::offset_delete_response as odr;
    let parts = pair("partition", "orders-0", "orders-1");
    for v in versions::<DeleteRecordsRequest>() {
        let p = |i| dr::DeleteRecordsPartition::default().with_partition_index(i).with_offset(10);
        let req = DeleteRecordsRequest::default().with_topics(vec![dr::DeleteRecordsTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![p(0), p(1)])]);
        let r = |i| drr::DeleteRecordsPartitionResult::default().with_partition_index(i);
        let resp =
            DeleteRecordsResponse::default().with_topics(vec![drr::DeleteRecordsTopicResult::default()
                .with_name(topic("orders"))
                .with_partitions(vec![r(0), r(1).with_error_code(29)])]);
        assert_eq!(audited(ApiKey::DeleteRecords, v, &req, &resp), (parts.clone(), None), "v{v}");
    }
    for v in versions::<OffsetDeleteRequest>() {
        let p = |i| od::OffsetDeleteRequestPartition::default().with_partition_index(i);
        let req = OffsetDeleteRequest::default().with_group_id(GroupId(s("g"))).with_topics(vec![
            od::OffsetDeleteRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![p(0), p(1)]),
        ]);
        let r = |i| odr::OffsetDeleteResponsePartition::default().with_partition_index(i);
        let resp =
            OffsetDeleteResponse::default().with_topics(vec![odr::OffsetDeleteResponseTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![r(0), r(1).with_error_code(29)])]);
        assert_eq!(audited(ApiKey::OffsetDelete, v, &req, &resp), (parts.clone(), Some(0)), "v{v}");
    }
    for v in versions::<AlterPartitionReassignmentsRequest>() {
        let p = |i| {
            ar::ReassignablePartition::default()
                .with_partition_index(i)
                .with_replicas(Some(vec![BrokerId(1)]))
        };
        let req =
            AlterPartitionReassignmentsRequest::default().with_topics(vec![ar::ReassignableTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![p(0), p(1)])]);
        let r = |i| arr::ReassignablePartitionResponse::default().with_partition_index(i);
        let resp = AlterPartitionReassignmentsResponse::default().with_responses(vec![
            arr::ReassignableTopicResponse::default()
                .with_name(topic("orders"))
                .with_partitions(vec![r(0), r(1).with_error_code(29)]),
        ]);
        assert_eq!(
            audited(ApiKey::AlterPartitionReassignments, v, &req, &resp),
            (parts.clone(), Some(0)),
            "v{v}"
        );
    }
    for v in versions::<ElectLeadersRequest>() {
        let req =
            ElectLeadersRequest::default().with_topic_partitions(Some(vec![el::TopicPartitions::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![0, 1])]));
        let r = |i| elr::PartitionResult::default().with_partition_id(i);
        let resp = ElectLeadersResponse::default().with_replica_election_results(vec![
            elr::ReplicaElectionResult::default()
                .with_topic(topic("orders"))
                .with_partition_result(vec![r(0), r(1).with_error_code(29)]),
        ]);
        let whole = if v >= 1 { Some(0) } else { None };
        assert_eq!(audited(ApiKey::ElectLeaders, v, &req, &resp), (parts.clone(), whole), "v{v}");
    }
    for v in versions::<DeleteGroupsRequest>() {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("a")), GroupId(s("b"))]);
        let r = |g| DeletableGroupResult::default().with_group_id(GroupId(s(g)));
        let resp = DeleteGroupsResponse::default().with_results(vec![r("a"), r("b").with_error_code(29)]);
        assert_eq!(audited(ApiKey::DeleteGroups, v, &req, &resp), (pair("group", "a", "b"), None), "v{v}");
    }
    for v in versions::<AlterUserScramCredentialsRequest>() {
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![sc::ScramCredentialDeletion::default()
                .with_name(s("alice"))
                .with_mechanism(1)])
            .with_upsertions(vec![sc::ScramCredentialUpsertion::default()
                .with_name(s("bob"))
                .with_mechanism(2)
                .with_iterations(8192)
                .with_salted_password(bytes::Bytes::from_static(b"SALTED-SECRET"))]);
        let r = |u| scr::AlterUserScramCredentialsResult::default().with_user(s(u));
        let resp = AlterUserScramCredentialsResponse::default()
            .with_results(vec![r("alice"), r("bob").with_error_code(29)]);
        assert_eq!(
            audited(ApiKey::AlterUserScramCredentials, v, &req, &resp),
            (pair("user", "alice", "bob"), None),
            "v{v}"
        );
        let read = resources(ApiKey::AlterUserScramCredentials, v, &encode(&req, v)).expect("reads");
        let text = serde_json::to_string(&read.resources).expect("json");
        assert!(!text.contains("SALTED") && !text.contains("salt"), "no credential is ever read: {text}");
    }
    for v in versions::<AlterClientQuotasRequest>() {
        let entry = |n| {
            q::EntryData::default()
                .with_entity(vec![q::EntityData::default()
                    .with_entity_type(s("user"))
                    .with_entity_name(Some(s(n)))])
                .with_ops(vec![q::OpData::default().with_key(s("producer_byte_rate")).with_value(1024.0)])
        };
        let req = AlterClientQuotasRequest::default().with_entries(vec![entry("alice"), entry("bob")]);
        let r = |n| {
            qr::EntryData::default().with_entity(vec![qr::EntityData::default()
                .with_entity_type(s("user"))
                .with_entity_name(Some(s(n)))])
        };
        let resp =
            AlterClientQuotasResponse::default().with_entries(vec![r("alice"), r("bob").with_error_code(29)]);
        assert_eq!(
            audited(ApiKey::AlterClientQuotas, v, &req, &resp),
            (pair("client_quota", "user=alice", "user=bob"), None),
            "v{v}"
        );
    }
}

#[test]
fn error_names_are_kafkas() {
    assert_eq!(error_name(0), "NONE");
    assert_eq!(error_name(29), "TOPIC_AUTHORIZATION_FAILED");
    assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
    assert_eq!(error_name(31), "CLUSTER_AUTHORIZATION_FAILED");
    assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
    assert_eq!(error_name(12345), "UNKNOWN_12345");
}

#[test]
fn hostile_counts_and_large_requests_cost_only_their_bytes() {
    // A count of 2^31 − 1 topics in six bytes: refused by the count check before anything is read (kafka-protocol
    // would reserve for it and abort the process).
    let hostile = [0x7f, 0xff, 0xff, 0xff, 0, 0];
    assert!(matches!(resources(ApiKey::CreateTopics, 4, &hostile), Err(AdminError::Unreadable(_))));
    let mut none = Named::default();
    assert!(outcomes(ApiKey::DeleteTopics, 4, &[0, 0, 0, 0, 0x7f], &mut none).is_err());
    // Past MAX_RESOURCES, resources are counted, not kept.
    let groups: Vec<GroupId> =
        (0..MAX_RESOURCES + 5).map(|i| GroupId(StrBytes::from_string(format!("g{i}")))).collect();
    let req = DeleteGroupsRequest::default().with_groups_names(groups);
    let named = resources(ApiKey::DeleteGroups, 2, &encode(&req, 2)).expect("reads");
    assert_eq!((named.resources.len(), named.omitted), (MAX_RESOURCES, 5));
    // Every truncation of a valid request inside what the audit reads (all but timeout_ms, validate_only and the
    // tags at its end) is an error naming a field, never a panic.
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default().with_name(topic("orders"))]);
    let body = encode(&req, 5);
    for cut in 0..body.len() - 6 {
        assert!(resources(ApiKey::CreateTopics, 5, &body[..cut]).is_err(), "cut at {cut}");
    }
}

/// Bytes of a classic (non-flexible) message, by hand: for the versions kafka-protocol no longer encodes.
#[derive(Default)]
struct Classic(Vec<u8>);

impl Classic {
    fn i8(mut self, v: i8) -> Self {
        self.0.push(v as u8);
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn str(self, v: &str) -> Self {
        let mut s = self.i16(v.len() as i16);
        s.0.extend_from_slice(v.as_bytes());
        s
    }
    fn null(self) -> Self {
        self.i16(-1)
    }
}

#[test]
fn versions_older_brokers_still_accept_are_read() {
    // CreateTopics v0 and v1 answers: no throttle_time_ms; v0 no error_message either (Kafka 3.9 serves them).
    let request = Classic::default().i32(1).str("orders").i32(1).i16(1).i32(0).i32(0).i32(1000).0;
    for (v, answer) in [
        (0, Classic::default().i32(1).str("orders").i16(36).0),
        (1, Classic::default().i32(1).str("orders").i16(36).null().0),
    ] {
        let mut named = resources(ApiKey::CreateTopics, v, &request).expect("request");
        outcomes(ApiKey::CreateTopics, v, &answer, &mut named).expect("answer");
        assert_eq!(
            named.resources[0].outcome.as_ref().map(|o| o.error.as_str()),
            Some("TOPIC_ALREADY_EXISTS"),
            "v{v}"
        );
    }
    // DeleteTopics v0: no throttle_time_ms.
    let mut named =
        resources(ApiKey::DeleteTopics, 0, &Classic::default().i32(1).str("orders").i32(1000).0).expect("v0");
    outcomes(ApiKey::DeleteTopics, 0, &Classic::default().i32(1).str("orders").i16(0).0, &mut named)
        .expect("v0 answer");
    assert_eq!(named.resources[0].outcome.as_ref().map(|o| o.error_code), Some(0));
    // CreateAcls and DeleteAcls v0: no pattern type (literal names).
    let acl = |c: Classic| c.i8(2).str("orders").str("User:CN=bob").str("*").i8(3).i8(3);
    let named = resources(ApiKey::CreateAcls, 0, &acl(Classic::default().i32(1)).0).expect("CreateAcls v0");
    assert_eq!(named.resources[0].name, "TOPIC:LITERAL:orders");
    let mut named =
        resources(ApiKey::DeleteAcls, 0, &acl(Classic::default().i32(1)).0).expect("DeleteAcls v0");
    assert_eq!(named.resources[0].name, "TOPIC:LITERAL:orders");
    let matching =
        |c: Classic, code| c.i16(code).null().i8(2).str("orders").str("User:CN=bob").str("*").i8(3).i8(3);
    let answer = matching(matching(Classic::default().i32(0).i32(1).i16(0).null().i32(2), 0), 87).0;
    outcomes(ApiKey::DeleteAcls, 0, &answer, &mut named).expect("DeleteAcls v0 answer");
    assert_eq!(named.resources[0].detail["deleted"], 1, "only the ACL removed without an error counts");
    // A version newer than the walks know is not guessed at.
    let newest = ApiKey::CreateTopics.valid_versions().max;
    assert!(matches!(resources(ApiKey::CreateTopics, newest + 1, &request), Err(AdminError::Version { .. })));
}

#[test]
fn answers_are_matched_however_the_broker_orders_or_names_them() {
    use kafka_protocol::messages::alter_client_quotas_request as q;
    use kafka_protocol::messages::alter_client_quotas_response as qr;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    // Quota entities: the broker answers them in its own order.
    let entity = |t, n| q::EntityData::default().with_entity_type(s(t)).with_entity_name(Some(s(n)));
    let req =
        AlterClientQuotasRequest::default()
            .with_entries(vec![q::EntryData::default()
                .with_entity(vec![entity("user", "alice"), entity("client-id", "app")])]);
    let answered = |t, n| qr::EntityData::default().with_entity_type(s(t)).with_entity_name(Some(s(n)));
    let resp = AlterClientQuotasResponse::default()
        .with_entries(vec![qr::EntryData::default()
            .with_entity(vec![answered("client-id", "app"), answered("user", "alice")])]);
    let got = audited(ApiKey::AlterClientQuotas, 1, &req, &resp);
    assert_eq!(got.0, [("client_quota".to_owned(), "client-id=app,user=alice".to_owned(), Some(0))]);
    // A topic deleted by id is answered with its name and id.
    let id = uuid::Uuid::from_bytes([7; 16]);
    let req = DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_topic_id(id)]);
    let resp = DeleteTopicsResponse::default().with_responses(vec![DeletableTopicResult::default()
        .with_name(Some(topic("orders")))
        .with_topic_id(id)]);
    let got = audited(ApiKey::DeleteTopics, 6, &req, &resp);
    assert_eq!(got.0.len(), 1, "one resource, not two: {got:?}");
    assert_eq!(got.0[0].2, Some(0));
    // Past MAX_RESOURCES the answers of resources not kept are not counted twice.
    let groups: Vec<GroupId> =
        (0..MAX_RESOURCES + 5).map(|i| GroupId(StrBytes::from_string(format!("g{i}")))).collect();
    let req = DeleteGroupsRequest::default().with_groups_names(groups.clone());
    let answers =
        groups.into_iter().map(|g| delete_groups_response::DeletableGroupResult::default().with_group_id(g));
    let resp = DeleteGroupsResponse::default().with_results(answers.collect());
    let mut named = resources(ApiKey::DeleteGroups, 2, &encode(&req, 2)).expect("reads");
    outcomes(ApiKey::DeleteGroups, 2, &encode(&resp, 2), &mut named).expect("answers");
    assert_eq!((named.resources.len(), named.omitted), (MAX_RESOURCES, 5));
    assert!(named.resources.iter().all(|r| r.outcome.is_some()));
}

#[test]
fn long_names_are_cut_and_broker_messages_about_configs_dropped() {
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::delete_records_request as dr;
    // One 64 KiB topic name over 1000 partitions: each resource keeps a cut name, not a copy of it.
    let long = "x".repeat(64 << 10);
    let partitions =
        (0..1000).map(|i| dr::DeleteRecordsPartition::default().with_partition_index(i)).collect();
    let req = DeleteRecordsRequest::default().with_topics(vec![dr::DeleteRecordsTopic::default()
        .with_name(TopicName(StrBytes::from_string(long)))
        .with_partitions(partitions)]);
    let named = resources(ApiKey::DeleteRecords, 2, &encode(&req, 2)).expect("reads");
    let kept: usize = named.resources.iter().map(|r| r.name.len()).sum();
    assert!(kept < 1000 * (MAX_TEXT_BYTES + 32), "{kept} bytes of names kept");
    assert!(named.resources[0].name.ends_with("…(65536 bytes)-0"), "{}", &named.resources[0].name[250..]);
    // "Invalid value <value> for configuration <name>": the broker's message is not kept.
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default().with_name(topic("orders"))]);
    let resp = CreateTopicsResponse::default().with_topics(vec![CreatableTopicResult::default()
        .with_name(topic("orders"))
        .with_error_code(40)
        .with_error_message(Some(s("Invalid value hunter2 for configuration sasl.jaas.config")))]);
    let mut named = resources(ApiKey::CreateTopics, 5, &encode(&req, 5)).expect("reads");
    outcomes(ApiKey::CreateTopics, 5, &encode(&resp, 5), &mut named).expect("answers");
    let text = serde_json::to_string(&named.resources).expect("json");
    assert!(text.contains("INVALID_CONFIG") && !text.contains("hunter2"), "{text}");
}
