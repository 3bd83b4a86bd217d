//! Writes the generated seed corpora of the fuzz targets: `fuzz_seeds CORPUS_DIR REPO_DIR` writes
//! `CORPUS_DIR/<target>/gen-*` (overwriting earlier ones; what libFuzzer adds is left alone). Seeds are valid
//! inputs, each in its target's input layout: broker responses of every rewritten API and version (as the unit
//! tests generate them), request frames of every API and version kafka-protocol encodes, ApiVersions responses,
//! ClientHellos from rustls' own client, and the configuration examples of docs/operate/ and the config tests; and
//! the frames Apache Kafka wrote in the end-to-end tests (`proxy/fuzz/captured/`).
//! Not a fuzz target; scripts/fuzz.sh runs it before fuzzing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kaas_proxy::kafka::codec::encode_request;
use kaas_proxy::testkit::{encode, random_response, rewritten_versions, Rng};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request;

struct Out {
    root: PathBuf,
    written: usize,
}

impl Out {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join(format!("gen-{name}"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.written += 1;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, corpus, repo] = &args[..] else {
        eprintln!("usage: fuzz_seeds CORPUS_DIR REPO_DIR");
        std::process::exit(2);
    };
    let mut out = Out { root: PathBuf::from(corpus), written: 0 };
    broker_responses(&mut out);
    let requests = request_frames();
    for (name, frame) in &requests {
        out.write("request_header", name, &frame[4..]);
    }
    frame_streams(&mut out, &requests);
    api_versions(&mut out);
    client_hellos(&mut out);
    configurations(&mut out, Path::new(repo));
    captured(&mut out, &Path::new(repo).join("proxy/fuzz/captured"));
    usage_and_audit(&mut out);
    println!("fuzz_seeds: {} seeds under {corpus}", out.written);
}

/// Frames Apache Kafka itself wrote, captured by the `kafka_wire` end-to-end test (`KAAS_CAPTURE_SEEDS`) and
/// committed in each target's layout under `proxy/fuzz/captured/<target>/`: copied as they are.
fn captured(out: &mut Out, dir: &Path) {
    let Ok(targets) = std::fs::read_dir(dir) else { return };
    for target in targets.flatten() {
        let target_name = target.file_name().to_string_lossy().into_owned();
        for seed in std::fs::read_dir(target.path()).into_iter().flatten().flatten() {
            let bytes =
                std::fs::read(seed.path()).unwrap_or_else(|e| panic!("{}: {e}", seed.path().display()));
            out.write(&target_name, &format!("captured-{}", seed.file_name().to_string_lossy()), &bytes);
        }
    }
}

/// `broker_response`: a byte picking the (api, version) of `rewritten_versions`, then a valid body; past the end
/// of that list, the byte picks ApiVersions at `byte % 5`.
fn broker_responses(out: &mut Out) {
    let mut rng = Rng::new(1);
    let cases = rewritten_versions();
    for (index, (api, version)) in cases.iter().enumerate() {
        for n in 0..4 {
            let mut seed = vec![u8::try_from(index).expect("fewer than 256 cases")];
            seed.extend_from_slice(&random_response(*api, *version, &mut rng));
            out.write("broker_response", &format!("{api:?}-v{version}-{n}"), &seed);
        }
    }
    for version in 0..=4i16 {
        let pick = (cases.len()..256).find(|i| i % 5 == version as usize).expect("a free selector byte");
        let mut seed = vec![pick as u8];
        seed.extend_from_slice(&encode(&every_api_response(), version));
        out.write("broker_response", &format!("ApiVersions-v{version}"), &seed);
    }
}

/// An ApiVersions response offering every API kafka-protocol knows at every version it knows.
fn every_api_response() -> ApiVersionsResponse {
    let keys = ApiKey::iter()
        .map(|api| {
            let r = api.valid_versions();
            ApiVersion::default().with_api_key(api as i16).with_min_version(r.min).with_max_version(r.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(keys)
}

/// Whole request frames (length prefix included), default messages of every API and version, plus the bodies
/// the proxy reads: Produce `acks` and Fetch `max_bytes`.
fn request_frames() -> Vec<(String, Vec<u8>)> {
    let mut frames = Vec::new();
    fn all<R: Request + Default>(frames: &mut Vec<(String, Vec<u8>)>) {
        let api = ApiKey::try_from(R::KEY).map(|a| format!("{a:?}")).unwrap_or_else(|_| R::KEY.to_string());
        for version in R::VERSIONS.min..=R::VERSIONS.max {
            if let Ok(frame) = encode_request(7, version, "fuzz-seed", &R::default()) {
                frames.push((format!("{api}-v{version}"), frame.to_vec()));
            }
        }
    }
    macro_rules! each {
        ($($t:ident),* $(,)?) => { $( all::<$t>(&mut frames); )* };
    }
    each!(
        ProduceRequest,
        FetchRequest,
        ListOffsetsRequest,
        MetadataRequest,
        OffsetCommitRequest,
        OffsetFetchRequest,
        FindCoordinatorRequest,
        JoinGroupRequest,
        HeartbeatRequest,
        LeaveGroupRequest,
        SyncGroupRequest,
        DescribeGroupsRequest,
        ListGroupsRequest,
        SaslHandshakeRequest,
        ApiVersionsRequest,
        CreateTopicsRequest,
        DeleteTopicsRequest,
        DeleteRecordsRequest,
        InitProducerIdRequest,
        OffsetForLeaderEpochRequest,
        AddPartitionsToTxnRequest,
        AddOffsetsToTxnRequest,
        EndTxnRequest,
        WriteTxnMarkersRequest,
        TxnOffsetCommitRequest,
        DescribeAclsRequest,
        CreateAclsRequest,
        DeleteAclsRequest,
        DescribeConfigsRequest,
        AlterConfigsRequest,
        AlterReplicaLogDirsRequest,
        DescribeLogDirsRequest,
        SaslAuthenticateRequest,
        CreatePartitionsRequest,
        CreateDelegationTokenRequest,
        RenewDelegationTokenRequest,
        ExpireDelegationTokenRequest,
        DescribeDelegationTokenRequest,
        DeleteGroupsRequest,
        ElectLeadersRequest,
        IncrementalAlterConfigsRequest,
        AlterPartitionReassignmentsRequest,
        ListPartitionReassignmentsRequest,
        OffsetDeleteRequest,
        DescribeClientQuotasRequest,
        AlterClientQuotasRequest,
        DescribeUserScramCredentialsRequest,
        AlterUserScramCredentialsRequest,
        VoteRequest,
        BeginQuorumEpochRequest,
        EndQuorumEpochRequest,
        DescribeQuorumRequest,
        AlterPartitionRequest,
        UpdateFeaturesRequest,
        EnvelopeRequest,
        FetchSnapshotRequest,
        DescribeClusterRequest,
        DescribeProducersRequest,
        BrokerRegistrationRequest,
        BrokerHeartbeatRequest,
        UnregisterBrokerRequest,
        DescribeTransactionsRequest,
        ListTransactionsRequest,
        AllocateProducerIdsRequest,
        ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribeRequest,
        ControllerRegistrationRequest,
        GetTelemetrySubscriptionsRequest,
        PushTelemetryRequest,
        AssignReplicasToDirsRequest,
        ListConfigResourcesRequest,
        DescribeTopicPartitionsRequest,
        ShareGroupHeartbeatRequest,
        ShareGroupDescribeRequest,
        ShareFetchRequest,
        ShareAcknowledgeRequest,
        AddRaftVoterRequest,
        RemoveRaftVoterRequest,
        UpdateRaftVoterRequest,
        InitializeShareGroupStateRequest,
        ReadShareGroupStateRequest,
        WriteShareGroupStateRequest,
        DeleteShareGroupStateRequest,
        ReadShareGroupStateSummaryRequest,
        DescribeShareGroupOffsetsRequest,
        AlterShareGroupOffsetsRequest,
        DeleteShareGroupOffsetsRequest,
    );
    for version in [3, 9, 11, 13] {
        for acks in [0i16, 1, -1] {
            let r = ProduceRequest::default().with_acks(acks).with_transactional_id(None);
            if let Ok(frame) = encode_request(8, version, "fuzz-seed", &r) {
                frames.push((format!("Produce-v{version}-acks{acks}"), frame.to_vec()));
            }
        }
    }
    for version in [3, 4, 12, 14, 15, 17, 18] {
        let r = FetchRequest::default().with_max_wait_ms(500).with_min_bytes(1).with_max_bytes(200 << 20);
        if let Ok(frame) = encode_request(9, version, "fuzz-seed", &r) {
            frames.push((format!("Fetch-v{version}-200MiB"), frame.to_vec()));
        }
    }
    frames
}

/// `frame_codec`: `[limit][keep][n][n chunk sizes][stream]` over runs of request frames, and hostile prefixes.
fn frame_streams(out: &mut Out, requests: &[(String, Vec<u8>)]) {
    let pick = |names: &[&str]| -> Vec<u8> {
        names
            .iter()
            .flat_map(|n| {
                requests.iter().find(|(name, _)| name == n).map(|(_, f)| f.clone()).unwrap_or_default()
            })
            .collect()
    };
    let session =
        pick(&["ApiVersions-v3", "Metadata-v12", "Produce-v9-acks1", "Fetch-v15-200MiB", "Metadata-v1"]);
    let control: [(&str, [u8; 2], &[u8]); 5] = [
        ("whole", [16, 0], &[]),
        ("held", [16, 1], &[]),
        ("bytewise", [16, 0], &[0]),
        ("stalls", [12, 1], &[0, 3, 255, 1]),
        ("small-limit", [6, 0], &[2, 40]),
    ];
    for (name, [limit, keep], sizes) in control {
        let mut seed = vec![limit, keep, sizes.len() as u8];
        seed.extend_from_slice(sizes);
        seed.extend_from_slice(&session);
        out.write("frame_codec", name, &seed);
    }
    let hostile: [(&str, &[u8]); 4] = [
        ("negative", &[0xff, 0xff, 0xff, 0xfb, 1, 2]),
        ("too-large", &[0x7f, 0xff, 0xff, 0xff]),
        ("truncated", &[0, 0, 1, 0, 1, 2, 3]),
        ("empty-frames", &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9]),
    ];
    // A 16 MiB limit and a prefix claiming most of it, with little behind it: the buffer must not follow the claim.
    let mut seed = vec![24, 0, 0, 0, 0xf0, 0, 0];
    seed.extend_from_slice(&session);
    out.write("frame_codec", "claims-15MiB", &seed);
    for (name, tail) in hostile {
        let mut seed = vec![16, 0, 1, 2];
        seed.extend_from_slice(&pick(&["Metadata-v12"]));
        seed.extend_from_slice(tail);
        out.write("frame_codec", name, &seed);
    }
}

/// `api_versions_cap`: `[version + 1]` then a body, for every version, with every API offered; and an error.
fn api_versions(out: &mut Out) {
    for version in 0..=4i16 {
        let mut seed = vec![(version + 1) as u8];
        seed.extend_from_slice(&encode(&every_api_response(), version));
        out.write("api_versions_cap", &format!("every-api-v{version}"), &seed);
    }
    let mut seed = vec![1];
    seed.extend_from_slice(&encode(&ApiVersionsResponse::default().with_error_code(35), 0));
    out.write("api_versions_cap", "unsupported-version-v0", &seed);
}

/// `client_hello_sni`: ClientHellos rustls' client sends (TLS 1.3 and 1.2, with and without ALPN, names inside
/// and outside the domain, an IP address with no SNI), and server names as bare text.
fn client_hellos(out: &mut Out) {
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = |tls12_only: bool, alpn: bool| {
        let builder = ClientConfig::builder_with_provider(provider.clone());
        let builder = match tls12_only {
            true => builder.with_protocol_versions(&[&rustls::version::TLS12]),
            false => builder.with_safe_default_protocol_versions(),
        };
        let mut c = builder
            .expect("protocol versions")
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        if alpn {
            c.alpn_protocols = vec![b"kafka".to_vec(), b"h2".to_vec()];
        }
        Arc::new(c)
    };
    let cases = [
        ("tls13-bootstrap", "acme.kaas.localhost", false, false),
        ("tls13-broker", "b1.acme.kaas.localhost", false, true),
        ("tls13-broker-max", "b2147483647.acme.kaas.localhost", false, false),
        ("tls13-outside", "acme.example.com", false, false),
        ("tls12-broker", "b0.acme.kaas.localhost", true, false),
        ("tls12-alpn", "acme.kaas.localhost", true, true),
        ("ip-no-sni", "10.1.2.3", false, false),
    ];
    for (name, server, tls12_only, alpn) in cases {
        let server = ServerName::try_from(server.to_owned()).expect("server name");
        let mut conn = ClientConnection::new(config(tls12_only, alpn), server).expect("client");
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).expect("write to a Vec");
        }
        out.write("client_hello_sni", name, &hello);
    }
    for (i, name) in
        ["acme.kaas.localhost", "B7.Acme.KAAS.localhost.", "b007.acme.kaas.localhost", "é.kaas.localhost"]
            .iter()
            .enumerate()
    {
        out.write("client_hello_sni", &format!("name-{i}"), name.as_bytes());
    }
}

/// `config`: `[0]` then a configuration file (the documentation's examples, the config tests' files; `/`, `\`
/// and `%`, which the target skips, become `_`), and `[1]` then `rules \0 subject` (Kafka's principal mapping examples).
fn configurations(out: &mut Out, repo: &Path) {
    let mut files = Vec::new();
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    // The documentation's configuration files: its blocks marked `kaas-proxy-config` (docs/develop/testing.md).
    for doc in ["docs/operate/configuration.md", "docs/operate/acme.md"] {
        let text = read(doc);
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("```yaml kaas-proxy-config") {
                let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim_start() != "```").collect();
                files.push(block.join("\n"));
            }
        }
    }
    let tests = read("proxy/src/config/tests.rs");
    let mut rest = tests.as_str();
    while let Some(start) = rest.find("r#\"") {
        let Some(len) = rest[start + 3..].find("\"#") else { break };
        files.push(rest[start + 3..start + 3 + len].to_owned());
        rest = &rest[start + 3 + len..];
    }
    for (i, file) in files.iter().enumerate() {
        let mut seed = vec![0];
        seed.extend(file.replace(['/', '\\', '%'], "_").bytes());
        out.write("config", &format!("file-{i}"), &seed);
    }
    let rules = [
        ("DEFAULT", "CN=alice,OU=payments,O=acme"),
        ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=duke,OU=ServiceUsers,O=Org"),
        ("RULE:^CN=(.*?),OU=(.*?)$/$1@$2/L", "CN=Duke,OU=JavaSoft"),
        ("RULE:^CN=(.*?),OU=(.*?)$/$1@$2/U", "CN=Duke,OU=JavaSoft"),
        ("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT", "OU=x,CN=Kafka.Client,O=y"),
        ("RULE:^CN=([^,]*)$/users\\/$1/", "CN=carol"),
        ("RULE:^CN=([^,]*)$/$1svc/\n,\tDEFAULT", "CN=carol"),
    ];
    for (i, (rules, subject)) in rules.iter().enumerate() {
        let mut seed = vec![1];
        seed.extend_from_slice(rules.as_bytes());
        seed.push(0);
        seed.extend_from_slice(subject.as_bytes());
        out.write("config", &format!("rules-{i}"), &seed);
    }
}

/// `usage_and_audit`'s layout, `[kind, api, version]` then the body: Produce requests and Fetch responses of
/// every version, each with real record batches.
fn usage_and_audit(out: &mut Out) {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::StrBytes;
    let value = bytes::Bytes::from_static(b"value");
    let batch = kaas_proxy::testkit::record_batch(3, &value, 0).expect("a record batch");
    let orders = || TopicName(StrBytes::from_static_str("orders"));
    for version in 3..=13i16 {
        let partition = PartitionProduceData::default().with_records(Some(batch.clone()));
        let topic = TopicProduceData::default().with_name(orders()).with_partition_data(vec![partition]);
        let body = encode(&ProduceRequest::default().with_acks(-1).with_topic_data(vec![topic]), version);
        out.write(
            "usage_and_audit",
            &format!("produce-v{version}"),
            &[&[0, 0, version as u8][..], &body].concat(),
        );
    }
    for version in 4..=18i16 {
        let partition = PartitionData::default().with_records(Some(batch.clone()));
        let topic = FetchableTopicResponse::default().with_topic(orders()).with_partitions(vec![partition]);
        let body = encode(&FetchResponse::default().with_responses(vec![topic]), version);
        out.write(
            "usage_and_audit",
            &format!("fetch-v{version}"),
            &[&[1, 0, version as u8][..], &body].concat(),
        );
    }
}
