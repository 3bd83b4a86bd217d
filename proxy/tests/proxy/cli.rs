//! The binary's contract with operators: a bad file exits non-zero listing every error; `--check` accepts a
//! good one.

use std::process::Command;

use kaas_testsupport::free_port;

/// Writes a self-signed certificate for `*.kaas.localhost` as `s.pem` / `s.key` in `dir`.
fn write_self_signed(dir: &std::path::Path) -> rcgen::CertifiedKey<rcgen::KeyPair> {
    let ck = rcgen::generate_simple_self_signed(vec!["*.kaas.localhost".to_string()]).expect("rcgen");
    std::fs::write(dir.join("s.pem"), ck.cert.pem()).expect("write");
    std::fs::write(dir.join("s.key"), ck.signing_key.serialize_pem()).expect("write");
    ck
}

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
         tenants:\n  - { name: acme, bootstrap: [\"x:1\"], upstream: { plaintext: true } }\n  - { name: acme, bootstrap: [\"bad\"], upstream: { plaintext: true } }\n",
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
    write_self_signed(dir.path());
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        "listen: \"127.0.0.1:0\"\ndomain: kaas.localhost\ntls: { cert: s.pem, key: s.key }\n\
         tenants:\n  - { name: acme, bootstrap: [\"127.0.0.1:19092\"], upstream: { plaintext: true } }\n",
    )
    .expect("write");
    let out = kaas_proxy().arg("--config").arg(&path).arg("--check").output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 tenants, 0 left out)"));
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn health_endpoints_and_graceful_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_self_signed(dir.path());
    std::fs::write(dir.path().join("routes.yaml"), "[]\n").expect("write");
    let admin = free_port();
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:0\"\ndomain: kaas.localhost\nadmin_listen: \"127.0.0.1:{admin}\"\n\
             tls: {{ cert: s.pem, key: s.key }}\ntenants_file: routes.yaml\n"
        ),
    )
    .expect("write");
    let mut child =
        kaas_proxy().arg("--config").arg(&path).arg("--shutdown-delay-seconds=0").spawn().expect("starts");
    let mut ready = None;
    for _ in 0..100 {
        ready = http_get(admin, "/readyz");
        if ready.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready.expect("admin endpoint answers").starts_with("HTTP/1.1 200"));
    assert!(http_get(admin, "/healthz").expect("healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(admin, "/nope").expect("404").starts_with("HTTP/1.1 404"));
    let metrics = http_get(admin, "/metrics").expect("metrics");
    assert!(metrics.contains("kaas_proxy_listener_connections_total 0"), "{metrics}");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
}

/// Whether the proxy routes `sni`: every handshake outcome but the alert `unrecognized_name` (a routed tenant
/// whose cluster is unreachable ends the handshake with `internal_error`).
fn routed(port: u16, sni: &str, ca: &rcgen::Certificate) -> bool {
    match handshake(port, sni, ca) {
        Ok(()) => true,
        Err(e) => e.contains("InternalError"),
    }
}

/// TLS handshake outcome against the proxy for `sni`: Ok when it completes.
fn handshake(port: u16, sni: &str, ca: &rcgen::Certificate) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(|e| e.to_string())?;
        let config = rustls::ClientConfig::builder_with_provider(kaas_proxy::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp =
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

#[test]
fn route_changes_are_applied_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_self_signed(dir.path());
    std::fs::write(dir.path().join("routes.yaml"), "[]\n").expect("write");
    let port = free_port();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:{port}\"\ndomain: kaas.localhost\ntls: {{ cert: s.pem, key: s.key }}\n\
             tenants_file: routes.yaml\n"
        ),
    )
    .expect("write");
    let mut child =
        kaas_proxy().arg("--config").arg(&path).arg("--reload-seconds=1").spawn().expect("starts");
    let wait = |want_routed: bool| {
        for _ in 0..60 {
            if routed(port, "acme.kaas.localhost", &ca.cert) == want_routed {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    assert!(wait(false), "acme must be refused before it is routed");
    std::fs::write(
        dir.path().join("routes.yaml"),
        "- name: acme\n  bootstrap: [\"127.0.0.1:1\"]\n  upstream: { plaintext: true }\n",
    )
    .expect("write");
    assert!(wait(true), "acme not routed after the route source changed");
    // A broken route source is refused and the proxy keeps the routes it has; so is a new version of acme's
    // route whose files are missing, while a valid new tenant beside it is applied.
    std::fs::write(dir.path().join("routes.yaml"), "not: [a list\n").expect("write");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(routed(port, "acme.kaas.localhost", &ca.cert), "a bad file dropped the working routes");
    std::fs::write(
        dir.path().join("routes.yaml"),
        "- name: acme\n  bootstrap: [\"127.0.0.1:1\"]\n  upstream: { plaintext: true }\n  client_ca: not-mounted-yet.pem\n\
         - name: beta\n  bootstrap: [\"127.0.0.1:1\"]\n  upstream: { plaintext: true }\n",
    )
    .expect("write");
    let beta = || routed(port, "beta.kaas.localhost", &ca.cert);
    assert!(
        (0..60).any(|_| beta() || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }),
        "beta not routed"
    );
    assert!(
        routed(port, "acme.kaas.localhost", &ca.cert),
        "acme dropped because its new route does not load"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A configuration in `dir` (with `write_self_signed`'s certificate) listening on `port`, its admin endpoint on
/// `admin`, its tenants in `tenants_file`.
fn config_with_routes(
    dir: &std::path::Path,
    port: u16,
    admin: u16,
    tenants_file: &str,
) -> std::path::PathBuf {
    let path = dir.join("proxy.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:{port}\"\ndomain: kaas.localhost\nadmin_listen: \"127.0.0.1:{admin}\"\n\
             tls: {{ cert: s.pem, key: s.key }}\ntenants_file: {tenants_file}\n"
        ),
    )
    .expect("write");
    path
}

/// The chart mounts kaas-controller's route ConfigMap `optional: true`: before the controller has run, the
/// file is not there, and the proxy must start (serving its other tenants) and take the routes once it appears;
/// a file that goes away later is a refused reload, not the end of every tenant.
#[test]
fn starts_before_its_tenants_file_exists_and_keeps_its_routes_when_it_goes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_self_signed(dir.path());
    let (port, admin) = (free_port(), free_port());
    let path = config_with_routes(dir.path(), port, admin, "routes/tenants.yaml");
    let check = kaas_proxy().arg("--config").arg(&path).arg("--check").output().expect("runs");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let mut child =
        kaas_proxy().arg("--config").arg(&path).arg("--reload-seconds=1").spawn().expect("starts");
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        assert!(
            (0..80).any(|_| check() || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                false
            }),
            "{what}"
        )
    };
    let ready = || http_get(admin, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"));
    eventually("ready without a tenants_file", &ready);
    assert!(!routed(port, "acme.kaas.localhost", &ca.cert), "no tenants yet");
    std::fs::create_dir(dir.path().join("routes")).expect("mkdir");
    std::fs::write(
        dir.path().join("routes/tenants.yaml"),
        "- name: acme\n  bootstrap: [\"127.0.0.1:1\"]\n  upstream: { plaintext: true }\n",
    )
    .expect("write");
    eventually("acme routed once the file appeared", &|| routed(port, "acme.kaas.localhost", &ca.cert));
    std::fs::remove_file(dir.path().join("routes/tenants.yaml")).expect("remove");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(routed(port, "acme.kaas.localhost", &ca.cert), "a vanished file dropped the routes");
    let metrics = http_get(admin, "/metrics").expect("metrics");
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kaas_proxy_routes_reloads_total{outcome=\"refused\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n >= 1.0), "the vanished file is a refused reload: {metrics}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sighup_reloads_at_once_and_sigterm_unreadies_before_it_stops_accepting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_self_signed(dir.path());
    std::fs::write(dir.path().join("routes.yaml"), "[]\n").expect("write");
    let (port, admin) = (free_port(), free_port());
    let path = config_with_routes(dir.path(), port, admin, "routes.yaml");
    let mut child = kaas_proxy()
        .arg("--config")
        .arg(&path)
        .args(["--reload-seconds=0", "--shutdown-delay-seconds=2", "--drain-timeout-seconds=5"])
        .spawn()
        .expect("starts");
    let within = |what: &dyn Fn() -> bool, tries: usize| {
        (0..tries).any(|_| {
            what() || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                false
            }
        })
    };
    let ready = || http_get(admin, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"));
    assert!(within(&ready, 100), "ready");
    std::fs::write(
        dir.path().join("routes.yaml"),
        "- name: acme\n  bootstrap: [\"127.0.0.1:1\"]\n  upstream: { plaintext: true }\n",
    )
    .expect("write");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!routed(port, "acme.kaas.localhost", &ca.cert), "no polling with --reload-seconds=0");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
    assert!(within(&|| routed(port, "acme.kaas.localhost", &ca.cert), 60), "SIGHUP reloads");
    let metrics = http_get(admin, "/metrics").expect("metrics");
    assert!(metrics.contains("kaas_proxy_routes_generation 2"), "{metrics}");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let unready = || http_get(admin, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 503"));
    assert!(within(&unready, 10), "readiness goes false at once");
    assert!(routed(port, "acme.kaas.localhost", &ca.cert), "still accepting during the shutdown delay");
    let closed = || std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
    assert!(within(&closed, 100), "the listener closes after the delay");
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
}
