//! Tenant ids claimed: ids join namespace and name with '-', so `a-b/c` and `a/b-c` are both `a-b-c`. The
//! first tenant to claim an id keeps it ([`id_owner`], pure and tested by tables); a later one is refused
//! before it can touch the other's objects, and a deleted one that never owned its id removes nothing of the
//! owner's. A new tenant's namespaces are claimed too ([`namespaces_taken`]): one someone else made first is
//! not adopted.
//!
//! Neighbours: [`super::reconcile`] claims the id first of all, and checks it again on cleanup;
//! [`crate::names::tenant_id`] builds the ids.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::ResourceExt;

use super::{tenant_key, Context, Error};
use crate::crd::KafkaTenant;
use crate::names::{self, TENANT_LABEL};

/// A tenant's claim to its id: who it is and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `namespace/name`.
    pub key: String,
    /// [`names::tenant_id`] of it.
    pub id: String,
    /// `metadata.creationTimestamp` (RFC 3339; an object not yet stored has none and sorts last).
    pub created: Option<String>,
}

impl Claim {
    /// The claim of `t`.
    pub(super) fn of(t: &KafkaTenant) -> Claim {
        Claim {
            key: tenant_key(t),
            id: names::tenant_id_of(t),
            created: t.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()),
        }
    }
}

/// Every stored tenant's claim.
pub(super) async fn claims(ctx: &Context) -> Result<Vec<Claim>, Error> {
    let all = Api::<KafkaTenant>::all(ctx.client.clone()).list(&Default::default()).await?;
    Ok(all.items.iter().map(Claim::of).collect())
}

/// The other tenant that owns `mine.id`, if one does: of the tenants with that id, the one created first
/// (then the smaller `namespace/name`, for two created in the same second). Pure, so tested by tables.
pub fn id_owner(mine: &Claim, all: &[Claim]) -> Option<String> {
    let order = |c: &Claim| (c.created.is_none(), c.created.clone(), c.key.clone());
    let owner = all.iter().chain([mine]).filter(|c| c.id == mine.id).min_by_key(|c| order(c))?;
    (owner.key != mine.key).then(|| owner.key.clone())
}

/// Why `t` may not use its id, when an earlier tenant owns it: the message of its refusal.
pub(super) async fn id_taken(t: &KafkaTenant, ctx: &Context) -> Result<Option<String>, Error> {
    let mine = Claim::of(t);
    Ok(id_owner(&mine, &claims(ctx).await?).map(|owner| {
        format!(
            "tenant id {} is already {owner}'s (ids join namespace and name with '-'): rename or move \
             one of them; nothing is committed for this one meanwhile",
            mine.id
        )
    }))
}

/// Why `t` may not take its namespaces ([`names::management_namespaces`]): one of them exists, was not made for
/// it (no `kaas.dev/tenant: <id>` label, which Flux puts on the Namespaces of the tenant's folder) and the
/// folder was never committed. Committing would make Flux adopt a namespace someone else made, with whatever
/// they put there (a RoleBinding, a pod) beside the tenant's Kafka and its CA Secrets. Once the folder is
/// committed its namespaces are the tenant's, an earlier version's `tenant-<id>` (made by helm-controller,
/// unlabelled) included. The chart's admission policy keeps these names to Flux in the first place.
pub(super) async fn namespaces_taken(
    t: &KafkaTenant,
    folder: &str,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let id = names::tenant_id_of(t);
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let mut taken = Vec::new();
    for ns in names::management_namespaces(&id, t.spec.isolation) {
        let Some(existing) = namespaces.get_opt(&ns).await? else { continue };
        if existing.labels().get(TENANT_LABEL) != Some(&id) {
            taken.push(ns);
        }
    }
    if taken.is_empty() {
        return Ok(None);
    }
    // Asked of the work tree only then: its lock may be held by another tenant's push.
    let (repo, folder) = (ctx.repo.clone(), folder.to_owned());
    let committed = tokio::task::spawn_blocking(move || {
        let repo = repo.lock().unwrap_or_else(|p| p.into_inner());
        repo.has_tenant(&folder)
    })
    .await
    .map_err(Error::GitTask)?;
    Ok((!committed).then(|| {
        format!(
            "namespace {} exists and was not made for this tenant (no label {TENANT_LABEL}={id}): delete it \
             or rename the tenant; nothing is committed for it meanwhile",
            taken.join(", ")
        )
    }))
}
