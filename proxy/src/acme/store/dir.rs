//! The `dir` store: the ACME account and each tenant's certificate and key, as files in one directory, each
//! written atomically (a temporary file in the same directory, synced, then renamed over the old one) and
//! readable by the proxy's user only (0600; the directory 0700). A tenant's key and chain share one file
//! (`<tenant>.pem`), so a crash can never leave a key beside another key's certificate.
//!
//! Replicas sharing this store need a shared volume (each would otherwise order its own certificates).
//! Neighbours: `Store` (either this or the `kubernetes` store, [`super::kube`]) is what the manager
//! and the orders use.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use instant_acme::AccountCredentials;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The account file: credentials with the directory they belong to (another directory needs another account).
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory_url: String,
    credentials: AccountCredentials,
}

/// The store directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// The store in `dir`, created (0700) when missing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io { path: dir.to_owned(), source };
        std::fs::DirBuilder::new().recursive(true).mode_0700().create(dir).map_err(io)?;
        Ok(DirStore { dir: dir.to_owned() })
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// The stored account for `directory_url`; `None` when there is none, or only one for another directory.
    pub fn account(&self, directory_url: &str) -> Result<Option<AccountCredentials>, StoreError> {
        let path = self.account_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let stored: StoredAccount =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Account { path, source })?;
        Ok((stored.directory_url == directory_url).then_some(stored.credentials))
    }

    /// Stores the account of `directory_url`, replacing any other.
    pub fn put_account(
        &self,
        directory_url: &str,
        credentials: AccountCredentials,
    ) -> Result<(), StoreError> {
        let path = self.account_path();
        let stored = StoredAccount { directory_url: directory_url.to_owned(), credentials };
        let json = serde_json::to_vec_pretty(&stored)
            .map_err(|source| StoreError::Account { path: path.clone(), source })?;
        write_atomic(&path, &json)
    }

    /// The file holding `tenant`'s private key and certificate chain (PEM).
    pub fn certificate_path(&self, tenant: &str) -> PathBuf {
        self.dir.join(format!("{tenant}.pem"))
    }

    /// Stores `tenant`'s key and chain, replacing the previous pair in one step.
    pub fn put_certificate(&self, tenant: &str, key_pem: &str, chain_pem: &str) -> Result<(), StoreError> {
        let pem = format!("{}\n{}", key_pem.trim_end(), chain_pem);
        write_atomic(&self.certificate_path(tenant), pem.as_bytes())
    }
}

/// `DirBuilder::mode` on Unix; elsewhere the platform's default.
trait Mode0700 {
    fn mode_0700(&mut self) -> &mut Self;
}

impl Mode0700 for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700);
        self
    }
}

/// Writes `bytes` to `path` atomically, mode 0600: readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let io = |source| StoreError::Io { path: path.to_owned(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn writes_replace_whole_files_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirStore::open(&dir.path().join("state/acme")).expect("open");
        let path = store.certificate_path("acme");
        store.put_certificate("acme", "KEY\n", "CHAIN\n").expect("first");
        store.put_certificate("acme", "KEY2", "CHAIN2\n").expect("second");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "KEY2\nCHAIN2\n");
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("state/acme")), 0o700);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state/acme"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["acme.pem"], "no temporary file left behind");
    }

    #[test]
    fn no_account_yet_and_broken_account_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirStore::open(dir.path()).expect("open");
        assert!(store.account("https://ca/dir").expect("read").is_none());
        std::fs::write(dir.path().join("account.json"), "{").expect("write");
        assert!(matches!(store.account("https://ca/dir"), Err(StoreError::Account { .. })));
    }
}
