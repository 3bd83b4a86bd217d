use std::time::Duration;

use super::*;

fn material(tag: &str) -> Material {
    let b = |what: &str| ByteString(format!("{tag}-{what}").into_bytes());
    Material {
        cluster_ca: b("cluster"),
        clients_ca: b("clients"),
        intermediate_cert: b("intermediate"),
        intermediate_key: b("key"),
    }
}

/// A CA as Strimzi keeps one (`O=io.strimzi, CN=<cn>`): PEM certificate and key.
fn ca(cn: &str) -> (ByteString, ByteString) {
    let (cert, key) = kaas_testsupport::certs::strimzi_ca(cn).expect("CA");
    (ByteString(cert.into_bytes()), ByteString(key.into_bytes()))
}

fn strimzi() -> Strimzi {
    let (cluster_ca, _) = ca("cluster-ca v0");
    let (clients_ca, clients_ca_key) = ca("clients-ca v0");
    Strimzi { cluster_ca, clients_ca, clients_ca_key }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
}

#[test]
fn merge_touches_one_tenant_and_says_when_it_changed() {
    let mut data = BTreeMap::new();
    assert!(merge(&mut data, "acme", Some(&material("v1"))));
    assert!(merge(&mut data, "beta", Some(&material("b1"))));
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "acme.clients-ca-intermediate.crt",
            "acme.clients-ca-intermediate.key",
            "acme.clients-ca.crt",
            "acme.cluster-ca.crt",
            "beta.clients-ca-intermediate.crt",
            "beta.clients-ca-intermediate.key",
            "beta.clients-ca.crt",
            "beta.cluster-ca.crt"
        ]
    );
    assert!(!merge(&mut data, "acme", Some(&material("v1"))), "same material: no write");
    assert!(merge(&mut data, "acme", Some(&material("v2"))), "a rotated CA is a change");
    assert_eq!(data["acme.cluster-ca.crt"].0, b"v2-cluster");
    assert!(merge(&mut data, "acme", None));
    assert!(!merge(&mut data, "acme", None));
    assert_eq!(data.len(), 4, "beta untouched");
    assert_eq!(data["beta.clients-ca-intermediate.key"].0, b"b1-key");
}

#[test]
fn the_clients_ca_key_an_earlier_version_copied_leaves_the_proxys_secret_at_the_next_write() {
    let mut data = BTreeMap::new();
    data.insert("acme.clients-ca.key".to_owned(), ByteString(b"the CA's key".to_vec()));
    data.insert("beta.clients-ca.key".to_owned(), ByteString(b"beta's".to_vec()));
    assert!(merge(&mut data, "acme", Some(&material("v1"))));
    assert!(!data.contains_key("acme.clients-ca.key"));
    assert!(data.contains_key("beta.clients-ca.key"), "beta's goes at beta's write");
}

#[test]
fn the_proxy_gets_strimzis_cas_and_an_intermediate_never_the_clients_ca_key() {
    let s = strimzi();
    let m = material_of("acme", &s, None, now()).expect("material");
    assert_eq!((&m.cluster_ca, &m.clients_ca), (&s.cluster_ca, &s.clients_ca));
    let every_file = [&m.cluster_ca, &m.clients_ca, &m.intermediate_cert, &m.intermediate_key];
    assert!(every_file.iter().all(|f| f.0 != s.clients_ca_key.0), "the CA key is in no file");
    assert_eq!(intermediate::renewal_due(&m.intermediate_cert.0, &s.clients_ca.0, now()), None);
}

/// [`material`], under a name that does not shadow the table's helper above.
fn material_of(
    tenant: &str,
    s: &Strimzi,
    held: Option<(&ByteString, &ByteString)>,
    at: OffsetDateTime,
) -> Result<Material, String> {
    super::material(tenant, s, held, at)
}

#[test]
fn the_intermediate_held_is_kept_until_half_life_or_a_new_clients_ca() {
    let s = strimzi();
    let first = material_of("acme", &s, None, now()).expect("first");
    let held = Some((&first.intermediate_cert, &first.intermediate_key));
    let later = material_of("acme", &s, held, now() + Duration::from_secs(3600)).expect("an hour later");
    assert_eq!(later, first, "kept: no write, no reload at the proxy");
    let half = now() + intermediate::RENEW_WITHIN;
    let renewed = material_of("acme", &s, held, half).expect("at half-life");
    assert_ne!(renewed.intermediate_cert, first.intermediate_cert, "renewed at half-life");
    let (clients_ca, clients_ca_key) = ca("clients-ca v1");
    let new_ca = Strimzi { clients_ca, clients_ca_key, ..s.clone() };
    let reissued = material_of("acme", &new_ca, held, now()).expect("after Strimzi's renewal");
    assert_eq!(intermediate::renewal_due(&reissued.intermediate_cert.0, &new_ca.clients_ca.0, now()), None);
}

#[test]
fn unusable_strimzi_files_are_named_and_nothing_is_made_of_them() {
    let s = strimzi();
    let big = ByteString(vec![b'A'; MAX_FILE_BYTES + 1]);
    let not_pem = ByteString(b"not PEM".to_vec());
    let cases: [(&str, Strimzi, &str); 5] = [
        (
            "oversized cluster CA",
            Strimzi { cluster_ca: big.clone(), ..s.clone() },
            "kaas-cluster-ca-cert ca.crt: 65537 bytes",
        ),
        (
            "cluster CA not PEM",
            Strimzi { cluster_ca: not_pem.clone(), ..s.clone() },
            "kaas-cluster-ca-cert ca.crt: not a PEM certificate",
        ),
        (
            "clients CA not PEM",
            Strimzi { clients_ca: not_pem.clone(), ..s.clone() },
            "kaas-clients-ca-cert ca.crt: not a PEM certificate",
        ),
        (
            "key not PEM",
            Strimzi { clients_ca_key: not_pem, ..s.clone() },
            "kaas-clients-ca ca.key: not a PEM private key",
        ),
        (
            "another CA's key",
            Strimzi { clients_ca_key: ca("other").1, ..s.clone() },
            "does not belong to the clients CA certificate",
        ),
    ];
    for (what, strimzi, want) in cases {
        let refused = material_of("acme", &strimzi, None, now()).expect_err(what);
        assert!(refused.contains(want), "{what}: {refused}");
    }
}

#[test]
fn sources_are_strimzis_secrets_of_the_kaas_release() {
    let names: Vec<_> = sources().into_iter().map(|(n, k)| format!("{n}/{k}")).collect();
    assert_eq!(
        names,
        ["kaas-cluster-ca-cert/ca.crt", "kaas-clients-ca-cert/ca.crt", "kaas-clients-ca/ca.key"]
    );
}
