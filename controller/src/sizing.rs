//! Sizing: throughput, retention and replication factor → brokers, instance type, storage, nodes, partitions.
//!
//! A pure function following the published right-sizing rules for Kafka on AWS (the formulas, with a worked
//! example, are in docs/controller/sizing.md):
//! - storage per broker = ingress × retention × RF ÷ brokers ÷ 0.7 (disks never past 70 % full), at most
//!   16 TiB of EBS per broker (more brokers past that);
//! - per broker, the write load ingress × RF ÷ brokers stays within the instance's baseline EBS throughput
//!   (and a gp3 volume's), and the network load — in: ingress × RF ÷ brokers, out:
//!   (ingress × (RF − 1) + egress) ÷ brokers, egress counting every consumer group's fan-out — within its
//!   baseline network throughput, each at most 80 % used;
//! - at least 3 brokers, at least RF, a multiple of the zone count (3);
//! - partitions ≥ max(ingress ÷ p, egress ÷ c) with p, c the throughput one partition sustains for producers and
//!   consumers, rounded up to a multiple of the brokers.
//!
//! Among the instance types that fit, the one with the fewest vCPUs in total wins (then fewer brokers).
//!
//! Each sizing carries its explanation: every limit checked for the chosen type and count, with the load per
//! broker and the capacity, which of them bound the broker count, and the monthly cost at the on-demand prices
//! of [`crate::prices`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Availability zones a cluster spans; broker counts are multiples of it so each zone holds as many.
pub const ZONES: u32 = 3;
/// Largest planned fill of a broker's data volume, as a fraction.
pub const DISK_FILL: f64 = 0.7;
/// Largest planned use of an instance's baseline network and EBS throughput, as a fraction.
pub const HEADROOM: f64 = 0.8;
/// Largest EBS volume (gp3): 16 TiB.
pub const MAX_VOLUME_GIB: u64 = 16 * 1024;
/// A gp3 volume's provisioned-throughput ceiling, MB/s.
pub const GP3_MAX_MBPS: f64 = 1000.0;
/// Produce throughput one partition sustains, MB/s.
pub const PARTITION_PRODUCE_MBPS: f64 = 10.0;
/// Consume throughput one partition sustains, MB/s.
pub const PARTITION_CONSUME_MBPS: f64 = 20.0;
/// Most brokers one tenant cluster is sized to; beyond that [`SizingError::TooLarge`].
pub const MAX_BROKERS: u32 = 90;
/// KRaft controllers and platform add-ons run on their own small nodes, one per zone.
pub const SYSTEM_NODES: u32 = ZONES;
/// Instance type of those system nodes.
pub const SYSTEM_INSTANCE: &str = "m7g.large";

/// An EC2 instance type with its baseline (sustained, not burst) throughputs in MB/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceType {
    /// The EC2 API name, e.g. `m7g.xlarge`.
    pub name: &'static str,
    /// Virtual CPUs; the choice minimises their total over the brokers.
    pub vcpus: u32,
    /// Memory, GiB.
    pub memory_gib: u32,
    /// Baseline network throughput, MB/s, checked against inbound and outbound load separately.
    pub network_mbps: f64,
    /// Baseline EBS throughput, MB/s.
    pub ebs_mbps: f64,
}

/// Graviton general-purpose instances (AWS published baselines: network Gbit/s ÷ 8, EBS Mbit/s ÷ 8).
pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType { name: "m7g.large", vcpus: 2, memory_gib: 8, network_mbps: 117.0, ebs_mbps: 78.75 },
    InstanceType { name: "m7g.xlarge", vcpus: 4, memory_gib: 16, network_mbps: 234.0, ebs_mbps: 156.25 },
    InstanceType { name: "m7g.2xlarge", vcpus: 8, memory_gib: 32, network_mbps: 468.0, ebs_mbps: 312.5 },
    InstanceType { name: "m7g.4xlarge", vcpus: 16, memory_gib: 64, network_mbps: 937.0, ebs_mbps: 625.0 },
    InstanceType { name: "m7g.8xlarge", vcpus: 32, memory_gib: 128, network_mbps: 1875.0, ebs_mbps: 1250.0 },
    InstanceType { name: "m7g.12xlarge", vcpus: 48, memory_gib: 192, network_mbps: 2812.0, ebs_mbps: 1875.0 },
    InstanceType { name: "m7g.16xlarge", vcpus: 64, memory_gib: 256, network_mbps: 3750.0, ebs_mbps: 2500.0 },
];

/// What sizing needs to know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    /// Produced into the cluster, MB/s.
    pub ingress_mbps: u32,
    /// Consumed out of it, MB/s, every consumer group counted.
    pub egress_mbps: u32,
    /// How long records are kept.
    pub retention_hours: u32,
    /// Copies of each partition; 0 is refused.
    pub replication_factor: u16,
    /// Partitions asked for; `None` computes them from throughput.
    pub partitions: Option<u32>,
}

/// The sized tenant, as recorded in the tenant's status and passed to the chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sizing {
    /// Kafka brokers, one node each; a multiple of the zones.
    pub brokers: u32,
    /// EC2 instance type of the broker nodes.
    pub instance_type: String,
    /// Data volume of each broker, GiB.
    pub storage_per_broker_gib: u64,
    /// Worker nodes: the brokers plus one system node per zone.
    pub worker_nodes: u32,
    /// Partitions of the default topic layout: as asked, or computed and rounded up to a multiple of brokers.
    pub partitions: u32,
    /// Availability zones the cluster spans.
    pub zones: u32,
    /// Every limit checked for this instance type and broker count; those with `binding` set decided the count.
    // A status written before explanations existed has neither field; it still reads.
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// What the cluster costs a month at on-demand prices.
    #[serde(default)]
    pub monthly_cost: MonthlyCost,
}

/// A limit that can decide how many brokers a tenant gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Limit {
    /// Data per broker within one EBS volume ([`MAX_VOLUME_GIB`] at [`DISK_FILL`]).
    Storage,
    /// Writes per broker within the instance's (and gp3's) EBS throughput.
    EbsThroughput,
    /// Inbound network per broker: produce plus replication in.
    NetworkIn,
    /// Outbound network per broker: replication out plus every consumer group.
    NetworkOut,
    /// At least 3 brokers, at least the replication factor, a multiple of the zones.
    MinimumBrokers,
}

/// One limit, checked for the chosen instance type and broker count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reason {
    /// Which limit.
    pub limit: Limit,
    /// Whether it decided the broker count: one broker per zone fewer would exceed it (for `minimumBrokers`:
    /// the count is the minimum).
    pub binding: bool,
    /// The load per broker (for `minimumBrokers`: the fewest brokers allowed), in `unit`.
    pub demand: f64,
    /// What one broker may carry (for `minimumBrokers`: the brokers chosen), in `unit`.
    pub capacity: f64,
    /// `GiB`, `MB/s` or `brokers`.
    pub unit: String,
    /// The limit in words, with the numbers.
    pub message: String,
}

/// The monthly cost of a sized cluster at on-demand prices, USD (a month of 730 hours).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyCost {
    /// The broker nodes: brokers × instance price × 730 h.
    pub brokers_usd: f64,
    /// The system nodes (KRaft controllers, operators): one [`SYSTEM_INSTANCE`] per zone.
    pub system_nodes_usd: f64,
    /// gp3 storage: brokers × volume GiB × price per GiB-month.
    pub storage_usd: f64,
    /// gp3 throughput provisioned above the free 125 MB/s per volume.
    pub throughput_usd: f64,
    /// Throughput each broker's volume is provisioned with, MB/s: its writes at [`HEADROOM`], at least the free
    /// 125 MB/s, at most gp3's 1000.
    pub provisioned_mbps_per_volume: u32,
    /// gp3 IOPS provisioned above the free 3000 per volume, which gp3 requires past 750 MiB/s (see
    /// [`gp3_attributes`]).
    #[serde(default)]
    pub iops_usd: f64,
    /// The sum of the above.
    pub total_usd: f64,
    /// The region the prices are for.
    pub region: String,
    /// The date of the price table.
    pub prices_as_of: String,
}

/// Why a demand could not be sized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    /// No instance type carries the load (or its storage) within [`MAX_BROKERS`] brokers.
    #[error("no instance type carries this load within {MAX_BROKERS} brokers")]
    TooLarge,
    /// The replication factor is 0.
    #[error("replication factor must be at least 1")]
    ReplicationFactor,
    /// The price table lacks an instance type sizing chose (a table out of step with [`INSTANCE_TYPES`]).
    #[error("no on-demand price for {0} in the price table")]
    NoPrice(String),
}

fn round_up_to(n: u32, multiple: u32) -> u32 {
    n.div_ceil(multiple) * multiple
}

/// Storage per broker in GiB for `brokers`.
pub fn storage_per_broker_gib(d: &Demand, brokers: u32) -> u64 {
    let bytes = f64::from(d.ingress_mbps)
        * 1e6
        * 3600.0
        * f64::from(d.retention_hours)
        * f64::from(d.replication_factor)
        / f64::from(brokers)
        / DISK_FILL;
    (bytes / f64::from(1u32 << 30)).ceil() as u64
}

/// Per broker, the load and capacity of each throughput and storage limit, in the order of [`Limit`].
fn loads(d: &Demand, it: &InstanceType, brokers: u32) -> [(Limit, f64, f64); 4] {
    let n = f64::from(brokers);
    let (t, e, r) = (f64::from(d.ingress_mbps), f64::from(d.egress_mbps), f64::from(d.replication_factor));
    // Storage is compared in whole GiB, as the volume is provisioned.
    let storage = storage_per_broker_gib(d, brokers) as f64;
    [
        (Limit::Storage, storage, MAX_VOLUME_GIB as f64),
        (Limit::EbsThroughput, t * r / n, HEADROOM * it.ebs_mbps.min(GP3_MAX_MBPS)),
        (Limit::NetworkIn, t * r / n, HEADROOM * it.network_mbps),
        (Limit::NetworkOut, (t * (r - 1.0) + e) / n, HEADROOM * it.network_mbps),
    ]
}

/// Whether `brokers` of `it` carry the demand within every per-broker limit.
pub fn fits(d: &Demand, it: &InstanceType, brokers: u32) -> bool {
    loads(d, it, brokers).iter().all(|(_, load, capacity)| load <= capacity)
}

/// The fewest brokers any demand gets: 3, the replication factor, rounded up to the zones.
pub fn min_brokers(d: &Demand) -> u32 {
    round_up_to(u32::from(d.replication_factor).max(3), ZONES)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Every limit for `brokers` of `it`, marking those that decided the count.
pub fn reasons(d: &Demand, it: &InstanceType, brokers: u32) -> Vec<Reason> {
    let min = min_brokers(d);
    // A limit binds when the next smaller count (one broker per zone fewer) would exceed it.
    let fewer = (brokers > min).then(|| loads(d, it, brokers - ZONES));
    let mut out = vec![Reason {
        limit: Limit::MinimumBrokers,
        binding: brokers == min,
        demand: f64::from(min),
        capacity: f64::from(brokers),
        unit: "brokers".into(),
        message: format!(
            "at least {min} brokers (3, replication factor {}, a multiple of {ZONES} zones); {brokers} chosen",
            d.replication_factor
        ),
    }];
    for (i, (limit, load, capacity)) in loads(d, it, brokers).into_iter().enumerate() {
        let binding = fewer.is_some_and(|f| f[i].1 > f[i].2);
        let message = match limit {
            Limit::Storage => format!(
                "storage per broker {load:.0} GiB (ingress × retention × RF ÷ brokers ÷ {DISK_FILL}) of a {capacity:.0} GiB volume"
            ),
            Limit::EbsThroughput => format!(
                "EBS writes per broker {load:.2} MB/s of {capacity:.2} ({:.0} % of {}'s {} MB/s)",
                HEADROOM * 100.0,
                it.name,
                it.ebs_mbps.min(GP3_MAX_MBPS)
            ),
            Limit::NetworkIn => format!(
                "network in per broker {load:.2} MB/s (ingress × RF ÷ brokers) of {capacity:.2} ({:.0} % of {} MB/s)",
                HEADROOM * 100.0,
                it.network_mbps
            ),
            // `loads` yields no MinimumBrokers; it shares the last arm only to keep the match exhaustive.
            Limit::NetworkOut | Limit::MinimumBrokers => format!(
                "network out per broker {load:.2} MB/s (replication + consumers ÷ brokers) of {capacity:.2} ({:.0} % of {} MB/s)",
                HEADROOM * 100.0,
                it.network_mbps
            ),
        };
        out.push(Reason {
            limit,
            binding,
            demand: round2(load),
            capacity: round2(capacity),
            unit: unit(limit).into(),
            message,
        });
    }
    out
}

fn unit(limit: Limit) -> &'static str {
    match limit {
        Limit::Storage => "GiB",
        Limit::MinimumBrokers => "brokers",
        Limit::EbsThroughput | Limit::NetworkIn | Limit::NetworkOut => "MB/s",
    }
}

/// What a broker's gp3 volume is provisioned with beyond gp3's baseline, as the EBS CSI driver takes it (a
/// `VolumeAttributesClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gp3Attributes {
    /// Throughput, MiB/s (EBS's unit).
    pub throughput_mibps: u32,
    /// IOPS: gp3 allows at most 0.25 MiB/s per provisioned IOPS, so past 750 MiB/s more than the free 3000.
    pub iops: u32,
}

/// The attributes of a volume provisioned for `mbps` MB/s (sizing's unit, 10^6 bytes): its throughput in MiB/s
/// rounded up, so never below what the sizing assumed, and the IOPS that throughput needs; `None` at or below
/// gp3's free baseline, where nothing needs setting.
pub fn gp3_attributes(mbps: u32) -> Option<Gp3Attributes> {
    use crate::prices::GP3_FREE_IOPS;
    let mibps = (f64::from(mbps) * 1e6 / 1_048_576.0).ceil() as u32;
    // Every gp3 volume gets 125 MiB/s (the figure AWS states in MiB/s; the price table rounds it to MB/s).
    if mibps <= 125 {
        return None;
    }
    // gp3's ceiling is 1000 MiB/s; sizing caps volumes at 1000 MB/s, which is less.
    let throughput_mibps = mibps.min(1000);
    Some(Gp3Attributes { throughput_mibps, iops: (throughput_mibps * 4).max(GP3_FREE_IOPS) })
}

/// The monthly cost of `brokers` of `it` with `storage_gib` per broker, at the prices of [`crate::prices`].
pub fn monthly_cost(
    d: &Demand,
    it: &InstanceType,
    brokers: u32,
    storage_gib: u64,
) -> Result<MonthlyCost, SizingError> {
    use crate::prices::*;
    let price = |name: &str| ec2_hourly_usd(name).ok_or_else(|| SizingError::NoPrice(name.to_owned()));
    let n = f64::from(brokers);
    let write = f64::from(d.ingress_mbps) * f64::from(d.replication_factor) / n;
    // The volume is provisioned for the writes it was sized to carry, so that gp3's free 125 MB/s does not
    // become the limit the EBS check above assumed away.
    let provisioned = (write / HEADROOM).ceil().clamp(GP3_FREE_MBPS, GP3_MAX_MBPS);
    let brokers_usd = round2(n * price(it.name)? * HOURS_PER_MONTH);
    let system_nodes_usd = round2(f64::from(SYSTEM_NODES) * price(SYSTEM_INSTANCE)? * HOURS_PER_MONTH);
    let storage_usd = round2(n * storage_gib as f64 * GP3_GIB_MONTH_USD);
    let throughput_usd = round2(n * (provisioned - GP3_FREE_MBPS) * GP3_MBPS_MONTH_USD);
    let iops = gp3_attributes(provisioned as u32).map_or(GP3_FREE_IOPS, |a| a.iops);
    let iops_usd = round2(n * f64::from(iops - GP3_FREE_IOPS) * GP3_IOPS_MONTH_USD);
    Ok(MonthlyCost {
        brokers_usd,
        system_nodes_usd,
        storage_usd,
        throughput_usd,
        provisioned_mbps_per_volume: provisioned as u32,
        iops_usd,
        total_usd: round2(brokers_usd + system_nodes_usd + storage_usd + throughput_usd + iops_usd),
        region: REGION.into(),
        prices_as_of: AS_OF.into(),
    })
}

/// Above the throughput a tenant states, by this factor, its clients are throttled at the proxy: bursts get room,
/// while one tenant far past what it asked for (and what its cluster was sized for) cannot take the shared
/// proxy's CPU from the others.
pub const QUOTA_HEADROOM: f64 = 1.25;

/// The byte-rate quotas the proxy holds a tenant to: its stated ingress (produce) and egress (fetch) with
/// [`QUOTA_HEADROOM`], in bytes per second (1 MB = 10^6 bytes, as the throughput is stated).
pub fn quota(d: &Demand) -> kaas_route::Quota {
    let rate = |mbps: u32| (f64::from(mbps) * 1e6 * QUOTA_HEADROOM).round() as u64;
    kaas_route::Quota {
        produce_bytes_per_second: Some(rate(d.ingress_mbps)),
        fetch_bytes_per_second: Some(rate(d.egress_mbps)),
    }
}

/// A user's byte-rate quotas at the brokers, as Strimzi's `KafkaUser.spec.quotas` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StrimziQuota {
    /// Bytes per second the user's clients may produce to each broker.
    pub producer_byte_rate: u64,
    /// Bytes per second the user's clients may fetch from each broker.
    pub consumer_byte_rate: u64,
}

/// The quotas of one user: by default the tenant's stated ingress and egress, or the user's own smaller share
/// (MB/s), spread over the brokers since Kafka enforces a quota on each broker separately. A user alone thus
/// stays within what the cluster was sized for, and within 1 ÷ [`QUOTA_HEADROOM`] (80 %) of what the proxy lets
/// the whole tenant through, so the other users keep the rest. A user whose partition leaders crowd on fewer
/// brokers than all reaches less than its share: quotas follow Kafka's per-broker model.
pub fn user_quota(
    d: &Demand,
    brokers: u32,
    ingress_mbps: Option<u32>,
    egress_mbps: Option<u32>,
) -> StrimziQuota {
    let per_broker = |mbps: u32| (u64::from(mbps) * 1_000_000).div_ceil(u64::from(brokers.max(1)));
    StrimziQuota {
        producer_byte_rate: per_broker(ingress_mbps.unwrap_or(d.ingress_mbps).min(d.ingress_mbps)),
        consumer_byte_rate: per_broker(egress_mbps.unwrap_or(d.egress_mbps).min(d.egress_mbps)),
    }
}

/// Sizes a demand by the rules above: the fitting instance type and broker count with the fewest vCPUs in
/// total (then the fewest brokers).
pub fn size(d: &Demand) -> Result<Sizing, SizingError> {
    if d.replication_factor == 0 {
        return Err(SizingError::ReplicationFactor);
    }
    let min_brokers = min_brokers(d);
    let best = INSTANCE_TYPES
        .iter()
        .filter_map(|it| {
            (min_brokers..=MAX_BROKERS).step_by(ZONES as usize).find(|&n| fits(d, it, n)).map(|n| (it, n))
        })
        .min_by_key(|(it, n)| (it.vcpus * n, *n))
        .ok_or(SizingError::TooLarge)?;
    let (it, brokers) = best;
    let computed = (f64::from(d.ingress_mbps) / PARTITION_PRODUCE_MBPS)
        .max(f64::from(d.egress_mbps) / PARTITION_CONSUME_MBPS)
        .ceil() as u32;
    let partitions = d.partitions.unwrap_or_else(|| round_up_to(computed.max(brokers), brokers));
    let storage = storage_per_broker_gib(d, brokers);
    Ok(Sizing {
        brokers,
        instance_type: it.name.to_owned(),
        storage_per_broker_gib: storage,
        worker_nodes: brokers + SYSTEM_NODES,
        partitions,
        zones: ZONES,
        reasons: reasons(d, it, brokers),
        monthly_cost: monthly_cost(d, it, brokers, storage)?,
    })
}

/// A sizing in words: what was chosen, each limit with its numbers (`*` marks those that decided the broker
/// count), and the monthly cost.
pub fn explain(s: &Sizing) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{} × {} brokers, {} GiB gp3 each, {} partitions, {} worker nodes in {} zones\n\nWhy {} brokers (* decided the count):\n",
        s.brokers, s.instance_type, s.storage_per_broker_gib, s.partitions, s.worker_nodes, s.zones, s.brokers
    );
    for r in &s.reasons {
        let _ = writeln!(out, "  {} {}", if r.binding { "*" } else { " " }, r.message);
    }
    let c = &s.monthly_cost;
    let _ = write!(
        out,
        "\nMonthly cost, on-demand {} (prices as of {}, controller/src/prices.rs):\n  \
         brokers        ${:>10.2}\n  system nodes   ${:>10.2}  ({SYSTEM_NODES} × {SYSTEM_INSTANCE})\n  \
         gp3 storage    ${:>10.2}  ({} GiB)\n  gp3 throughput ${:>10.2}  ({} MB/s per volume)\n  \
         gp3 IOPS       ${:>10.2}  ({} per volume)\n  total          ${:>10.2}\n",
        c.region,
        c.prices_as_of,
        c.brokers_usd,
        c.system_nodes_usd,
        c.storage_usd,
        s.storage_per_broker_gib * u64::from(s.brokers),
        c.throughput_usd,
        c.provisioned_mbps_per_volume,
        c.iops_usd,
        gp3_attributes(c.provisioned_mbps_per_volume).map_or(crate::prices::GP3_FREE_IOPS, |a| a.iops),
        c.total_usd,
    );
    out
}

#[cfg(test)]
mod tests;
