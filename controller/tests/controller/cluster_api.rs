//! The rendered Cluster API objects under the real controllers: Cluster API core, the kubeadm bootstrap and
//! control-plane providers and CAPA (`kaas_testsupport::capi`), with every AWS call answered by moto seeded as
//! a platform's account (its images, CAPA's instance profiles, no key pair). The example tenant's Cluster,
//! AWSCluster, KubeadmControlPlane, AWSMachineTemplates, KubeadmConfigTemplate and MachineDeployments are applied
//! as Flux would apply them (the Flux objects are not), and the assertions are on what CAPA built in moto: what
//! a tenant's cluster needs on real AWS.
//!
//! Two things the emulator cannot do are bridged, each at one point: the API server's load-balancer name does
//! not resolve here (`dnsResolutionCheck: None` on the applied AWSCluster), and no instance boots, so a second
//! API server stands for the workload cluster (`<cluster>-kubeconfig` points at it from the start) and
//! `kaas_testsupport::capi::boot` does there what each running instance's kubelet and kubeadm would (its
//! Node, the static pods' mirrors, a real etcd member, `kubeadm-config` on the first). The rest is Cluster
//! API's own judgement: it scales the control plane up one machine at a time as the members prove healthy,
//! and reports the Cluster Available.
//!
//! What moto cannot judge: it runs instances with a key pair or image that does not exist. So the key pair is
//! judged by what CAPA asked for (no key unless the platform names one; CAPA's default is a key named
//! `default`, `pkg/cloud/services/ec2/instances.go` lines 227–247), and images by seeding only the images
//! that exist: the platform's own and CAPA's public reference images, for both architectures, and none for
//! another Kubernetes version, whose Machine must then carry CAPA's lookup failure.

use std::collections::BTreeSet;
use std::time::Duration;

use kaas_controller::crd::KafkaTenant;
use kaas_controller::render::{self, Platform};
use kaas_testsupport::apiserver::{apply_yaml, ControlPlane, TEST_MANAGER};
use kaas_testsupport::capi::boot::Boot;
use kaas_testsupport::capi::moto::{Image, Seed, Snapshot};
use kaas_testsupport::capi::{self, workload_kubeconfig, ClusterApi};
use kube::api::{Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use crate::common::{api, eventually};

/// The account the platform publishes its node images from, and their base OS (as a platform's image
/// pipeline would set them; not CAPA's default account, 819546954734, whose reference images are not for
/// production).
pub(crate) const PLATFORM_IMAGE_ORG: &str = "111122223333";
pub(crate) const PLATFORM_BASE_OS: &str = "ubuntu-24.04";
/// CAPA's default image account (CNCF's), publishing public reference images.
const CAPA_REFERENCE_ORG: &str = "819546954734";

/// Cluster API's `Cluster`, by group and kind.
pub(crate) const CLUSTER: (&str, &str) = ("cluster.x-k8s.io", "Cluster");

/// The Cluster API groups: what this test applies of a tenant's manifests (besides its Namespace).
const CLUSTER_API_GROUPS: [&str; 4] = [
    "cluster.x-k8s.io/",
    "infrastructure.cluster.x-k8s.io/",
    "controlplane.cluster.x-k8s.io/",
    "bootstrap.cluster.x-k8s.io/",
];

/// The platform as a platform team sets it up: its own images (as image-builder names them), no key pair, the
/// region's zones (the defaults').
fn platform() -> Platform {
    let mut p = Platform::default();
    p.images.org = PLATFORM_IMAGE_ORG.into();
    p.images.base_os = PLATFORM_BASE_OS.into();
    p.ssh_key_name = None;
    p
}

/// The example tenant.
pub(crate) fn acme() -> anyhow::Result<KafkaTenant> {
    let path = kaas_testsupport::repo_root().join("controller/examples/acme.yaml");
    Ok(serde_norway::from_str(&std::fs::read_to_string(path)?)?)
}

/// Tenant `t`'s Namespace and Cluster API objects, rendered on `p`, with the one setting the emulator needs.
fn cluster_objects(t: &KafkaTenant, p: &Platform) -> anyhow::Result<Vec<Value>> {
    let mut objects: Vec<Value> = render::render(t, p)?
        .into_iter()
        .filter(|o| {
            let api_version = o["apiVersion"].as_str().unwrap_or_default();
            o["kind"] == "Namespace" || CLUSTER_API_GROUPS.iter().any(|g| api_version.starts_with(g))
        })
        .collect();
    for o in &mut objects {
        if o["kind"] == "AWSCluster" {
            // No DNS here for the load balancer's name (CAPA waits for it to resolve unless told not to).
            o["spec"]["controlPlaneLoadBalancer"]["dnsResolutionCheck"] = json!("None");
        }
    }
    Ok(objects)
}

async fn apply(client: &Client, objects: &[Value]) -> anyhow::Result<()> {
    for o in objects {
        apply_yaml(client, &serde_json::to_string(o)?, TEST_MANAGER, None).await?;
    }
    Ok(())
}

/// The images an account sees for Kubernetes `version`, both architectures: the platform's own, and the public
/// reference images of CAPA's default lookup account (cluster-api-provider-aws v2.13.0,
/// `pkg/cloud/services/ec2/ami.go` line 56), which a rendering without lookup settings would run instead.
pub(crate) fn images(version: &str) -> Vec<Image> {
    [PLATFORM_IMAGE_ORG, CAPA_REFERENCE_ORG]
        .into_iter()
        .flat_map(|org| ["x86_64", "arm64"].map(|architecture| (org, architecture)))
        .map(|(org, architecture)| Image {
            org: org.into(),
            base_os: PLATFORM_BASE_OS.into(),
            kubernetes_version: version.into(),
            architecture: architecture.into(),
            name_format: None,
        })
        .collect()
}

/// Failed expectations, all reported at the end so one run shows every gap.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

/// Cluster `cluster`'s live instances whose Name (the AWSMachine's) starts with `prefix`.
pub(crate) fn instances<'a>(s: &'a Snapshot, cluster: &str, prefix: &str) -> Vec<&'a capi::moto::Instance> {
    s.live_instances(cluster)
        .into_iter()
        .filter(|i| i.tags.get("Name").is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// Every condition message and failure field of the AWSMachines in `ns`, for failure texts.
async fn machine_reports(client: &Client, ns: &str) -> anyhow::Result<String> {
    let machines = api(client, ns, "infrastructure.cluster.x-k8s.io", "v1beta2", "AWSMachine")
        .list(&Default::default())
        .await?;
    Ok(machines
        .items
        .iter()
        .map(|m| format!("{}: {}", m.metadata.name.as_deref().unwrap_or("?"), m.data["status"]))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::test]
async fn the_example_tenants_cluster_on_cluster_apis_real_controllers_is_what_aws_needs() -> anyhow::Result<()>
{
    let p = platform();
    let tenant = acme()?;
    let region = tenant.spec.region.clone();
    let plan = render::plan(&tenant, &p)?;
    let (cluster, ns) = (plan.tenant.clone(), format!("kaas-{}", plan.tenant));
    let seed = Seed { images: images(&p.kubernetes_version), key_pairs: Vec::new() };
    let capi = ClusterApi::start(ControlPlane::start().await?, &region, &seed).await?;
    let outcome = run(&capi, &tenant, &p, &cluster, &ns, &region).await;
    if outcome.is_err() {
        eprintln!("{}\n(logs in {})", capi.logs(), capi.dir().display());
    }
    outcome
}

async fn run(
    capi: &ClusterApi,
    tenant: &KafkaTenant,
    p: &Platform,
    cluster: &str,
    ns: &str,
    region: &str,
) -> anyhow::Result<()> {
    let admin = capi.admin().await?;
    let workload = ControlPlane::start().await?;
    let objects = cluster_objects(tenant, p)?;
    // The Namespace first, then the kubeconfig the workload cluster is reached by, then the cluster.
    apply(&admin, &objects[..1]).await?;
    apply_yaml(&admin, &workload_kubeconfig(cluster, ns, &workload)?, TEST_MANAGER, None).await?;
    apply(&admin, &objects[1..]).await?;
    let boot = Boot::start(admin.clone(), capi.shared_moto(), region, cluster, ns, &workload).await?;

    let aws_clusters = api(&admin, ns, "infrastructure.cluster.x-k8s.io", "v1beta2", "AWSCluster");
    let ready = eventually("AWSCluster ready", Duration::from_secs(180), || async {
        let c = aws_clusters.get(cluster).await?;
        Ok((c.data["status"]["ready"] == true).then_some(()))
    })
    .await;
    if let Err(e) = ready {
        let status = aws_clusters.get(cluster).await.map(|c| c.data["status"].to_string());
        anyhow::bail!("{e:#}\nAWSCluster status: {status:?}");
    }

    let mut findings = Findings::default();
    let network = capi.moto().snapshot(region)?;
    let zones: BTreeSet<&str> = network
        .subnets
        .iter()
        .filter(|s| s.tags.contains_key(&format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{cluster}")))
        .map(|s| s.zone.as_str())
        .collect();
    findings.check(zones.len() >= 3, || format!("the cluster's subnets span {zones:?}, not three zones"));
    let (Some(node), Some(control_plane)) =
        (network.security_group(cluster, "node"), network.security_group(cluster, "controlplane"))
    else {
        anyhow::bail!("no node or control-plane security group in moto: {:?}", network.security_groups);
    };
    // Cilium between every two nodes (control plane included): VXLAN overlay UDP 8472, health checks TCP 4240.
    for group in [node, control_plane] {
        let mut missing = Vec::new();
        for source in [node, control_plane] {
            for (protocol, port, what) in [("udp", 8472, "Cilium VXLAN"), ("tcp", 4240, "Cilium health")] {
                if !group.ingress.iter().any(|r| r.admits(protocol, port, &source.id)) {
                    missing.push(format!("{what} ({protocol} {port}) from {}", source.name));
                }
            }
        }
        findings.check(missing.is_empty(), || {
            let rules: Vec<String> = group.ingress.iter().map(ToString::to_string).collect();
            format!(
                "security group {} does not admit {}; its rules: {}",
                group.name,
                missing.join(", "),
                rules.join("; ")
            )
        });
    }
    findings.check(!network.load_balancers.is_empty(), || "no API server load balancer in moto".into());

    // A Kubernetes version the platform has no image for: CAPA's lookup fails and the Machine says so.
    let missing = "v1.33.9";
    apply(&admin, &imageless_machine(cluster, ns, missing)).await?;
    let machines = api(&admin, ns, "infrastructure.cluster.x-k8s.io", "v1beta2", "AWSMachine");
    let report = eventually(
        "the image-less machine reports CAPA's lookup failure",
        Duration::from_secs(120),
        || async {
            let m = machines.get("no-image").await?;
            let status = m.data["status"].to_string();
            Ok(status.contains("found no AMIs").then_some(status))
        },
    )
    .await;
    findings
        .check(report.is_ok(), || format!("a machine of {missing}, for which no image exists: {report:?}"));

    // The first control-plane instance.
    let cp_prefix = format!("{cluster}-control-plane-");
    // An image lookup that failed stays failed here (moto's images are fixed at its start): no need to wait on.
    let first = eventually("the first control-plane instance running", Duration::from_secs(240), || async {
        let s = capi.moto().snapshot(region)?;
        if instances(&s, cluster, &cp_prefix).iter().any(|i| i.state == "running") {
            return Ok(Some(Ok(())));
        }
        let machines = machines.list(&Default::default()).await?;
        let failed = machines.items.iter().find(|m| {
            m.metadata.name.as_deref().is_some_and(|n| n.starts_with(&cp_prefix))
                && m.data["status"].to_string().contains("failed to find ami")
        });
        Ok(failed.map(|m| {
            Err(format!("{}: {}", m.metadata.name.as_deref().unwrap_or("?"), m.data["status"]["conditions"]))
        }))
    })
    .await;
    match first {
        Ok(Ok(())) => {}
        Ok(Err(status)) => {
            findings.0.push(format!(
                "the first control-plane machine cannot launch, CAPA finds no image: {status}"
            ));
            anyhow::bail!("{} findings:\n\n{}", findings.0.len(), findings.0.join("\n\n"));
        }
        Err(e) => {
            findings.0.push(format!("{e:#}\nAWSMachines:\n{}", machine_reports(&admin, ns).await?));
            anyhow::bail!("{} findings:\n\n{}", findings.0.len(), findings.0.join("\n\n"));
        }
    }

    let brokers_prefix = format!("{cluster}-brokers-");
    let plan = render::plan(tenant, p)?;
    let wanted = plan.sizing.brokers as usize;
    let workers = eventually("the broker pool's instances running", Duration::from_secs(300), || async {
        let s = capi.moto().snapshot(region)?;
        let running = instances(&s, cluster, &brokers_prefix).iter().filter(|i| i.state == "running").count();
        Ok((running >= wanted).then_some(s))
    })
    .await;
    let snapshot = match workers {
        Ok(s) => s,
        Err(e) => {
            findings.0.push(format!("{e:#}\nAWSMachines:\n{}", machine_reports(&admin, ns).await?));
            capi.moto().snapshot(region)?
        }
    };

    let arm64 = seed_id(&snapshot, "arm64");
    let x86 = seed_id(&snapshot, "x86_64");
    let live = snapshot.live_instances(cluster);
    let keyed: Vec<String> =
        live.iter().filter_map(|i| i.key_name.as_ref().map(|k| format!("{} (key {k})", name(i)))).collect();
    findings.check(keyed.is_empty(), || {
        format!(
            "{} of {} instances launched with a key pair, the platform names none: {}",
            keyed.len(),
            live.len(),
            keyed.join(", ")
        )
    });
    let other_image: Vec<String> = live
        .iter()
        .filter(|i| Some(&i.image) != if graviton(&i.instance_type) { arm64.as_ref() } else { x86.as_ref() })
        .map(|i| {
            let runs = snapshot.images.iter().find(|m| m.id == i.image);
            let (image, owner) =
                runs.map_or(("?", "?"), |m| (m.name.as_str(), m.owner.as_deref().unwrap_or("?")));
            format!("{} ({}) runs {image} of account {owner}", name(i), i.instance_type)
        })
        .collect();
    findings.check(other_image.is_empty(), || {
        format!(
            "{} of {} instances do not run the platform's image for their architecture (account {PLATFORM_IMAGE_ORG}: arm64 {arm64:?}, x86_64 {x86:?}): {}",
            other_image.len(),
            live.len(),
            other_image.join("; ")
        )
    });
    let broker_zones: BTreeSet<&str> =
        instances(&snapshot, cluster, &brokers_prefix).iter().map(|i| i.zone.as_str()).collect();
    findings.check(broker_zones.len() >= 3, || {
        format!("the broker pool's instances are in {broker_zones:?}, not three zones")
    });

    // Cluster API's own verdict on what booted: the Cluster Available (infrastructure, control plane, workers
    // and the remote connection), with as many control-plane instances as the KubeadmControlPlane's replicas.
    let available = eventually("the Cluster Available", Duration::from_secs(480), || async {
        let c = capi::condition(&admin, CLUSTER, ns, cluster, "Available").await?;
        Ok(c.filter(|c| c["status"] == "True"))
    })
    .await;
    if let Err(e) = &available {
        let said = capi::condition(&admin, CLUSTER, ns, cluster, "Available").await?;
        findings.0.push(format!("{e:#}: {said:?}\n{}", boot.report()));
    }
    let kcp = api(&admin, ns, "controlplane.cluster.x-k8s.io", "v1beta2", "KubeadmControlPlane")
        .get(&format!("{cluster}-control-plane"))
        .await?;
    let replicas = kcp.data["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
    // Available needs a quorum; the control-plane provider goes on adding one machine at a time.
    let scaled = eventually("the control plane's instances running", Duration::from_secs(180), || async {
        let s = capi.moto().snapshot(region)?;
        let running = instances(&s, cluster, &cp_prefix).iter().filter(|i| i.state == "running").count();
        Ok((running == replicas).then_some(()))
    })
    .await;
    findings.check(scaled.is_ok(), || {
        format!("not as many control-plane instances as the KubeadmControlPlane's {replicas}: {scaled:?}")
    });

    // Cluster API's health checks watch every machine, each healthy: the selectors match the labels Cluster
    // API puts on workers and control-plane machines, and the Node conditions read are the ones nodes report.
    let checks = api(&admin, ns, "cluster.x-k8s.io", "v1beta2", "MachineHealthCheck");
    let workers = plan.sizing.worker_nodes as u64;
    for (check, machines) in [("workers", workers), ("control-plane", replicas as u64)] {
        let name = format!("{cluster}-{check}");
        let watched = eventually(
            &format!("{name} sees {machines} healthy machines"),
            Duration::from_secs(120),
            || async {
                let status = checks.get(&name).await?.data["status"].clone();
                let seen = (status["expectedMachines"].as_u64(), status["currentHealthy"].as_u64());
                Ok((seen == (Some(machines), Some(machines))).then_some(()))
            },
        )
        .await;
        if watched.is_err() {
            let status = checks.get(&name).await.map(|c| c.data["status"].clone());
            findings.0.push(format!("{watched:?}: its status {status:?}"));
        }
    }

    // A throughput change that picks another broker instance type.
    let bigger = bigger_brokers(tenant, p)?;
    let templates = api(&admin, ns, "infrastructure.cluster.x-k8s.io", "v1beta2", "AWSMachineTemplate");
    // CAPA refuses an AWSMachineTemplate changed in place (its webhook is live here):
    let in_place = json!({ "spec": { "template": { "spec": { "instanceType": bigger.1 } } } });
    let broker_template = cluster_objects(tenant, p)?
        .into_iter()
        .filter(|o| o["kind"] == "AWSMachineTemplate")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .find(|name| name.starts_with(&format!("{cluster}-brokers")))
        .ok_or_else(|| anyhow::anyhow!("no broker AWSMachineTemplate rendered"))?;
    let refused = templates.patch(&broker_template, &PatchParams::default(), &Patch::Merge(&in_place)).await;
    findings.check(
        refused.as_ref().is_err_and(|e| e.to_string().contains("AWSMachineTemplate.Spec is immutable")),
        || format!("changing an AWSMachineTemplate's instance type in place was not refused as immutable: {refused:?}"),
    );
    // ... so the rendering must make the change some other way, which the webhook accepts.
    let changed = cluster_objects(&bigger.0, p)?;
    let accepted = apply(&admin, &changed[1..]).await;
    findings.check(accepted.is_ok(), || {
        let error = accepted.err().map_or_else(String::new, |e| format!("{e:#}"));
        // CAPA's refusal quotes the whole object; its verdict is enough.
        let immutable = "AWSMachineTemplate.Spec is immutable";
        let why = if error.contains(immutable) { immutable.to_owned() } else { error };
        format!("the throughput change to {} brokers was refused: {why}", bigger.1)
    });

    drop(boot);
    drop(workload);
    anyhow::ensure!(findings.0.is_empty(), "{} findings:\n\n{}", findings.0.len(), findings.0.join("\n\n"));
    Ok(())
}

/// Whether EC2 instance type `t` is a Graviton (arm64) one: a `g` among the letters after the family's
/// generation digit (m7g, m7gd, c7gn, r8g; not m7i, g5).
fn graviton(t: &str) -> bool {
    let family = t.split('.').next().unwrap_or_default();
    let after_letters = family.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    after_letters.trim_start_matches(|c: char| c.is_ascii_digit()).contains('g')
}

fn name(i: &capi::moto::Instance) -> &str {
    i.tags.get("Name").map_or("?", String::as_str)
}

/// The id of the platform's image of `architecture`.
fn seed_id(s: &Snapshot, architecture: &str) -> Option<String> {
    s.images
        .iter()
        .find(|i| {
            i.architecture.as_deref() == Some(architecture) && i.owner.as_deref() == Some(PLATFORM_IMAGE_ORG)
        })
        .map(|i| i.id.clone())
}

/// `tenant` with the smallest throughput increase that sizes its brokers on another instance type, and that type.
fn bigger_brokers(tenant: &KafkaTenant, p: &Platform) -> anyhow::Result<(KafkaTenant, String)> {
    let now = render::plan(tenant, p)?.sizing.instance_type;
    for factor in 2..=8 {
        let mut t = tenant.clone();
        t.spec.throughput.ingress_mbps *= factor;
        t.spec.throughput.egress_mbps *= factor;
        if let Ok(plan) = render::plan(&t, p) {
            if plan.sizing.instance_type != now {
                return Ok((t, plan.sizing.instance_type));
            }
        }
    }
    anyhow::bail!("no throughput up to 8× the example's sizes its brokers on another type than {now}")
}

/// A Machine of Kubernetes `version` with a ready bootstrap secret and an AWSMachine of its own (no template),
/// in cluster `cluster`: CAPA launches it as soon as the cluster's infrastructure is ready.
fn imageless_machine(cluster: &str, ns: &str, version: &str) -> Vec<Value> {
    let labels = json!({ "cluster.x-k8s.io/cluster-name": cluster });
    vec![
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "cluster.x-k8s.io/secret",
            "metadata": { "name": "no-image-bootstrap", "namespace": ns, "labels": labels },
            "stringData": { "format": "cloud-config", "value": "#cloud-config\n" },
        }),
        json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine",
            "metadata": { "name": "no-image", "namespace": ns, "labels": labels },
            "spec": { "instanceType": "m7g.large", "iamInstanceProfile": "nodes.cluster-api-provider-aws.sigs.k8s.io" },
        }),
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": { "name": "no-image", "namespace": ns, "labels": labels },
            "spec": {
                "clusterName": cluster,
                "version": version,
                "bootstrap": { "dataSecretName": "no-image-bootstrap" },
                "infrastructureRef": { "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSMachine", "name": "no-image" },
            },
        }),
    ]
}

#[test]
fn instance_families_name_their_architecture() {
    for t in ["m7g.large", "m7gd.xlarge", "c7gn.2xlarge", "r8g.medium", "g5g.xlarge"] {
        assert!(graviton(t), "{t} is Graviton");
    }
    for t in ["m7i.large", "m7i-flex.large", "g5.xlarge", "t3.medium", "c6in.large"] {
        assert!(!graviton(t), "{t} is x86_64");
    }
}
