//! Guard against silent address leaks when the kafka-protocol crate is upgraded.
//!
//! Walks the generated response definitions of the kafka-protocol crate in use (its source, found through
//! `cargo metadata`), finds every field that can carry a host or port, and fails unless the proxy either
//! rewrites that API for every version the field exists in, or blocks the API. A new field or a new version
//! in a future crate release therefore fails this test until the proxy handles it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use kaas_proxy::kafka::apis::{policy, Policy};
use kafka_protocol::messages::ApiKey;

/// Fields named like addresses that are not broker endpoints, with the reason.
const NOT_ENDPOINTS: &[(&str, &str, &str)] = &[
    ("describe_acls_response.rs", "AclDescription.host", "ACL host pattern, not an endpoint"),
    ("delete_acls_response.rs", "DeleteAclsMatchingAcl.host", "ACL host pattern, not an endpoint"),
    // The address a group member connected from, as the broker saw it (the proxy's side of the upstream link):
    // informational, never dialled by clients, so not a broker endpoint.
    ("describe_groups_response.rs", "DescribedGroupMember.client_host", "member's source address"),
    ("consumer_group_describe_response.rs", "Member.client_host", "member's source address"),
    ("share_group_describe_response.rs", "Member.client_host", "member's source address"),
];

#[derive(Debug)]
struct Field {
    file: String,
    owner: String,
    name: String,
    versions: (i16, i16),
}

fn kafka_protocol_src() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let manifest = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "kafka-protocol")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("kafka-protocol is a dependency");
    PathBuf::from(manifest).parent().expect("crate dir").join("src/messages")
}

/// "Supported API versions: 3-13" → (3, 13); "13" → (13, 13); "none" → None.
fn parse_versions(doc: &str) -> Option<(i16, i16)> {
    let v = doc.split("Supported API versions:").nth(1)?.trim();
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => v.parse().ok().map(|x| (x, x)),
    }
}

fn address_fields() -> Vec<Field> {
    let mut found = Vec::new();
    let dir = kafka_protocol_src();
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("messages dir").flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !file.ends_with("_response.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable source");
        let (mut owner, mut versions) = (String::new(), None);
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("pub struct ") {
                owner = rest.trim_end_matches(" {").to_owned();
            } else if line.starts_with("/// Supported API versions:") {
                versions = parse_versions(line);
            } else if let Some(decl) = line.strip_prefix("pub ") {
                let Some((name, _ty)) = decl.split_once(':') else { continue };
                let addressy =
                    ["host", "port"].iter().any(|w| name == *w || name.ends_with(&format!("_{w}")));
                if addressy && !line.contains("fn ") {
                    if let Some(v) = versions {
                        found.push(Field {
                            file: file.clone(),
                            owner: owner.clone(),
                            name: name.to_owned(),
                            versions: v,
                        });
                    }
                }
                versions = None;
            }
        }
    }
    found
}

fn api_for(file: &str) -> Option<ApiKey> {
    let stem = file.strip_suffix("_response.rs")?;
    ApiKey::iter().find(|k| {
        let camel = format!("{k:?}");
        let mut snake = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        snake == stem
    })
}

#[test]
fn every_address_field_in_every_response_is_rewritten_or_blocked() {
    let fields = address_fields();
    assert!(
        fields.len() >= 20,
        "the walk found only {} fields; is the source layout unchanged?",
        fields.len()
    );
    let mut problems = Vec::new();
    let mut covered = BTreeSet::new();
    for f in &fields {
        let qualified = format!("{}.{}", f.owner, f.name);
        if NOT_ENDPOINTS.iter().any(|(file, q, _)| *file == f.file && *q == qualified) {
            continue;
        }
        let Some(api) = api_for(&f.file) else {
            problems.push(format!("{}: {qualified} belongs to no known API", f.file));
            continue;
        };
        match policy(api) {
            Policy::Blocked => {}
            Policy::Rewrite { from_version, decodable }
                if from_version <= f.versions.0 && decodable.max >= f.versions.1 =>
            {
                covered.insert(format!("{api:?}"));
            }
            other => problems.push(format!(
                "{api:?} {qualified} (v{}-v{}) carries an address but the proxy's policy is {other:?}",
                f.versions.0, f.versions.1
            )),
        }
    }
    assert!(problems.is_empty(), "address fields the proxy would leak:\n{}", problems.join("\n"));
    let expected: BTreeSet<String> = [
        "Metadata",
        "FindCoordinator",
        "DescribeCluster",
        "Produce",
        "Fetch",
        "ShareFetch",
        "ShareAcknowledge",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(covered, expected, "rewritten APIs found by the walk");
}

#[test]
fn version_doc_parsing() {
    assert_eq!(parse_versions("/// Supported API versions: 3-13"), Some((3, 13)));
    assert_eq!(parse_versions("/// Supported API versions: 13"), Some((13, 13)));
    assert_eq!(parse_versions("/// Supported API versions: none"), None);
    assert_eq!(api_for("find_coordinator_response.rs"), Some(ApiKey::FindCoordinator));
    assert_eq!(api_for("share_acknowledge_response.rs"), Some(ApiKey::ShareAcknowledge));
}
