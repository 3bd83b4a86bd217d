//! The front's TLS settings against ClientHellos made to measure: a real rustls client's first flight, with one
//! extension taken out where a test needs a client that lacks it.

use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

use super::*;

/// A TLS 1.2-only rustls client's first flight for `name`, without extension `drop` when given.
fn first_flight(name: &str, drop: Option<u16>) -> Vec<u8> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let server = ServerName::try_from(name.to_owned()).expect("name");
    let mut client = ClientConnection::new(Arc::new(config), server).expect("client");
    let mut out = Vec::new();
    client.write_tls(&mut out).expect("first flight");
    drop.map_or(out.clone(), |ty| without_extension(&out, ty))
}

fn u16_at(b: &[u8], i: usize) -> usize {
    usize::from(u16::from_be_bytes([b[i], b[i + 1]]))
}

/// `record` (one handshake record holding a ClientHello) without extension `ty`, every length fixed.
fn without_extension(record: &[u8], ty: u16) -> Vec<u8> {
    // Record header (5), handshake header (4), then version (2), random (32), session id, cipher suites,
    // compression methods, extensions (RFC 5246 7.4.1.2).
    let body = &record[9..];
    let mut i = 2 + 32;
    i += 1 + usize::from(body[i]);
    i += 2 + u16_at(body, i);
    i += 1 + usize::from(body[i]);
    let mut kept = Vec::new();
    let mut j = i + 2;
    while j + 4 <= body.len() {
        let end = j + 4 + u16_at(body, j + 2);
        if u16_at(body, j) != usize::from(ty) {
            kept.extend_from_slice(&body[j..end]);
        }
        j = end;
    }
    let mut hello = body[..i].to_vec();
    hello.extend_from_slice(&u16::try_from(kept.len()).expect("short").to_be_bytes());
    hello.extend(kept);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&u32::try_from(hello.len()).expect("short").to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut out = record[..3].to_vec();
    out.extend_from_slice(&u16::try_from(handshake.len()).expect("short").to_be_bytes());
    out.extend(handshake);
    out
}

/// The front's configuration for a tenant with a self-signed certificate for `name`.
fn front(name: &str) -> Arc<ServerConfig> {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let private = PrivateKeyDer::try_from(key.serialize_der()).expect("PKCS#8");
    let signing = provider().key_provider.load_private_key(private).expect("signing key");
    let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing));
    server_config(Arc::new(FixedCert(certified)), None, Vec::new(), "acme").expect("config")
}

/// What the front makes of `flight`: `Err` with rustls' verdict when it refuses the ClientHello.
fn offer(config: Arc<ServerConfig>, flight: &[u8]) -> Result<(), rustls::Error> {
    let mut server = ServerConnection::new(config).expect("server");
    let mut reader = flight;
    server.read_tls(&mut reader).expect("read");
    server.process_new_packets().map(drop)
}

/// Extended master secret (RFC 7627), extension 23.
const EMS: u16 = 0x0017;

#[test]
fn a_tls_1_2_client_without_the_extended_master_secret_is_refused() {
    let name = "acme.kaas.example.com";
    assert_eq!(offer(front(name), &first_flight(name, None)), Ok(()), "rustls' own hello offers EMS");
    let flight = first_flight(name, None);
    assert_eq!(
        without_extension(&flight, 0xffff),
        flight,
        "taking out an extension it lacks changes nothing"
    );
    let refused = offer(front(name), &first_flight(name, Some(EMS)));
    assert_eq!(
        refused,
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::ExtendedMasterSecretExtensionRequired))
    );
}
