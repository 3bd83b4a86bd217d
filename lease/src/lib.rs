//! Leader election on a `coordination.k8s.io/v1` Lease, so a chart can run two replicas and only one does
//! what must be done once: kaas-controller's reconcile loop (one Git writer, one status writer) and
//! kaas-proxy's ACME orders (one order per name set, whichever replica the CA reaches).
//!
//! The protocol is client-go's: the leader renews `renewTime` every retry period; a follower takes the lease
//! over once the record has not changed for its `leaseDurationSeconds`, measured on the follower's own clock
//! from when it last saw the record change (so clock skew between replicas does not matter). Every write
//! carries the `resourceVersion` it read, so of two followers racing for an expired lease exactly one wins. A
//! leader that cannot renew within its renew deadline (shorter than the lease) stops leading before anyone
//! else may start; on shutdown it releases the lease so the other replica takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

/// What one round of the election does, decided from the Lease as read (pure, tested by table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it, holding it.
    Create,
    /// This replica holds it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it over.
    Acquire,
    /// Someone else holds a live lease.
    Follow {
        /// Its holder.
        holder: String,
    },
}

/// Decides one round. `unchanged_for` is how long, on this replica's clock, the record has been the same;
/// `default_duration` applies when the record states no duration.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = lease else { return Decision::Create };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::Acquire,
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(default_duration, Duration::from_secs);
            if unchanged_for >= duration {
                Decision::Acquire
            } else {
                Decision::Follow { holder: holder.to_owned() }
            }
        }
    }
}

/// Why a leader stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum LostLease {
    /// Another replica holds the lease now.
    #[error("lease {lease} is now held by {holder}")]
    TakenOver {
        /// `namespace/name` of the Lease.
        lease: String,
        /// Its new holder.
        holder: String,
    },
    /// Renewals failed for longer than the renew deadline.
    #[error("lease {lease} not renewed for {seconds} s: {last_error}")]
    NotRenewed {
        /// `namespace/name` of the Lease.
        lease: String,
        /// Seconds since the last successful renewal.
        seconds: u64,
        /// The last failure.
        last_error: String,
    },
}

/// What identifies one version of the lease record: holder, renew time, transitions.
type Record = (Option<String>, Option<String>, Option<i32>);

/// One replica's side of the election.
#[allow(missing_debug_implementations)] // Api is not Debug
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The record last seen (holder, renew time, transitions) and when, on this clock, it last changed.
    observed: Option<(Record, Instant)>,
}

impl Elector {
    /// The elector for Lease `namespace/name`, as `identity` (the pod name), with leases of `duration`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            observed: None,
        }
    }

    fn lease_name(&self) -> String {
        format!("{}/{}", self.api.namespace().unwrap_or_default(), self.name)
    }

    /// How often a leader renews and a follower looks again.
    pub fn retry_period(&self) -> Duration {
        self.duration / 4
    }

    /// How long a leader keeps leading without a successful renewal: well inside the lease, so it has
    /// stopped before a follower may take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// One round: `Ok(true)` when this replica holds the lease afterwards; `Ok(false)` when another does or
    /// won a race for it; `Err` when the API server could not be asked.
    pub async fn try_lead(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.clone());
        let record = spec.as_ref().map(|s| {
            let renewed = s.renew_time.as_ref().map(|t| t.0.to_string());
            (s.holder_identity.clone(), renewed, s.lease_transitions)
        });
        let now = Instant::now();
        let unchanged_for = match (&self.observed, &record) {
            (Some((seen, since)), Some(record)) if seen == record => now.duration_since(*since),
            _ => {
                self.observed = record.map(|r| (r, now));
                Duration::ZERO
            }
        };
        // A Lease without a spec is one nobody holds.
        let empty = LeaseSpec::default();
        let decision = match &current {
            None => Decision::Create,
            Some(_) => {
                decide(Some(spec.as_ref().unwrap_or(&empty)), &self.identity, unchanged_for, self.duration)
            }
        };
        let stamp = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let held = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: acquired.or_else(|| Some(stamp.clone())),
            renew_time: Some(stamp.clone()),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let written = match (decision, current) {
            (Decision::Follow { .. }, _) => return Ok(false),
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                    spec: Some(held(0, None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                lease.spec = Some(held(old.lease_transitions.unwrap_or(0), old.acquire_time));
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
            (Decision::Acquire, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                lease.spec = Some(held(old.lease_transitions.unwrap_or(0).saturating_add(1), None));
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
            (Decision::Renew | Decision::Acquire, None) => return Ok(false),
        };
        match written {
            Ok(_) => Ok(true),
            // Another replica wrote first (a newer resourceVersion, or it created the Lease): it leads.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica leads. API errors are logged and retried: a follower has nothing else to do.
    pub async fn acquire(&mut self) {
        let mut last_holder = None;
        loop {
            match self.try_lead().await {
                Ok(true) => {
                    tracing::info!(lease = %self.lease_name(), identity = %self.identity, "leading");
                    return;
                }
                Ok(false) => {
                    let holder = self.observed.as_ref().and_then(|((h, _, _), _)| h.clone());
                    if holder != last_holder {
                        tracing::info!(lease = %self.lease_name(), holder = ?holder, "following");
                        last_holder = holder;
                    }
                }
                Err(e) => tracing::warn!(lease = %self.lease_name(), error = %e, "leader election"),
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews while leading; returns why leadership ended. Never returns while renewals succeed.
    pub async fn hold(&mut self) -> LostLease {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period()).await;
            match self.try_lead().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    let holder = self.observed.as_ref().and_then(|((h, _, _), _)| h.clone());
                    return LostLease::TakenOver {
                        lease: self.lease_name(),
                        holder: holder.unwrap_or_else(|| "nobody".into()),
                    };
                }
                Err(e) if renewed.elapsed() >= self.renew_deadline() => {
                    return LostLease::NotRenewed {
                        lease: self.lease_name(),
                        seconds: renewed.elapsed().as_secs(),
                        last_error: e.to_string(),
                    };
                }
                Err(e) => tracing::warn!(lease = %self.lease_name(), error = %e, "lease renewal failed"),
            }
        }
    }

    /// Gives the lease up (on shutdown), so a follower takes over at once rather than after the lease time.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api.replace(&self.name, &PostParams::default(), &lease).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(holder: Option<&str>, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: seconds,
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let s = Duration::from_secs;
        let cases: &[(Option<LeaseSpec>, Duration, Decision)] = &[
            (None, s(0), Decision::Create),
            (Some(held(Some("me"), Some(15))), s(100), Decision::Renew),
            (Some(held(None, Some(15))), s(0), Decision::Acquire),
            (Some(held(Some(""), Some(15))), s(0), Decision::Acquire),
            (Some(held(Some("other"), Some(15))), s(14), Decision::Follow { holder: "other".into() }),
            (Some(held(Some("other"), Some(15))), s(15), Decision::Acquire),
            // The holder's stated duration counts, not ours (10 s).
            (Some(held(Some("other"), Some(60))), s(30), Decision::Follow { holder: "other".into() }),
            // No or a nonsense duration: ours.
            (Some(held(Some("other"), None)), s(10), Decision::Acquire),
            (Some(held(Some("other"), Some(-5))), s(9), Decision::Follow { holder: "other".into() }),
            (Some(held(Some("other"), Some(0))), s(10), Decision::Acquire),
        ];
        for (lease, unchanged, want) in cases {
            assert_eq!(
                &decide(lease.as_ref(), "me", *unchanged, s(10)),
                want,
                "{lease:?} after {unchanged:?}"
            );
        }
    }
}
