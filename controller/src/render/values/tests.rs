//! The values the sizing and the platform decide: the brokers' share of their nodes, and the listener kaas-proxy
//! reaches (the chart's side is checked by the controller's `strimzi` integration tests).

use serde_json::json;

use super::*;
use crate::render::tests::example;
use crate::render::{plan, Platform};

#[test]
fn brokers_take_three_quarters_of_their_node_and_a_bounded_heap() {
    let cases = [
        ("m7g.large", json!({ "cpuMillis": 1500, "memoryMiB": 6144, "heapMiB": 2048 })),
        ("m7g.xlarge", json!({ "cpuMillis": 3500, "memoryMiB": 12288, "heapMiB": 4096 })),
        ("m7g.2xlarge", json!({ "cpuMillis": 7500, "memoryMiB": 24576, "heapMiB": 6144 })),
        ("m7g.16xlarge", json!({ "cpuMillis": 63500, "memoryMiB": 196_608, "heapMiB": 6144 })),
    ];
    for (name, expected) in cases {
        let it = INSTANCE_TYPES.iter().find(|it| it.name == name).expect(name);
        assert_eq!(broker_resources(it), expected, "{name}");
    }
    let acme = plan(&example("acme"), &Platform::default()).expect("plans");
    let values = &acme.manifests.last().expect("release")["spec"]["values"]["kafka"];
    assert_eq!(acme.sizing.instance_type, "m7g.xlarge");
    assert_eq!(values["brokerResources"]["memoryMiB"], 12288, "from the sizing's instance type");
}

#[test]
fn the_proxy_listener_is_the_routes_on_its_own_cluster_and_absent_on_the_shared_one() {
    let mut p = Platform::default();
    p.network.proxy_cidrs = vec!["10.100.0.0/16".into()];
    let listener = |name: &str| {
        let plan = plan(&example(name), &p).expect("plans");
        plan.manifests.last().expect("release")["spec"]["values"]["kafka"]["proxyListener"].clone()
    };
    assert_eq!(
        listener("acme"),
        json!({
            "enabled": true,
            "bootstrapHostname": "kafka-bootstrap.tenants-acme.internal.kaas.dev",
            "port": 9094,
            "sourceRanges": ["10.100.0.0/16"],
        })
    );
    assert_eq!(listener("beta"), json!({ "enabled": false }));
}
