//! What the Strimzi 1.2 operator would do with what the controller renders: the example tenants (both isolation
//! modes) planned by the controller, their `kaas` release rendered by `charts/kaas` with the Helm v4 SDK, and the
//! `Kafka` and `KafkaNodePool` objects held to Strimzi's rules as `kaas_controller::strimzi` encodes them (each
//! with its upstream source): a Kafka version the tenant's Strimzi runs, no configuration Strimzi drops, no
//! rendered principal among its super users, and every name kaas-proxy dials on the certificate Strimzi issues.

use std::path::Path;

use kaas_controller::crd::{Isolation, KafkaTenant};
use kaas_controller::names::{kafka_namespace, KAFKA_RELEASE};
use kaas_controller::render::{plan, Plan, Platform};
use kaas_controller::strimzi::certificates::{Cluster, Node};
use kaas_controller::strimzi::{config, kafka_versions, super_users, tls_user_principal};
use kaas_testsupport::apiserver::documents;
use kaas_testsupport::python::render_chart;
use serde_json::Value;

/// An example tenant, planned on `platform`, and what the chart renders from its release's values.
struct Rendered {
    tenant: KafkaTenant,
    plan: Plan,
    platform: Platform,
    namespace: String,
    objects: Vec<Value>,
}

impl Rendered {
    fn of(example: &str, platform: &Platform) -> Rendered {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{example}.yaml"));
        let text = std::fs::read_to_string(path).expect("example");
        let tenant: KafkaTenant = serde_norway::from_str(&text).expect("example parses");
        let plan = plan(&tenant, platform).expect("plans");
        let release = plan.manifests.last().expect("the kaas release");
        let namespace = kafka_namespace(&plan.tenant, tenant.spec.isolation);
        let yaml =
            render_chart("kaas", &release["spec"]["values"], KAFKA_RELEASE, &namespace).expect("renders");
        let objects = documents(&yaml).expect("yaml");
        Rendered { platform: platform.for_tenant(&tenant), tenant, plan, namespace, objects }
    }

    fn kafka(&self) -> &Value {
        self.objects.iter().find(|o| o["kind"] == "Kafka").expect("a Kafka")
    }

    fn pool(&self, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == "KafkaNodePool" && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no KafkaNodePool {name}"))
    }

    /// The brokers, numbered as Strimzi numbers a pool's nodes: the lowest free ids of the range its
    /// `strimzi.io/next-node-ids` annotation names (`[0-99]`), else on from the pools made before it.
    fn broker_nodes(&self) -> Vec<Node> {
        let pool = self.pool("brokers");
        let brokers = pool["spec"]["replicas"].as_u64().expect("replicas");
        let range = pool["metadata"]["annotations"]["strimzi.io/next-node-ids"].as_str().expect("ids named");
        let first: u64 = range
            .trim_start_matches('[')
            .split(['-', ']'])
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a [low-high] range");
        (first..first + brokers)
            .map(|id| Node { id: u32::try_from(id).expect("small"), pool: "brokers".into() })
            .collect()
    }
}

/// Every example tenant (`controller/examples/*.yaml`), by name; both isolation modes among them.
fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("examples")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".yaml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The address the cloud gives a load-balancer Service (any: the names must not depend on it).
fn load_balancer(service: &str) -> String {
    format!("{service}-0123456789.elb.eu-west-1.amazonaws.com")
}

#[test]
fn the_kafka_version_is_one_the_tenants_strimzi_runs() {
    for example in examples() {
        let r = Rendered::of(&example, &Platform::default());
        let version =
            r.kafka()["spec"]["kafka"]["version"].as_str().expect("a version, never Strimzi's choice");
        let supported = kafka_versions(&r.platform.strimzi_version);
        assert!(
            supported.contains(&version),
            "{example}: Kafka {version} on Strimzi {}, which runs {supported:?}",
            r.platform.strimzi_version
        );
    }
}

#[test]
fn the_charts_own_default_version_is_one_its_own_strimzi_runs() {
    let objects =
        documents(&render_chart("kaas", &serde_json::json!({}), KAFKA_RELEASE, "kafka").expect("renders"))
            .expect("yaml");
    let kafka = objects.iter().find(|o| o["kind"] == "Kafka").expect("a Kafka");
    let version = kafka["spec"]["kafka"]["version"].as_str().expect("a version");
    let strimzi = objects
        .iter()
        .find(|o| {
            o["kind"] == "HelmRelease" && o["spec"]["chart"]["spec"]["chart"] == "strimzi-kafka-operator"
        })
        .expect("the chart's Strimzi release")["spec"]["chart"]["spec"]["version"]
        .as_str()
        .expect("version");
    assert!(
        kafka_versions(strimzi).contains(&version),
        "chart defaults: Kafka {version} on Strimzi {strimzi}"
    );
}

#[test]
fn no_configuration_strimzi_drops_and_no_principal_it_makes_a_super_user() {
    for example in examples() {
        let r = Rendered::of(&example, &Platform::default());
        let spec = &r.kafka()["spec"]["kafka"];
        let listeners: Vec<(&str, u16)> = spec["listeners"]
            .as_array()
            .expect("listeners")
            .iter()
            .map(|l| (l["name"].as_str().unwrap_or(""), l["port"].as_u64().map_or(0, |p| p as u16)))
            .collect();
        let config = spec["config"].as_object().expect("config");
        let dropped: Vec<&String> = config.keys().filter(|k| config::is_forbidden(k, &listeners)).collect();
        assert!(dropped.is_empty(), "{example}: Strimzi drops {dropped:?}");
        assert!(spec["authorization"].get("superUsers").is_none(), "{example}: super users of our own");
        let supers = super_users(KAFKA_RELEASE);
        for user in r.objects.iter().filter(|o| o["kind"] == "KafkaUser") {
            let principal = tls_user_principal(user["metadata"]["name"].as_str().expect("name"));
            assert!(!supers.contains(&principal), "{example}: {principal} is a Strimzi super user");
        }
    }
}
#[test]
fn every_name_the_proxy_dials_is_on_the_certificate_strimzi_issues() {
    for example in examples() {
        let r = Rendered::of(&example, &Platform::default());
        let cluster = Cluster::of(r.kafka(), &r.namespace).expect("listeners parse");
        let (host, port) = r.plan.bootstrap.rsplit_once(':').expect("host:port");
        let port: u16 = port.parse().expect("port");
        let listener = cluster
            .listeners
            .iter()
            .find(|l| l.port == port)
            .unwrap_or_else(|| panic!("{example}: no listener on the route's port {port}"));
        assert!(listener.tls, "{example}: the proxy speaks TLS to the brokers");
        for node in r.broker_nodes() {
            let names = cluster.broker_certificate_names(&node, &load_balancer).expect("modelled");
            // Any broker answers on the bootstrap address: each certificate must name it.
            assert!(names.contains(host), "{example}: broker {} has no SAN {host}: {names:?}", node.id);
            let advertised = cluster.advertised_host(listener, &node, &load_balancer).expect("modelled");
            assert!(names.contains(&advertised), "{example}: broker {} advertises {advertised}", node.id);
        }
    }
}

/// The platform with the proxy's addresses set, as a deployment has them.
fn platform_with_proxy_cidrs() -> Platform {
    let mut p = Platform::default();
    p.network.proxy_cidrs = vec!["10.100.0.0/16".into(), "10.101.0.0/16".into()];
    p
}

#[test]
fn load_balancers_are_internal_and_open_only_to_the_proxy() {
    let p = platform_with_proxy_cidrs();
    let r = Rendered::of("acme", &p);
    let spec = &r.kafka()["spec"]["kafka"];
    let proxy = spec["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .find(|l| l["type"] == "loadbalancer")
        .expect("a load-balancer listener");
    let bootstrap = &proxy["configuration"]["bootstrap"]["annotations"];
    let per_broker = &spec["template"]["perPodService"]["metadata"]["annotations"];
    for (what, annotations) in [("bootstrap", bootstrap), ("per broker", per_broker)] {
        // What the cloud controller's service controller reads (cloud-provider-aws v1.34.0
        // pkg/providers/v1/aws.go l.101, 2253-2258): any value but "false" makes the load balancer internal.
        assert_eq!(annotations["service.beta.kubernetes.io/aws-load-balancer-internal"], "true", "{what}");
        assert_eq!(annotations["service.beta.kubernetes.io/aws-load-balancer-type"], "nlb", "{what}");
    }
    assert_eq!(proxy["configuration"]["loadBalancerSourceRanges"], serde_json::json!(p.network.proxy_cidrs));
}

#[test]
fn on_the_shared_cluster_no_load_balancer_nobody_dials() {
    let r = Rendered::of("beta", &platform_with_proxy_cidrs());
    assert_eq!(r.tenant.spec.isolation, Isolation::Namespace);
    let listeners = r.kafka()["spec"]["kafka"]["listeners"].as_array().expect("listeners").clone();
    let kinds: Vec<&str> = listeners.iter().map(|l| l["type"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["internal"], "{listeners:?}");
}

#[test]
fn brokers_get_resources_a_heap_and_a_node_each_from_the_sizing() {
    for example in examples() {
        let r = Rendered::of(&example, &Platform::default());
        let pool = &r.pool("brokers")["spec"];
        let instance = kaas_controller::sizing::INSTANCE_TYPES
            .iter()
            .find(|i| i.name == r.plan.sizing.instance_type)
            .expect("a known instance type");
        let gib = |q: &Value| {
            let q = q.as_str().expect("a quantity");
            q.strip_suffix("Mi").and_then(|m| m.parse::<f64>().ok()).map(|m| m / 1024.0).expect("MiB")
        };
        let memory = gib(&pool["resources"]["limits"]["memory"]);
        assert_eq!(
            pool["resources"]["requests"]["memory"], pool["resources"]["limits"]["memory"],
            "{example}"
        );
        assert!(pool["resources"]["requests"]["cpu"].is_string(), "{example}: {pool}");
        let node = f64::from(instance.memory_gib);
        assert!(memory < node && memory >= node / 2.0, "{example}: {memory} GiB on a {node} GiB node");
        let heap = pool["jvmOptions"]["-Xmx"].as_str().expect("-Xmx");
        assert_eq!(pool["jvmOptions"]["-Xms"], pool["jvmOptions"]["-Xmx"], "{example}");
        let heap_gib =
            heap.strip_suffix('m').and_then(|m| m.parse::<f64>().ok()).expect("-Xmx in m") / 1024.0;
        assert!(
            heap_gib <= memory / 2.0,
            "{example}: heap {heap_gib} GiB leaves no page cache in {memory} GiB"
        );
        let terms = pool["template"]["pod"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .unwrap_or_else(|| panic!("{example}: no required anti-affinity: {pool}"));
        let on_hostname = |role: &str| {
            terms.iter().any(|t| {
                t["topologyKey"] == "kubernetes.io/hostname"
                    && t["labelSelector"]["matchLabels"][role] == "true"
                    && t["labelSelector"]["matchLabels"]["strimzi.io/cluster"] == KAFKA_RELEASE
            })
        };
        assert!(on_hostname("strimzi.io/broker-role"), "{example}: two brokers may share a node");
        assert!(
            on_hostname("strimzi.io/controller-role"),
            "{example}: a controller may share a broker's node"
        );
    }
}
