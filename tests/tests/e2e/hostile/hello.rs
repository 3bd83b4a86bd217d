//! ClientHellos written byte by byte, for what a TLS library refuses to send: server names that are not DNS
//! names, IP addresses and 255-byte names in SNI, TLS 1.0/1.1-only hellos, oversized hellos. A well-formed
//! TLS 1.3 hello with an X25519 key share, so a server that accepts it answers with a ServerHello.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One ClientHello to build.
#[derive(Debug, Clone)]
pub struct Hello {
    /// The `server_name` extension's host name bytes, sent as they are; `None`: no SNI extension.
    pub sni: Option<Vec<u8>>,
    /// The record layer's and the hello's `legacy_version`.
    pub legacy_version: u16,
    /// `supported_versions` (TLS 1.3's version negotiation); empty: no such extension.
    pub versions: Vec<u16>,
    /// Filler bytes in a `padding` extension (RFC 7685), to make the hello as large as a test needs.
    pub padding: usize,
}

impl Hello {
    /// A TLS 1.3 hello for `sni`.
    pub fn tls13(sni: &[u8]) -> Hello {
        Hello { sni: Some(sni.to_vec()), legacy_version: 0x0303, versions: vec![0x0304], padding: 0 }
    }

    /// A hello offering only `version` (0x0301 TLS 1.0, 0x0302 TLS 1.1), as such clients send it.
    pub fn legacy(sni: &[u8], version: u16) -> Hello {
        Hello { sni: Some(sni.to_vec()), legacy_version: version, versions: Vec::new(), padding: 0 }
    }

    /// The handshake message (type 1, 24-bit length, body).
    pub fn message(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&self.legacy_version.to_be_bytes());
        body.extend_from_slice(&[0x5a; 32]); // random
        body.push(32);
        body.extend_from_slice(&[0x11; 32]); // legacy session id (middlebox compatibility)
        let suites: &[u16] = if self.versions.is_empty() {
            &[0xc013, 0xc014, 0x002f, 0x0035] // ECDHE-RSA and RSA with AES-CBC-SHA: what TLS 1.0 clients offer
        } else {
            &[0x1301, 0x1302, 0x1303, 0xc02f, 0xc02b]
        };
        body.extend_from_slice(&u16::try_from(suites.len() * 2).unwrap_or(0).to_be_bytes());
        for s in suites {
            body.extend_from_slice(&s.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]); // compression: null
        let mut ext = Vec::new();
        if let Some(name) = &self.sni {
            let mut list = vec![0u8]; // host_name
            push_u16_len(&mut list, name);
            let mut payload = Vec::new();
            push_u16_len(&mut payload, &list);
            extension(&mut ext, 0, &payload);
        }
        extension(&mut ext, 10, &[0, 4, 0, 0x1d, 0, 0x17]); // supported_groups: x25519, secp256r1
        extension(&mut ext, 11, &[1, 0]); // ec_point_formats: uncompressed
                                          // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256, ed25519
        extension(&mut ext, 13, &[0, 8, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x08, 0x07]);
        if !self.versions.is_empty() {
            let mut v = vec![u8::try_from(self.versions.len() * 2).unwrap_or(0)];
            for version in &self.versions {
                v.extend_from_slice(&version.to_be_bytes());
            }
            extension(&mut ext, 43, &v);
            // key_share: one X25519 share (any 32 bytes are a valid X25519 public value).
            let mut share = vec![0, 0x1d, 0, 32];
            share.extend_from_slice(&[0x42; 32]);
            let mut payload = Vec::new();
            push_u16_len(&mut payload, &share);
            extension(&mut ext, 51, &payload);
        }
        if self.padding > 0 {
            extension(&mut ext, 21, &vec![0; self.padding]);
        }
        push_u16_len(&mut body, &ext);
        let mut msg = vec![1];
        msg.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    /// The hello in handshake records of at most 16 KiB each, as the record layer carries a large message.
    pub fn records(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let record_version = self.legacy_version.min(0x0301);
        for chunk in self.message().chunks(16 << 10) {
            out.push(22);
            out.extend_from_slice(&record_version.to_be_bytes());
            out.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }
}

fn push_u16_len(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn extension(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    push_u16_len(out, payload);
}

/// How the server answered a hello.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A handshake record starting with ServerHello: the name was routed.
    ServerHello,
    /// A fatal alert with this description (112 unrecognized_name, 70 protocol_version, 80 internal_error...).
    Alert(u8),
    /// The connection closed with no TLS answer.
    Closed,
    /// Something else; its first bytes.
    Other(Vec<u8>),
}

/// Sends `bytes` to the proxy on `port` and reads the first TLS record it answers with.
pub async fn send(port: u16, bytes: &[u8]) -> anyhow::Result<Answer> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.write_all(bytes).await?;
    let mut head = [0u8; 7];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut head)).await?;
    Ok(match read {
        Err(_) => Answer::Closed,
        Ok(_) if head[0] == 22 && head[5] == 2 => Answer::ServerHello,
        Ok(_) if head[0] == 21 && head[5] == 2 => Answer::Alert(head[6]),
        Ok(_) => Answer::Other(head.to_vec()),
    })
}
