//! What Flux applied from a tenant's folder, read back from the management cluster: its Cluster API
//! `Cluster` (own cluster only) and its Kafka `HelmRelease`. Readiness reads their status; a deletion waits
//! until both are gone. A kind the API server does not serve is no failure to retry blindly: the tenant is
//! `Degraded` naming it ([`Standing::NotServed`]), and a kind no version serves holds nothing to wait for.
//!
//! Then, on the cluster the tenant's Kafka runs on, Strimzi's `Kafka` status ([`kafka_serving`]).
//!
//! Neighbours: [`super::reconcile`] waits on [`LiveObjects::standing`] and [`kafka_serving`] before publishing and on [`LiveObjects::present`]
//! before releasing a deleted tenant; [`crate::watched`] judges each object's conditions, [`crate::apis`]
//! what discovery says.

use kube::api::Api;
use kube::{Client, ResourceExt};

use super::{Context, Error};
use crate::apis::{self, not_served_message, NeededApi, Served, CLUSTER, HELM_RELEASE};
use crate::crd::{Isolation, KafkaTenant};
use crate::names;
use crate::watched::{cluster_readiness, release_readiness, Cluster, HelmRelease};
use crate::{strimzi, tenant_cluster};

/// Where a tenant's objects stand: up (ready to publish), waiting for something, or stopped by a kind the API
/// server does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// Everything the tenant needs is up for its current spec.
    Up,
    /// What it waits for.
    Waiting(String),
    /// The kinds it needs that are not served, named with their group/version (`Degraded`, `ApiNotServed`).
    NotServed(String),
}

/// What Flux applied from a tenant's folder and the controller reads back: its `Cluster` (own cluster only)
/// and its Kafka `HelmRelease`, as the management cluster has them now, and the kinds among them the API
/// server does not serve. [`LiveObjects::standing`] reads their status; a deletion waits until both are gone.
pub(super) struct LiveObjects {
    namespace: String,
    id: String,
    release_name: String,
    cluster: Option<Cluster>,
    release: Option<HelmRelease>,
    unserved: Vec<(NeededApi, Served)>,
}

impl LiveObjects {
    pub(super) async fn of(t: &KafkaTenant, ctx: &Context) -> Result<LiveObjects, Error> {
        let id = names::tenant_id_of(t);
        let namespace = names::namespace(&id);
        let mut unserved = Vec::new();
        let cluster = match t.spec.isolation {
            Isolation::Cluster => {
                let api = Api::<Cluster>::namespaced(ctx.client.clone(), &namespace);
                read(api, &id, CLUSTER, ctx, &mut unserved).await?
            }
            Isolation::Namespace => None,
        };
        let release_name = names::helm_release(&id);
        let api = Api::<HelmRelease>::namespaced(ctx.client.clone(), &namespace);
        let release = read(api, &release_name, HELM_RELEASE, ctx, &mut unserved).await?;
        Ok(LiveObjects { namespace, id, release_name, cluster, release, unserved })
    }

    /// Where the tenant stands, for its current spec.
    ///
    /// Cluster API v1beta2 says a `Cluster` is up with `Available`; Flux says a `HelmRelease` is with `Ready`,
    /// each for the generation it observed. A spec change reaches the `HelmRelease` only once Flux has applied
    /// the new commit, so the release must also carry the tenant's generation ([`names::TENANT_GENERATION`]):
    /// until then its `Ready` is the old spec's.
    pub(super) fn standing(&self, t: &KafkaTenant) -> Standing {
        if !self.unserved.is_empty() {
            let each: Vec<String> = self.unserved.iter().map(|(api, s)| not_served_message(api, s)).collect();
            return Standing::NotServed(each.join("; "));
        }
        let (ns, name, release) = (&self.namespace, &self.id, &self.release_name);
        if t.spec.isolation == Isolation::Cluster {
            match &self.cluster {
                None => return Standing::Waiting(format!("Cluster {ns}/{name} not created yet")),
                Some(c) => {
                    if let Err(why) = cluster_readiness(c) {
                        return Standing::Waiting(format!("Cluster {ns}/{name}: {why}"));
                    }
                }
            }
        }
        let Some(r) = &self.release else {
            return Standing::Waiting(format!("HelmRelease {ns}/{release} not created yet"));
        };
        if let Some(want) = t.metadata.generation {
            let applied = r.annotations().get(names::TENANT_GENERATION).cloned().unwrap_or_default();
            if applied != want.to_string() {
                return Standing::Waiting(format!(
                    "HelmRelease {ns}/{release}: Flux has not applied tenant generation {want} yet (applied: {})",
                    if applied.is_empty() { "none" } else { &applied }
                ));
            }
        }
        match release_readiness(r) {
            Ok(()) => Standing::Up,
            Err(why) => Standing::Waiting(format!("HelmRelease {ns}/{release}: {why}")),
        }
    }

    /// Those still there, named for a message. A kind no version serves holds nothing
    /// ([`Served::may_hold_objects`]); one served only at other versions may hold the tenant's object, which
    /// the controller cannot read, so the deletion waits on it rather than leave a cluster running.
    pub(super) fn present(&self) -> Vec<String> {
        let (ns, id, release) = (&self.namespace, &self.id, &self.release_name);
        let cluster = self.cluster.as_ref().map(|_| format!("Cluster {ns}/{id}"));
        let helm = self.release.as_ref().map(|_| format!("HelmRelease {ns}/{release}"));
        let unreadable = self
            .unserved
            .iter()
            .filter(|(_, s)| s.may_hold_objects())
            .map(|(api, s)| format!("any {} in {ns} ({})", api.kind, not_served_message(api, s)));
        cluster.into_iter().chain(helm).chain(unreadable).collect()
    }
}

/// Whether Strimzi says the tenant's `Kafka` (read through `cluster`, the [`tenant_cluster::client`] of the
/// cluster it runs on) serves for its current spec, on the listener kaas-proxy dials
/// ([`strimzi::status::serving`]): `None` when it does, else what it waits for. Read after the release is
/// `Ready`: helm-controller's `Ready` says the chart is applied, not that Kafka runs (a version Strimzi refuses,
/// a broker that cannot start, a load balancer not yet provisioned all leave the release `Ready`).
pub(super) async fn kafka_serving(t: &KafkaTenant, cluster: &Client) -> Result<Option<String>, Error> {
    let id = names::tenant_id_of(t);
    let kafka = match tenant_cluster::kafka(cluster, &id, t.spec.isolation).await? {
        Ok(kafka) => kafka,
        Err(waiting) => return Ok(Some(waiting)),
    };
    let ns = names::kafka_namespace(&id, t.spec.isolation);
    let listener = names::proxy_listener(t.spec.isolation);
    let serving = strimzi::status::serving(&kafka, listener);
    Ok(serving.err().map(|why| format!("Kafka {ns}/{}: {why}", names::KAFKA_RELEASE)))
}

/// Reads `name`; a path the API server does not know is checked by discovery and, when the kind is indeed
/// not served, noted in `unserved` and read as absent. Either way `kaas_controller_api_served` follows.
async fn read<K>(
    api: Api<K>,
    name: &str,
    needed: NeededApi,
    ctx: &Context,
    unserved: &mut Vec<(NeededApi, Served)>,
) -> Result<Option<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(found) => {
            ctx.metrics.set_api_served(&needed, true);
            Ok(found)
        }
        Err(e) if apis::unserved_path(&e) => match apis::served(&ctx.client, &needed).await? {
            // Installed between the read and discovery: the next reconcile reads it.
            Served::Yes => Err(e.into()),
            served => {
                ctx.metrics.set_api_served(&needed, false);
                unserved.push((needed, served));
                Ok(None)
            }
        },
        Err(e) => Err(e.into()),
    }
}
