//! Certificate files: PEM chain + private key, loaded and checked to belong together; trust roots and
//! revocation lists. The settings hold what is loaded here; [`crate::tls`] and [`crate::acme`] load with it too.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate pair could not be used; [`CertError::field`] names the offending key (`cert` or `key`).
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate file cannot be read (missing, no permission).
    #[error("cannot read {path}: {source}")]
    CertUnreadable {
        /// The certificate file, as resolved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The certificate file has no CERTIFICATE block, or a broken one.
    #[error("{path} holds no PEM certificate ({reason})")]
    CertInvalid {
        /// The certificate file, as resolved.
        path: PathBuf,
        /// What the PEM reader found.
        reason: String,
    },
    /// The key file cannot be read (missing, no permission).
    #[error("cannot read {path}: {source}")]
    KeyUnreadable {
        /// The key file, as resolved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The key file has no private key, or one of a type or algorithm ring cannot sign with.
    #[error("{path} holds no usable PEM private key ({reason})")]
    KeyInvalid {
        /// The key file, as resolved.
        path: PathBuf,
        /// What the PEM reader or the key provider said.
        reason: String,
    },
    /// The key is not the private key of the chain's first (leaf) certificate.
    #[error("{key} does not match the certificate in {cert} ({reason})")]
    Mismatch {
        /// The certificate file, as resolved.
        cert: PathBuf,
        /// The key file, as resolved.
        key: PathBuf,
        /// rustls' reason.
        reason: String,
    },
}

impl CertError {
    /// The configuration key at fault, `cert` or `key`, appended to the key path of the pair in errors.
    pub fn field(&self) -> &'static str {
        match self {
            CertError::CertUnreadable { .. } | CertError::CertInvalid { .. } => "cert",
            CertError::KeyUnreadable { .. } | CertError::KeyInvalid { .. } | CertError::Mismatch { .. } => {
                "key"
            }
        }
    }
}

/// Loads a PEM chain and its private key and checks that the key belongs to the leaf certificate.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let cert_pem =
        std::fs::read(cert).map_err(|source| CertError::CertUnreadable { path: cert.into(), source })?;
    let key_pem =
        std::fs::read(key).map_err(|source| CertError::KeyUnreadable { path: key.into(), source })?;
    pair_from_pem(&cert_pem, &key_pem, cert, key)
}

/// [`load_pair`] of PEM already read; `cert` and `key` name where it came from, for the errors.
pub fn pair_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert: &Path,
    key: &Path,
) -> Result<CertifiedKey, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::CertInvalid { path: cert.into(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(CertError::CertInvalid { path: cert.into(), reason: "no CERTIFICATE block".into() });
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| CertError::KeyInvalid { path: key.into(), reason: e.to_string() })?;
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| CertError::KeyInvalid { path: key.into(), reason: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| CertError::Mismatch {
        cert: cert.into(),
        key: key.into(),
        reason: e.to_string(),
    })?;
    Ok(certified)
}

/// The leaf certificate's not-after, Unix seconds; `None` when the leaf cannot be read (it was read once
/// already, so only a certificate rustls accepts and x509-parser does not).
pub fn not_after(certified: &CertifiedKey) -> Option<i64> {
    let leaf = certified.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// Certificate revocation lists, PEM (`X509 CRL` blocks) or a single DER list.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if crls.is_empty() {
        return Err(format!("{} holds no X509 CRL", path.display()));
    }
    Ok(crls)
}

/// A client CA bundle, for verifying client certificates.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("{}: not a usable CA certificate ({e})", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(roots)
}
