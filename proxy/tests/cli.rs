//! The binary's contract with operators: a bad file exits non-zero listing every error; `--check` accepts a
//! good one.

use std::process::Command;

fn kaas_proxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kaas-proxy"))
}

#[test]
fn invalid_file_exits_non_zero_with_every_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: nowhere\ndomain: kaas.localhost\ncolour: blue\ntls: { cert: none.pem, key: none.key }\n\
         tenants:\n  - { name: acme, bootstrap: [\"x:1\"] }\n  - { name: acme, bootstrap: [\"bad\"] }\n",
    )
    .expect("write");
    let out = kaas_proxy().arg("--config").arg(&path).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["listen:", "colour: unknown key", "tls.cert:", "tenants[1].bootstrap[0]:", "tenants[1].name:"]
    {
        assert!(err.contains(key), "missing {key} in:\n{err}");
    }
    assert!(err.contains("5 error(s)"), "{err}");
}

#[test]
fn check_accepts_a_valid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["*.kaas.localhost".to_string()]).expect("rcgen");
    std::fs::write(dir.path().join("s.pem"), ck.cert.pem()).expect("write");
    std::fs::write(dir.path().join("s.key"), ck.signing_key.serialize_pem()).expect("write");
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        "listen: \"127.0.0.1:0\"\ndomain: kaas.localhost\ntls: { cert: s.pem, key: s.key }\n\
         tenants:\n  - { name: acme, bootstrap: [\"127.0.0.1:19092\"] }\n",
    )
    .expect("write");
    let out = kaas_proxy().arg("--config").arg(&path).arg("--check").output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 tenants)"));
}
