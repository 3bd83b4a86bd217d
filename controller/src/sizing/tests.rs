//! Sizing tests: tables of demands against the sizing rules, the limits that decide each count, costs,
//! quotas and gp3 attributes, and properties over random demands.

use super::*;

#[test]
fn quotas_are_the_stated_throughput_with_headroom() {
    let d = Demand {
        ingress_mbps: 10,
        egress_mbps: 30,
        retention_hours: 24,
        replication_factor: 3,
        partitions: None,
    };
    let q = quota(&d);
    assert_eq!(q.produce_bytes_per_second, Some(12_500_000));
    assert_eq!(q.fetch_bytes_per_second, Some(37_500_000));
    let route = kaas_route::TenantRoute {
        name: "acme".into(),
        bootstrap: vec!["k:9092".into()],
        tls: None,
        client_ca: None,
        client_crl: None,
        principal_mapping_rules: None,
        upstream: Some(kaas_route::UpstreamRoute::plaintext()),
        quota: Some(quota(&Demand { ingress_mbps: 1, egress_mbps: 1, ..d })),
    };
    assert!(route.validate().is_empty(), "the smallest tenant's quota is one the proxy accepts");
}

#[test]
fn user_quotas_split_the_tenant_over_its_brokers() {
    let d = Demand {
        ingress_mbps: 100,
        egress_mbps: 200,
        retention_hours: 24,
        replication_factor: 3,
        partitions: None,
    };
    // (brokers, user ingress, user egress) → (producer, consumer) bytes per second per broker.
    let table = [
        (3, None, None, 33_333_334, 66_666_667),
        (6, None, None, 16_666_667, 33_333_334),
        (3, Some(30), None, 10_000_000, 66_666_667),
        (3, None, Some(3), 33_333_334, 1_000_000),
        // An override past the tenant is held to the tenant (the schema refuses it anyway).
        (3, Some(500), Some(900), 33_333_334, 66_666_667),
        (0, None, None, 100_000_000, 200_000_000),
    ];
    for (brokers, ingress, egress, producer, consumer) in table {
        let q = user_quota(&d, brokers, ingress, egress);
        assert_eq!(
            (q.producer_byte_rate, q.consumer_byte_rate),
            (producer, consumer),
            "{brokers} brokers, {ingress:?}/{egress:?}"
        );
    }
    // Over every broker, one user stays within the stated throughput, 80 % of the proxy's tenant quota.
    let q = user_quota(&d, 3, None, None);
    let tenant = quota(&d);
    assert!(q.producer_byte_rate * 3 <= tenant.produce_bytes_per_second.unwrap_or(0) * 4 / 5 + 3);
    assert!(q.consumer_byte_rate * 3 <= tenant.fetch_bytes_per_second.unwrap_or(0) * 4 / 5 + 3);
    let smallest = user_quota(&Demand { ingress_mbps: 1, egress_mbps: 1, ..d }, 90, None, None);
    assert!(smallest.producer_byte_rate > 0 && smallest.consumer_byte_rate > 0);
}

use proptest::prelude::*;

fn demand(ingress: u32, egress: u32, hours: u32, rf: u16) -> Demand {
    Demand {
        ingress_mbps: ingress,
        egress_mbps: egress,
        retention_hours: hours,
        replication_factor: rf,
        partitions: None,
    }
}

fn vcpus(s: &Sizing) -> u32 {
    let it = INSTANCE_TYPES.iter().find(|i| i.name == s.instance_type).expect("known type");
    it.vcpus * s.brokers
}

#[test]
fn worked_example_from_the_readme() {
    // 100 MB/s in, 200 MB/s out (two consumer groups), 24 h, RF 3.
    let s = size(&demand(100, 200, 24, 3)).expect("fits");
    assert_eq!(
        s,
        Sizing {
            brokers: 3,
            instance_type: "m7g.xlarge".into(),
            storage_per_broker_gib: 11_496,
            worker_nodes: 6,
            partitions: 12,
            zones: 3,
            ..s.clone()
        }
    );
}

#[test]
fn table() {
    let cases = [
        // (ingress, egress, hours, rf) → (brokers, type)
        ((1, 1, 1, 3), (3, "m7g.large")),
        ((10, 20, 168, 3), (3, "m7g.large")),
        // EBS throughput per broker bounds it: 1500 MB/s written ÷ (0.8 × 156.25) → 12 brokers.
        ((500, 1000, 24, 3), (12, "m7g.xlarge")),
        // Storage bounds it: 1.1 PB ÷ 16 TiB → 63, rounded up to the zones → 66 brokers.
        ((1000, 3000, 72, 3), (66, "m7g.large")),
    ];
    for ((i, e, h, r), (brokers, it)) in cases {
        let s = size(&demand(i, e, h, r)).expect("fits");
        assert_eq!((s.brokers, s.instance_type.as_str()), (brokers, it), "{i} {e} {h} {r}: {s:?}");
    }
    assert_eq!(size(&demand(2000, 6000, 8760, 5)), Err(SizingError::TooLarge));
    let with_partitions = Demand { partitions: Some(7), ..demand(10, 10, 1, 3) };
    assert_eq!(size(&with_partitions).map(|s| s.partitions), Ok(7));
}

fn binding(s: &Sizing) -> Vec<Limit> {
    s.reasons.iter().filter(|r| r.binding).map(|r| r.limit).collect()
}

#[test]
fn the_reasons_name_the_limit_that_decided_the_count() {
    use Limit::*;
    let cases = [
        // (ingress, egress, hours, rf) → (brokers, type, limits that bound the count)
        ((100, 200, 24, 3), (3, "m7g.xlarge", vec![MinimumBrokers])),
        // RF 5 needs 5 brokers, rounded up to the zones.
        ((1, 1, 1, 5), (6, "m7g.large", vec![MinimumBrokers])),
        // 9 brokers: 20.6 TB each (> 16 TiB), 166.7 MB/s written (> 125), (1000 + 1000) ÷ 9 = 222 MB/s out
        // (> 187.2): all three bind.
        ((500, 1000, 24, 3), (12, "m7g.xlarge", vec![Storage, EbsThroughput, NetworkOut])),
        // 63 brokers would hold 16.4 TiB each: storage alone.
        ((1000, 3000, 72, 3), (66, "m7g.large", vec![Storage])),
        // Short retention, heavy fan-out: 2 × 10 + 1500 = 1520 MB/s out; 9 × 187.2 = 1685 > 1520 > 6 × 187.2.
        ((10, 1500, 1, 3), (9, "m7g.xlarge", vec![NetworkOut])),
        // RF 1, egress below ingress: writes decide. 6 m7g.large would write 66.7 MB/s each (> 63); 9 of them
        // (18 vCPUs) beat 6 m7g.xlarge (24).
        ((400, 100, 1, 1), (9, "m7g.large", vec![EbsThroughput])),
    ];
    for ((i, e, h, r), (brokers, it, limits)) in cases {
        let s = size(&demand(i, e, h, r)).expect("fits");
        assert_eq!((s.brokers, s.instance_type.as_str()), (brokers, it), "{i} {e} {h} {r}: {s:?}");
        assert_eq!(binding(&s), limits, "{i} {e} {h} {r}: {:#?}", s.reasons);
        for r in &s.reasons {
            assert!(r.demand <= r.capacity, "the chosen sizing is within every limit: {r:?}");
        }
    }
}

#[test]
fn reasons_carry_the_numbers() {
    let s = size(&demand(100, 200, 24, 3)).expect("fits");
    let of =
        |l: Limit| s.reasons.iter().find(|r| r.limit == l).map(|r| (r.demand, r.capacity, r.unit.as_str()));
    assert_eq!(of(Limit::Storage), Some((11_496.0, 16_384.0, "GiB")));
    assert_eq!(of(Limit::EbsThroughput), Some((100.0, 125.0, "MB/s")));
    assert_eq!(of(Limit::NetworkIn), Some((100.0, 187.2, "MB/s")));
    assert_eq!(of(Limit::NetworkOut), Some((133.33, 187.2, "MB/s")));
    assert_eq!(of(Limit::MinimumBrokers), Some((3.0, 3.0, "brokers")));
    assert_eq!(s.reasons.len(), 5);
}

#[test]
fn monthly_cost_is_brokers_system_nodes_storage_and_throughput() {
    // 3 × m7g.xlarge: 3 × $0.1632 × 730 h; 3 × m7g.large; 3 × 11,496 GiB × $0.08; writes of 100 MB/s need
    // 125 MB/s provisioned, which is free.
    let c = size(&demand(100, 200, 24, 3)).expect("fits").monthly_cost;
    assert_eq!(
        (c.brokers_usd, c.system_nodes_usd, c.storage_usd, c.throughput_usd, c.provisioned_mbps_per_volume),
        (357.41, 178.70, 2759.04, 0.0, 125)
    );
    assert_eq!(c.total_usd, 3295.15);
    assert_eq!((c.region.as_str(), c.prices_as_of.as_str()), ("us-east-1", crate::prices::AS_OF));
    // 12 brokers writing 125 MB/s each: provisioned 125 ÷ 0.8 = 156.25 → 157 MB/s, 32 MB/s over the free
    // 125 at $0.04, on 12 volumes.
    let c = size(&demand(500, 1000, 24, 3)).expect("fits").monthly_cost;
    assert_eq!((c.provisioned_mbps_per_volume, c.throughput_usd), (157, 15.36));
    assert_eq!(c.total_usd, round2(c.brokers_usd + c.system_nodes_usd + c.storage_usd + c.throughput_usd));
}

#[test]
fn gp3_volumes_get_the_throughput_they_were_sized_for_and_the_iops_it_needs() {
    let at = |mbps| gp3_attributes(mbps).map(|a| (a.throughput_mibps, a.iops));
    for (mbps, expected) in [
        (100, None),
        (125, None),
        (126, None),
        (131, None),
        (132, Some((126, 3000))),
        (157, Some((150, 3000))),
        (786, Some((750, 3000))),
        (787, Some((751, 3004))),
        (1000, Some((954, 3816))),
        (2000, Some((1000, 4000))),
    ] {
        assert_eq!(at(mbps), expected, "{mbps} MB/s");
    }
    // Never less than asked for: MiB/s × 1.048576 ≥ MB/s.
    for mbps in 132..=1000 {
        let a = gp3_attributes(mbps).expect("above the baseline");
        assert!(f64::from(a.throughput_mibps) * 1.048_576 >= f64::from(mbps), "{mbps}");
        assert!(f64::from(a.throughput_mibps) <= f64::from(a.iops) * 0.25, "{mbps}: gp3's ratio");
    }
}

#[test]
fn explain_marks_the_binding_limits() {
    let text = explain(&size(&demand(1000, 3000, 72, 3)).expect("fits"));
    assert!(text.starts_with("66 × m7g.large brokers, 15676 GiB gp3 each"), "{text}");
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with("  * ")).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(marked[0].contains("storage per broker 15676 GiB"), "{text}");
    assert!(text.contains("total          $"), "{text}");
}

proptest! {
    #[test]
    fn never_below_minimums_nor_past_limits(i in 1u32..2000, e in 1u32..6000, h in 1u32..8760, r in 1u16..=5) {
        let d = demand(i, e, h, r);
        if let Ok(s) = size(&d) {
            prop_assert!(s.brokers >= 3 && s.brokers >= u32::from(r) && s.brokers % ZONES == 0);
            prop_assert!(s.storage_per_broker_gib <= MAX_VOLUME_GIB);
            let it = INSTANCE_TYPES.iter().find(|t| t.name == s.instance_type).expect("known type");
            prop_assert!(fits(&d, it, s.brokers));
            prop_assert!(s.partitions >= s.brokers && s.partitions % s.brokers == 0);
            prop_assert!(f64::from(s.partitions) * PARTITION_PRODUCE_MBPS >= f64::from(i));
            // Some limit always decided the count: the minimum, or one that fewer brokers would exceed.
            prop_assert!(s.reasons.iter().any(|r| r.binding));
            prop_assert!(s.monthly_cost.total_usd > 0.0);
        }
    }

    #[test]
    fn monotone_in_throughput_and_retention(i in 1u32..1500, e in 1u32..4000, h in 1u32..4000, di in 0u32..500, dh in 0u32..4000) {
        let (Ok(small), Ok(more_in), Ok(longer)) =
            (size(&demand(i, e, h, 3)), size(&demand(i + di, e + di, h, 3)), size(&demand(i, e, h + dh, 3)))
        else {
            return Ok(());
        };
        prop_assert!(vcpus(&more_in) >= vcpus(&small));
        prop_assert!(vcpus(&longer) >= vcpus(&small));
        let total = |s: &Sizing| s.storage_per_broker_gib * u64::from(s.brokers);
        // Rounding up per broker can shift totals by one GiB per broker.
        prop_assert!(total(&longer) + u64::from(longer.brokers) >= total(&small));
        prop_assert!(total(&more_in) + u64::from(more_in.brokers) >= total(&small));
    }
}
