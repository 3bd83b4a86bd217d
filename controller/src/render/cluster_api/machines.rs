//! The machine templates of a tenant cluster's pools, each named by a hash of its spec: the AWSMachineTemplate
//! (instance type, instance profile, image lookup, IMDS, root volume) and the workers' KubeadmConfigTemplate
//! (how the node registers: its taints). Pure.
//!
//! Neighbours: [`super`] points the KubeadmControlPlane and the MachineDeployments at these names.

use serde_json::{json, Value};

use super::super::{meta, Platform};

/// A pool of machines of one template.
pub(super) struct Pool<'a> {
    /// The pool's part of its objects' names (`<tenant>-<short>-…`) and its `kaas.dev/pool` label.
    pub short: &'static str,
    /// Its `kaas.dev/role` label.
    pub role: &'static str,
    pub instance: &'a str,
    /// Machines in each zone (workers; the control plane's KubeadmControlPlane spreads its own).
    pub per_zone: u32,
    /// clusterawsadm's instance profile for the pool: the control plane's carries the cloud provider's, the
    /// EBS CSI driver's and the platform's Route 53 rights (docs/controller/aws-account.md); the nodes' only
    /// what a kubelet needs (v2.11.1 cmd/clusterawsadm/cloudformation/bootstrap/
    /// cloud_provider_integration_node.go).
    profile: &'static str,
    /// IMDS `httpPutResponseHopLimit`: 2 where pods off the host network must reach the instance's role through
    /// IMDSv2 (the EBS CSI controller and external-dns, pinned to the control plane by `components()`, and the
    /// cloud controller, whose chart runs it off the host network unless `hostNetworking` is set:
    /// cloud-provider-aws helm-chart-aws-cloud-controller-manager-0.0.11 templates/daemonset.yaml:31), since the
    /// container's network namespace is one more hop; 1 elsewhere, so no pod on a worker can take the node's role.
    /// Nothing there needs it: the EBS CSI node plugin asks IMDS, then Kubernetes, for its metadata
    /// (helm-chart-aws-ebs-csi-driver-2.62.0 pkg/cloud/metadata/metadata.go:56 `DefaultMetadataSources`).
    imds_hop_limit: u8,
    /// Whether its nodes register tainted `node.cluster.x-k8s.io/pool=<short>:NoSchedule`, so only pods that
    /// tolerate it (Kafka's brokers; DaemonSets tolerate everything) run there.
    tainted: bool,
}

impl<'a> Pool<'a> {
    pub fn control_plane(instance: &'a str) -> Self {
        Pool {
            short: "control-plane",
            role: "control-plane",
            instance,
            per_zone: 0,
            profile: "control-plane.cluster-api-provider-aws.sigs.k8s.io",
            imds_hop_limit: 2,
            tainted: false,
        }
    }

    pub fn brokers(instance: &'a str, per_zone: u32) -> Self {
        Pool {
            short: crate::names::BROKER_POOL,
            role: "kafka-broker",
            instance,
            per_zone,
            tainted: true,
            ..Self::worker()
        }
    }

    pub fn system(instance: &'a str, per_zone: u32) -> Self {
        Pool { short: crate::names::SYSTEM_POOL, role: "system", instance, per_zone, ..Self::worker() }
    }

    fn worker() -> Self {
        Pool {
            short: "",
            role: "",
            instance: "",
            per_zone: 0,
            profile: "nodes.cluster-api-provider-aws.sigs.k8s.io",
            imds_hop_limit: 1,
            tainted: false,
        }
    }
}

/// The AWSMachineTemplate of `pool`, named `<tenant>-<pool>-<hash of its spec>`. CAPA refuses any change to an
/// AWSMachineTemplate's spec (v2.11.1 webhooks/awsmachinetemplate_webhook.go:278, "AWSMachineTemplate.Spec is
/// immutable"), and one refused object stops the apply of the whole folder: a changed spec is a new template,
/// and the MachineDeployment (or KubeadmControlPlane) pointing at the new name rolls its machines. The folder
/// holds only the current template; Flux prunes the previous one, which Cluster API tolerates mid-rollout: a
/// MachineSet that is not its MachineDeployment's current one ignores a missing template (cluster-api v1.11.3
/// internal/controllers/machineset/machineset_controller.go:1556-1577 `reconcileExternalTemplateReference`), and
/// KubeadmControlPlane only ever clones its current one (controlplane/kubeadm/internal/controllers/helpers.go).
pub(super) fn machine_template(tenant: &str, ns: &str, pool: &Pool, p: &Platform) -> Value {
    let spec = json!({ "template": { "spec": {
        "instanceType": pool.instance,
        "iamInstanceProfile": pool.profile,
        "imageLookupOrg": p.images.org,
        "imageLookupFormat": p.images.format,
        "imageLookupBaseOS": p.images.base_os,
        "instanceMetadataOptions": {
            "httpEndpoint": "enabled",
            "httpTokens": "required",
            "httpPutResponseHopLimit": pool.imds_hop_limit,
        },
        "rootVolume": root_volume(tenant, p),
    }}});
    named_by_spec("infrastructure.cluster.x-k8s.io/v1beta2", "AWSMachineTemplate", tenant, ns, pool, spec)
}

/// The tenant cluster's MachineHealthChecks: a worker (any MachineDeployment's machine) or a control-plane
/// machine whose Node is not Ready for 5 minutes, or has none 20 minutes after it was made (instances boot and
/// join in minutes), is replaced by Cluster API (KubeadmControlPlane remediates its own, one at a time and only
/// with quorum kept). Only while a single machine of the set is unhealthy: a zone outage or a network
/// partition makes many at once, and replacing them would only add load where nothing can heal (Cluster API
/// v1.13 MachineHealthCheck v1beta2, `remediation.triggerIf.unhealthyLessThanOrEqualTo`). A broker's
/// replacement drains its old node, which Drain Cleaner leaves to Strimzi.
pub(super) fn health_checks(tenant: &str, ns: &str) -> Vec<Value> {
    let check = |name: &str, machines: &str| {
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "MachineHealthCheck",
            "metadata": meta(&format!("{tenant}-{name}"), ns, tenant),
            "spec": {
                "clusterName": tenant,
                "selector": { "matchExpressions": [{ "key": machines, "operator": "Exists" }] },
                "checks": {
                    "nodeStartupTimeoutSeconds": 1200,
                    "unhealthyNodeConditions": [
                        { "type": "Ready", "status": "Unknown", "timeoutSeconds": 300 },
                        { "type": "Ready", "status": "False", "timeoutSeconds": 300 },
                    ],
                },
                "remediation": { "triggerIf": { "unhealthyLessThanOrEqualTo": 1 } },
            },
        })
    };
    // The labels Cluster API puts on every machine of a MachineDeployment and of a KubeadmControlPlane.
    vec![
        check("workers", "cluster.x-k8s.io/deployment-name"),
        check("control-plane", "cluster.x-k8s.io/control-plane"),
    ]
}

/// A machine's root volume: encrypted, with the tenant's own key when the platform has one per tenant (CAPA
/// `Volume.EncryptionKey`, passed to RunInstances' block device mapping).
fn root_volume(tenant: &str, p: &Platform) -> Value {
    let mut volume = json!({ "size": 64, "type": "gp3", "encrypted": true });
    if let Some(key) = p.volume_kms_key_of(tenant) {
        volume["encryptionKey"] = json!(key);
    }
    volume
}

/// The KubeadmConfigTemplate of worker pool `pool`, named like [`machine_template`] (a changed one rolls the
/// pool's machines; a MachineSet that is not current tolerates a pruned one, the same
/// `reconcileExternalTemplateReference`). `registration` is the kubelet's common node registration.
pub(super) fn bootstrap_template(tenant: &str, ns: &str, pool: &Pool, registration: &Value) -> Value {
    let mut registration = registration.clone();
    registration["taints"] = match pool.tainted {
        true => json!([{ "key": POOL_LABEL, "value": pool.short, "effect": "NoSchedule" }]),
        false => json!([]),
    };
    let spec =
        json!({ "template": { "spec": { "joinConfiguration": { "nodeRegistration": registration } } } });
    named_by_spec("bootstrap.cluster.x-k8s.io/v1beta2", "KubeadmConfigTemplate", tenant, ns, pool, spec)
}

/// A template of pool `pool`, named `<tenant>-<pool>-<hash of spec>`: templates are immutable, so a changed spec
/// is a new object the pool then points at.
fn named_by_spec(api_version: &str, kind: &str, tenant: &str, ns: &str, pool: &Pool, spec: Value) -> Value {
    let name = format!("{tenant}-{}-{}", pool.short, spec_hash(&spec));
    json!({ "apiVersion": api_version, "kind": kind, "metadata": meta(&name, ns, tenant), "spec": spec })
}

pub(super) use crate::names::NODE_POOL_LABEL as POOL_LABEL;

/// Eight hex digits of FNV-1a over the spec's JSON (keys sorted: serde_json's map is ordered), stable across
/// builds and Rust versions (std's hasher is not), so an unchanged spec keeps its name.
fn spec_hash(spec: &Value) -> String {
    let hash = spec
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}", hash & 0xffff_ffff)
}
