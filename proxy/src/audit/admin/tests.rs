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
