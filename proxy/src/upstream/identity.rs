//! Identity that survives the proxy: a client's certificate subject read once after its handshake, and, for a
//! tenant with `identity: client`, a short-lived upstream certificate with exactly that subject, signed by an
//! intermediate of the tenant's clients CA (presented after it) or by the CA itself, so the broker's authorizer
//! sees the principal it would see had the client connected directly (`User:CN=alice`). A subject naming
//! `O=io.strimzi`, Strimzi's super users, is never minted.
//!
//! The subject is copied attribute by attribute and the result is compared byte for byte with the client's; a
//! subject that cannot be reproduced exactly (a multi-valued RDN, a repeated attribute type) is refused rather
//! than mapped to a different principal. Certificates live an hour and are cached per subject (bounded);
//! signing runs on the blocking pool because a clients CA key may be RSA-4096.
//!
//! Neighbours: [`super::tls`] builds a client configuration from each minted certificate; [`crate::config`]
//! loads the clients CA's key and [`crate::routes`] makes the [`ClientsCa`] of it; [`crate::listener`] reads the client's identity after its handshake.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::string::{BmpString, UniversalString};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, SerialNumber,
};
use rustls::crypto::SecureRandom;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::error::X509Error;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use kaas_route::OPERATOR_ORGANIZATION;

use crate::config;
use crate::config::upstream::{CaError, ClientsCaKey};
use crate::tls::provider;

/// How long a minted upstream certificate is valid.
pub const MINTED_LIFETIME: Duration = Duration::from_secs(3600);
/// A cached certificate is replaced once less than this is left, so no connection starts on one about to expire.
const RENEW_BEFORE: Duration = Duration::from_secs(15 * 60);
/// Backdating of `notBefore`, for brokers whose clocks run a little behind the proxy's.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Subjects cached per tenant; past it, the certificates nearest expiry make room.
pub const CACHE_CAPACITY: usize = 4096;

/// The subject the proxy presents for its own requests (the metadata refresh) when it mints identities:
/// `CN=kaas-proxy` as DER (a Name of one RDN, UTF8String). Metadata without topics needs no ACL.
pub const PROXY_SUBJECT: &[u8] = &[
    0x30, 0x15, 0x31, 0x13, 0x30, 0x11, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x0a, b'k', b'a', b'a', b's',
    b'-', b'p', b'r', b'o', b'x', b'y',
];

/// Why a client's identity could not be carried upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The client presented no certificate, so it has no identity to carry.
    #[error("the client presented no certificate")]
    NoCertificate,
    /// The client's (already verified) certificate could not be parsed; holds the parser's reason.
    #[error("client certificate unreadable: {0}")]
    Unreadable(String),
    /// The subject cannot be reproduced byte for byte; holds the subject and why.
    #[error(
        "subject {subject} cannot be reproduced exactly ({why}); refusing rather than changing the principal"
    )]
    NotReproducible {
        /// The subject, RFC 2253.
        subject: String,
        /// The attribute or construct at fault.
        why: String,
    },
    /// The subject names Strimzi's own organisation (`O=io.strimzi`), whose components Strimzi makes super users
    /// by subject: never minted, whatever the client presented, so not even a certificate the clients CA signed
    /// in error becomes a super user through the proxy.
    #[error("subject {0} names O={OPERATOR_ORGANIZATION}, Strimzi's own components (super users); refusing to mint it")]
    Reserved(String),
    /// Signing the upstream certificate failed; holds rcgen's reason.
    #[error("cannot sign the upstream certificate: {0}")]
    Signing(String),
}

/// A client as its verified certificate names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject as DER, exactly as in the certificate: the cache key and what is reproduced.
    pub subject_der: Vec<u8>,
    /// The subject in RFC 2253 form, most specific first (`CN=alice,OU=payments,O=acme`): Kafka's
    /// `User:` principal for an SSL listener without mapping rules.
    pub subject: String,
    /// The serial number, hex bytes separated by colons (as OpenSSL prints it), for the audit trail.
    pub serial: String,
    /// The expiry, seconds since the Unix epoch, for the audit trail.
    pub not_after: i64,
}

impl ClientIdentity {
    /// Reads the subject of a client's leaf certificate (already verified by the handshake).
    pub fn from_leaf(leaf: &CertificateDer<'_>) -> Result<ClientIdentity, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| IdentityError::Unreadable(e.to_string()))?;
        let name = cert.subject();
        Ok(ClientIdentity {
            subject_der: name.as_raw().to_vec(),
            subject: rfc2253(name),
            serial: cert.raw_serial_as_string(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// The RFC 2253 string of a name, as Java's `X500Principal.getName()` writes it: RDNs in reverse order, `,`
/// between them, `+` inside one, well-known types by short name, others as a dotted OID with `#` and hex DER.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            let value = attr.attr_value();
            match (short_name(&oid), string_value(value.header.tag(), value.data)) {
                (Some(short), Some(text)) => {
                    out.push_str(short);
                    out.push('=');
                    escape_into(&mut out, &text);
                }
                _ => {
                    let _ = write!(out, "{oid}=#{:02x}{:02x}", value.header.tag().0 as u8, value.data.len());
                    for b in value.data {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
    }
    out
}

/// The text of a directory string, for the string types X.520 names use.
fn string_value(tag: Tag, data: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::T61String => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        Tag::BmpString if data.len().is_multiple_of(2) => {
            String::from_utf16(&data.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>())
                .ok()
        }
        _ => None,
    }
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape_into(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Whether any `O` attribute of `name` is Strimzi's organisation in any case (stricter than Kafka's
/// case-sensitive principal match), or cannot be read as text (fail closed).
fn names_strimzi(name: &X509Name<'_>) -> bool {
    name.iter_organization().any(|o| {
        let value = o.attr_value();
        string_value(value.header.tag(), value.data)
            .is_none_or(|v| v.eq_ignore_ascii_case(OPERATOR_ORGANIZATION))
    })
}

/// The rcgen form of a name, refusing what it cannot carry (multi-valued RDNs, a type twice, odd strings).
fn to_rcgen(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let attrs: Vec<_> = rdn.iter().collect();
        let [attr] = attrs.as_slice() else {
            return Err(format!("an RDN with {} attributes", attrs.len()));
        };
        let oid: Vec<u64> = attr.attr_type().iter().ok_or("an attribute type too large")?.collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(format!("attribute {} twice", attr.attr_type().to_id_string()));
        }
        let data = attr.attr_value().data;
        let text = || std::str::from_utf8(data).map_err(|_| "a string that is not UTF-8".to_owned());
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(|e| format!("{e}"))?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(|e| format!("{e}"))?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into().map_err(|e| format!("{e}"))?),
            Tag::BmpString => {
                DnValue::BmpString(BmpString::from_utf16be(data.to_vec()).map_err(|e| format!("{e}"))?)
            }
            Tag::UniversalString => DnValue::UniversalString(
                UniversalString::from_utf32be(data.to_vec()).map_err(|e| format!("{e}"))?,
            ),
            other => return Err(format!("a value of ASN.1 tag {}", other.0)),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// What signs a tenant's minted certificates: an intermediate of its clients CA, or the CA itself (certificate
/// and key).
pub struct ClientsCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's subject, for the log.
    name: String,
    /// Presented after each minted certificate: the intermediate, or nothing.
    chain: Vec<CertificateDer<'static>>,
    /// When the signing certificate expires: no minted certificate outlives it (a broker would refuse the path).
    not_after: time::OffsetDateTime,
}

impl std::fmt::Debug for ClientsCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientsCa").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ClientsCa {
    /// The CA that signs with `material` (loaded and matched by [`crate::config`]).
    pub fn new(material: &ClientsCaKey) -> Result<ClientsCa, CaError> {
        let path = &material.bundle;
        let key = KeyPair::from_pem(&material.key_pem)
            .map_err(|e| CaError::Key { path: path.clone(), reason: e.to_string() })?;
        let (_, cert) = x509_parser::parse_x509_certificate(material.certificate.as_ref())
            .map_err(|e| CaError::Subject { path: path.clone(), reason: e.to_string() })?;
        let subject = cert.subject();
        let mut params = CertificateParams::default();
        params.distinguished_name =
            to_rcgen(subject).map_err(|reason| CaError::Subject { path: path.clone(), reason })?;
        // The minted certificates' authority key identifier is the CA's own subject key identifier, so path
        // builders that match them (the JDK's among them) find it.
        if let Some(ski) = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        }) {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        let not_after = time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
            .map_err(|e| CaError::Subject { path: path.clone(), reason: e.to_string() })?;
        Ok(ClientsCa {
            name: rfc2253(subject),
            issuer: Issuer::new(params, key),
            chain: material.chain.clone(),
            not_after,
        })
    }

    /// How long a certificate minted at `now` lives: [`MINTED_LIFETIME`], cut short by the signing CA's expiry.
    pub fn lifetime_at(&self, now: time::OffsetDateTime) -> Duration {
        Duration::try_from(self.not_after - now).unwrap_or_default().min(MINTED_LIFETIME)
    }

    /// Loads the clients CA of `bundle` whose key is in `key_file` ([`config::upstream::load_clients_ca`]).
    pub fn load(bundle: &Path, key_file: &Path) -> Result<ClientsCa, CaError> {
        ClientsCa::new(&config::upstream::load_clients_ca(bundle, key_file)?)
    }

    /// A certificate and fresh key with exactly `subject_der` as subject, valid for [`MINTED_LIFETIME`].
    pub fn mint(&self, subject_der: &[u8]) -> Result<CertifiedKey, IdentityError> {
        let (_, name) = <X509Name as FromDer<'_, X509Error>>::from_der(subject_der)
            .map_err(|e| IdentityError::Unreadable(e.to_string()))?;
        if names_strimzi(&name) {
            return Err(IdentityError::Reserved(rfc2253(&name)));
        }
        let not_reproducible = |why: String| IdentityError::NotReproducible { subject: rfc2253(&name), why };
        let mut params = CertificateParams::default();
        params.distinguished_name = to_rcgen(&name).map_err(not_reproducible)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        let lifetime = self.lifetime_at(now);
        if lifetime.is_zero() {
            return Err(IdentityError::Signing(format!("the signing CA {} has expired", self.name)));
        }
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + lifetime;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial(provider().secure_random)?));
        let signing = |e: rcgen::Error| IdentityError::Signing(e.to_string());
        let key = KeyPair::generate().map_err(signing)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(signing)?;
        let (_, minted) = x509_parser::parse_x509_certificate(cert.der().as_ref())
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        if minted.subject().as_raw() != subject_der {
            return Err(not_reproducible("its re-encoding differs".into()));
        }
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = provider()
            .key_provider
            .load_private_key(private)
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        let chain = std::iter::once(cert.der().clone()).chain(self.chain.iter().cloned()).collect();
        Ok(CertifiedKey::new(chain, signer))
    }
}

/// 16 bytes from `random` (the TLS provider's CSPRNG: serials must be unpredictable, RFC 5280 4.1.2.2 and the
/// CA/Browser Forum's 64 bits of entropy), top bit clear (a positive serial); no weaker fallback when it fails.
fn random_serial(random: &dyn SecureRandom) -> Result<[u8; 16], IdentityError> {
    let mut out = [0u8; 16];
    random.fill(&mut out).map_err(|_| IdentityError::Signing("the system's random source failed".into()))?;
    out[0] &= 0x7f;
    Ok(out)
}

/// One cached upstream identity.
#[derive(Debug)]
struct Minted<T> {
    value: T,
    renew_at: Instant,
}

/// Per-subject cache of what is built from a minted certificate (a TLS client configuration), bounded.
#[derive(Debug)]
pub struct MintCache<T> {
    entries: Mutex<HashMap<Vec<u8>, Minted<T>>>,
    capacity: usize,
}

impl<T: Clone> MintCache<T> {
    /// An empty cache holding at most `capacity` subjects.
    pub fn new(capacity: usize) -> Self {
        MintCache { entries: Mutex::default(), capacity: capacity.max(1) }
    }

    /// The cached value for `subject`, unless it is due for renewal.
    pub fn get(&self, subject: &[u8], now: Instant) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(subject).filter(|m| m.renew_at > now).map(|m| m.value.clone())
    }

    /// Stores a value minted at `now`, valid for [`MINTED_LIFETIME`] ([`MintCache::insert_for`]).
    pub fn insert(&self, subject: Vec<u8>, value: T, now: Instant) {
        self.insert_for(subject, value, now, MINTED_LIFETIME)
    }

    /// Stores a value minted at `now`, valid for `lifetime`; when full, drops what is due, then what is nearest
    /// renewal.
    pub fn insert_for(&self, subject: Vec<u8>, value: T, now: Instant, lifetime: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&subject) {
            entries.retain(|_, m| m.renew_at > now);
            if entries.len() >= self.capacity {
                let oldest = entries.iter().min_by_key(|(_, m)| m.renew_at).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(subject, Minted { value, renew_at: now + lifetime.saturating_sub(RENEW_BEFORE) });
    }

    /// Subjects held.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A clients CA shared with the blocking pool, where signing runs.
pub type SharedCa = Arc<ClientsCa>;

#[cfg(test)]
mod tests;
