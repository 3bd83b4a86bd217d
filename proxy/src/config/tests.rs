//! Configuration tests: a valid file with its defaults, and a file with one of every error, all reported at once.

use std::path::Path;

use super::*;

/// Writes a self-signed certificate and key under `dir` as `<name>.pem` / `<name>.key`.
fn write_cert(dir: &Path, name: &str) {
    let ck = rcgen::generate_simple_self_signed(vec!["*.kaas.localhost".to_string()]).expect("rcgen");
    std::fs::write(dir.join(format!("{name}.pem")), ck.cert.pem()).expect("write cert");
    std::fs::write(dir.join(format!("{name}.key")), ck.signing_key.serialize_pem()).expect("write key");
}

fn keys(errors: &[ConfigError]) -> Vec<&str> {
    errors.iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn valid_file_and_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    write_cert(dir.path(), "acme");
    let yaml = r#"
listen: "127.0.0.1:9092"
domain: kaas.localhost
tls: { cert: server.pem, key: server.key }
tenants:
  - name: acme
    bootstrap: ["127.0.0.1:19092", "kafka-1.acme.svc:9093"]
    upstream: { plaintext: true }
    tls: { cert: acme.pem, key: acme.key }
  - name: beta
    bootstrap: ["[::1]:29092"]
    upstream: { plaintext: true }
"#;
    let s = from_yaml(yaml, dir.path()).expect("valid");
    assert_eq!(s.listen, "127.0.0.1:9092".parse().expect("addr"));
    assert_eq!((s.advertised_port, s.max_frame_bytes), (9092, 100 * 1024 * 1024));
    assert_eq!(s.connect_timeout, Duration::from_secs(5));
    assert_eq!(s.tenants.len(), 2);
    assert!(s.tenants[0].cert.is_some() && s.tenants[1].cert.is_none());
    assert_eq!(s.tenants[0].bootstrap[1].to_string(), "kafka-1.acme.svc:9093");
}

#[test]
fn every_error_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "a");
    write_cert(dir.path(), "b");
    let yaml = r#"
listen: "localhost"
domain: "Bad_Domain"
advertised_port: 0
tls: { cert: a.pem, key: b.key }
tenants:
  - name: acme
    bootstrap: ["127.0.0.1:19092", "no-port"]
    upstream: { plaintext: true }
  - name: acme
    bootstrap: ["127.0.0.1:1"]
    upstream: { plaintext: true }
  - name: Not_A_Label
    bootstrap: []
    upstream: { plaintext: true }
    tls: { cert: missing.pem, key: a.key }
"#;
    let errors = from_yaml(yaml, dir.path()).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        [
            "listen",
            "domain",
            "advertised_port",
            "tls.key",
            "tenants[0].bootstrap[1]",
            "tenants[1].name",
            "tenants[2].name",
            "tenants[2].bootstrap",
            "tenants[2].tls.cert",
        ],
        "{errors:#?}"
    );
    let text = |k: &str| errors.iter().find(|e| e.key == k).map(|e| e.message.clone()).unwrap_or_default();
    assert!(text("tls.key").contains("does not match"), "{}", text("tls.key"));
    assert!(text("tenants[1].name").contains("duplicate"));
    assert!(text("tenants[2].tls.cert").contains("missing.pem"));
}

#[test]
fn unknown_and_mistyped_keys_all_reported() {
    let yaml = r#"
listen: "127.0.0.1:9092"
domain: kaas.localhost
max_frame_bytes: -1
idle_timeout: 5
tls: { cert: a.pem, key: a.key, chain: x }
tenants:
  - name: acme
    bootstrap: ["127.0.0.1:1"]
    upstream: { plaintext: true }
    boostrap: []
  - name: beta
    bootstrap: "not a list"
    upstream: { plaintext: true }
"#;
    let errors = from_yaml(yaml, Path::new(".")).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        ["max_frame_bytes", "idle_timeout", "tls", "tenants[0]", "tenants[1]"],
        "{errors:#?}"
    );
    assert!(errors[1].message.contains("unknown key"));
    assert!(errors[3].message.contains("boostrap"), "{}", errors[3].message);
}

/// Found by the `config` fuzz target: `? >` is a YAML mapping whose key is an empty folded scalar, and the
/// error named no key at all.
#[test]
fn unknown_keys_are_named_even_when_empty_or_odd() {
    for (yaml, key) in [("? >\n", "\"\""), ("\"a b\": 1\n", "\"a b\""), ("\"\\t\": 1\n", "\"\\t\"")] {
        let errors = from_yaml(yaml, Path::new(".")).expect_err("invalid");
        let unknown = errors.iter().find(|e| e.message.starts_with("unknown key")).expect("unknown key");
        assert_eq!(unknown.key, key, "{yaml:?}: {errors:#?}");
    }
}

#[test]
fn unknown_keys_do_not_hide_other_errors() {
    let yaml = "listen: nowhere\ndomain: kaas.localhost\ncolour: blue\ntls: { cert: none.pem, key: none.key }\ntenants: []\n";
    let errors = from_yaml(yaml, Path::new(".")).expect_err("invalid");
    assert_eq!(keys(&errors), ["colour", "listen", "tls.cert", "tenants"], "{errors:#?}");
}

#[test]
fn the_key_list_matches_the_schema() {
    let config = Config {
        listen: "127.0.0.1:9092".into(),
        domain: "kaas.localhost".into(),
        advertised_port: Some(1),
        max_frame_bytes: 1,
        connect_timeout_seconds: 1,
        hello_timeout_seconds: Some(1),
        handshake_timeout_seconds: Some(1),
        idle_timeout_seconds: Some(1),
        max_connections: Some(1),
        max_connections_per_tenant: Some(1),
        max_connections_per_ip: Some(1),
        max_handshakes_per_ip: Some(1),
        max_handshakes_per_tenant: Some(1),
        max_inflight_requests_per_connection: Some(1),
        reload_grace_seconds: Some(1),
        max_fetch_response_bytes: Some(1),
        admin_listen: Some("0.0.0.0:9100".into()),
        probe_listen: Some("0.0.0.0:9101".into()),
        proxy_protocol_trusted_cidrs: vec!["10.0.0.0/16".into()],
        tls: CertificateFiles { cert: "c".into(), key: "k".into() },
        tenants: vec![],
        tenants_file: Some("routes.yaml".into()),
        acme: Some(AcmeConfig {
            directory_url: "https://acme.test/dir".into(),
            contact: vec![],
            trust_roots: None,
            eab: None,
            challenge: ChallengeKind::TlsAlpn01,
            http01_listen: None,
            dns01_hook: None,
            store: acme::StoreConfig { dir: Some("acme".into()), kubernetes: None },
        }),
        usage: Some(UsageConfig {
            file: "usage.jsonl".into(),
            interval_seconds: 60,
            max_keys_per_tenant: 1,
            file_max_bytes: 4096,
            file_keep: 1,
            buffer_records: 1,
            replica: Some("r".into()),
        }),
        audit: Some(AuditConfig {
            file: "audit.jsonl".into(),
            file_max_bytes: 4096,
            file_keep: 1,
            buffer_records: 1,
            replica: Some("r".into()),
            exclude_tenants: vec!["t".into()],
        }),
    };
    let value = serde_norway::to_value(&config).expect("serialize");
    let mut fields: Vec<&str> = value.as_mapping().expect("map").keys().filter_map(|k| k.as_str()).collect();
    fields.sort_unstable();
    let mut listed = TOP_LEVEL_KEYS.to_vec();
    listed.sort_unstable();
    assert_eq!(fields, listed);
}

#[test]
fn the_usage_section_is_validated_all_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    let base =
        "listen: \"127.0.0.1:9092\"\ndomain: kaas.localhost\ntls: { cert: server.pem, key: server.key }\n\
                tenants:\n  - { name: acme, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n";
    let settings =
        from_yaml(&format!("{base}usage: {{ file: usage.jsonl, replica: proxy-0 }}\n"), dir.path())
            .expect("valid");
    let usage = settings.usage.expect("usage");
    assert_eq!(usage.file, dir.path().join("usage.jsonl"), "relative to the configuration's folder");
    assert_eq!(
        (
            usage.interval,
            usage.max_keys_per_tenant,
            usage.file_max_bytes,
            usage.file_keep,
            usage.buffer_records
        ),
        (Duration::from_secs(60), 10_000, 100 << 20, 5, 100_000),
        "defaults"
    );
    assert_eq!(usage.replica, "proxy-0");
    assert!(from_yaml(base, dir.path()).expect("valid").usage.is_none(), "off unless configured");
    let bad = "usage: { file: \"\", interval_seconds: 0, max_keys_per_tenant: 0, file_max_bytes: 10, \
               buffer_records: 0, replica: \"a\\nb\" }\n";
    let errors = from_yaml(&format!("{base}{bad}"), dir.path()).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        [
            "usage.interval_seconds",
            "usage.max_keys_per_tenant",
            "usage.file_max_bytes",
            "usage.buffer_records",
            "usage.file",
            "usage.replica"
        ],
        "{errors:#?}"
    );
    let huge = "usage: { file: u, buffer_records: 18446744073709551615, file_keep: 4294967295, \
                max_keys_per_tenant: 18446744073709551615 }\n";
    let errors = from_yaml(&format!("{base}{huge}"), dir.path()).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        ["usage.max_keys_per_tenant", "usage.buffer_records", "usage.file_keep"],
        "bounded above too: {errors:#?}"
    );
    let both = "usage: { file: records.jsonl }\naudit: { file: records.jsonl }\n";
    let errors = from_yaml(&format!("{base}{both}"), dir.path()).expect_err("one file for two writers");
    assert_eq!(keys(&errors), ["audit.file"], "{errors:#?}");
    let errors =
        from_yaml(&format!("{base}usage: {{ file: u, sink: kafka }}\n"), dir.path()).expect_err("invalid");
    assert!(errors[0].key == "usage" && errors[0].message.contains("unknown field `sink`"), "{errors:#?}");
}

#[test]
fn missing_required_and_unreadable_file() {
    let errors = from_yaml("domain: kaas.localhost\n", Path::new(".")).expect_err("invalid");
    assert_eq!(keys(&errors), ["listen", "tls", "tenants"]);
    let err = load(Path::new("/nonexistent/kaas-proxy.yaml")).expect_err("no file");
    assert!(err.to_string().contains("cannot read"), "{err}");
    assert!(from_yaml("- a list", Path::new(".")).is_err());
    assert!(from_yaml("listen: [", Path::new(".")).is_err());
}

#[test]
fn tenants_file_adds_tenants_and_names_its_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    std::fs::write(
        dir.path().join("routes.yaml"),
        "- name: beta\n  bootstrap: [\"kafka-bootstrap.beta.internal:9093\"]\n  upstream: { plaintext: true }\n- name: acme\n  bootstrap: [\"x\"]\n  upstream: { plaintext: true }\n",
    )
    .expect("write");
    let yaml = "listen: \"[::]:9092\"\ndomain: kaas.localhost\nadmin_listen: \"127.0.0.1:9100\"\n\
                tls: { cert: server.pem, key: server.key }\ntenants:\n  - { name: acme, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n\
                tenants_file: routes.yaml\n";
    // A broken entry of the route source is left out, named; the others are served.
    let s = from_yaml(yaml, dir.path()).expect("the other entries are served");
    assert_eq!(
        keys(&s.skipped),
        ["tenants_file[1].bootstrap[0]", "tenants_file[1].name"],
        "{:#?}",
        s.skipped
    );
    assert_eq!(s.tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["acme", "beta"]);
    // An entry whose files are not there yet (published before its Secret is mounted) likewise.
    std::fs::write(
        dir.path().join("routes.yaml"),
        "- name: beta\n  bootstrap: [\"b:1\"]\n  upstream: { plaintext: true }\n- name: gamma\n  bootstrap: [\"g:1\"]\n  upstream: { plaintext: true }\n  client_ca: later.pem\n",
    )
    .expect("write");
    let s = from_yaml(yaml, dir.path()).expect("the other entries are served");
    assert_eq!(keys(&s.skipped), ["tenants_file[1].client_ca"]);
    assert_eq!(s.tenants.len(), 2);
    // Errors outside the route source still refuse the whole file.
    let bad_inline = yaml.replace("127.0.0.1:1", "no-port");
    let errors = from_yaml(&bad_inline, dir.path()).expect_err("inline tenants are the operator's");
    assert_eq!(keys(&errors), ["tenants[0].bootstrap[0]", "tenants_file[1].client_ca"], "{errors:#?}");
    std::fs::write(
        dir.path().join("routes.yaml"),
        "- name: beta\n  bootstrap: [\"kafka-bootstrap.beta.internal:9093\"]\n  upstream: { plaintext: true }\n",
    )
    .expect("write");
    let s = from_yaml(yaml, dir.path()).expect("valid");
    assert_eq!(s.tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["acme", "beta"]);
    assert_eq!(s.admin_listen, Some("127.0.0.1:9100".parse().expect("addr")));
    // An empty route source is normal before any tenant is ready.
    std::fs::write(dir.path().join("routes.yaml"), "[]\n").expect("write");
    let only_file = "listen: \"[::]:9092\"\ndomain: kaas.localhost\ntls: { cert: server.pem, key: server.key }\ntenants_file: routes.yaml\n";
    assert!(from_yaml(only_file, dir.path()).expect("valid").tenants.is_empty());
    let missing = only_file.replace("routes.yaml", "nope.yaml");
    assert_eq!(keys(&from_yaml(&missing, dir.path()).expect_err("missing file")), ["tenants_file"]);
}

#[test]
fn client_ca_is_loaded_or_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    write_cert(dir.path(), "ca");
    std::fs::write(dir.path().join("empty.pem"), "").expect("write");
    let yaml = |ca: &str| {
        format!(
            "listen: \"[::]:9092\"\ndomain: kaas.localhost\ntls: {{ cert: server.pem, key: server.key }}\n\
             tenants:\n  - {{ name: acme, bootstrap: [\"127.0.0.1:1\"], upstream: {{ plaintext: true }}, client_ca: {ca} }}\n"
        )
    };
    let s = from_yaml(&yaml("ca.pem"), dir.path()).expect("valid");
    assert!(s.tenants[0].client_roots.is_some());
    for bad in ["missing.pem", "empty.pem"] {
        let errors = from_yaml(&yaml(bad), dir.path()).expect_err("bad client CA");
        assert_eq!(keys(&errors), ["tenants[0].client_ca"], "{bad}: {errors:#?}");
    }
}

/// Writes a CA under `dir` as `<name>.pem` / `<name>.key`.
fn write_ca(dir: &Path, name: &str) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write cert");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
}

#[test]
fn upstream_tls_and_identities_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    write_cert(dir.path(), "proxy-user");
    write_ca(dir.path(), "cluster-ca");
    write_ca(dir.path(), "clients-ca");
    let yaml = r#"
listen: "127.0.0.1:9092"
domain: kaas.localhost
tls: { cert: server.pem, key: server.key }
tenants:
  - name: plain
    bootstrap: ["127.0.0.1:19092"]
    upstream: { plaintext: true }
  - name: mine
    bootstrap: ["127.0.0.1:19093"]
    client_ca: clients-ca.pem
    upstream: { tls: { ca: cluster-ca.pem }, clients_ca_key: clients-ca.key }
  - name: shared
    bootstrap: ["127.0.0.1:19094"]
    upstream: { tls: { ca: cluster-ca.pem, server_name: kafka.internal }, cert: proxy-user.pem, key: proxy-user.key, one_principal_for_every_client: true }
  - name: sasl
    bootstrap: ["127.0.0.1:19095"]
    upstream: { tls: { ca: cluster-ca.pem } }
"#;
    let s = from_yaml(yaml, dir.path()).expect("valid");
    // Config loads the material; routes build the runtime TLS of it, as here.
    let built = |t: &TenantSettings| {
        t.upstream.as_deref().map(|u| crate::upstream::tls::UpstreamTls::from_settings(u).expect("builds"))
    };
    let identities: Vec<_> = s.tenants.iter().map(|t| built(t).map(|u| u.identity())).collect();
    use kaas_route::Identity;
    assert_eq!(identities, [None, Some(Some(Identity::Client)), Some(Some(Identity::Proxy)), Some(None)]);
    let shared = built(&s.tenants[2]).expect("tls");
    assert_eq!(
        shared.server_name("10.0.0.7").map(|n| n.to_str().into_owned()).ok(),
        Some("kafka.internal".into())
    );
    let sasl = built(&s.tenants[3]).expect("tls");
    assert_eq!(sasl.server_name("10.0.0.7").map(|n| n.to_str().into_owned()).ok(), Some("10.0.0.7".into()));
}

#[test]
fn upstream_errors_all_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    write_cert(dir.path(), "other");
    write_ca(dir.path(), "clients-ca");
    write_ca(dir.path(), "stranger-ca");
    let yaml = r#"
listen: "127.0.0.1:9092"
domain: kaas.localhost
tls: { cert: server.pem, key: server.key }
tenants:
  - name: a
    bootstrap: ["127.0.0.1:1"]
    client_ca: clients-ca.pem
    upstream: { tls: { ca: missing.pem }, clients_ca_key: stranger-ca.key }
  - name: b
    bootstrap: ["127.0.0.1:1"]
    upstream: { tls: { ca: clients-ca.pem }, cert: server.pem, key: other.key, one_principal_for_every_client: true }
  - name: c
    bootstrap: ["127.0.0.1:1"]
    upstream: { identity: client, tls: { ca: clients-ca.pem, sni: x } }
  - name: d
    bootstrap: ["127.0.0.1:1"]
    client_ca: clients-ca.pem
    upstream: { tls: { ca: clients-ca.pem }, clients_ca_intermediate: { cert: stranger-ca.pem, key: stranger-ca.key } }
"#;
    let errors = from_yaml(yaml, dir.path()).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        [
            "tenants[2]",
            "tenants[0].upstream.tls.ca",
            "tenants[0].upstream.clients_ca_key",
            "tenants[1].upstream.key",
            "tenants[3].upstream.clients_ca_intermediate"
        ],
        "{errors:#?}"
    );
    let text = format!("{errors:?}");
    assert!(text.contains("missing.pem") && text.contains("no certificate in"), "{text}");
    assert!(text.contains("stranger-ca.pem: refused as the clients CA intermediate"), "{text}");
}

#[test]
fn limits_default_and_every_bad_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    let base = dir.path();
    let minimal = |extra: &str| {
        format!(
            "listen: 127.0.0.1:9092\ndomain: kaas.localhost\ntls: {{ cert: server.pem, key: server.key }}\n\
             tenants: [{{ name: acme, bootstrap: [\"127.0.0.1:1\"], upstream: {{ plaintext: true }} }}]\n{extra}"
        )
    };
    let settings = from_yaml(&minimal(""), base).expect("valid");
    assert_eq!(settings.handshake_timeout, Duration::from_secs(10));
    assert_eq!(settings.idle_timeout, Duration::from_secs(600));
    assert_eq!(settings.max_connections, 20_000);
    assert_eq!(settings.max_connections_per_tenant, 5_000);
    assert_eq!(settings.max_inflight_requests_per_connection, 1_024);
    assert_eq!(
        (settings.hello_timeout, settings.handshake_timeout),
        (Duration::from_secs(3), Duration::from_secs(10))
    );
    assert_eq!((settings.max_handshakes_per_ip, settings.max_handshakes_per_tenant), (32, 512));
    assert_eq!(
        (settings.reload_grace, settings.max_fetch_response_bytes),
        (Duration::from_secs(60), 8 << 20)
    );
    let set = "handshake_timeout_seconds: 3\nidle_timeout_seconds: 30\nmax_connections: 7\n\
               max_connections_per_tenant: 2\nmax_inflight_requests_per_connection: 1\n";
    let settings = from_yaml(&minimal(set), base).expect("valid");
    assert_eq!(
        (settings.handshake_timeout, settings.idle_timeout),
        (Duration::from_secs(3), Duration::from_secs(30))
    );
    assert_eq!(
        (
            settings.max_connections,
            settings.max_connections_per_tenant,
            settings.max_inflight_requests_per_connection
        ),
        (7, 2, 1)
    );
    let bad = "handshake_timeout_seconds: 0\nidle_timeout_seconds: -1\nmax_connections: 0\n\
               max_connections_per_tenant: 99999999999\nmax_inflight_requests_per_connection: many\n";
    let errors = from_yaml(&minimal(bad), base).expect_err("invalid");
    assert_eq!(
        keys(&errors),
        [
            "idle_timeout_seconds",
            "max_inflight_requests_per_connection",
            "handshake_timeout_seconds",
            "max_connections",
            "max_connections_per_tenant",
        ],
        "{errors:#?}"
    );
    assert!(errors[2].message.contains("between 1 and 300"), "{}", errors[2].message);
}

/// A file with an `acme` section and the tenants given, certificates written under `dir`.
fn acme_yaml(dir: &Path, acme: &str, tenants: &str) -> String {
    write_cert(dir, "server");
    format!("listen: \"127.0.0.1:9092\"\ndomain: kaas.localhost\ntls: {{ cert: server.pem, key: server.key }}\n{acme}tenants:\n{tenants}")
}

#[test]
fn acme_section_and_acme_tenants() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "roots");
    let acme = "acme:\n  directory_url: https://localhost:14000/dir\n  contact: [\"mailto:ops@example.com\"]\n  \
                trust_roots: roots.pem\n  eab: { kid: k1, hmac_key: \"c2VjcmV0LWtleQ\" }\n  challenge: tls-alpn-01\n  \
                store: { dir: acme-state }\n";
    let tenants =
        "  - { name: auto, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true }, tls: { acme: true, broker_ids: [111] } }\n  \
                   - { name: dflt, bootstrap: [\"127.0.0.1:2\"], upstream: { plaintext: true }, tls: { acme: true } }\n  \
                   - { name: plain, bootstrap: [\"127.0.0.1:3\"], upstream: { plaintext: true } }\n";
    let s = from_yaml(&acme_yaml(dir.path(), acme, tenants), dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    let settings = s.acme.as_deref().expect("acme settings");
    assert_eq!(settings.store, StoreSettings::Dir(dir.path().join("acme-state")));
    assert_eq!(settings.trust_roots.as_deref(), Some(dir.path().join("roots.pem").as_path()));
    assert_eq!(settings.eab, Some(("k1".to_string(), b"secret-key".to_vec())));
    assert_eq!((settings.challenge, settings.http01_listen), (ChallengeKind::TlsAlpn01, None));
    let ids: Vec<_> = s.tenants.iter().map(|t| t.acme_broker_ids.clone()).collect();
    assert_eq!(ids, [Some(vec![111]), Some(vec![0, 1, 2]), None]);
    // ACME tenants' expiry comes from their issued certificates, not the default one.
    let expiring: Vec<_> = s.certificate_expiry().into_iter().map(|(t, _)| t).collect();
    assert_eq!(expiring, ["plain"]);
}

#[test]
fn acme_errors_all_named_at_once() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "acme:\n  directory_url: http://insecure\n  contact: [ops@example.com, \"mailto:\"]\n  \
             trust_roots: missing.pem\n  eab: { kid: \"\", hmac_key: \"not base64!\" }\n  \
             http01_listen: \"0.0.0.0:80\"\n  dns01_hook: [x]\n  \
             store: { kubernetes: { namespace: Kaas_System, kubeconfig: missing.yaml } }\n",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true }, tls: { acme: true } }\n",
            &[
                "acme.directory_url",
                "acme.contact[0]",
                "acme.contact[1]",
                "acme.trust_roots",
                "acme.eab.kid",
                "acme.eab.hmac_key",
                "acme.http01_listen",
                "acme.dns01_hook",
                "acme.store.kubernetes.namespace",
                "acme.store.kubernetes.kubeconfig",
            ],
        ),
        (
            "acme: { directory_url: \"https://a/dir\", store: { dir: s, kubernetes: { namespace: k } } }\n",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n",
            &["acme.store"],
        ),
        (
            "acme: { directory_url: \"https://a/dir\", challenge: http-01, http01_listen: nowhere, store: { dir: s } }\n",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n",
            &["acme.http01_listen"],
        ),
        (
            "acme: { directory_url: \"https://a/dir\", challenge: http-01, store: { dir: s } }\n",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n",
            &["acme.http01_listen"],
        ),
        (
            "acme: { directory_url: \"https://a/dir\", challenge: dns-01, dns01_hook: [], store: { dir: s } }\n",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n",
            &["acme.dns01_hook"],
        ),
        (
            "acme: { directory_url: \"https://a/dir\", challenge: dns-01, store: { dir: s } }\n",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n",
            &["acme.dns01_hook"],
        ),
        (
            "acme: { directory_url: \"https://a/dir\", store: { dir: server.pem } }\n",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n",
            &["acme.store.dir"],
        ),
        ("acme: { directory_url: \"https://a/dir\", store: { dir: s }, renew: x }\n", "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n", &["acme"]),
        ("acme: { directory_url: \"https://a/dir\", store: {} }\n", "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n", &["acme.store"]),
        (
            "",
            "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true }, tls: { acme: true, cert: a.pem } }\n  \
             - { name: b, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true }, tls: { broker_ids: [1] } }\n",
            &["tenants[0].tls.cert", "tenants[0].tls.acme", "tenants[1].tls.cert", "tenants[1].tls.key", "tenants[1].tls.broker_ids"],
        ),
    ];
    for (acme, tenants, want) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let errors = from_yaml(&acme_yaml(dir.path(), acme, tenants), dir.path()).expect_err("invalid");
        assert_eq!(keys(&errors), *want, "{acme}{tenants}: {errors:#?}");
    }
}

#[test]
fn acme_http01_needs_its_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acme = "acme: { directory_url: \"https://a/dir\", challenge: http-01, http01_listen: \"[::]:80\", store: { dir: s } }\n";
    let tenants =
        "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true }, tls: { acme: true } }\n";
    let s = from_yaml(&acme_yaml(dir.path(), acme, tenants), dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    let settings = s.acme.as_deref().expect("acme");
    assert_eq!(settings.challenge, ChallengeKind::Http01);
    assert_eq!(settings.http01_listen, Some("[::]:80".parse().expect("addr")));
}

#[test]
fn acme_dns01_hook_resolves_relative_programs() {
    let cases = [
        ("[scripts/set-txt, --zone, z]", Some(vec!["BASE/scripts/set-txt", "--zone", "z"])),
        ("[set-txt]", Some(vec!["set-txt"])),
        ("[/usr/bin/set-txt]", Some(vec!["/usr/bin/set-txt"])),
    ];
    for (hook, want) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let acme = format!("acme: {{ directory_url: \"https://a/dir\", challenge: dns-01, dns01_hook: {hook}, store: {{ dir: s }} }}\n");
        let tenants = "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true }, tls: { acme: true } }\n";
        let s = from_yaml(&acme_yaml(dir.path(), &acme, tenants), dir.path())
            .unwrap_or_else(|e| panic!("{e:#?}"));
        let base = dir.path().to_string_lossy().into_owned();
        let want: Option<Vec<String>> = want.map(|w| w.iter().map(|a| a.replace("BASE", &base)).collect());
        assert_eq!(s.acme.as_deref().expect("acme").dns01_hook, want, "{hook}");
    }
}

/// TLS to the brokers is the default a person opts out of by name: a tenant that says nothing about its
/// upstream is refused, and the error says both ways out.
#[test]
fn an_upstream_path_is_required_and_plaintext_is_said_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    write_cert(dir.path(), "ca");
    let yaml = |tenant: &str| {
        format!("listen: \"127.0.0.1:9092\"\ndomain: kaas.localhost\ntls: {{ cert: server.pem, key: server.key }}\ntenants:\n  - {tenant}\n")
    };
    let silent =
        from_yaml(&yaml("{ name: acme, bootstrap: [\"127.0.0.1:1\"], client_ca: ca.pem }"), dir.path())
            .expect_err("no upstream");
    assert_eq!(keys(&silent), ["tenants[0].upstream"], "{silent:#?}");
    assert!(
        silent[0].message.contains("plaintext: true") && silent[0].message.contains("tls"),
        "{}",
        silent[0].message
    );
    let empty = from_yaml(&yaml("{ name: acme, bootstrap: [\"127.0.0.1:1\"], upstream: {} }"), dir.path())
        .expect_err("empty upstream");
    assert_eq!(keys(&empty), ["tenants[0].upstream.tls"], "{empty:#?}");
    let plain =
        "{ name: acme, bootstrap: [\"127.0.0.1:1\"], client_ca: ca.pem, upstream: { plaintext: true } }";
    let s = from_yaml(&yaml(plain), dir.path()).expect("the named opt-in");
    assert!(s.tenants[0].upstream.is_none(), "plaintext: no upstream TLS settings");
    let tls = "{ name: acme, bootstrap: [\"127.0.0.1:1\"], upstream: { tls: { ca: ca.pem } } }";
    assert!(from_yaml(&yaml(tls), dir.path()).expect("TLS upstream").tenants[0].upstream.is_some());
}

/// The EAB key can live in a file (a mounted Secret) instead of the configuration; exactly one of the two.
#[test]
fn acme_eab_key_from_a_file_or_inline_never_both() {
    let tenants =
        "  - { name: a, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true }, tls: { acme: true } }\n";
    let acme = |eab: &str| {
        format!("acme: {{ directory_url: \"https://a/dir\", eab: {eab}, store: {{ dir: s }} }}\n")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("eab.key"), "c2VjcmV0LWtleQ\n").expect("write");
    let s =
        from_yaml(&acme_yaml(dir.path(), &acme("{ kid: k1, hmac_key_file: eab.key }"), tenants), dir.path())
            .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(s.acme.as_deref().expect("acme").eab, Some(("k1".to_string(), b"secret-key".to_vec())));
    let cases: &[(&str, &[&str])] = &[
        ("{ kid: k1, hmac_key: c2VjcmV0LWtleQ, hmac_key_file: eab.key }", &["acme.eab"]),
        ("{ kid: k1 }", &["acme.eab"]),
        ("{ kid: k1, hmac_key_file: missing.key }", &["acme.eab.hmac_key_file"]),
    ];
    for (eab, want) in cases {
        let errors = from_yaml(&acme_yaml(dir.path(), &acme(eab), tenants), dir.path()).expect_err("invalid");
        assert_eq!(keys(&errors), *want, "{eab}: {errors:#?}");
    }
}

/// A reload cannot move the listener, change limits or start a sink: the keys a changed file changes in vain
/// are named, and nothing else (tenants, the domain, the grace period apply at a reload).
#[test]
fn the_start_only_settings_a_file_changes_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "server");
    let base =
        "listen: \"127.0.0.1:9092\"\ndomain: kaas.localhost\ntls: { cert: server.pem, key: server.key }\n";
    let tenant = |name: &str| {
        format!("tenants: [{{ name: {name}, bootstrap: [\"127.0.0.1:19092\"], upstream: {{ plaintext: true }} }}]\n")
    };
    let load = |extra: &str| from_yaml(&format!("{base}{extra}"), dir.path()).expect("valid").start_only();
    let started = load(&tenant("acme"));
    let reloadable = load(&format!("reload_grace_seconds: 7\n{}", tenant("beta")));
    assert_eq!(changed_since_start(&started, &reloadable), Vec::<&str>::new());
    let changed = load(&format!(
        "max_connections: 7\nidle_timeout_seconds: 9\nusage: {{ file: u.jsonl }}\n{}",
        tenant("acme")
    ));
    assert_eq!(changed_since_start(&started, &changed), ["idle_timeout_seconds", "max_connections", "usage"]);
}
