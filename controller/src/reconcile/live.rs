//! What Flux applied from a tenant's folder, read back from the management cluster: its Cluster API
//! `Cluster` (own cluster only) and its Kafka `HelmRelease`. Readiness reads their status; a deletion waits
//! until both are gone.
//!
//! Neighbours: [`super::reconcile`] waits on [`readiness_of`] before publishing and on [`LiveObjects::present`]
//! before releasing a deleted tenant; [`crate::watched`] judges each object's conditions.

use kube::api::Api;
use kube::ResourceExt;

use super::{Context, Error};
use crate::crd::{Isolation, KafkaTenant};
use crate::names;
use crate::watched::{cluster_readiness, release_readiness, Cluster, HelmRelease};

/// `None` when everything the tenant needs is up for its current spec; otherwise what it waits for.
///
/// Cluster API v1beta2 says a `Cluster` is up with `Available`; Flux says a `HelmRelease` is with `Ready`, each
/// for the generation it observed. A spec change reaches the `HelmRelease` only once Flux has applied the new
/// commit, so the release must also carry the tenant's generation ([`names::TENANT_GENERATION`]): until
/// then its `Ready` is the old spec's.
pub(super) async fn readiness_of(t: &KafkaTenant, ctx: &Context) -> Result<Option<String>, Error> {
    let live = LiveObjects::of(t, ctx).await?;
    let (ns, name, release) = (&live.namespace, &live.id, &live.release_name);
    if t.spec.isolation == Isolation::Cluster {
        match &live.cluster {
            None => return Ok(Some(format!("Cluster {ns}/{name} not created yet"))),
            Some(c) => {
                if let Err(why) = cluster_readiness(c) {
                    return Ok(Some(format!("Cluster {ns}/{name}: {why}")));
                }
            }
        }
    }
    let Some(r) = &live.release else {
        return Ok(Some(format!("HelmRelease {ns}/{release} not created yet")));
    };
    if let Some(want) = t.metadata.generation {
        let applied = r.annotations().get(names::TENANT_GENERATION).cloned().unwrap_or_default();
        if applied != want.to_string() {
            return Ok(Some(format!(
                "HelmRelease {ns}/{release}: Flux has not applied tenant generation {want} yet (applied: {})",
                if applied.is_empty() { "none" } else { &applied }
            )));
        }
    }
    Ok(release_readiness(r).err().map(|why| format!("HelmRelease {ns}/{release}: {why}")))
}

/// What Flux applied from a tenant's folder and the controller reads back: its `Cluster` (own cluster only)
/// and its Kafka `HelmRelease`, as the management cluster has them now. Readiness reads their status; a
/// deletion waits until both are gone.
pub(super) struct LiveObjects {
    namespace: String,
    id: String,
    release_name: String,
    cluster: Option<Cluster>,
    release: Option<HelmRelease>,
}

impl LiveObjects {
    pub(super) async fn of(t: &KafkaTenant, ctx: &Context) -> Result<LiveObjects, Error> {
        let id = names::tenant_id_of(t);
        let namespace = names::namespace(&id);
        let cluster = match t.spec.isolation {
            Isolation::Cluster => {
                Api::<Cluster>::namespaced(ctx.client.clone(), &namespace).get_opt(&id).await?
            }
            Isolation::Namespace => None,
        };
        let release_name = names::helm_release(&id);
        let release =
            Api::<HelmRelease>::namespaced(ctx.client.clone(), &namespace).get_opt(&release_name).await?;
        Ok(LiveObjects { namespace, id, release_name, cluster, release })
    }

    /// Those still there, named for a message.
    pub(super) fn present(&self) -> Vec<String> {
        let (ns, id, release) = (&self.namespace, &self.id, &self.release_name);
        let cluster = self.cluster.as_ref().map(|_| format!("Cluster {ns}/{id}"));
        let helm = self.release.as_ref().map(|_| format!("HelmRelease {ns}/{release}"));
        cluster.into_iter().chain(helm).collect()
    }
}
