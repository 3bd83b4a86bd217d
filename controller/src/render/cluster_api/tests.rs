//! The Cluster API objects as CAPA needs them to come up: the CNI's security-group rules, no default key pair,
//! the platform's images, templates named by their spec, IMDS per pool, workers in three zones; and the two
//! platform components that need AWS rights on the control plane.

use serde_json::{json, Value};

use crate::crd::KafkaTenant;
use crate::render::tests::example;
use crate::render::{render, ImageLookup, Platform, RenderError, IMAGE_LOOKUP_BASE_OS, IMAGE_LOOKUP_FORMAT};

fn objects(t: &KafkaTenant, p: &Platform) -> Vec<Value> {
    render(t, p).expect("renders")
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// `acme` with other throughputs, MB/s in and out.
fn acme_at(ingress_mbps: u32, egress_mbps: u32) -> KafkaTenant {
    let mut t = example("acme");
    t.spec.throughput.ingress_mbps = ingress_mbps;
    t.spec.throughput.egress_mbps = egress_mbps;
    for u in &mut t.spec.users {
        u.quota = None;
    }
    t
}

#[test]
fn cilium_traffic_is_open_between_nodes() {
    let all = objects(&example("acme"), &Platform::default());
    let aws = of_kind(&all, "AWSCluster")[0];
    assert_eq!(
        aws["spec"]["network"]["cni"]["cniIngressRules"],
        json!([
            { "description": "VXLAN overlay (cilium)", "protocol": "udp", "fromPort": 8472, "toPort": 8472 },
            { "description": "health checks (cilium)", "protocol": "tcp", "fromPort": 4240, "toPort": 4240 },
            { "description": "ICMP echo health checks (cilium)", "protocol": "icmp", "fromPort": 8, "toPort": 0 },
        ]),
        "not Calico's defaults"
    );
}

#[test]
fn machines_have_no_key_pair_unless_the_platform_names_one() {
    for (key, want) in [(None, ""), (Some("platform-ops"), "platform-ops")] {
        let p = Platform { ssh_key_name: key.map(str::to_owned), ..Platform::default() };
        let all = objects(&example("acme"), &p);
        assert_eq!(of_kind(&all, "AWSCluster")[0]["spec"]["sshKeyName"], want, "{key:?}");
        for t in of_kind(&all, "AWSMachineTemplate") {
            // Unset on a machine: it takes the cluster's (instances.go:229-235).
            assert!(t["spec"]["template"]["spec"].get("sshKeyName").is_none(), "{}", name(t));
        }
    }
}

#[test]
fn every_machine_finds_the_platforms_image() {
    let images = ImageLookup {
        org: "210987654321".into(),
        format: "kaas-{{.BaseOS}}-{{.K8sVersion}}-*".into(),
        base_os: "ubuntu-24.04".into(),
    };
    let p = Platform { images, ..Platform::default() };
    let all = objects(&example("acme"), &p);
    let templates = of_kind(&all, "AWSMachineTemplate");
    assert_eq!(templates.len(), 3, "control plane, brokers, system");
    for t in templates {
        let spec = &t["spec"]["template"]["spec"];
        assert_eq!(
            (&spec["imageLookupOrg"], &spec["imageLookupFormat"], &spec["imageLookupBaseOS"]),
            (&json!("210987654321"), &json!("kaas-{{.BaseOS}}-{{.K8sVersion}}-*"), &json!("ubuntu-24.04")),
            "{}",
            name(t)
        );
    }
}

/// `pattern` with EC2's name-filter wildcards (`*` any run, `?` one character) against `s`.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &s[1..]),
        _ => false,
    }
}

#[test]
fn the_default_lookup_finds_image_builders_images_of_either_architecture() {
    // CAPA fills the template with the base OS and the Machine's version without its `v` (ami.go:202).
    let filter =
        IMAGE_LOOKUP_FORMAT.replace("{{.BaseOS}}", IMAGE_LOOKUP_BASE_OS).replace("{{.K8sVersion}}", "1.34.2");
    for (image, found) in [
        ("capa-ami-ubuntu-24.04-v1.34.2-1764806400", true),
        ("capa-ami-ubuntu-24.04-arm64-v1.34.2-1764806400", true),
        ("capa-ami-ubuntu-24.04-arm64-v1.34.20-1764806400", false),
        ("capa-ami-ubuntu-24.04-arm64-v1.35.0-1764806400", false),
        ("capa-ami-ubuntu-22.04-arm64-v1.34.2-1764806400", false),
    ] {
        assert_eq!(glob(filter.as_bytes(), image.as_bytes()), found, "{filter} vs {image}");
    }
}

#[test]
fn a_changed_spec_is_a_new_template_and_the_pools_follow_it() {
    let p = Platform::default();
    let brokers_template = |t: &KafkaTenant| -> (String, String) {
        let all = objects(t, &p);
        let template = of_kind(&all, "AWSMachineTemplate")
            .into_iter()
            .find(|o| name(o).starts_with("tenants-acme-brokers-"))
            .expect("broker template");
        for md in of_kind(&all, "MachineDeployment") {
            let r = &md["spec"]["template"]["spec"]["infrastructureRef"]["name"];
            assert!(of_kind(&all, "AWSMachineTemplate").iter().any(|t| t["metadata"]["name"] == *r), "{r}");
        }
        let kcp =
            &of_kind(&all, "KubeadmControlPlane")[0]["spec"]["machineTemplate"]["spec"]["infrastructureRef"];
        assert!(
            name(of_kind(&all, "AWSMachineTemplate")[0]) == kcp["name"],
            "the KCP points at its template"
        );
        let instance = template["spec"]["template"]["spec"]["instanceType"].as_str().unwrap_or_default();
        (name(template).to_owned(), instance.to_owned())
    };
    let (small, small_type) = brokers_template(&acme_at(10, 10));
    let (large, large_type) = brokers_template(&example("acme"));
    assert_ne!(small_type, large_type, "the case needs two instance types");
    assert_ne!(small, large, "another instance type is another template");
    for n in [&small, &large] {
        let hash = n.strip_prefix("tenants-acme-brokers-").unwrap_or_default();
        assert!(hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{n}");
    }
    assert_eq!(brokers_template(&example("acme")).0, large, "an unchanged spec keeps its name");
}

#[test]
fn imds_needs_tokens_and_only_the_control_plane_lets_pods_reach_it() {
    let all = objects(&example("acme"), &Platform::default());
    let mut seen = Vec::new();
    for t in of_kind(&all, "AWSMachineTemplate") {
        let imds = &t["spec"]["template"]["spec"]["instanceMetadataOptions"];
        let pool = name(t).trim_start_matches("tenants-acme-").rsplit_once('-').map(|(p, _)| p).unwrap_or("");
        seen.push((pool.to_owned(), imds["httpTokens"].clone(), imds["httpPutResponseHopLimit"].clone()));
    }
    assert_eq!(
        seen,
        [
            ("control-plane".to_owned(), json!("required"), json!(2)),
            ("brokers".to_owned(), json!("required"), json!(1)),
            ("system".to_owned(), json!("required"), json!(1)),
        ]
    );
}

#[test]
fn workers_spread_over_the_regions_three_zones() {
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    for (t, brokers) in [(example("acme"), 3), (acme_at(500, 1000), 12)] {
        let all = objects(&t, &Platform::default());
        let mds = of_kind(&all, "MachineDeployment");
        for (pool, total) in [("brokers", brokers), ("system", 3)] {
            let of_pool: Vec<&&Value> = mds
                .iter()
                .filter(|m| m["spec"]["template"]["metadata"]["labels"]["kaas.dev/pool"] == pool)
                .collect();
            let placed: Vec<(&str, u64)> = of_pool
                .iter()
                .map(|m| {
                    let zone = m["spec"]["template"]["spec"]["failureDomain"].as_str().unwrap_or_default();
                    (zone, m["spec"]["replicas"].as_u64().unwrap_or_default())
                })
                .collect();
            let each = total / 3;
            assert_eq!(placed, zones.map(|z| (z, each)), "{pool} of {brokers} brokers");
        }
        for m in &mds {
            assert!(name(m).len() <= 63, "a MachineDeployment's name is a label value: {}", name(m));
            // Each selects its own machines only.
            let selector = m["spec"]["selector"]["matchLabels"].as_object().expect("selector");
            let labels = &m["spec"]["template"]["metadata"]["labels"];
            assert!(selector.iter().all(|(k, v)| labels[k] == *v), "{}", name(m));
            let others = mds.iter().filter(|o| name(o) != name(m));
            for o in others {
                let theirs = &o["spec"]["template"]["metadata"]["labels"];
                assert!(!selector.iter().all(|(k, v)| theirs[k] == *v), "{} selects {}", name(m), name(o));
            }
        }
    }
}

#[test]
fn a_region_without_zones_is_refused_naming_the_setting() {
    let mut t = example("acme");
    t.spec.region = "ap-southeast-7".into();
    let err = render(&t, &Platform::default()).expect_err("no zones for the region");
    assert_eq!(err, RenderError::NoZones("ap-southeast-7".into()));
    assert!(err.to_string().contains("--zones"), "{err}");
}

#[test]
fn ebs_csi_controller_and_external_dns_run_on_the_control_plane() {
    let all = objects(&example("acme"), &Platform::default());
    let values = |release: &str| -> Value {
        let r = all.iter().find(|o| o["kind"] == "HelmRelease" && name(o) == release).expect(release);
        r["spec"]["values"].clone()
    };
    let control_plane = json!({ "node-role.kubernetes.io/control-plane": "" });
    let taint = json!({ "key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule" });
    for placement in
        [values("tenants-acme-aws-ebs-csi-driver")["controller"].clone(), values("tenants-acme-external-dns")]
    {
        assert_eq!(placement["nodeSelector"], control_plane, "{placement}");
        let tolerations = placement["tolerations"].as_array().cloned().unwrap_or_default();
        assert!(tolerations.contains(&taint), "{placement}");
    }
}

#[test]
fn pool_labels_reach_nodes_and_only_brokers_are_tainted() {
    let all = objects(&example("acme"), &Platform::default());
    let configs = of_kind(&all, "KubeadmConfigTemplate");
    for md in of_kind(&all, "MachineDeployment") {
        let template = &md["spec"]["template"];
        let pool = template["metadata"]["labels"]["kaas.dev/pool"].as_str().unwrap_or_default();
        // Cluster API copies only labels of these domains from Machines to Nodes (cluster-api v1.11.3
        // util/labels/helpers.go `GetManagedLabels`).
        assert_eq!(template["metadata"]["labels"]["node.cluster.x-k8s.io/pool"], pool, "{}", name(md));
        let config_name = &template["spec"]["bootstrap"]["configRef"]["name"];
        let config =
            configs.iter().find(|c| c["metadata"]["name"] == *config_name).expect("its config is rendered");
        let registration = &config["spec"]["template"]["spec"]["joinConfiguration"]["nodeRegistration"];
        assert_eq!(
            registration["kubeletExtraArgs"],
            json!([{ "name": "cloud-provider", "value": "external" }]),
            "{}",
            name(md)
        );
        let want = match pool {
            "brokers" => {
                json!([{ "key": "node.cluster.x-k8s.io/pool", "value": "brokers", "effect": "NoSchedule" }])
            }
            _ => json!([]),
        };
        assert_eq!(registration["taints"], want, "{}", name(md));
    }
}

/// A broken machine is replaced, one at a time: workers and control-plane machines each have a health check
/// on their Node's Ready condition that remediates only while a single machine is unhealthy.
#[test]
fn a_machine_whose_node_is_not_ready_is_replaced_one_at_a_time() {
    let objects = render(&example("acme"), &Platform::default()).expect("renders");
    let checks: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "MachineHealthCheck").collect();
    let selected: Vec<&str> = checks
        .iter()
        .map(|c| c["spec"]["selector"]["matchExpressions"][0]["key"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(selected, ["cluster.x-k8s.io/deployment-name", "cluster.x-k8s.io/control-plane"]);
    for c in &checks {
        assert_eq!(c["spec"]["clusterName"], c["metadata"]["labels"]["kaas.dev/tenant"]);
        assert_eq!(c["spec"]["remediation"]["triggerIf"]["unhealthyLessThanOrEqualTo"], 1);
        let conditions = c["spec"]["checks"]["unhealthyNodeConditions"].as_array().expect("conditions");
        let statuses: Vec<&str> = conditions.iter().map(|c| c["status"].as_str().unwrap_or("")).collect();
        assert_eq!(statuses, ["Unknown", "False"]);
    }
    // None for a tenant on the shared cluster: it has no machines.
    let beta = render(&example("beta"), &Platform::default()).expect("renders");
    assert!(beta.iter().all(|o| o["kind"] != "MachineHealthCheck"));
}
