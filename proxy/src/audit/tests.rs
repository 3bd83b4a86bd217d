//! The auditor of a session: requests paired with their answers in order, SASL verdicts, and what is written
//! when a session ends with requests unanswered.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use prometheus_client::registry::Registry;

use super::*;

fn encode<M: Encodable>(m: &M, version: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    m.encode(&mut b, version).expect("encodes");
    b.to_vec()
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

/// An audit trail into a temporary file, and a way to read it back once stopped.
fn trail() -> (Arc<Audit>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = AuditSettings {
        file: dir.path().join("audit.jsonl"),
        file_max_bytes: 1 << 20,
        file_keep: 1,
        buffer_records: 100,
        replica: "r".into(),
        exclude_tenants: vec!["quiet".into()],
    };
    (Audit::start(&settings, &mut Registry::default()).expect("starts"), dir)
}

fn written(audit: &Audit, dir: &tempfile::TempDir) -> Vec<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(audit.finish(Duration::from_secs(5)));
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

#[test]
fn a_reused_correlation_id_pairs_each_request_with_its_own_answer() {
    let (audit, dir) = trail();
    let auditor = audit.session("acme", Some("alice"), ([127, 0, 0, 1], 1).into()).expect("audited");
    let create =
        CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default().with_name(topic("a"))]);
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![topic("b")]);
    auditor.request(ApiKey::CreateTopics, 5, 1, &encode(&create, 5));
    auditor.request(ApiKey::DeleteTopics, 5, 1, &encode(&delete, 5));
    let created = CreateTopicsResponse::default()
        .with_topics(vec![CreatableTopicResult::default().with_name(topic("a"))]);
    let deleted = DeleteTopicsResponse::default().with_responses(vec![DeletableTopicResult::default()
        .with_name(Some(topic("b")))
        .with_error_code(41)]);
    auditor.response(ApiKey::CreateTopics, 5, 1, &encode(&created, 5));
    auditor.response(ApiKey::DeleteTopics, 5, 1, &encode(&deleted, 5));
    drop(auditor);
    let events = written(&audit, &dir);
    let read: Vec<(String, String, i64)> = events
        .iter()
        .map(|e| {
            let r = &e["data"]["resources"][0];
            (
                e["data"]["api"].to_string(),
                r["name"].to_string(),
                r["outcome"]["error_code"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let want = [("\"CreateTopics\"", "\"a\"", 0), ("\"DeleteTopics\"", "\"b\"", 41)];
    assert_eq!(read, want.map(|(a, n, c)| (a.to_owned(), n.to_owned(), c)), "{events:#?}");
}

#[test]
fn unanswered_requests_are_written_when_the_session_ends_and_excluded_tenants_never() {
    let (audit, dir) = trail();
    let create =
        CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default().with_name(topic("a"))]);
    let auditor = audit.session("acme", Some("alice"), ([127, 0, 0, 1], 1).into()).expect("audited");
    auditor.request(ApiKey::CreateTopics, 5, 7, &encode(&create, 5));
    drop(auditor);
    // A stranger (no certificate, no SASL) whose requests the broker never answered: nothing to write.
    let stranger = audit.session("acme", None, ([127, 0, 0, 1], 2).into()).expect("audited");
    for id in 0..100 {
        stranger.request(ApiKey::CreateTopics, 5, id, &encode(&create, 5));
    }
    drop(stranger);
    assert!(audit.session("quiet", None, ([127, 0, 0, 1], 1).into()).is_none(), "an excluded tenant");
    let events = written(&audit, &dir);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["data"]["note"], "no response: the connection closed first");
    assert!(events[0]["data"]["resources"][0]["outcome"].is_null());
}
