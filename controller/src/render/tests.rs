//! Rendering tests: golden files for the example tenants, every rendered object validated against the real
//! upstream CRD schemas in `../shared/crds/`, the generated KafkaTenant CRD compared with the committed one,
//! and bad tenants refused with the field named. Regenerate goldens and the CRD with `UPDATE_GOLDEN=1`.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use serde_json::{json, Value};

use super::*;
use crate::crd::{limits, Versions};
use crate::names::tests::is_kubernetes_name;
use crate::names::TENANT_GENERATION;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The example tenant `controller/examples/<name>.yaml`.
pub(crate) fn example(name: &str) -> KafkaTenant {
    let text =
        std::fs::read_to_string(repo().join(format!("controller/examples/{name}.yaml"))).expect("example");
    serde_norway::from_str(&text).expect("example parses")
}

fn golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
        std::fs::write(path, actual).expect("write golden");
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("{} missing (UPDATE_GOLDEN=1)", path.display()));
    assert!(
        want == actual,
        "{} differs from the rendered output (UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}

#[test]
fn examples_match_golden_files() {
    for name in ["acme", "beta"] {
        let objects = render(&example(name), &Platform::default()).expect("renders");
        golden(&repo().join(format!("controller/testdata/{name}.yaml")), &to_yaml(&objects).expect("yaml"));
    }
}

#[test]
fn isolation_decides_the_objects() {
    let kinds = |t: &KafkaTenant| -> Vec<String> {
        render(t, &Platform::default())
            .expect("renders")
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let acme = kinds(&example("acme"));
    assert_eq!(acme[..4], ["Namespace", "Role", "RoleBinding", "Cluster"]);
    assert_eq!(acme.last().map(String::as_str), Some("HelmRelease"));
    assert_eq!(kinds(&example("beta")), ["Namespace", "Namespace", "Role", "RoleBinding", "HelmRelease"]);
    let objects = render(&example("acme"), &Platform::default()).expect("renders");
    let release = objects.last().expect("release");
    assert_eq!(release["spec"]["kubeConfig"]["secretRef"]["name"], "tenants-acme-kubeconfig");
    assert_eq!(release["spec"]["values"]["kafka"]["brokers"], 3);
    let after = |o: &Value| -> Vec<String> {
        o["spec"]["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        after(release),
        ["tenants-acme-strimzi", "tenants-acme-aws-ebs-csi-driver", "tenants-acme-prometheus-operator-crds"],
        "Kafka after its operator, its volumes' driver and its PodMonitor's CRD"
    );
    let components: Vec<&str> = objects
        .iter()
        .filter(|o| {
            o["kind"] == "HelmRelease" && o["spec"]["chart"]["spec"]["sourceRef"]["kind"] == "HelmRepository"
        })
        .map(|o| o["metadata"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        components,
        [
            "tenants-acme-cilium",
            "tenants-acme-aws-cloud-controller-manager",
            "tenants-acme-aws-ebs-csi-driver",
            "tenants-acme-strimzi",
            "tenants-acme-cert-manager",
            "tenants-acme-strimzi-drain-cleaner",
            "tenants-acme-external-dns",
            "tenants-acme-prometheus-operator-crds",
        ]
    );
    // Nothing that needs pods before the network and the cloud controller have initialised the nodes, and
    // every dependency is a release rendered beside it.
    let by_name = |n: &str| objects.iter().find(|o| o["kind"] == "HelmRelease" && o["metadata"]["name"] == n);
    for name in components[2..].iter().filter(|n| !n.ends_with("drain-cleaner") && !n.ends_with("-crds")) {
        let deps = after(by_name(name).expect("rendered"));
        assert!(deps.contains(&"tenants-acme-cilium".to_owned()), "{name}: {deps:?}");
        assert!(deps.contains(&"tenants-acme-aws-cloud-controller-manager".to_owned()), "{name}: {deps:?}");
    }
    for o in objects.iter().filter(|o| o["kind"] == "HelmRelease") {
        for dep in after(o) {
            assert!(
                by_name(&dep).is_some(),
                "{} depends on {dep}, which is not rendered",
                o["metadata"]["name"]
            );
        }
    }
    let ccm = by_name("tenants-acme-aws-cloud-controller-manager").expect("ccm");
    assert_eq!(
        ccm["spec"]["values"]["image"]["tag"], "v1.34.0",
        "the cloud controller of the cluster's minor"
    );
    assert!(objects
        .iter()
        .filter(|o| o["kind"] == "HelmRelease")
        .all(|o| o["spec"]["kubeConfig"]["secretRef"]["name"] == "tenants-acme-kubeconfig"));
    for o in objects.iter().filter(|o| o["kind"] == "AWSMachineTemplate") {
        assert_eq!(
            o["spec"]["template"]["spec"]["rootVolume"]["encrypted"], true,
            "{}",
            o["metadata"]["name"]
        );
    }
    let beta = render(&example("beta"), &Platform::default()).expect("renders");
    assert!(beta[1]["spec"].get("kubeConfig").is_none());
}

/// The openAPIV3Schema of `apiVersion`/`kind` from the upstream CRDs.
fn upstream_schema(crds: &[Value], api_version: &str, kind: &str) -> Option<Value> {
    let (group, version) = api_version.split_once('/')?;
    let crd = crds.iter().find(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == kind)?;
    let v = crd["spec"]["versions"].as_array()?.iter().find(|v| v["name"] == version)?;
    Some(v["schema"]["openAPIV3Schema"].clone())
}

fn load_crds() -> Vec<Value> {
    let dir = repo().join("../shared/crds");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("crd file");
            for doc in serde_norway::Deserializer::from_str(&text) {
                if let Ok(v) = Value::deserialize(doc) {
                    if v["kind"] == "CustomResourceDefinition" {
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

use serde::Deserialize;

#[test]
fn rendered_objects_validate_against_upstream_crds() {
    let crds = load_crds();
    assert!(crds.len() >= 20, "upstream CRDs not found in ../shared/crds");
    let mut checked = 0;
    // Every optional platform setting that renders into upstream objects is on.
    let platform = Platform { volume_kms_key: Some(KMS_TEMPLATE.into()), ..Default::default() };
    for name in ["acme", "beta"] {
        for o in render(&example(name), &platform).expect("renders") {
            let (api, kind) = (o["apiVersion"].as_str().unwrap_or(""), o["kind"].as_str().unwrap_or(""));
            // Kubernetes' own kinds have no CRD: their typed form must read them without losing a field.
            fn lossless<T: serde::de::DeserializeOwned + serde::Serialize>(
                o: &Value,
            ) -> Result<Value, String> {
                let typed: T = serde_json::from_value(o.clone()).map_err(|e| e.to_string())?;
                serde_json::to_value(&typed).map_err(|e| e.to_string())
            }
            use k8s_openapi::api::{core::v1::Namespace, rbac::v1 as rbac};
            let core = match (api, kind) {
                ("v1", "Namespace") => Some(lossless::<Namespace>(&o)),
                ("rbac.authorization.k8s.io/v1", "Role") => Some(lossless::<rbac::Role>(&o)),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => Some(lossless::<rbac::RoleBinding>(&o)),
                _ => None,
            };
            if let Some(typed) = core {
                assert_eq!(typed.as_ref(), Ok(&o), "{name}: {kind}");
                checked += 1;
                continue;
            }
            // Not among ../shared/crds: the `cluster_api` integration test applies it to the real Cluster API,
            // whose CRD and webhooks judge it, and reads its status.
            if kind == "MachineHealthCheck" {
                continue;
            }
            let schema = upstream_schema(&crds, api, kind)
                .unwrap_or_else(|| panic!("no upstream CRD for {api} {kind}"));
            let validator = jsonschema::validator_for(&schema).expect("schema compiles");
            let errors: Vec<String> =
                validator.iter_errors(&o).map(|e| format!("{}: {e}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{name}: {kind} {}:\n{}", o["metadata"]["name"], errors.join("\n"));
            checked += 1;
        }
    }
    assert_eq!(checked, 39);
}

#[test]
fn the_network_path_settings_reach_the_aws_cluster_and_validate() {
    let crds = load_crds();
    let network = Network {
        vpc_ipam_pool: Some("ipam-pool-0123456789abcdef0".into()),
        vpc_netmask_length: Some(20),
        proxy_cidrs: vec!["10.0.0.0/16".into()],
        tenant_vpc_cidrs: vec!["10.64.0.0/12".into()],
    };
    let platform = Platform { network, ..Platform::default() };
    let objects = render(&example("acme"), &platform).expect("renders");
    let aws = objects.iter().find(|o| o["kind"] == "AWSCluster").expect("AWSCluster");
    let net = &aws["spec"]["network"];
    assert_eq!(
        net["vpc"]["ipamPool"],
        serde_json::json!({ "id": "ipam-pool-0123456789abcdef0", "netmaskLength": 20 })
    );
    assert_eq!(net["nodePortIngressRuleCidrBlocks"], serde_json::json!(["10.0.0.0/16"]));
    let schema =
        upstream_schema(&crds, "infrastructure.cluster.x-k8s.io/v1beta2", "AWSCluster").expect("CRD");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(aws).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // Unset, Cluster API's defaults stand (and docs/controller/platform.md says why that is not routable).
    let plain = render(&example("acme"), &Platform::default()).expect("renders");
    let aws = plain.iter().find(|o| o["kind"] == "AWSCluster").expect("AWSCluster");
    assert!(aws["spec"]["network"]["vpc"].get("ipamPool").is_none());
    assert!(aws["spec"]["network"].get("nodePortIngressRuleCidrBlocks").is_none());
}

#[test]
fn generated_crd_matches_the_committed_file() {
    let crd = serde_norway::to_string(&KafkaTenant::crd()).expect("crd yaml");
    golden(&repo().join("charts/kaas-controller/crds/kafkatenant.yaml"), &crd);
}

#[test]
fn bad_tenants_are_refused_naming_the_field() {
    let mut t = example("acme");
    t.spec.throughput.ingress_mbps = 0;
    // Its quota would also exceed an ingress of 0; this case is about the three fields below.
    t.spec.users[1].quota = None;
    t.spec.users[1].name = "orders-service".into();
    t.spec.region = "mars".into();
    let Err(RenderError::Invalid(errors)) = render(&t, &Platform::default()) else {
        panic!("accepted a bad tenant")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["throughput.ingressMBps", "users[1].name", "region"]);
    let mut unnamed = example("beta");
    unnamed.metadata.name = Some("Beta_1".into());
    assert!(matches!(render(&unnamed, &Platform::default()), Err(RenderError::Invalid(_))));
    let unknown = "apiVersion: kaas.dev/v1alpha1\nkind: KafkaTenant\nmetadata: {name: x}\nspec:\n  throughput: {ingressMBps: 1, egressMBps: 1}\n  retentionHours: 1\n  retention: 5\n";
    let err = serde_norway::from_str::<KafkaTenant>(unknown).expect_err("unknown field");
    assert!(err.to_string().contains("retention"), "{err}");
}

#[test]
fn the_schema_check_catches_broken_objects() {
    let crds = load_crds();
    let objects = render(&example("acme"), &Platform::default()).expect("renders");
    let mut md = objects.iter().find(|o| o["kind"] == "MachineDeployment").expect("md").clone();
    md["spec"]["replicas"] = Value::from("three");
    let mut kcp = objects.iter().find(|o| o["kind"] == "KubeadmControlPlane").expect("kcp").clone();
    kcp["spec"].as_object_mut().expect("spec").remove("version");
    for broken in [md, kcp] {
        let schema = upstream_schema(
            &crds,
            broken["apiVersion"].as_str().unwrap_or(""),
            broken["kind"].as_str().unwrap_or(""),
        )
        .expect("schema");
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        assert!(!validator.is_valid(&broken), "{} passed while broken", broken["kind"]);
    }
}

#[test]
fn broker_volumes_are_provisioned_past_the_baseline_only_when_the_sizing_needs_it() {
    let storage = |ingress: u32| {
        let mut t = example("acme");
        t.spec.throughput.ingress_mbps = ingress;
        t.spec.throughput.egress_mbps = ingress;
        let release = render(&t, &Platform::default()).expect("renders").pop().expect("release");
        let sized = sizing::size(&demand(&t)).expect("sized");
        (release["spec"]["values"]["kafka"]["storage"].clone(), sized)
    };
    let (acme, _) = storage(100);
    assert!(acme.get("throughputMiBps").is_none() && acme.get("iops").is_none(), "baseline: {acme}");
    // Each volume provisioned for its writes at 80 %: the throughput in MiB/s, never less than sized for.
    let (busy, sized) = storage(1000);
    let mbps = sized.monthly_cost.provisioned_mbps_per_volume;
    assert!(mbps > 131, "{mbps}");
    let mibps = busy["throughputMiBps"].as_u64().expect("set");
    assert!(mibps as f64 * 1.048_576 >= f64::from(mbps), "{mibps} MiB/s for {mbps} MB/s");
    assert!(busy["iops"].as_u64().expect("set") >= (mibps * 4).max(3000));
}

#[test]
fn pinned_versions_replace_the_platforms_for_that_tenant_only() {
    let mut platform = Platform::default();
    platform.offered.kubernetes = vec!["v1.35.1".into()];
    let versions = |t: &KafkaTenant| {
        let objects = render(t, &platform).expect("renders");
        let kind = |k: &str| objects.iter().find(|o| o["kind"] == k).cloned().expect(k);
        let strimzi = objects
            .iter()
            .find(|o| o["kind"] == "HelmRelease" && o["spec"]["releaseName"] == "strimzi")
            .expect("strimzi");
        let release = objects.last().expect("release");
        (
            kind("KubeadmControlPlane")["spec"]["version"].as_str().unwrap_or("").to_owned(),
            kind("MachineDeployment")["spec"]["template"]["spec"]["version"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            strimzi["spec"]["chart"]["spec"]["version"].as_str().unwrap_or("").to_owned(),
            release["spec"]["values"]["kafka"]["version"].as_str().unwrap_or("").to_owned(),
        )
    };
    let defaults = (
        platform.kubernetes_version.clone(),
        platform.kubernetes_version.clone(),
        platform.strimzi_version.clone(),
        platform.kafka_version.clone(),
    );
    assert_eq!(versions(&example("acme")), defaults, "unpinned: the platform's");
    let mut pinned = example("acme");
    pinned.spec.versions =
        Some(Versions { kubernetes: Some("v1.35.1".into()), strimzi: None, kafka: Some("4.2.0".into()) });
    let expected = ("v1.35.1".into(), "v1.35.1".into(), platform.strimzi_version.clone(), "4.2.0".into());
    assert_eq!(versions(&pinned), expected);
}

#[test]
fn pins_the_platform_does_not_offer_are_refused_naming_what_it_offers() {
    let platform = Platform {
        offered: Offered { kubernetes: vec!["v1.35.1".into()], strimzi: vec!["1.1.0".into()] },
        ..Default::default()
    };
    let pinned = |kubernetes: &str, strimzi: &str, kafka: &str| {
        let mut t = example("acme");
        t.spec.versions = Some(Versions {
            kubernetes: Some(kubernetes.into()),
            strimzi: Some(strimzi.into()),
            kafka: Some(kafka.into()),
        });
        render(&t, &platform)
    };
    // The defaults and the offered ones render; Strimzi 1.1.0 with a Kafka it runs.
    pinned("v1.34.2", "1.2.0", "4.3.1").expect("the defaults, pinned");
    pinned("v1.35.1", "1.1.0", "4.3.0").expect("offered versions");
    let Err(RenderError::Invalid(errors)) = pinned("v1.36.0", "1.0.1", "4.2.0") else { panic!("accepted") };
    let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (
                "versions.kubernetes",
                "v1.36.0 is not offered by this platform: it offers v1.34.2, v1.35.1 (the versions it has machine \
                 images for)"
            ),
            ("versions.strimzi", "1.0.1 is not offered by this platform: it offers 1.2.0, 1.1.0 (the versions it has vetted)"),
        ]
    );
}

#[test]
fn versions_that_are_none_or_do_not_apply_are_refused_by_name() {
    let mut t = example("beta");
    t.spec.versions = Some(Versions {
        kubernetes: Some("v1.33.4".into()),
        strimzi: Some("1.2".into()),
        kafka: Some("four".into()),
    });
    let Err(RenderError::Invalid(errors)) = render(&t, &Platform::default()) else { panic!("accepted") };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "versions.kubernetes",
            "versions.strimzi",
            "versions.kafka",
            "versions.kubernetes",
            "versions.strimzi"
        ],
        "{errors:?}"
    );
    assert!(errors[0].message.contains("1.34 or newer"), "{}", errors[0].message);
    assert!(errors[3].message.contains("only for isolation: cluster"), "{}", errors[3].message);
}

#[test]
fn the_default_versions_go_together_and_pins_that_do_not_are_refused_naming_both() {
    let mut platform = Platform::default();
    // Every Strimzi release the table knows is offered here, so only the pairs are judged.
    // (0.9.0: one it does not know, offered by mistake.)
    platform.offered.strimzi = crate::strimzi::versions::RELEASES.iter().map(|r| r.strimzi.into()).collect();
    platform.offered.strimzi.push("0.9.0".into());
    assert_eq!(
        crate::strimzi::check_versions(&platform.strimzi_version, &platform.kafka_version),
        Ok(()),
        "the platform's own defaults"
    );
    let refused = |strimzi: Option<&str>, kafka: Option<&str>| {
        let mut t = example("acme");
        t.spec.versions = Some(Versions {
            kubernetes: None,
            strimzi: strimzi.map(Into::into),
            kafka: kafka.map(Into::into),
        });
        match render(&t, &platform) {
            Err(RenderError::Invalid(errors)) => Some(errors),
            Ok(_) => None,
            Err(e) => panic!("{e}"),
        }
    };
    let errors = refused(None, Some("4.1.0")).expect("Kafka 4.1.0 on the platform's Strimzi 1.2.0");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "versions.kafka");
    assert_eq!(
        errors[0].message,
        "Kafka 4.1.0 is not supported by Strimzi 1.2.0 (it runs 4.2.0, 4.2.1, 4.3.0, 4.3.1)"
    );
    let errors = refused(Some("1.1.0"), None).expect("Strimzi 1.1.0 with the platform's Kafka");
    assert_eq!(errors[0].field, "versions.strimzi");
    assert!(errors[0].message.contains("Kafka 4.3.1") && errors[0].message.contains("4.3.0"), "{errors:?}");
    let errors = refused(Some("0.9.0"), Some("4.3.1")).expect("an unknown Strimzi");
    assert_eq!(errors[0].field, "versions.strimzi");
    assert!(refused(Some("1.1.0"), Some("4.2.1")).is_none(), "a pair Strimzi 1.1.0 runs");
    let mut beta = example("beta");
    beta.spec.versions = Some(Versions { kubernetes: None, strimzi: None, kafka: Some("4.1.2".into()) });
    let Err(RenderError::Invalid(errors)) = render(&beta, &platform) else {
        panic!("namespace mode accepted")
    };
    assert_eq!(errors[0].field, "versions.kafka", "the shared cluster's Strimzi is the platform's");
}

#[test]
fn chart_values_satisfy_the_charts_schema() {
    let text = std::fs::read_to_string(repo().join("charts/kaas/values.schema.json")).expect("chart schema");
    let schema: Value = serde_json::from_str(&text).expect("json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let mut busy = example("acme");
    busy.metadata.name = Some("busy".into());
    busy.spec.throughput.ingress_mbps = 1000;
    busy.spec.throughput.egress_mbps = 1000;
    for (name, t) in [("acme", example("acme")), ("beta", example("beta")), ("busy", busy)] {
        let objects = render(&t, &Platform::default()).expect("renders");
        let values = &objects.last().expect("release")["spec"]["values"];
        let errors: Vec<String> =
            validator.iter_errors(values).map(|e| format!("{}: {e}", e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{name}: values break charts/kaas/values.schema.json:\n{}",
            errors.join("\n")
        );
    }
}

#[test]
fn the_release_names_the_tenant_generation_it_was_rendered_from() {
    let mut t = example("acme");
    let release = |t: &KafkaTenant| render(t, &Platform::default()).expect("renders").pop().expect("release");
    assert!(release(&t)["metadata"].get("annotations").is_none(), "a file without generation: none");
    t.metadata.generation = Some(7);
    assert_eq!(release(&t)["metadata"]["annotations"][TENANT_GENERATION], "7");
}

#[test]
fn the_folder_creates_the_namespace_every_object_lives_in() {
    for name in ["acme", "beta"] {
        let objects = render(&example(name), &Platform::default()).expect("renders");
        let first = &objects[0];
        assert_eq!((first["apiVersion"].as_str(), first["kind"].as_str()), (Some("v1"), Some("Namespace")));
        let ns = first["metadata"]["name"].as_str().expect("name");
        assert_eq!(ns, namespace(&format!("tenants-{name}")));
        // A namespace tenant's folder also creates its Kafka's namespace, for the controller's Role there.
        let mut created = vec![ns];
        for o in &objects[1..] {
            if o["kind"] == "Namespace" {
                created.push(o["metadata"]["name"].as_str().expect("name"));
                continue;
            }
            let lives = o["metadata"]["namespace"].as_str().unwrap_or_default();
            assert!(created.contains(&lives), "{name}: {} {} in {lives}", o["kind"], o["metadata"]["name"]);
        }
    }
}

#[test]
fn tenants_on_the_shared_cluster_each_own_their_storage_class() {
    let class = |t: &KafkaTenant| {
        let release = render(t, &Platform::default()).expect("renders").pop().expect("release");
        release["spec"]["values"]["kafka"]["storage"]["class"].as_str().expect("class").to_owned()
    };
    let beta = example("beta");
    let mut other = beta.clone();
    other.metadata.namespace = Some("others".into());
    assert_eq!(class(&beta), "kaas-tenants-beta-gp3");
    assert_eq!(
        class(&other),
        "kaas-others-beta-gp3",
        "a second shared-cluster tenant: no Helm ownership clash"
    );
    assert_eq!(class(&example("acme")), Platform::default().storage_class, "its own cluster: the platform's");
}

/// The chart values of `t`'s `kaas` release.
fn values_of(t: &KafkaTenant) -> Value {
    render(t, &Platform::default()).expect("renders").pop().expect("release")["spec"]["values"].clone()
}

#[test]
fn topics_become_chart_values_with_the_tenants_defaults() {
    let t = example("acme");
    let sizing = sizing::size(&demand(&t)).expect("sized");
    let values = values_of(&t);
    let topics = values["topics"].as_array().expect("topics rendered");
    assert_eq!(topics.len(), t.spec.topics.len());
    let by_name =
        |n: &str| topics.iter().find(|v| v["name"] == n).unwrap_or_else(|| panic!("{n} rendered")).clone();
    // (name, partitions, replicas, config) — absent figures are the tenant's.
    let rf = u64::from(t.spec.replication_factor);
    let table = [
        ("orders", u64::from(sizing.partitions), rf, json!({})),
        (
            "orders.audit",
            3,
            rf,
            json!({ "cleanup.policy": "compact", "max.message.bytes": "2097152", "retention.ms": 12 * 3_600_000 }),
        ),
        // Two copies: min.insync.replicas follows them, or acks=all could never write.
        ("orders_DLQ", 1, 2, json!({ "min.insync.replicas": 1 })),
    ];
    for (name, partitions, replicas, config) in table {
        let v = by_name(name);
        assert_eq!(v["partitions"].as_u64(), Some(partitions), "{name}");
        assert_eq!(v["replicas"].as_u64(), Some(replicas), "{name}");
        assert_eq!(v["config"], config, "{name}");
        let object = v.get("resourceName").and_then(Value::as_str).unwrap_or(name);
        assert!(is_kubernetes_name(object), "{name}: KafkaTopic named {object}");
    }
    assert!(by_name("orders").get("resourceName").is_none(), "a Kubernetes name is kept");
    assert_ne!(by_name("orders_DLQ")["resourceName"], Value::Null, "capitals and _ need an object name");
    assert_eq!(values_of(&example("beta"))["topics"][0]["partitions"], 6, "the tenant's stated partitions");
}

#[test]
fn bad_topics_are_refused_naming_the_field() {
    use crate::crd::Topic;
    let topic = |name: &str| Topic { name: name.into(), ..Default::default() };
    let cases: Vec<(&str, Vec<Topic>, &str, &str)> = vec![
        ("illegal character", vec![topic("orders!")], "topics[0].name", "no Kafka topic name"),
        ("a dot alone", vec![topic(".")], "topics[0].name", "no Kafka topic name"),
        ("too long", vec![topic(&"t".repeat(250))], "topics[0].name", "no Kafka topic name"),
        ("internal", vec![topic("__consumer_offsets")], "topics[0].name", "internal"),
        ("duplicate", vec![topic("a"), topic("b"), topic("a")], "topics[2].name", "duplicate topic"),
        ("dot and underscore collide", vec![topic("a.b"), topic("a_b")], "topics[1].name", "collides"),
        (
            "no partitions",
            vec![Topic { partitions: Some(0), ..topic("a") }],
            "topics[0].partitions",
            "outside",
        ),
        ("no replicas", vec![Topic { replicas: Some(0), ..topic("a") }], "topics[0].replicas", "outside"),
        (
            "retention past the tenant's",
            vec![Topic { retention_hours: Some(25), ..topic("a") }],
            "topics[0].retentionHours",
            "tenant's retentionHours",
        ),
        (
            "retention.ms in config",
            vec![Topic { config: [("retention.ms".into(), "1".into())].into(), ..topic("a") }],
            "topics[0].config",
            "retentionHours",
        ),
        (
            "a config key that is none",
            vec![Topic { config: [("Cleanup Policy".into(), "compact".into())].into(), ..topic("a") }],
            "topics[0].config",
            "not a topic setting tenants may change",
        ),
        (
            "a setting that loses acknowledged records",
            vec![Topic {
                config: [("unclean.leader.election.enable".into(), "true".into())].into(),
                ..topic("a")
            }],
            "topics[0].config",
            "acknowledged records be lost",
        ),
        (
            "segments of a megabyte",
            vec![Topic { config: [("segment.bytes".into(), "1048576".into())].into(), ..topic("a") }],
            "topics[0].config",
            "outside 52428800..=1073741824",
        ),
        // The tenant's replicationFactor (3) where the topic names none.
        (
            "more in-sync replicas than copies",
            vec![Topic { config: [("min.insync.replicas".into(), "4".into())].into(), ..topic("a") }],
            "topics[0].config",
            "more than the topic's 3 replicas",
        ),
        // Only the sizing knows the brokers: 3 here.
        (
            "more replicas than brokers",
            vec![Topic { replicas: Some(5), ..topic("a") }],
            "topics[0].replicas",
            "3 brokers",
        ),
    ];
    for (what, topics, field, message) in cases {
        let mut t = example("acme");
        t.spec.topics = topics;
        let Err(RenderError::Invalid(errors)) = render(&t, &Platform::default()) else {
            panic!("{what}: accepted")
        };
        assert!(errors.iter().any(|e| e.field == field && e.message.contains(message)), "{what}: {errors:?}");
    }
    let mut fine = example("acme");
    fine.spec.topics = vec![topic("a.b"), topic("A-b"), topic(&"t".repeat(249)), topic("_private")];
    render(&fine, &Platform::default()).expect("legal names render");
}

#[test]
fn users_are_held_to_quotas_at_the_brokers() {
    let t = example("acme");
    let d = demand(&t);
    let brokers = sizing::size(&d).expect("sized").brokers;
    let values = values_of(&t);
    for (i, u) in t.spec.users.iter().enumerate() {
        let q = u.quota.clone().unwrap_or_default();
        let want = sizing::user_quota(&d, brokers, q.ingress_mbps, q.egress_mbps);
        let got = &values["users"][i]["quotas"];
        assert_eq!(got["producerByteRate"].as_u64(), Some(want.producer_byte_rate), "{}", u.name);
        assert_eq!(got["consumerByteRate"].as_u64(), Some(want.consumer_byte_rate), "{}", u.name);
        // Over all brokers no user exceeds the tenant's stated throughput, nor its own share.
        let total = |rate: u64| rate * u64::from(brokers);
        let own_in = u64::from(q.ingress_mbps.unwrap_or(d.ingress_mbps)) * 1_000_000;
        assert!(total(want.producer_byte_rate) - own_in < u64::from(brokers), "{}", u.name);
        let own_out = u64::from(q.egress_mbps.unwrap_or(d.egress_mbps)) * 1_000_000;
        assert!(total(want.consumer_byte_rate) - own_out < u64::from(brokers), "{}", u.name);
    }
    // The auditor's own share, not the tenant's.
    assert!(
        values["users"][1]["quotas"]["producerByteRate"].as_u64()
            < values["users"][0]["quotas"]["producerByteRate"].as_u64()
    );

    let mut greedy = example("acme");
    greedy.spec.users[1].quota =
        Some(crate::crd::UserQuota { ingress_mbps: Some(101), egress_mbps: Some(201) });
    let Err(RenderError::Invalid(errors)) = render(&greedy, &Platform::default()) else {
        panic!("a user quota past the tenant was accepted")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["users[1].quota.ingressMBps", "users[1].quota.egressMBps"]);
}

#[test]
fn create_is_granted_only_where_an_acl_says_so() {
    let values = values_of(&example("acme"));
    let mut creators = Vec::new();
    for u in values["users"].as_array().expect("users") {
        for acl in u["acls"].as_array().expect("acls") {
            if acl["operations"].as_array().expect("ops").iter().any(|o| o == "Create" || o == "All") {
                creators.push((u["name"].clone(), acl["resource"]["name"].clone()));
            }
        }
    }
    assert_eq!(creators, [(json!("orders-service"), json!("scratch-"))]);
}

#[test]
fn the_proxys_user_name_is_not_a_tenants() {
    let mut t = example("beta");
    t.spec.users[0].name = "kaas-proxy".into();
    let Err(RenderError::Invalid(errors)) = render(&t, &Platform::default()) else {
        panic!("a tenant user named kaas-proxy was accepted: two KafkaUsers of one name")
    };
    assert_eq!(errors[0].field, "users[0].name");
}

#[test]
fn status_names_each_users_secret_where_strimzi_writes_it() {
    let acme = user_credentials(&example("acme"));
    let names: Vec<&str> = acme.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["orders-service", "auditor"]);
    for c in &acme {
        assert_eq!(c.secret, c.name, "Strimzi names the Secret after its KafkaUser");
        assert_eq!(c.namespace, "kafka", "the chart's namespace on the tenant's own cluster");
        assert_eq!(c.cluster.as_deref(), Some("kaas-tenants-acme/tenants-acme"));
    }
    let beta = user_credentials(&example("beta"));
    assert_eq!(beta.len(), 1);
    assert_eq!((beta[0].namespace.as_str(), beta[0].cluster.as_ref()), ("tenant-tenants-beta", None));
    // The Secret's namespace is the one the release installs the chart (and so its KafkaUsers) into.
    for name in ["acme", "beta"] {
        let t = example(name);
        let release = render(&t, &Platform::default()).expect("renders").pop().expect("release");
        for c in user_credentials(&t) {
            assert_eq!(release["spec"]["targetNamespace"], c.namespace.as_str(), "{name}");
        }
    }
}

#[test]
fn the_crd_bounds_what_its_list_rules_iterate() {
    // The API server estimates a CEL rule's cost from the schema's bounds and refuses a CRD whose rules could
    // exceed its budget: every list a rule iterates needs maxItems, every string it compares maxLength.
    let crd = serde_json::to_value(KafkaTenant::crd()).expect("json");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules: Vec<&str> = spec["x-kubernetes-validations"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert!(rules.iter().any(|r| r.contains("self.topics.exists_one(u, u.name == t.name)")), "{rules:?}");
    for (list, most) in [("users", limits::MAX_USERS), ("topics", limits::MAX_TOPICS)] {
        let l = &spec["properties"][list];
        assert_eq!(
            l["maxItems"].as_u64(),
            Some(most as u64),
            "{list}: maxItems is the limit validate() checks"
        );
        assert!(l["items"]["properties"]["name"]["maxLength"].as_u64().is_some(), "{list}: no maxLength");
    }
    // The rules read the lists without has(): a tenant that leaves one out gets [] from the server.
    for list in ["users", "topics"] {
        assert_eq!(spec["properties"][list]["default"], json!([]), "{list}");
    }
    let topic = &spec["properties"]["topics"]["items"];
    assert_eq!(topic["properties"]["name"]["maxLength"], 249);
    assert_eq!(topic["properties"]["partitions"]["minimum"].as_f64(), Some(1.0));
    assert!(topic["x-kubernetes-validations"].as_array().is_some_and(|r| r.len() == 3), "{topic}");
}

/// Each tenant's folder grants the controller `get` on exactly the Secrets it reads for that tenant: Cluster
/// API's kubeconfig for its own cluster, Strimzi's three CA Secrets in its Kafka's namespace on this one (a
/// namespace the folder then creates, before the Role in it), bound to the platform's controller user.
#[test]
fn each_tenant_grants_the_controller_exactly_the_secrets_it_reads() {
    let p = Platform { controller_user: "system:serviceaccount:ops:kaas".into(), ..Platform::default() };
    for (name, ns, secrets, kafka_namespace) in [
        ("acme", "kaas-tenants-acme", vec!["tenants-acme-kubeconfig"], None),
        (
            "beta",
            "tenant-tenants-beta",
            vec!["kaas-cluster-ca-cert", "kaas-clients-ca-cert", "kaas-clients-ca"],
            Some("tenant-tenants-beta"),
        ),
    ] {
        let objects = render(&example(name), &p).expect("renders");
        let kind_named = |kind: &str, name: &str| {
            objects.iter().position(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        };
        let role = kind_named("Role", "kaas-controller-reads").expect("a Role");
        assert_eq!(objects[role]["metadata"]["namespace"], ns, "{name}");
        let rules = &objects[role]["rules"];
        assert_eq!(rules.as_array().map(Vec::len), Some(1), "{name}: {rules}");
        assert_eq!(rules[0]["resources"], json!(["secrets"]), "{name}");
        assert_eq!(rules[0]["verbs"], json!(["get"]), "{name}");
        assert_eq!(rules[0]["resourceNames"], json!(secrets), "{name}");
        let binding = kind_named("RoleBinding", "kaas-controller-reads").expect("a RoleBinding");
        assert_eq!(objects[binding]["metadata"]["namespace"], ns, "{name}");
        assert_eq!(
            objects[binding]["subjects"],
            json!([{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:serviceaccount:ops:kaas" }]),
            "{name}"
        );
        match kafka_namespace {
            Some(kafka_ns) => {
                assert!(kind_named("Namespace", kafka_ns).expect("its Namespace") < role, "{name}")
            }
            None => assert!(kind_named("Namespace", ns).expect("its Namespace") < role, "{name}"),
        }
    }
}

#[test]
fn tenant_pods_are_held_to_the_restricted_standard_and_strimzi_makes_them_so() {
    let standard = |p: &Platform| {
        let objects = render(&example("beta"), p).expect("renders");
        let kafka_ns = kafka_namespace(&tenant_id_of(&example("beta")), Isolation::Namespace);
        let ns = objects
            .iter()
            .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == kafka_ns.as_str())
            .expect("the Kafka's namespace")
            .clone();
        let labels = &ns["metadata"]["labels"];
        ["enforce", "audit", "warn"].map(|m| {
            let at = |k: &str| labels[format!("pod-security.kubernetes.io/{k}")].as_str().map(str::to_owned);
            (at(m), at(&format!("{m}-version")))
        })
    };
    let restricted = (Some("restricted".to_owned()), Some("v1.34".to_owned()));
    assert_eq!(standard(&Platform::default()), [(); 3].map(|()| restricted.clone()));
    let opted_out = Platform { namespace_pod_security: PodSecurity::Baseline, ..Default::default() };
    assert_eq!(standard(&opted_out)[0].0.as_deref(), Some("baseline"));
    // The management namespace holds no pods of the tenant's: no standard is set there.
    let objects = render(&example("beta"), &Platform::default()).expect("renders");
    assert!(objects[0]["metadata"]["labels"].get("pod-security.kubernetes.io/enforce").is_none());
    // A tenant's own cluster: its Strimzi operator makes restricted pods.
    let acme = render(&example("acme"), &Platform::default()).expect("renders");
    let strimzi = acme
        .iter()
        .find(|o| o["kind"] == "HelmRelease" && o["spec"]["releaseName"] == "strimzi")
        .expect("strimzi");
    assert_eq!(
        strimzi["spec"]["values"]["extraEnvs"],
        json!([{ "name": "STRIMZI_POD_SECURITY_PROVIDER_CLASS", "value": "restricted" }])
    );
}

/// A KMS key per tenant, by alias ARN (the EBS CSI driver takes ARNs only).
const KMS_TEMPLATE: &str = "arn:aws:kms:eu-west-1:123456789012:alias/kaas-{tenant}";

#[test]
fn each_tenants_volumes_are_encrypted_with_its_own_key_where_the_platform_has_one() {
    let platform = Platform { volume_kms_key: Some(KMS_TEMPLATE.into()), ..Default::default() };
    for name in ["acme", "beta"] {
        let t = example(name);
        let key = format!("arn:aws:kms:eu-west-1:123456789012:alias/kaas-{}", tenant_id_of(&t));
        let objects = render(&t, &platform).expect("renders");
        let release = objects.last().expect("the release");
        assert_eq!(
            release["spec"]["values"]["storageClass"]["kmsKeyId"],
            key.as_str(),
            "{name}: broker volumes"
        );
        let roots: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "AWSMachineTemplate")
            .map(|o| &o["spec"]["template"]["spec"]["rootVolume"])
            .collect();
        assert_eq!(roots.is_empty(), name == "beta", "{name}: machines only on its own cluster");
        for root in roots {
            assert_eq!(root["encryptionKey"], key.as_str(), "{name}: root volumes");
            assert_eq!(root["encrypted"], true);
        }
        // Without a key per tenant: the account's default key, nothing named.
        let plain = render(&t, &Platform::default()).expect("renders");
        assert!(plain.last().expect("release")["spec"]["values"].get("storageClass").is_none());
        assert!(plain
            .iter()
            .all(|o| o["spec"]["template"]["spec"]["rootVolume"].get("encryptionKey").is_none()));
    }
}
