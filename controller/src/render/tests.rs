//! Rendering tests: golden files for the example tenants, every rendered object validated against the real
//! upstream CRD schemas in `../shared/crds/`, the generated KafkaTenant CRD compared with the committed one,
//! and bad tenants refused with the field named. Regenerate goldens and the CRD with `UPDATE_GOLDEN=1`.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use serde_json::Value;

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn example(name: &str) -> KafkaTenant {
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
    assert_eq!(acme[..2], ["Namespace", "Cluster"]);
    assert_eq!(acme.last().map(String::as_str), Some("HelmRelease"));
    assert_eq!(kinds(&example("beta")), ["Namespace", "HelmRelease"]);
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
            "tenants-acme-external-dns",
            "tenants-acme-prometheus-operator-crds",
        ]
    );
    // Nothing that needs pods before the network and the cloud controller have initialised the nodes, and
    // every dependency is a release rendered beside it.
    let by_name = |n: &str| objects.iter().find(|o| o["kind"] == "HelmRelease" && o["metadata"]["name"] == n);
    for name in &components[2..6] {
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
        ccm["spec"]["values"]["image"]["tag"], "v1.33.0",
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
    for name in ["acme", "beta"] {
        for o in render(&example(name), &Platform::default()).expect("renders") {
            let (api, kind) = (o["apiVersion"].as_str().unwrap_or(""), o["kind"].as_str().unwrap_or(""));
            if api == "v1" {
                // Core kinds have no CRD: their typed form must read them without losing a field.
                let typed: k8s_openapi::api::core::v1::Namespace =
                    serde_json::from_value(o.clone()).unwrap_or_else(|e| panic!("{name}: {kind}: {e}"));
                assert_eq!(serde_json::to_value(&typed).expect("json"), o, "{name}: {kind}");
                checked += 1;
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
    assert_eq!(checked, 27);
}

#[test]
fn the_network_path_settings_reach_the_aws_cluster_and_validate() {
    let crds = load_crds();
    let network = Network {
        vpc_ipam_pool: Some("ipam-pool-0123456789abcdef0".into()),
        vpc_netmask_length: Some(20),
        proxy_cidrs: vec!["10.0.0.0/16".into()],
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
    // Unset, Cluster API's defaults stand (and the README says why that is not routable).
    let plain = render(&example("acme"), &Platform::default()).expect("renders");
    let aws = plain.iter().find(|o| o["kind"] == "AWSCluster").expect("AWSCluster");
    assert!(aws["spec"].get("network").is_none());
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
fn chart_values_satisfy_the_charts_schema() {
    let text = std::fs::read_to_string(repo().join("charts/kaas/values.schema.json")).expect("chart schema");
    let schema: Value = serde_json::from_str(&text).expect("json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for name in ["acme", "beta"] {
        let objects = render(&example(name), &Platform::default()).expect("renders");
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
        for o in &objects[1..] {
            assert_eq!(o["metadata"]["namespace"], ns, "{name}: {} {}", o["kind"], o["metadata"]["name"]);
        }
    }
}

#[test]
fn tenant_ids_keep_namespaces_apart_and_stay_dns_labels() {
    let long = "n".repeat(63);
    let table = [
        ("a", "acme", "a-acme"),
        ("tenants", "acme", "tenants-acme"),
        // Exactly the limit: kept as it is.
        (&long[..24], &long[..24], &format!("{}-{}", &long[..24], &long[..24])[..]),
    ];
    for (ns, name, want) in table {
        assert_eq!(tenant_id(ns, name), want, "{ns}/{name}");
    }
    let ids: Vec<String> =
        [(&long[..], "acme"), (&long[..], "acmf"), ("acme", &long[..]), (&long[..], &long[..])]
            .iter()
            .map(|(ns, name)| tenant_id(ns, name))
            .collect();
    for id in &ids {
        assert!(id.len() <= MAX_TENANT_ID, "{id}");
        kaas_route::check_dns_label(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        kaas_route::check_dns_label(&format!("{id}-control-plane")).expect("longest derived name");
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    assert_eq!(tenant_id(&long, "acme"), tenant_id(&long, "acme"), "stable");
    // A namespace ending where the cut falls leaves no double hyphen behind.
    let cut = format!("{}-", "n".repeat(MAX_TENANT_ID - 12));
    assert!(!tenant_id(&cut, &long).contains("--"), "{}", tenant_id(&cut, &long));
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
