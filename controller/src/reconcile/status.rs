//! A tenant's status: its conditions (one state at a time, `Ready`, `Provisioning`, `Degraded`, and
//! `Deleting` once deleted), their transition times, the status of an applied tenant read from its plan, and
//! the write itself: server-side apply on the status subresource as [`super::FIELD_MANAGER`], with an Event
//! whenever the state or its reason changes.
//!
//! Neighbours: every step of [`super::reconcile`] ends in a status written here; the pure parts are tested by
//! tables in `reconcile/tests.rs`.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::live::Standing;
use super::{Context, Error, RouteSource, DELETION_PROTECTION, FIELD_MANAGER};
use crate::crd::{Condition, KafkaTenant, KafkaTenantStatus};
use crate::names;
use crate::render::Plan;

/// The conditions of a held deletion: those the tenant had (it still runs, its route stays published) and
/// `Deleting` False naming the annotation.
pub fn held_conditions(previous: &[Condition], generation: Option<i64>) -> Vec<Condition> {
    let mut out: Vec<Condition> = previous.iter().filter(|c| c.type_ != "Deleting").cloned().collect();
    let message = format!(
        "deletion held: {DELETION_PROTECTION} is \"true\"; nothing is removed until the annotation is removed"
    );
    out.push(condition("Deleting", false, "DeletionProtected", &message, generation));
    out
}

pub(super) fn condition(
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if on { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: None,
        observed_generation: generation,
    }
}

/// The three conditions, exactly one state at a time; a fourth, `Deleting`, once the tenant is being deleted.
pub(super) fn conditions(
    state: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Vec<Condition> {
    let deleting = (state == "Deleting").then_some("Deleting");
    ["Ready", "Provisioning", "Degraded"]
        .into_iter()
        .chain(deleting)
        .map(|t| condition(t, t == state, reason, message, generation))
        .collect()
}

/// Gives each condition its `lastTransitionTime`: the previous one while its status is unchanged, `now` when
/// it changed or is new, so the time says since when the tenant has been in its state, not when it was last
/// reconciled.
pub fn stamp_transitions(conditions: &mut [Condition], previous: &[Condition], now: &str) {
    for c in conditions {
        let before = previous.iter().find(|p| p.type_ == c.type_ && p.status == c.status);
        c.last_transition_time =
            Some(before.and_then(|p| p.last_transition_time.clone()).unwrap_or_else(|| now.to_owned()));
    }
}

/// Now, as Kubernetes writes times (RFC 3339, whole seconds, UTC).
pub(super) fn now() -> String {
    let t = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The state (the condition that is `True`) and its reason.
pub(super) fn state_of(conditions: &[Condition]) -> Option<(&str, &str)> {
    conditions.iter().find(|c| c.status == "True").map(|c| (c.type_.as_str(), c.reason.as_str()))
}

/// Writes `status` by server-side apply on the status subresource, and records an Event when the state or
/// its reason changed.
pub(super) async fn set_status(
    api: &Api<KafkaTenant>,
    ctx: &Context,
    t: &KafkaTenant,
    mut status: KafkaTenantStatus,
) -> Result<(), Error> {
    let previous = t.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    stamp_transitions(&mut status.conditions, previous, &now());
    let patch = json!({
        "apiVersion": KafkaTenant::api_version(&()),
        "kind": KafkaTenant::kind(&()),
        "status": status,
    });
    // Forced: the controller alone owns the status; a field another manager set is taken over, not a conflict.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&t.name_any(), &params, &Patch::Apply(&patch)).await?;
    if let Some((state, reason)) = state_of(&status.conditions) {
        if state_of(previous) != Some((state, reason)) {
            let message = status.conditions.iter().find(|c| c.type_ == state).map(|c| c.message.clone());
            let failed = state == "Degraded" || reason.ends_with("Failed");
            let type_ = if failed { EventType::Warning } else { EventType::Normal };
            ctx.record(t, type_, reason, format!("{state}: {}", message.unwrap_or_default())).await;
        }
    }
    Ok(())
}

/// The status of an applied tenant: `Ready` with the address its clients use once its route is published,
/// `Provisioning` with what it is waiting for, or `Degraded` (`ApiNotServed`) naming the kinds the API server
/// does not serve; in each case the plan's sizing and users.
pub(super) fn applied_status(
    t: &KafkaTenant,
    plan: &Plan,
    standing: &Standing,
    routes: &RouteSource,
) -> KafkaTenantStatus {
    let generation = t.metadata.generation;
    let (state, reason, message, bootstrap) = match standing {
        Standing::Waiting(why) => ("Provisioning", "Waiting", why.as_str(), None),
        Standing::NotServed(why) => ("Degraded", "ApiNotServed", why.as_str(), None),
        Standing::Up => (
            "Ready",
            "Published",
            "route published to the proxy",
            Some(names::expand(&routes.client_address, &plan.tenant)),
        ),
    };
    KafkaTenantStatus {
        observed_generation: generation,
        conditions: conditions(state, reason, message, generation),
        sizing: Some(plan.sizing.clone()),
        bootstrap,
        users: plan.users.clone(),
    }
}
