//! The reconcile loop over `KafkaTenant`, in the shape of kube-rs' controller-rs: finalizer, status with
//! conditions, metrics, and an error policy that requeues.
//!
//! Tenants are keyed by namespace and name: their folder is `tenants/<namespace>/<name>/`, and every
//! platform-wide name (management namespace, Cluster, route) is built from [`names::tenant_id`].
//!
//! Apply, one step each: claim the tenant's id → plan it ([`render::plan`]: validate, size and render, once)
//! → commit the plan to `tenants/<namespace>/<name>/` → wait until the Cluster API `Cluster` and the Flux
//! `HelmRelease` read back are Ready → publish (the Strimzi CAs copied for the proxy, then the route, in the
//! proxy's route source: a ConfigMap holding the tenants list as `kaas_route::TenantRoute`s) → status, from
//! the same plan. A malformed tenant gets `Degraded` naming the field and nothing is committed for it; one whose
//! `Cluster` or `HelmRelease` kind the API server does not serve gets `Degraded`, `ApiNotServed`, naming it.
//! Cleanup (finalizer): remove the folder and the route, unless [`DELETION_PROTECTION`] holds the deletion
//! ([`step`]).
//!
//! Status is written through the status subresource by server-side apply as [`FIELD_MANAGER`]; every change of
//! state (and every commit) is also a Kubernetes Event on the tenant, so `kubectl describe` tells its story.
//!
//! Beside the loop: `reconcile/claims.rs` (who owns an id), `reconcile/live.rs` (the `Cluster` and
//! `HelmRelease` read back), `reconcile/routes.rs` (the route source, and how a route is built:
//! [`RouteSource`]) and `reconcile/status.rs` (conditions and the status write). The pure parts are tested by
//! tables in `reconcile/tests.rs`, the loop itself against a real API server in `controller/tests/controller/reconcile.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event};
use kube::{Client, Resource, ResourceExt};

use crate::crd::{Condition, KafkaTenant, KafkaTenantStatus};
use crate::gitops::{self, Repo};
use crate::metrics::Metrics;
use crate::names;
use crate::render::{self, Plan, Platform};
use crate::{tenant_cluster, upstream};

mod claims;
mod folder;
mod live;
mod quota;
mod routes;
mod status;

use claims::{claims, id_taken};
pub use claims::{id_owner, Claim};
use folder::{commit, write_folder};
use live::{kafka_serving, LiveObjects, Standing};
use routes::publish_route;
pub use routes::{
    ensure_route_source, RouteSource, CLIENT_ADDRESS, ROUTES_CONFIG_MAP, ROUTES_KEY, ROUTES_NAMESPACE,
    UPSTREAM_FILES,
};
use status::{applied_status, conditions, set_status};
pub use status::{held_conditions, stamp_transitions};

/// Finalizer on every `KafkaTenant`, so deleting one first removes its folder and route.
pub const FINALIZER: &str = "kaas.dev/tenant";
/// The field manager of the controller's server-side applies (the tenant's status).
pub const FIELD_MANAGER: &str = "kaas-controller";
/// Annotation that holds a tenant's deletion: while it is `"true"`, deleting the `KafkaTenant` removes nothing
/// (folder, route and the proxy's copies stay, so Flux keeps the cluster) and the object waits with the
/// condition `Deleting` False, reason `DeletionProtected`; removing the annotation lets the deletion go on.
pub const DELETION_PROTECTION: &str = "kaas.dev/deletion-protection";

/// Why a reconcile failed; [`error_policy`] requeues it. A tenant that cannot be planned ([`render::plan`]) is
/// no failure: it is marked `Degraded` and waits for its spec to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed (status patch, reading `Cluster`/`HelmRelease`, the route ConfigMap).
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// Committing or pushing the tenant's folder failed; the tenant is also marked `Degraded`.
    #[error("git: {0}")]
    Git(#[from] gitops::GitError),
    /// The blocking task that writes the tenant's folder panicked or was cancelled.
    #[error("git task: {0}")]
    GitTask(#[source] tokio::task::JoinError),
    /// The planned manifests would not serialize as YAML.
    #[error("manifests: {0}")]
    Manifests(#[source] serde_norway::Error),
    /// The tenant's upstream material could not be read from Strimzi's secrets or written to the proxy's.
    #[error("upstream material: {0}")]
    Upstream(#[from] upstream::UpstreamError),
    /// The cluster the tenant's Kafka runs on could not be read (its `Kafka`'s status).
    #[error("tenant cluster: {0}")]
    TenantCluster(#[from] tenant_cluster::TenantClusterError),
    /// The route source ConfigMap's tenants list could not be read or written as YAML.
    #[error("route source: {0}")]
    Routes(String),
    /// What [`reconcile`] returns for every failure: the finalizer wraps the apply or cleanup error, or it
    /// could not add or remove itself. [`Error::reason`] labels the wrapped failure.
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Bounded label for metrics (`kaas_controller_reconcile_errors_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Git(_) => "git",
            Error::GitTask(_) => "git_task",
            Error::Manifests(_) => "manifests",
            Error::Routes(_) => "routes",
            Error::Upstream(_) => "upstream",
            Error::TenantCluster(_) => "tenant_cluster",
            // The finalizer wraps every failure of the apply or cleanup: label the failure, not the wrapper.
            Error::Finalizer(e) => match e.as_ref() {
                FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => inner.reason(),
                FinalizerError::AddFinalizer(_) | FinalizerError::RemoveFinalizer(_) => "kube",
                _ => "finalizer",
            },
        }
    }
}

/// Everything a reconcile needs.
#[allow(missing_debug_implementations)] // kube::Client is not Debug
pub struct Context {
    /// The management cluster's API client.
    pub client: Client,
    /// Git work is blocking and must not interleave within one work tree.
    pub repo: Arc<Mutex<Repo>>,
    /// Platform-wide rendering settings.
    pub platform: Platform,
    /// Where routes are published.
    pub routes: RouteSource,
    /// Counts every reconcile.
    pub metrics: Metrics,
    /// Records the tenants' Events; `None` records none (tests that do not look at them).
    pub events: Option<Recorder>,
    /// Failed reconciles per tenant since its last success, for [`error_policy`]'s back-off.
    pub failures: Failures,
}

/// Consecutive failed reconciles per tenant (`namespace/name`), cleared by a success.
#[derive(Debug, Default)]
pub struct Failures(Mutex<std::collections::HashMap<String, u32>>);

impl Failures {
    fn record(&self, key: String) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn clear(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// First retry after a failure; each further failure doubles it, up to [`RETRY_MAX`].
pub const RETRY_BASE: Duration = Duration::from_secs(5);
/// Longest wait between retries of a failing tenant.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// The wait before retrying a tenant after its `failures`-th consecutive failure: exponential from
/// [`RETRY_BASE`] to [`RETRY_MAX`], of which the upper half is spread by `jitter` (0.0..1.0), so tenants that
/// failed together (the Git remote or the API server was away) do not all come back in the same second.
pub fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let full = RETRY_BASE.saturating_mul(1 << doublings).min(RETRY_MAX);
    full / 2 + (full / 2).mul_f64(jitter.clamp(0.0, 1.0))
}

fn tenant_key(t: &KafkaTenant) -> String {
    format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any())
}

impl Context {
    /// Records an Event on `t`. A failure is logged, not returned: an Event is a report, and a reconcile
    /// that did its work must not fail for want of one.
    async fn record(&self, t: &KafkaTenant, type_: EventType, reason: &str, note: String) {
        let Some(recorder) = &self.events else { return };
        // The API server refuses notes over 1 kB.
        let mut note = note;
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &t.object_ref(&())).await {
            tracing::warn!(tenant = %t.name_any(), error = %e, "event not recorded");
        }
    }
}

/// Reconciles one tenant under the finalizer: apply (claim, plan, commit, wait for Ready, publish, status) or,
/// on deletion, cleanup. Ready tenants are checked again every 10 minutes, waiting ones every 30 seconds.
pub async fn reconcile(tenant: Arc<KafkaTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = tenant.namespace().unwrap_or_else(|| "default".into());
    let key = tenant_key(&tenant);
    let api: Api<KafkaTenant> = Api::namespaced(ctx.client.clone(), &ns);
    let result = match step(&tenant) {
        Step::Hold => hold(&tenant, &api, &ctx).await,
        Step::Cleanup => cleanup(tenant, &api, &ctx).await,
        Step::Apply => finalizer(&api, FINALIZER, tenant, |event| async {
            match event {
                Event::Apply(t) => apply(&t, &api, &ctx).await,
                // Deletions never reach here (`step`); a finalizer without the object's is nothing to undo.
                Event::Cleanup(_) => Ok(Action::await_change()),
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e))),
    };
    ctx.metrics.observe(started.elapsed(), result.as_ref().err().map(Error::reason));
    if result.is_ok() {
        ctx.failures.clear(&key);
    }
    result
}

/// What a reconcile does with a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Render, commit, wait for it, publish (the finalizer added first).
    Apply,
    /// Being deleted under [`DELETION_PROTECTION`]: keep everything and say why.
    Hold,
    /// Being deleted: remove the folder, the route and the proxy's copies, then release the finalizer.
    Cleanup,
}

/// Whether `t` carries [`DELETION_PROTECTION`] set to true.
pub fn deletion_protected(t: &KafkaTenant) -> bool {
    t.annotations().get(DELETION_PROTECTION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The step for `t`, from its deletion timestamp, finalizer and annotation. A tenant being deleted without the
/// finalizer has nothing of the controller's left to hold or remove.
pub fn step(t: &KafkaTenant) -> Step {
    let finalized = t.finalizers().iter().any(|f| f == FINALIZER);
    match (t.metadata.deletion_timestamp.is_some(), finalized, deletion_protected(t)) {
        (false, _, _) => Step::Apply,
        (true, true, true) => Step::Hold,
        (true, _, _) => Step::Cleanup,
    }
}

/// Holds a protected tenant's deletion: status only, and a Warning Event the first time. Removing the
/// annotation is a change of the object, which brings the next reconcile.
async fn hold(t: &KafkaTenant, api: &Api<KafkaTenant>, ctx: &Context) -> Result<Action, Error> {
    let previous = t.status.clone().unwrap_or_default();
    let held = |c: &Condition| c.type_ == "Deleting" && c.reason == "DeletionProtected";
    let first = !previous.conditions.iter().any(held);
    let conditions = held_conditions(&previous.conditions, t.metadata.generation);
    let note = conditions.iter().find(|c| held(c)).map(|c| c.message.clone()).unwrap_or_default();
    set_status(api, ctx, t, KafkaTenantStatus { conditions, ..previous }).await?;
    if first {
        ctx.record(t, EventType::Warning, "DeletionProtected", note).await;
    }
    Ok(Action::await_change())
}

/// Requeues a failed tenant after [`retry_delay`] for its count of consecutive failures; the metrics already
/// counted the failure.
pub fn error_policy(tenant: Arc<KafkaTenant>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = tenant_key(&tenant);
    let failures = ctx.failures.record(key.clone());
    // Sub-second clock noise is jitter enough to spread tenants; nothing here needs a random generator.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let delay = retry_delay(failures, f64::from(nanos.subsec_nanos()) / 1e9);
    tracing::warn!(tenant = %key, %error, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// How often a tenant refused for a taken id checks whether the id is free (the other tenant gone).
const ID_RECHECK: Duration = Duration::from_secs(60);
/// How often a tenant waiting for its cluster, release or CAs is checked again.
const WAITING_RECHECK: Duration = Duration::from_secs(30);
/// How often a ready tenant is checked again (Strimzi renews CAs; drift is put back).
const READY_RECHECK: Duration = Duration::from_secs(600);

/// Applies a tenant, one step each: claim its id, plan it, commit the plan, wait until what Flux applied is
/// ready, publish it (the CA copy, then the route), and write the status that says where it stands.
async fn apply(t: &KafkaTenant, api: &Api<KafkaTenant>, ctx: &Context) -> Result<Action, Error> {
    if let Some(why) = id_taken(t, ctx).await? {
        // Checked again now and then: the id is free once the other tenant is gone.
        return refuse(t, api, ctx, Default::default(), "IdConflict", &why, Action::requeue(ID_RECHECK))
            .await;
    }
    let plan = match render::plan(t, &ctx.platform) {
        Ok(plan) => plan,
        // Nothing is committed for a malformed tenant; it waits for its spec to change.
        Err(e) => {
            let why = e.to_string();
            return refuse(t, api, ctx, Default::default(), "InvalidSpec", &why, Action::await_change())
                .await;
        }
    };
    if let Some(why) = claims::namespaces_taken(t, &plan.folder, ctx).await? {
        // Checked again now and then: the namespace may be deleted.
        return refuse(t, api, ctx, Default::default(), "NamespaceTaken", &why, Action::requeue(ID_RECHECK))
            .await;
    }
    if let Some(why) = quota::exceeded(t, &plan, ctx).await? {
        // What it runs now stays (and counts in its status); checked again as the namespace's tenants change.
        let kept = t.status.clone().unwrap_or_default();
        return refuse(t, api, ctx, kept, "NamespaceQuotaExceeded", &why, Action::requeue(ID_RECHECK)).await;
    }
    commit(t, &plan, api, ctx).await?;
    let standing = match LiveObjects::of(t, ctx).await?.standing(t) {
        Standing::Up => publish(t, &plan, ctx).await?.map_or(Standing::Up, Standing::Waiting),
        other => other,
    };
    set_status(api, ctx, t, applied_status(t, &plan, &standing, &ctx.routes)).await?;
    Ok(Action::requeue(if standing == Standing::Up { READY_RECHECK } else { WAITING_RECHECK }))
}

/// Marks `t` `Degraded` for `reason`, then `then`: nothing is committed for it meanwhile, and its status keeps
/// only what `kept` holds besides the condition (its sizing, bootstrap and users, for a tenant that runs and keeps
/// running as it is; nothing, for one refused outright).
async fn refuse(
    t: &KafkaTenant,
    api: &Api<KafkaTenant>,
    ctx: &Context,
    kept: KafkaTenantStatus,
    reason: &str,
    message: &str,
    then: Action,
) -> Result<Action, Error> {
    let generation = t.metadata.generation;
    let status = KafkaTenantStatus {
        observed_generation: generation,
        conditions: conditions("Degraded", reason, message, generation),
        ..kept
    };
    set_status(api, ctx, t, status).await?;
    Ok(then)
}

/// Publishes a tenant whose objects are up, once Strimzi says its Kafka serves ([`kafka_serving`]): when routes
/// name the tenant's CA files, copies its Strimzi CAs and an intermediate issued from its clients CA into the
/// proxy's Secret first (the files a route names are in place before the route), then publishes its route. Both
/// reads go through one client of the cluster the tenant's Kafka runs on. `Some` says what it still waits for
/// (its cluster's kubeconfig, Strimzi's word, its secrets, or one of them unusable), with nothing published.
async fn publish(t: &KafkaTenant, plan: &Plan, ctx: &Context) -> Result<Option<String>, Error> {
    let cluster = match tenant_cluster::client(&ctx.client, &plan.tenant, t.spec.isolation).await? {
        Ok(client) => client,
        Err(waiting) => return Ok(Some(waiting)),
    };
    if let Some(why) = kafka_serving(t, &cluster).await? {
        return Ok(Some(why));
    }
    if ctx.routes.copies_material() {
        let strimzi = match upstream::read(&cluster, &plan.tenant, t.spec.isolation).await? {
            Ok(strimzi) => strimzi,
            Err(why) => return Ok(Some(why)),
        };
        let (ns, secret) = (&ctx.routes.namespace, &ctx.routes.upstream_secret);
        if let Err(why) = upstream::write(&ctx.client, ns, secret, &plan.tenant, &strimzi).await? {
            return Ok(Some(why));
        }
    }
    publish_route(&plan.tenant, Some(ctx.routes.route(plan)), ctx).await?;
    Ok(None)
}

/// How often a deleted tenant checks whether Flux and Cluster API have removed its objects (their watches
/// bring it back sooner).
const TEARDOWN_RECHECK: Duration = Duration::from_secs(5);

/// Deletes a tenant: removes its route, the proxy's copies of its CAs and its folder (so Flux prunes its
/// objects), then holds the finalizer, `Deleting` True, until its `Cluster` and Kafka `HelmRelease` are gone
/// from the management cluster (Cluster API has deleted the cluster, helm-controller uninstalled the
/// release), and only then lets the object go: a tenant never disappears while its cluster still runs (a kind
/// no version of which is served holds no object, so it is not waited for: `LiveObjects::present`). A
/// failure leaves the tenant `Deleting` with the error (the finalizer stays; the error policy retries).
async fn cleanup(t: Arc<KafkaTenant>, api: &Api<KafkaTenant>, ctx: &Context) -> Result<Action, Error> {
    if !t.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let left = match remove(&t, ctx).await {
        Ok(left) => left,
        Err(e) => {
            let status = KafkaTenantStatus {
                conditions: conditions("Deleting", "CleanupFailed", &e.to_string(), t.metadata.generation),
                ..t.status.clone().unwrap_or_default()
            };
            // The cleanup's error is the one to report and retry; a status that cannot be written is only logged.
            if let Err(status_error) = set_status(api, ctx, &t, status).await {
                tracing::warn!(tenant = %t.name_any(), error = %status_error, "deleting status not written");
            }
            return Err(e);
        }
    };
    if !left.is_empty() {
        let message = format!(
            "route and folder removed; waiting for {} to be deleted (Flux prunes them, Cluster API deletes the cluster)",
            left.join(", ")
        );
        let status = KafkaTenantStatus {
            conditions: conditions("Deleting", "WaitingForTeardown", &message, t.metadata.generation),
            ..t.status.clone().unwrap_or_default()
        };
        set_status(api, ctx, &t, status).await?;
        return Ok(Action::requeue(TEARDOWN_RECHECK));
    }
    let note = format!("route, upstream material, {} and its cluster objects removed", names::folder(&t));
    // kube's finalizer helper releases the finalizer once its cleanup returns; the cleanup is done above.
    let released = finalizer(api, FINALIZER, t.clone(), |_| async { Ok::<_, Error>(Action::await_change()) })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.record(&t, EventType::Normal, "Removed", note).await;
    Ok(released)
}

/// Removes what the controller itself wrote for the tenant and says which of its objects on the management
/// cluster are still there.
async fn remove(t: &KafkaTenant, ctx: &Context) -> Result<Vec<String>, Error> {
    let name = names::tenant_id_of(t);
    // A tenant refused for a taken id never published anything under it: what is there is the owner's.
    let owns_id = id_owner(&Claim::of(t), &claims(ctx).await?).is_none();
    if owns_id {
        publish_route(&name, None, ctx).await?;
        if ctx.routes.copies_material() {
            upstream::remove(&ctx.client, &ctx.routes.namespace, &ctx.routes.upstream_secret, &name).await?;
        }
    }
    let folder = names::folder(t);
    write_folder(ctx, &folder, None, format!("remove tenant {folder}")).await??;
    if !owns_id {
        return Ok(Vec::new());
    }
    Ok(LiveObjects::of(t, ctx).await?.present())
}

#[cfg(test)]
mod tests;
