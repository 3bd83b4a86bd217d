//! Fuzz target: any bytes as the first bytes of a client connection. A TLS record (first byte 0x16, as
//! `tls::read_client_hello` requires) goes to rustls' `Acceptor`, as the listener's `LazyConfigAcceptor` does, and
//! the server name of an accepted ClientHello goes to `router::sni::parse`; other input is taken as a server name
//! itself (lossy UTF-8). Nothing may panic, and a name that parses names its tenant and target canonically: the
//! proxy's own name for them (`Advertise::host` for a broker) parses back to the same tenant and target and is
//! the name as sent up to ASCII case and a trailing dot.
#![no_main]

use kaas_proxy::kafka::rewrite::Advertise;
use kaas_proxy::tenants::sni::{parse, Target};
use libfuzzer_sys::fuzz_target;
use rustls::server::Acceptor;

const DOMAIN: &str = "kaas.localhost";

fuzz_target!(|data: &[u8]| {
    match data.first() {
        Some(0x16) => client_hello(data),
        _ => server_name(&String::from_utf8_lossy(data)),
    }
});

fn client_hello(mut data: &[u8]) {
    let mut acceptor = Acceptor::default();
    loop {
        match acceptor.read_tls(&mut data) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                if let Some(name) = hello.server_name() {
                    server_name(name);
                }
                let _ = hello.alpn().map(Iterator::count);
                let _ = (hello.signature_schemes().len(), hello.cipher_suites().len());
                return;
            }
            Err((_, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write(&mut out);
                return;
            }
        }
    }
}

fn server_name(name: &str) {
    let Ok((tenant, target)) = parse(name, DOMAIN) else { return };
    assert!(!tenant.is_empty() && !tenant.contains('.'), "{name:?}: tenant {tenant:?}");
    let canonical = match target {
        Target::Bootstrap => format!("{tenant}.{DOMAIN}"),
        Target::Broker(id) => {
            let adv = Advertise::new(tenant, DOMAIN, 9092);
            let host = adv.host(id);
            assert!(adv.is_host(&host, id), "{host:?} is not the proxy's name for broker {id}");
            host
        }
    };
    assert_eq!(parse(&canonical, DOMAIN), Ok((tenant, target)), "{name:?}: {canonical:?} routes elsewhere");
    let sent = name.strip_suffix('.').unwrap_or(name);
    assert!(sent.eq_ignore_ascii_case(&canonical), "{name:?} parsed as {canonical:?}");
}
