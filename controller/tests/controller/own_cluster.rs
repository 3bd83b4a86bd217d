//! A cluster-mode tenant's own cluster in the tenant loop ([`crate::tenant_loop`]), built by the real
//! controllers: Cluster API core, the kubeadm bootstrap and control-plane providers and CAPA run on the loop's
//! management cluster (`kaas_testsupport::capi::ClusterApi`), every AWS call answered by moto seeded as the
//! platform's account (its images for the platform's Kubernetes version, as [`crate::cluster_api`] seeds it),
//! and Flux applies the controller's rendered Cluster API objects from Git. The `Cluster`'s `Available` is
//! Cluster API's own report, which kaas-controller's readiness gate reads.
//!
//! The bridges, each where the emulator stops, none saying Ready where a real controller decides:
//! - no instance boots: `kaas_testsupport::capi::boot::Boot` does what each running instance's kubelet and
//!   kubeadm would (Node, static pods, a real etcd member) on a second API server standing for the workload
//!   cluster, which `<id>-kubeconfig` points at, written before the Cluster is applied (Cluster API keeps a
//!   kubeconfig it finds);
//! - the load balancer's DNS name does not resolve here: the platform's root Flux Kustomization patches the
//!   tenants' Kustomizations to set `dnsResolutionCheck: None` on the AWSCluster they apply
//!   ([`emulator_patches`]); the product's rendering is unchanged.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use kaas_controller::render;
use kaas_testsupport::apiserver::{apply_yaml, ControlPlane, TEST_MANAGER};
use kaas_testsupport::capi::boot::Boot;
use kaas_testsupport::capi::moto::{Instance, Seed, Snapshot};
use kaas_testsupport::capi::{self, workload_kubeconfig, ClusterApi};
use serde_json::{json, Value};

use crate::cluster_api::{acme, images, instances, CLUSTER, PLATFORM_BASE_OS, PLATFORM_IMAGE_ORG};
use crate::common::{api, eventually, Platform};

/// The chart's `machines` values naming the images the seeded account holds.
pub fn machines() -> Value {
    json!({ "imageLookupOrg": PLATFORM_IMAGE_ORG, "imageLookupBaseOS": PLATFORM_BASE_OS })
}

/// The root Kustomization's patch of every tenant Kustomization it applies: the emulator's one AWSCluster
/// setting (CAPA waits for the load balancer's name to resolve unless told not to,
/// cluster-api-provider-aws v2.13.0 `api/v1beta2/awscluster_types.go` `DNSResolutionCheck`). A real account's
/// load balancer resolves; the rendered AWSCluster leaves the check on.
pub fn emulator_patches() -> Value {
    let aws_cluster =
        "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSCluster\nmetadata:\n  name: \
                       any\nspec:\n  controlPlaneLoadBalancer:\n    dnsResolutionCheck: None\n";
    let tenant = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": { "name": "any" },
        "spec": { "patches": [{ "target": { "kind": "AWSCluster" }, "patch": aws_cluster }] },
    });
    json!([{ "target": { "kind": "Kustomization" }, "patch": serde_json::to_string(&tenant).unwrap_or_default() }])
}

/// Cluster API, moto, the workload cluster and the boot bridge of tenant `id`; stops in that field order
/// (the bridge first, Cluster API's managers before the management cluster, which outlives this).
pub struct OwnCluster {
    pub boot: Boot,
    pub workload: ControlPlane,
    pub capi: ClusterApi,
    region: String,
    id: String,
}

impl OwnCluster {
    /// Starts Cluster API and moto on `p`'s control plane and the workload cluster, and writes the tenant's
    /// management Namespace and `<id>-kubeconfig` before the controller's commit brings the Cluster.
    pub async fn start(p: &Platform, id: &str) -> anyhow::Result<OwnCluster> {
        let region = acme()?.spec.region;
        let seed =
            Seed { images: images(&render::Platform::default().kubernetes_version), key_pairs: Vec::new() };
        let capi = ClusterApi::start_on(&p.plane, &region, &seed).await?;
        let workload = ControlPlane::start().await?;
        let ns = format!("kaas-{id}");
        // Labelled as the tenant's folder makes it (the controller adopts no namespace made for someone else).
        let labels = json!({ "app.kubernetes.io/managed-by": "kaas-controller", "kaas.dev/tenant": id });
        let namespace =
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns, "labels": labels } });
        apply_yaml(&p.admin, &namespace.to_string(), TEST_MANAGER, None).await?;
        apply_yaml(&p.admin, &workload_kubeconfig(id, &ns, &workload)?, TEST_MANAGER, None).await?;
        let boot = Boot::start(p.admin.clone(), capi.shared_moto(), &region, id, &ns, &workload).await?;
        Ok(OwnCluster { boot, workload, capi, region, id: id.to_owned() })
    }

    fn namespace(&self) -> String {
        format!("kaas-{}", self.id)
    }

    /// What moto holds now.
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        self.capi.moto().snapshot(&self.region)
    }

    /// The running instances of the pool whose AWSMachines' names start with `<id>-<pool>-`.
    pub fn running(&self, s: &Snapshot, pool: &str) -> Vec<Instance> {
        let prefix = format!("{}-{pool}-", self.id);
        instances(s, &self.id, &prefix).into_iter().filter(|i| i.state == "running").cloned().collect()
    }

    /// The `Cluster`'s `Available` condition as Cluster API wrote it.
    pub async fn available(&self, p: &Platform) -> anyhow::Result<Option<Value>> {
        capi::condition(&p.admin, CLUSTER, &self.namespace(), &self.id, "Available").await
    }

    /// Waits until tenant `name` says it waits for its Cluster while Cluster API reports it not Available: the
    /// tenant is not Ready and its message carries Cluster API's reason. Returns that message.
    pub async fn tenant_waits_for_cluster_api(&self, p: &Platform, name: &str) -> anyhow::Result<String> {
        eventually("the tenant waiting on Cluster API's Available", Duration::from_secs(240), || async {
            let Some(available) = self.available(p).await? else { return Ok(None) };
            if available["status"] == "True" {
                anyhow::bail!("the Cluster became Available before the tenant was seen waiting on it");
            }
            let reason = available["reason"].as_str().unwrap_or_default().to_owned();
            let tenant = p.tenants().get(name).await?;
            let on = tenant.status.iter().flat_map(|s| s.conditions.iter()).find(|c| c.status == "True");
            Ok(on
                .filter(|c| c.type_ != "Ready" && c.message.contains(&format!("Available False: {reason}")))
                .map(|c| format!("{}: {}", c.type_, c.message)))
        })
        .await
        .with_context(|| self.boot.report())
    }

    /// What Cluster API built once the tenant is Ready: the Cluster Available by its own report at its
    /// generation, the broker pool's `brokers` instances in three zones, as many control-plane instances as the
    /// KubeadmControlPlane's replicas. Returns the broker instances' ids.
    pub async fn built(&self, p: &Platform, brokers: usize) -> anyhow::Result<BTreeSet<String>> {
        // The tenant went Ready on an Available Cluster; while the control plane grows, each member that joins
        // changes etcd's quorum and Cluster API may report it unavailable for a moment.
        let available = eventually("the Cluster Available", Duration::from_secs(300), || async {
            Ok(self.available(p).await?.filter(|c| c["status"] == "True"))
        })
        .await;
        if let Err(e) = available {
            let said = self.available(p).await?;
            return Err(e.context(format!("the Cluster's Available: {said:?}\n{}", self.boot.report())));
        }
        // Written by Cluster API's core manager alone: no one else touched the Cluster's status.
        let cluster = api(&p.admin, &self.namespace(), CLUSTER.0, "v1beta2", CLUSTER.1).get(&self.id).await?;
        let writers: BTreeSet<&str> = kube::ResourceExt::managed_fields(&cluster)
            .iter()
            .filter(|f| f.subresource.as_deref() == Some("status"))
            .filter_map(|f| f.manager.as_deref())
            .collect();
        anyhow::ensure!(
            writers == BTreeSet::from(["cluster-api"]),
            "the Cluster's status written by {writers:?}"
        );
        let kcp = api(
            &p.admin,
            &self.namespace(),
            "controlplane.cluster.x-k8s.io",
            "v1beta2",
            "KubeadmControlPlane",
        )
        .get(&format!("{}-control-plane", self.id))
        .await?;
        let replicas =
            kcp.data["spec"]["replicas"].as_u64().context("KubeadmControlPlane replicas")? as usize;
        // Available needs a quorum; the control-plane provider goes on adding one machine at a time.
        eventually("the control plane's instances running", Duration::from_secs(180), || async {
            Ok((self.running(&self.snapshot()?, "control-plane").len() == replicas).then_some(()))
        })
        .await
        .with_context(|| format!("the KubeadmControlPlane wants {replicas}\n{}", self.boot.report()))?;
        let s = self.snapshot()?;
        let pool = self.running(&s, "brokers");
        let zones: BTreeSet<&str> = pool.iter().map(|i| i.zone.as_str()).collect();
        anyhow::ensure!(
            pool.len() == brokers,
            "{} broker instances run, the tenant has {brokers}",
            pool.len()
        );
        anyhow::ensure!(zones.len() == 3, "the broker pool's instances are in {zones:?}, not three zones");
        Ok(pool.into_iter().map(|i| i.id).collect())
    }

    /// Waits until the broker MachineDeployments have rolled to `instance_type`: `brokers` instances of it
    /// running, every instance of `before` terminated.
    pub async fn rolled(
        &self,
        before: &BTreeSet<String>,
        instance_type: &str,
        brokers: usize,
    ) -> anyhow::Result<()> {
        eventually("the broker pool rolled to the new instance type", Duration::from_secs(600), || async {
            let s = self.snapshot()?;
            let pool = self.running(&s, "brokers");
            let new =
                pool.iter().filter(|i| i.instance_type == instance_type && !before.contains(&i.id)).count();
            let old_left = s.instances.iter().any(|i| before.contains(&i.id) && i.state != "terminated");
            Ok((new == brokers && pool.len() == brokers && !old_left).then_some(()))
        })
        .await
        .with_context(|| {
            let s = self.snapshot().map(|s| self.running(&s, "brokers"));
            format!("broker instances now: {s:?}\n{}", self.boot.report())
        })
    }

    /// After the tenant is gone: none of its instances left running, no VPC of its in moto.
    pub async fn emptied(&self) -> anyhow::Result<()> {
        eventually("the tenant's instances and VPC gone from moto", Duration::from_secs(180), || async {
            let s = self.snapshot()?;
            Ok((s.live_instances(&self.id).is_empty() && s.vpcs(&self.id).is_empty()).then_some(()))
        })
        .await
        .with_context(|| format!("{:?}", self.snapshot().map(|s| s.live_instances(&self.id).len())))
    }
}
