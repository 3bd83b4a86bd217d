//! Writing a tenant's folder of the GitOps repository: the plan's manifests committed over what the folder holds
//! (a topic keeps its partitions, [`render::keep_topic_partitions`]), or the folder removed. Git work blocks, so it
//! runs on the blocking pool under the repository's lock.
//!
//! Neighbours: [`super::apply`] commits, [`super::remove`] removes; [`crate::gitops`] does the Git work.

use kube::api::Api;
use kube::runtime::events::EventType;

use super::{conditions, set_status, Context, Error};
use crate::crd::{KafkaTenant, KafkaTenantStatus};
use crate::gitops;
use crate::render::{self, Plan};

/// Commits the plan's manifests to the tenant's folder; an Event names a new commit. A failed write marks the
/// tenant `Degraded` (with the plan's sizing and users) and fails the reconcile, which retries it.
pub(super) async fn commit(
    t: &KafkaTenant,
    plan: &Plan,
    api: &Api<KafkaTenant>,
    ctx: &Context,
) -> Result<(), Error> {
    let yaml = render::to_yaml(&plan.manifests).map_err(Error::Manifests)?;
    let message = gitops::message(&plan.folder, t.metadata.generation);
    // What the folder holds now decides what the plan keeps (its topics' partitions): read as it is written.
    let (tenant, manifests) = (t.clone(), plan.manifests.clone());
    let derive = move |committed: Option<&str>| {
        gitops::tenant_files(render::yaml_over(&tenant, &manifests, &yaml, committed))
    };
    match write_folder(ctx, &plan.folder, Some(Box::new(derive)), message).await? {
        Ok(gitops::Outcome::Committed(sha)) => {
            let note = format!("{} at {}", plan.folder, &sha[..12.min(sha.len())]);
            ctx.record(t, EventType::Normal, "Committed", note).await;
            Ok(())
        }
        Ok(gitops::Outcome::Unchanged) => Ok(()),
        Err(e) => {
            let generation = t.metadata.generation;
            let status = KafkaTenantStatus {
                observed_generation: generation,
                conditions: conditions("Degraded", "GitWriteFailed", &e.to_string(), generation),
                sizing: Some(plan.sizing.clone()),
                users: plan.users.clone(),
                ..Default::default()
            };
            set_status(api, ctx, t, status).await?;
            Err(e.into())
        }
    }
}

/// A folder's files from what it holds, to be written on the blocking pool ([`gitops::Derive`]).
type DeriveFiles = Box<dyn Fn(Option<&str>) -> Vec<gitops::TenantFile> + Send>;

/// Makes the tenant folder `folder` hold the files `derive` makes of what it holds
/// ([`gitops::Repo::write_tenant_from`]; `None`: removes it), committed with `message`. Git work blocks, so it runs on the blocking pool; the
/// repository's lock keeps two writes out of one work tree.
pub(super) async fn write_folder(
    ctx: &Context,
    folder: &str,
    derive: Option<DeriveFiles>,
    message: String,
) -> Result<Result<gitops::Outcome, gitops::GitError>, Error> {
    let (repo, folder) = (ctx.repo.clone(), folder.to_owned());
    tokio::task::spawn_blocking(move || {
        let repo = repo.lock().unwrap_or_else(|p| p.into_inner());
        match &derive {
            Some(derive) => repo.write_tenant_from(&folder, &**derive, &message),
            None => repo.write_tenant(&folder, None, &message),
        }
    })
    .await
    .map_err(Error::GitTask)
}
