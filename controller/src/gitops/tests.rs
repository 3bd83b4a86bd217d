//! GitOps tests on real repositories: a bare remote and clones in temporary folders.

use std::path::Path;

use super::*;

fn git(dir: &Path, args: &[&str]) -> String {
    run(dir, args, None).unwrap_or_else(|e| panic!("{e}"))
}

/// A bare remote with one initial commit on `main`, and a scratch clone used to inspect it.
fn remote(tmp: &Path) -> String {
    let bare = tmp.join("remote.git");
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "--quiet", "--bare", "--initial-branch=main"]);
    let seed = tmp.join("seed");
    git(tmp, &["clone", "--quiet", &bare.to_string_lossy(), &seed.to_string_lossy()]);
    std::fs::write(seed.join("README.md"), "gitops\n").expect("write");
    git(&seed, &["add", "README.md"]);
    let mut args = AUTHOR.to_vec();
    args.extend(["commit", "--quiet", "-m", "init"]);
    git(&seed, &args);
    git(&seed, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    bare.to_string_lossy().into_owned()
}

fn files(text: &str) -> Vec<TenantFile> {
    tenant_files(text.to_owned())
}

fn remote_log(tmp: &Path, url: &str) -> Vec<String> {
    let check = tmp.join(format!("check-{}", std::process::id()));
    if check.exists() {
        std::fs::remove_dir_all(&check).expect("clean");
    }
    git(tmp, &["clone", "--quiet", url, &check.to_string_lossy()]);
    git(&check, &["log", "--format=%s", "main"]).lines().map(str::to_owned).collect()
}

#[test]
fn one_commit_per_change_none_without_change_and_removal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(tmp.path());
    let repo = Repo::clone_remote(&url, &tmp.path().join("ctl"), "main").expect("clone");
    let first = repo.write_tenant("acme", Some(&files("a: 1\n")), &message("acme", Some(1))).expect("write");
    assert!(matches!(first, Outcome::Committed(_)));
    assert_eq!(
        repo.write_tenant("acme", Some(&files("a: 1\n")), &message("acme", Some(2))).expect("same"),
        Outcome::Unchanged
    );
    repo.write_tenant("acme", Some(&files("a: 2\n")), &message("acme", Some(3))).expect("change");
    repo.write_tenant("acme", None, "remove tenant acme").expect("remove");
    assert_eq!(
        remote_log(tmp.path(), &url),
        ["remove tenant acme", "tenant acme: generation 3", "tenant acme: generation 1", "init"]
    );
    assert!(!repo.dir().join("tenants/acme").exists());
}

/// A tenant removed before it was ever committed (refused as malformed, say) has nothing to remove: no commit,
/// and no error, which would keep its finalizer, and so the object, forever.
#[test]
fn removing_a_tenant_never_committed_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(tmp.path());
    let repo = Repo::clone_remote(&url, &tmp.path().join("ctl"), "main").expect("clone");
    repo.write_tenant("a/acme", Some(&files("a: 1\n")), &message("a/acme", Some(1))).expect("write");
    let outcome = repo.write_tenant("b/never", None, "remove tenant b/never").expect("nothing to remove");
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(remote_log(tmp.path(), &url), ["tenant a/acme: generation 1", "init"]);
    let local = Repo::local(repo.dir()).expect("local");
    assert_eq!(
        local.write_tenant("c/never", None, "remove tenant c/never").expect("local"),
        Outcome::Unchanged
    );
}

#[test]
fn push_is_rebuilt_when_the_remote_moved() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(tmp.path());
    let a = Repo::clone_remote(&url, &tmp.path().join("a"), "main").expect("clone a");
    let b = Repo::clone_remote(&url, &tmp.path().join("b"), "main").expect("clone b");
    a.write_tenant("acme", Some(&files("x\n")), "tenant acme: generation 1").expect("a writes");
    // b's clone is now behind the remote; its push must be rebuilt on a's commit.
    b.write_tenant("beta", Some(&files("y\n")), "tenant beta: generation 1").expect("b writes");
    let log = remote_log(tmp.path(), &url);
    assert_eq!(log, ["tenant beta: generation 1", "tenant acme: generation 1", "init"]);
}

#[test]
fn two_controllers_pushing_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(tmp.path());
    let handles: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|who| {
            let repo = Repo::clone_remote(&url, &tmp.path().join(who), "main").expect("clone");
            std::thread::spawn(move || {
                for g in 1..=5 {
                    let tenant = format!("{who}-{g}");
                    repo.write_tenant(
                        &tenant,
                        Some(&files(&format!("g: {g}\n"))),
                        &message(&tenant, Some(g)),
                    )
                    .expect("write under contention");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let log = remote_log(tmp.path(), &url);
    assert_eq!(log.len(), 11, "{log:?}");
    for who in ["one", "two"] {
        for g in 1..=5 {
            assert!(log.contains(&format!("tenant {who}-{g}: generation {g}")), "lost {who}-{g}: {log:?}");
        }
    }
}

#[test]
fn local_repository_commits_without_push() {
    let tmp = tempfile::tempdir().expect("tempdir");
    git(tmp.path(), &["init", "--quiet", "--initial-branch=main"]);
    let repo = Repo::local(tmp.path()).expect("local repo");
    assert!(matches!(
        repo.write_tenant("acme", Some(&files("a\n")), "tenant acme: generation 1"),
        Ok(Outcome::Committed(_))
    ));
    assert_eq!(git(tmp.path(), &["log", "--format=%s"]).trim(), "tenant acme: generation 1");
    assert!(Repo::local(&tmp.path().join("nope")).is_err());
}

#[test]
fn the_tenants_folder_outlives_its_last_tenant_so_flux_can_prune_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(tmp.path());
    let repo = Repo::clone_remote(&url, &tmp.path().join("ctl"), "main").expect("clone");
    repo.write_tenant("ns/acme", Some(&files("a: 1\n")), &message("ns/acme", Some(1))).expect("write");
    repo.write_tenant("ns/acme", None, "remove tenant ns/acme").expect("remove");
    let check = tmp.path().join("check");
    git(tmp.path(), &["clone", "--quiet", &url, &check.to_string_lossy()]);
    let tree = git(&check, &["ls-tree", "-r", "--name-only", "main", "tenants", KUSTOMIZATIONS]);
    let mut keep: Vec<&str> = KEEP_FILES.iter().map(|(path, _)| *path).collect();
    keep.sort_unstable();
    assert_eq!(tree.lines().collect::<Vec<_>>(), keep, "only the keep files are left");
    assert!(keep.iter().all(|p| !p.ends_with(".yaml")), "Flux must not try to apply them");
}

/// Each tenant gets its own Flux Kustomization beside its folder, in the same commit, applying exactly that
/// folder from the platform's source; removing the tenant removes both, and the root's folder stays.
#[test]
fn each_tenant_has_its_own_flux_kustomization_committed_and_removed_with_its_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(tmp.path());
    let repo =
        Repo::clone_remote(&url, &tmp.path().join("ctl"), "main").expect("clone").with_flux_source("gitops");
    repo.write_tenant("tenants/acme", Some(&files("a: 1\n")), &message("tenants/acme", Some(1)))
        .expect("write");
    let path = repo.dir().join("kustomizations/tenants/acme.yaml");
    let k: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(&path).expect("the tenant's Kustomization"))
            .expect("yaml");
    assert_eq!(k["kind"], "Kustomization");
    assert_eq!(k["metadata"]["name"], "kaas-tenants-acme");
    assert_eq!(k["metadata"]["namespace"], "flux-system");
    assert_eq!(k["spec"]["path"], "./tenants/tenants/acme");
    assert_eq!(k["spec"]["prune"], true);
    assert_eq!(k["spec"]["sourceRef"], serde_json::json!({ "kind": "GitRepository", "name": "gitops" }));
    // One commit holds both.
    let changed = git(repo.dir(), &["show", "--name-only", "--format=", "HEAD"]);
    assert!(
        changed.contains("kustomizations/tenants/acme.yaml")
            && changed.contains("tenants/tenants/acme/manifests.yaml")
    );

    repo.write_tenant("tenants/acme", None, "remove tenant tenants/acme").expect("remove");
    assert!(!path.exists());
    assert!(repo.dir().join("kustomizations/README.md").exists(), "the root's path stays in Git");
    let tracked = git(repo.dir(), &["ls-files"]);
    assert!(!tracked.contains("acme"), "{tracked}");
}

/// A remote over HTTP that requires basic credentials (as a Git host does), given in the URL as the chart's
/// `gitops.urlSecret` holds them: clone and push work, and the token is in no file of the clone, no error and no
/// `Debug` output; a wrong token is refused with an error that does not show it.
#[test]
fn credentials_in_the_url_reach_git_through_the_helper_and_nowhere_else() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bare = remote(tmp.path());
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    std::fs::rename(&bare, served.join("gitops.git")).expect("move");
    let http = kaas_testsupport::git_http::GitHttp::start_with_basic_auth(&served, "kaas", "s3cret-t0ken")
        .expect("git over HTTP");
    let plain = http.url("gitops.git");
    let with = |password: &str| plain.replacen("http://", &format!("http://kaas:{password}@"), 1);

    let repo = Repo::clone_remote(&with("s3cret-t0ken"), &tmp.path().join("ctl"), "main").expect("clone");
    let pushed = repo.write_tenant("acme", Some(&files("a: 1\n")), &message("acme", Some(1))).expect("push");
    assert!(matches!(pushed, Outcome::Committed(_)));
    assert!(!format!("{repo:?}").contains("s3cret"), "{repo:?}");
    let config = std::fs::read_to_string(repo.dir().join(".git/config")).expect("config");
    assert!(config.contains(&plain) && !config.contains("s3cret"), "{config}");

    let refused =
        Repo::clone_remote(&with("wr0ng-t0ken"), &tmp.path().join("other"), "main").expect_err("refused");
    let said = refused.to_string();
    assert!(!said.contains("wr0ng"), "{said}");
    assert!(said.contains("Authentication failed") || said.contains("401"), "{said}");
}

/// A derived write reads the folder as the remote holds it, even when another clone moved it since this one
/// last fetched: what a plan keeps of the committed one (its topics' partitions) is never a stale copy's.
#[test]
fn a_derived_write_sees_the_folder_another_writer_pushed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let url = remote(tmp.path());
    let a = Repo::clone_remote(&url, &tmp.path().join("a"), "main").expect("a");
    let b = Repo::clone_remote(&url, &tmp.path().join("b"), "main").expect("b");
    a.write_tenant("acme", Some(&files("partitions: 12\n")), "tenant acme: generation 1").expect("a writes");
    let seen = std::sync::Mutex::new(Vec::new());
    let derive = |committed: Option<&str>| {
        seen.lock().expect("lock").push(committed.map(str::to_owned));
        files(committed.unwrap_or("partitions: 24\n"))
    };
    b.write_tenant_from("acme", &derive, "tenant acme: generation 2").expect("b writes");
    assert_eq!(seen.lock().expect("lock").as_slice(), [Some("partitions: 12\n".to_owned())]);
    let fresh = Repo::clone_remote(&url, &tmp.path().join("c"), "main").expect("c");
    let text = std::fs::read_to_string(fresh.dir().join("tenants/acme/manifests.yaml")).expect("manifests");
    assert_eq!(text, "partitions: 12\n", "b kept what a committed");
    // A new folder: nothing committed to derive from.
    b.write_tenant_from("beta", &derive, "tenant beta: generation 1").expect("new");
    assert_eq!(seen.lock().expect("lock").last(), Some(&None));
}
