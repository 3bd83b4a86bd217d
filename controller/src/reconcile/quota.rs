//! What one namespace may order: at most `--namespace-max-brokers` brokers and `--namespace-max-storage-gib` of
//! broker storage across its tenants, so a namespace (a team, an application) cannot order 90 brokers × 16 TiB
//! by mistake or on purpose. A tenant whose plan would take its namespace over either is refused before
//! anything is committed for it, keeping what it runs now; the others' sizes are their statuses' (what the
//! controller last planned for them). [`over`] is pure, tested by tables.
//!
//! Neighbours: [`super::apply`] asks [`exceeded`] after planning and before committing.

use kube::api::{Api, ListParams};

use super::{Context, Error};
use crate::crd::KafkaTenant;
use crate::render::{NamespaceQuota, Plan};
use crate::sizing::Sizing;

/// Brokers and GiB of broker storage of one sizing.
fn ordered(s: &Sizing) -> (u64, u64) {
    (u64::from(s.brokers), u64::from(s.brokers) * s.storage_per_broker_gib)
}

/// Why `mine` does not fit in its namespace beside `others` under `quota`; `None` when it fits.
pub fn over(others: &[Sizing], mine: &Sizing, quota: &NamespaceQuota) -> Option<String> {
    let (brokers, storage) =
        others.iter().chain([mine]).map(ordered).fold((0, 0), |(b, s), (b2, s2)| (b + b2, s + s2));
    let mut over = Vec::new();
    if let Some(max) = quota.max_brokers.filter(|max| brokers > u64::from(*max)) {
        over.push(format!(
            "{brokers} brokers (this tenant {}), over --namespace-max-brokers {max}",
            mine.brokers
        ));
    }
    if let Some(max) = quota.max_storage_gib.filter(|max| storage > *max) {
        let own = ordered(mine).1;
        over.push(format!(
            "{storage} GiB of broker storage (this tenant {own}), over --namespace-max-storage-gib {max}"
        ));
    }
    (!over.is_empty()).then(|| {
        format!(
            "the namespace's tenants would order {}: nothing is committed for this size",
            over.join(" and ")
        )
    })
}

/// Why `t`'s plan does not fit in its namespace's quota, from the other tenants' statuses there.
pub(super) async fn exceeded(t: &KafkaTenant, plan: &Plan, ctx: &Context) -> Result<Option<String>, Error> {
    let quota = &ctx.platform.namespace_quota;
    if quota.max_brokers.is_none() && quota.max_storage_gib.is_none() {
        return Ok(None);
    }
    let ns = crate::names::tenant_namespace(t);
    let tenants: Api<KafkaTenant> = Api::namespaced(ctx.client.clone(), ns);
    let others: Vec<Sizing> = tenants
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|o| o.metadata.name != t.metadata.name)
        .filter_map(|o| o.status.and_then(|s| s.sizing))
        .collect();
    Ok(over(&others, &plan.sizing, quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(brokers: u32, storage_per_broker_gib: u64) -> Sizing {
        Sizing {
            brokers,
            instance_type: "m7g.large".into(),
            storage_per_broker_gib,
            worker_nodes: brokers + 3,
            partitions: brokers * 4,
            zones: 3,
            reasons: Vec::new(),
            monthly_cost: Default::default(),
        }
    }

    #[test]
    fn a_namespace_orders_at_most_its_quota_of_brokers_and_storage() {
        let quota = NamespaceQuota { max_brokers: Some(12), max_storage_gib: Some(10_000) };
        let others = [sized(3, 1000), sized(6, 500)];
        assert_eq!(over(&others, &sized(3, 1000), &quota), None, "12 brokers, 9,000 GiB: at the quota");
        let brokers = over(&others, &sized(6, 100), &quota).expect("15 brokers");
        assert!(brokers.contains("15 brokers (this tenant 6), over --namespace-max-brokers 12"), "{brokers}");
        assert!(!brokers.contains("GiB"), "{brokers}");
        let both = over(&others, &sized(9, 2000), &quota).expect("both");
        assert!(
            both.contains("18 brokers") && both.contains("24000 GiB of broker storage (this tenant 18000)"),
            "{both}"
        );
        let none = NamespaceQuota::default();
        assert_eq!(over(&others, &sized(90, 16_384), &none), None, "no quota: anything");
    }
}
