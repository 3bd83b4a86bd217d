//! GitOps: each tenant's manifests live under `tenants/<namespace>/<name>/` of the repository Flux applies, and
//! its own Flux Kustomization, which applies that folder, in `kustomizations/<namespace>/<name>.yaml`. The
//! platform's one root Kustomization applies `kustomizations/` (Flux's generated kustomization lists every
//! file there, fluxcd/pkg kustomize/kustomize_generator.go), so it creates, changes and prunes only the
//! tenants' Kustomizations, and each tenant's objects are applied (dry run, apply, prune) on their own: an
//! object the API server refuses stops that tenant alone. Both files go in the same commit; deleting a tenant
//! removes both, and Flux deleting the tenant's Kustomization prunes what it applied.
//!
//! One commit per change, naming the tenant and generation; no commit when nothing changed; deleting a tenant
//! removes its folder. With a remote, every change is rebuilt on the remote's newest commit and pushed; when
//! the push is rejected because another writer got there first, the change is rebuilt on the new head and
//! pushed again, so concurrent controllers never lose each other's commits. Uses the `git` command line, so
//! credentials come from the usual git configuration (credential helpers, `GIT_SSH_COMMAND`, a token in the URL).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::names;

pub mod credentials;

pub use credentials::Credentials;

/// Attempts before a push is given up (each one rebuilds on the newest remote head).
const PUSH_ATTEMPTS: u32 = 20;
const AUTHOR: [&str; 4] = ["-c", "user.name=kaas-controller", "-c", "user.email=kaas-controller@kaas.dev"];
/// The folder of the tenants' Flux Kustomizations: the path of the platform's root Kustomization.
pub const KUSTOMIZATIONS: &str = "kustomizations";
/// The namespace of the tenants' Flux Kustomizations, and of the GitRepository they read (Flux's own).
pub const FLUX_NAMESPACE: &str = "flux-system";
/// Keep `kustomizations/` (and `tenants/`) in Git once the last tenant's files are gone: Git tracks no empty
/// folders, and a Flux Kustomization whose path has vanished fails ("kustomization path not found") instead
/// of pruning the last tenant. Not YAML, so Flux's generated kustomization ignores them.
const KEEP_FILES: [(&str, &str); 2] = [
    (
        "tenants/README.md",
        "Managed by kaas-controller: one folder per KafkaTenant, `<namespace>/<name>/`, each applied by its own\n\
         Flux Kustomization in ../kustomizations/. This file keeps the folder in Git when no tenant is left.\n",
    ),
    (
        "kustomizations/README.md",
        "Managed by kaas-controller: one Flux Kustomization per KafkaTenant, `<namespace>/<name>.yaml`, applying\n\
         its folder in ../tenants/. The platform's root Kustomization applies this folder and prunes what\n\
         leaves it; this file keeps the folder in Git when no tenant is left, so Flux still finds it and prunes.\n",
    ),
];

/// Why the GitOps repository could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A `git` command exited unsuccessfully (push rejections among them, which are retried).
    #[error("git {args}: {message}")]
    Command {
        /// The arguments, space-separated.
        args: String,
        /// git's standard error, trimmed.
        message: String,
    },
    /// Every push attempt was rejected because other writers kept moving the branch.
    #[error("push to {remote} kept being rejected after {PUSH_ATTEMPTS} attempts")]
    PushContention {
        /// The remote's name (`origin`).
        remote: String,
    },
    /// `git` could not be started, or the tenant's folder could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A commit was made (and pushed, with a remote); holds its full hash.
    Committed(String),
    /// The folder already held exactly these files: no commit.
    Unchanged,
}

/// A controller-owned work tree of the GitOps repository.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    /// `Some((remote, branch))` when changes are pushed.
    upstream: Option<(String, String)>,
    /// The Flux GitRepository (in [`FLUX_NAMESPACE`]) holding this repository, which the tenants'
    /// Kustomizations read.
    flux_source: String,
    /// The remote's credentials, given to git by a helper, never in its URL ([`credentials`]).
    credentials: Option<Credentials>,
}

/// The default [`Repo::with_flux_source`]: the GitRepository `flux bootstrap` creates for its repository.
pub const FLUX_SOURCE: &str = "flux-system";

/// A file of a tenant's folder: name inside `tenants/<tenant>/`, contents.
pub type TenantFile = (String, String);

impl Repo {
    /// Uses the work tree at `dir` as it is; commits stay local.
    pub fn local(dir: &Path) -> Result<Repo, GitError> {
        let repo =
            Repo { dir: dir.to_owned(), upstream: None, flux_source: FLUX_SOURCE.into(), credentials: None };
        repo.git(&["rev-parse", "--git-dir"])?;
        Ok(repo)
    }

    /// Clones `url` into `dir` (or reuses a clone already there) and pushes every change to `branch`. A
    /// username and token in an `http(s)` URL are taken out of it ([`credentials::split`]): git is given the
    /// plain URL, and the credentials through a helper.
    pub fn clone_remote(url: &str, dir: &Path, branch: &str) -> Result<Repo, GitError> {
        let (url, credentials) = credentials::split(url);
        if !dir.join(".git").exists() {
            let parent = dir.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent)?;
            run(parent, &["clone", "--quiet", &url, &dir.to_string_lossy()], credentials.as_ref())?;
        } else {
            // A clone an earlier version made may hold the credentials in its remote's URL.
            run(dir, &["remote", "set-url", "origin", &url], None)?;
        }
        let upstream = Some(("origin".into(), branch.into()));
        Ok(Repo { dir: dir.to_owned(), upstream, flux_source: FLUX_SOURCE.into(), credentials })
    }

    /// Names the Flux GitRepository that holds this repository, for the tenants' Kustomizations.
    pub fn with_flux_source(mut self, name: &str) -> Repo {
        name.clone_into(&mut self.flux_source);
        self
    }

    /// The work tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        run(&self.dir, args, self.credentials.as_ref())
    }

    /// Makes `tenants/<tenant>/` (`tenant` a relative folder, [`crate::names::folder`]) hold exactly `files` (or nothing, for `None`), committed with `message`.
    pub fn write_tenant(
        &self,
        tenant: &str,
        files: Option<&[TenantFile]>,
        message: &str,
    ) -> Result<Outcome, GitError> {
        match files {
            Some(files) => self.write(tenant, Some(&|_: Option<&str>| files.to_vec()), message),
            None => self.write(tenant, None, message),
        }
    }

    /// Like [`Repo::write_tenant`], with the files derived from the folder's manifests as committed at the
    /// remote's head (`None` for a new folder), read again on every push attempt: what a new plan keeps of the
    /// committed one is then the remote's, even after another writer moved it.
    pub fn write_tenant_from(
        &self,
        tenant: &str,
        derive: Derive<'_>,
        message: &str,
    ) -> Result<Outcome, GitError> {
        self.write(tenant, Some(derive), message)
    }

    fn write(&self, tenant: &str, derive: Option<Derive<'_>>, message: &str) -> Result<Outcome, GitError> {
        let files = || {
            derive.map(|derive| {
                let committed = std::fs::read_to_string(self.dir.join(tenant_folder(tenant)).join(MANIFESTS));
                derive(committed.ok().as_deref())
            })
        };
        let Some((remote, branch)) = &self.upstream else {
            return self.commit_tenant(tenant, files().as_deref(), message);
        };
        for attempt in 0..PUSH_ATTEMPTS {
            self.git(&["fetch", "--quiet", remote])?;
            let remote_head = format!("{remote}/{branch}");
            // An empty remote has no branch yet: start it from nothing.
            if self.git(&["rev-parse", "--verify", "--quiet", &remote_head]).is_ok() {
                self.git(&["checkout", "--quiet", "-B", branch, &remote_head])?;
                self.git(&["reset", "--quiet", "--hard", &remote_head])?;
            } else {
                self.git(&["checkout", "--quiet", "--orphan", branch]).ok();
            }
            let outcome = self.commit_tenant(tenant, files().as_deref(), message)?;
            if outcome == Outcome::Unchanged {
                return Ok(outcome);
            }
            match self.git(&["push", "--quiet", remote, &format!("HEAD:refs/heads/{branch}")]) {
                Ok(_) => return Ok(outcome),
                Err(e) if is_rejection(&e) => std::thread::sleep(backoff(attempt)),
                Err(e) => return Err(e),
            }
        }
        Err(GitError::PushContention { remote: remote.clone() })
    }

    /// Whether the work tree holds tenant `tenant`'s folder (as last fetched or written here).
    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.dir.join(tenant_folder(tenant)).join(MANIFESTS).exists()
    }

    fn commit_tenant(
        &self,
        tenant: &str,
        files: Option<&[TenantFile]>,
        message: &str,
    ) -> Result<Outcome, GitError> {
        let folder = tenant_folder(tenant);
        let abs = self.dir.join(&folder);
        if abs.exists() {
            std::fs::remove_dir_all(&abs)?;
        }
        let kustomization = Path::new(KUSTOMIZATIONS).join(format!("{tenant}.yaml"));
        let kustomization_abs = self.dir.join(&kustomization);
        if kustomization_abs.exists() {
            std::fs::remove_file(&kustomization_abs)?;
        }
        if let Some(files) = files {
            std::fs::create_dir_all(&abs)?;
            for (name, text) in files {
                std::fs::write(abs.join(name), text)?;
            }
            std::fs::create_dir_all(kustomization_abs.parent().unwrap_or(&self.dir))?;
            std::fs::write(&kustomization_abs, flux_kustomization(tenant, &self.flux_source))?;
        }
        for (path, text) in KEEP_FILES {
            let keep = self.dir.join(path);
            if std::fs::read_to_string(&keep).ok().as_deref() != Some(text) {
                std::fs::create_dir_all(keep.parent().unwrap_or(&self.dir))?;
                std::fs::write(&keep, text)?;
            }
        }
        // A path neither on disk nor in Git (removing a tenant that was never committed: refused as
        // malformed, or for a taken id) is no path git accepts; there is nothing of it to commit.
        let mut paths: Vec<String> = KEEP_FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        for (relative, abs) in [(&folder, &abs), (&kustomization, &kustomization_abs)] {
            let relative = relative.to_string_lossy().into_owned();
            if abs.exists() || !self.git(&["ls-files", "--", &relative])?.trim().is_empty() {
                paths.insert(0, relative);
            }
        }
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let mut add = vec!["add", "--all", "--"];
        add.extend(&paths);
        self.git(&add)?;
        let mut diff = vec!["diff", "--cached", "--quiet", "--"];
        diff.extend(&paths);
        if self.git(&diff).is_ok() {
            return Ok(Outcome::Unchanged);
        }
        let mut args: Vec<&str> = AUTHOR.to_vec();
        args.extend(["commit", "--quiet", "-m", message, "--"]);
        args.extend(&paths);
        self.git(&args)?;
        Ok(Outcome::Committed(self.git(&["rev-parse", "HEAD"])?.trim().to_owned()))
    }
}

/// The Flux Kustomization of the tenant whose folder is `tenants/<tenant>/`, named after its id as its
/// management namespace is (`kaas-<id>`). Pruning on: a tenant's object that leaves its folder is deleted, and
/// so is everything it applied when the Kustomization itself goes. Changes reach it when the source's
/// revision does (kustomize-controller watches the source); `retryInterval` is for refused applies.
fn flux_kustomization(tenant: &str, source: &str) -> String {
    let (namespace, name) = tenant.split_once('/').unwrap_or(("default", tenant));
    let id = names::tenant_id(namespace, name);
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {ns}\n  namespace: \
         {FLUX_NAMESPACE}\n  labels:\n    app.kubernetes.io/managed-by: kaas-controller\n    {label}: {id}\nspec:\n  \
         interval: 10m\n  retryInterval: 1m\n  timeout: 5m\n  path: ./tenants/{tenant}\n  prune: true\n  sourceRef:\n    \
         kind: GitRepository\n    name: {source}\n",
        ns = names::namespace(&id),
        label = names::TENANT_LABEL,
    )
}

/// Growing, jittered wait, so two writers that collided do not collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 20);
    Duration::from_millis(u64::from(10 * (attempt + 1).min(10) + jitter))
}

fn is_rejection(e: &GitError) -> bool {
    matches!(e, GitError::Command { message, .. }
        if message.contains("rejected") || message.contains("fetch first") || message.contains("non-fast-forward")
            || message.contains("cannot lock ref"))
}

/// Runs git in `dir`; with `credentials`, git asks them of the helper ([`Credentials::git_args`]). Nothing it
/// prints reaches an error unredacted.
fn run(dir: &Path, args: &[&str], credentials: Option<&Credentials>) -> Result<String, GitError> {
    let mut command = Command::new("git");
    if let Some(c) = credentials {
        command.args(Credentials::git_args()).envs(c.git_env());
    }
    let out = command.args(args).current_dir(dir).env("GIT_TERMINAL_PROMPT", "0").output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(GitError::Command {
            args: Credentials::redact(credentials, &args.join(" ")),
            message: Credentials::redact(credentials, String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

/// Where tenant `tenant`'s folder is in the repository.
fn tenant_folder(tenant: &str) -> PathBuf {
    Path::new("tenants").join(tenant)
}

/// How a write derives a folder's files from its manifests as committed (`None`: a new folder).
pub type Derive<'a> = &'a dyn Fn(Option<&str>) -> Vec<TenantFile>;

/// The file of a tenant's folder that holds its manifests.
const MANIFESTS: &str = "manifests.yaml";

/// The files of a tenant's folder: its manifests and a kustomization listing them, for Flux.
pub fn tenant_files(manifests_yaml: String) -> Vec<TenantFile> {
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {MANIFESTS}\n"
    );
    vec![("kustomization.yaml".into(), kustomization), (MANIFESTS.into(), manifests_yaml)]
}

/// The commit message of a tenant change.
pub fn message(tenant: &str, generation: Option<i64>) -> String {
    match generation {
        Some(g) => format!("tenant {tenant}: generation {g}"),
        None => format!("tenant {tenant}: update"),
    }
}

#[cfg(test)]
mod tests;
