//! Where the ACME account and the tenants' certificates are kept: `Store` is either the single-replica
//! [`dir`] store or the [`kube`] store that replicas share; the manager and the orders read and write through it
//! and never ask which one it is. Neighbours: [`super::Manager`] reads it and stores the account,
//! [`super::order`] stores what is issued; [`crate::config::certs::load_pair`] loads the pairs.

pub mod dir;
pub mod kube;

use std::path::PathBuf;

use instant_acme::AccountCredentials;
use rustls::sign::CertifiedKey;

use crate::config::certs;
pub use dir::DirStore;
pub use kube::KubeStore;

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or the directory could not be created, written or read.
    #[error("ACME store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The `kubernetes` store failed.
    #[error(transparent)]
    Kube(#[from] kube::KubeStoreError),
    /// The account file is not what this proxy writes.
    #[error("ACME store {path}: unreadable account: {source}")]
    Account {
        /// The account file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Where the account and certificates are kept.
#[derive(Debug)]
pub(in crate::acme) enum Store {
    Dir(DirStore),
    Kube(Box<KubeStore>),
}

impl Store {
    pub(in crate::acme) fn account(
        &self,
        directory_url: &str,
    ) -> Result<Option<AccountCredentials>, StoreError> {
        match self {
            Store::Dir(d) => d.account(directory_url),
            Store::Kube(k) => k.account(directory_url),
        }
    }

    pub(in crate::acme) async fn put_account(
        &self,
        directory_url: &str,
        credentials: AccountCredentials,
    ) -> Result<(), StoreError> {
        match self {
            Store::Dir(d) => d.put_account(directory_url, credentials),
            Store::Kube(k) => k.put_account(directory_url, credentials).await,
        }
    }

    /// `tenant`'s stored certificate, when there is one that loads.
    pub(in crate::acme) fn certificate(&self, tenant: &str) -> Option<CertifiedKey> {
        match self {
            Store::Dir(d) => {
                let path = d.certificate_path(tenant);
                certs::load_pair(&path, &path).ok()
            }
            Store::Kube(k) => k.certificate(tenant),
        }
    }

    pub(in crate::acme) async fn put_certificate(
        &self,
        tenant: &str,
        key_pem: &str,
        chain_pem: &str,
    ) -> Result<(), StoreError> {
        match self {
            Store::Dir(d) => d.put_certificate(tenant, key_pem, chain_pem),
            Store::Kube(k) => k.put_certificate(tenant, key_pem, chain_pem).await,
        }
    }

    /// Whether this replica orders: always with the `dir` store, with the Lease with `kubernetes`.
    pub(in crate::acme) fn leading(&self) -> bool {
        match self {
            Store::Dir(_) => true,
            Store::Kube(k) => k.leading(),
        }
    }
}
