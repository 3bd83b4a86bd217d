//! Rendering: a `KafkaTenant` and its sizing → the manifests committed to the GitOps repository. Pure: no I/O.
//!
//! `isolation: cluster` renders the tenant's own cluster as explicit Cluster API objects
//! (`render/cluster_api.rs`), then the platform components it needs and a Flux `HelmRelease` of `charts/kaas`
//! that deploys into it through `<tenant>-kubeconfig` (`render/flux.rs`), with the chart values
//! (`render/values.rs`). `isolation: namespace` renders only the HelmRelease, into a tenant namespace on the
//! shared cluster. Either way the management-cluster Namespace `kaas-<tenant>` that holds these objects comes
//! first, since Flux applies the folder as it is and creates no namespaces.
//!
//! Neighbours: [`crate::sizing`] sizes the demand and [`crate::names`] names every object; [`crate::reconcile`]
//! and the binary's `render` and `sync` commands commit what this renders through [`crate::gitops`].

use serde_json::{json, Value};

use crate::crd::{Isolation, KafkaTenant, SpecError, UserCredentials};
use crate::names::{
    self, kafka_namespace, namespace, tenant_id, tenant_id_of, tenant_namespace, TENANT_LABEL,
};
use crate::sizing::{self, Demand, Sizing, SizingError, StrimziQuota};

mod access;
mod cluster_api;
mod flux;
mod kept;
mod offered;
mod pod_security;
mod values;

pub use flux::component_charts_url;
pub use kept::{keep_topic_partitions, yaml_over};
pub use offered::Offered;
pub use pod_security::{PodSecurity, POD_SECURITY_VERSION};
pub use values::{chart_values, storage_class};

/// Platform-wide settings the rendering needs besides the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    /// Kubernetes version of tenant clusters' control planes and workers, with the `v` (`v1.34.2`; 1.34 or newer:
    /// the brokers' volumes are tuned by a `storage.k8s.io/v1` VolumeAttributesClass, GA in 1.34). A tenant's
    /// `spec.versions` overrides this and the two below ([`Platform::for_tenant`]).
    pub kubernetes_version: String,
    /// The Strimzi operator's Helm chart version on tenant clusters.
    pub strimzi_version: String,
    /// Apache Kafka version of tenants' brokers: one [`Platform::strimzi_version`] runs (a pair
    /// [`crate::strimzi::check_versions`] accepts; a tenant whose pins make a pair it refuses is invalid).
    pub kafka_version: String,
    /// EC2 instance type of tenant clusters' control-plane machines.
    pub control_plane_instance: String,
    /// Flux source holding `charts/kaas` (a GitRepository in `flux-system`).
    pub chart_source: String,
    /// Path of the chart inside that source.
    pub chart_path: String,
    /// One HTTP(S) Helm repository serving every platform component's chart (same names and versions), for a
    /// platform that mirrors them (air-gapped, or pinned to vetted copies). `None`: each from its upstream
    /// repository.
    pub component_charts: Option<String>,
    /// StorageClass of the brokers' data volumes on a tenant's own cluster, created by the chart (encrypted
    /// gp3); on the shared cluster each tenant gets its own ([`storage_class`]).
    pub storage_class: String,
    /// The network path from kaas-proxy to a tenant's own cluster.
    pub network: Network,
    /// Bootstrap address, `host:port`, of an `isolation: cluster` tenant's Kafka as kaas-proxy reaches it
    /// (`{tenant}` is replaced by the tenant id): the host is the name the tenant's external-dns publishes for
    /// the internal load balancer of the chart's `proxy` listener, the port that listener's.
    pub cluster_bootstrap: String,
    /// The same for `isolation: namespace` tenants: their Strimzi bootstrap Service on the shared cluster.
    pub namespace_bootstrap: String,
    /// The namespace kaas-proxy runs in on the shared cluster (the route source's): on it, a namespace tenant's
    /// brokers admit only kaas-proxy's pods there ([`chart_values`]).
    pub proxy_namespace: String,
    /// The machine images of every tenant machine, found by Cluster API AWS's AMI lookup. No default: CAPA's
    /// own (the CNCF account's community images) has no arm64 images and is not for production.
    pub images: ImageLookup,
    /// What one namespace's tenants may order together ([`NamespaceQuota`]); none by default.
    pub namespace_quota: NamespaceQuota,
    /// The Kubernetes user kaas-controller runs as (its ServiceAccount's `system:serviceaccount:<ns>:<name>`):
    /// each tenant's folder binds it to a Role naming the Secrets it reads for that tenant, and no other.
    pub controller_user: String,
    /// EC2 key pair on tenant machines. `None`: no key pair at all (machines are reached through SSM, if ever);
    /// CAPA would otherwise launch with a key pair named `default`, which most accounts do not have.
    pub ssh_key_name: Option<String>,
    /// The three availability zones tenant clusters use, by region: one MachineDeployment per zone and pool.
    /// They must be the zones CAPA creates the subnets of a managed VPC in (see [`Zones`]).
    pub zones: Zones,
    /// Versions a tenant may pin besides the defaults above ([`Offered`]).
    pub offered: Offered,
    /// The Pod Security Standard a namespace tenant's Kafka namespace enforces on this cluster ([`PodSecurity`]).
    pub namespace_pod_security: PodSecurity,
    /// The KMS key each tenant's EBS volumes are encrypted with, an ARN with `{tenant}` replaced by its id
    /// (`arn:aws:kms:REGION:ACCOUNT:alias/kaas-{tenant}`; the EBS CSI driver takes ARNs only, CAPA key ids or
    /// ARNs), so one tenant's key opens only its data and
    /// can be revoked or scheduled for deletion with it: the brokers' volumes (its StorageClass) and, on its own
    /// cluster, its machines' root volumes. `None`: the account's default EBS key for all.
    pub volume_kms_key: Option<String>,
}

/// CAPA's AMI lookup (`AWSMachineSpec.imageLookup{Org,Format,BaseOS}`): the newest available image owned by
/// `org` whose name matches `format`, for the instance type's architecture and the Machine's Kubernetes version.
/// A lookup rather than an AMI id, because an id pins one Kubernetes version and one architecture, and tenants
/// pin their own versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLookup {
    /// AWS account id owning the images (the platform's own, where image-builder publishes them).
    pub org: String,
    /// Name pattern, a Go template over `{{.BaseOS}}` and `{{.K8sVersion}}` (the version without its `v`).
    pub format: String,
    /// Base OS put into `{{.BaseOS}}`.
    pub base_os: String,
}

/// The default [`ImageLookup::format`]: image-builder names its AMIs `capa-ami-<build_name>-<version>-<time>`
/// with `build_name` `ubuntu-24.04` for amd64 and `ubuntu-24.04-arm64` for arm64 (image-builder v0.1.55,
/// images/capi/packer/ami/packer.json `image_name`, ubuntu-2404-arm64.json), so `*` takes either; CAPA filters by
/// the instance type's architecture itself (v2.11.1 pkg/cloud/services/ec2/ami.go `DefaultAMILookup`).
pub const IMAGE_LOOKUP_FORMAT: &str = "capa-ami-{{.BaseOS}}-*{{.K8sVersion}}-*";
/// The default [`ImageLookup::base_os`].
pub const IMAGE_LOOKUP_BASE_OS: &str = "ubuntu-24.04";

/// The most brokers and broker storage one namespace's tenants may order together; `None`: no cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceQuota {
    /// Brokers across the namespace's tenants.
    pub max_brokers: Option<u32>,
    /// GiB of broker storage (brokers × storage per broker) across the namespace's tenants.
    pub max_storage_gib: Option<u64>,
}

/// The chart's controller user: ServiceAccount `kaas-controller` in `kaas-system`.
pub const CONTROLLER_USER: &str = "system:serviceaccount:kaas-system:kaas-controller";

/// Availability zones by region, three each ([`crate::sizing::ZONES`]), sorted.
pub type Zones = std::collections::BTreeMap<String, [String; 3]>;

impl Platform {
    /// The platform as tenant `t` sees it: its pinned versions in place of the defaults.
    pub fn for_tenant(&self, t: &KafkaTenant) -> Platform {
        let mut p = self.clone();
        if let Some(v) = &t.spec.versions {
            let pin = |field: &mut String, pinned: &Option<String>| {
                if let Some(version) = pinned {
                    field.clone_from(version);
                }
            };
            pin(&mut p.kubernetes_version, &v.kubernetes);
            pin(&mut p.strimzi_version, &v.strimzi);
            pin(&mut p.kafka_version, &v.kafka);
        }
        p
    }

    /// The KMS key of tenant `tenant`'s volumes ([`Platform::volume_kms_key`]).
    pub fn volume_kms_key_of(&self, tenant: &str) -> Option<String> {
        self.volume_kms_key.as_deref().map(|template| names::expand(template, tenant))
    }

    /// Where kaas-proxy reaches tenant `tenant`'s Kafka: [`Platform::cluster_bootstrap`] or
    /// [`Platform::namespace_bootstrap`] for its isolation, the tenant id in place.
    pub fn proxy_bootstrap(&self, tenant: &str, isolation: Isolation) -> String {
        let template = match isolation {
            Isolation::Cluster => &self.cluster_bootstrap,
            Isolation::Namespace => &self.namespace_bootstrap,
        };
        names::expand(template, tenant)
    }
}

/// The default [`Platform::cluster_bootstrap`].
pub const CLUSTER_BOOTSTRAP: &str = "kafka-bootstrap.{tenant}.internal.kaas.dev:9094";
/// The default [`Platform::namespace_bootstrap`].
pub const NAMESPACE_BOOTSTRAP: &str = "kaas-kafka-bootstrap.tenant-{tenant}.svc:9093";

/// How kaas-proxy (in the platform's VPC) reaches the brokers of a tenant on its own cluster: the tenant's VPC
/// is attached to the platform's network (a Transit Gateway, or a peering), which needs every tenant VPC's CIDR
/// to be unique, and its nodes admit the proxy's addresses on the brokers' load-balancer ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// AWS VPC IPAM pool each tenant VPC's CIDR is allocated from (`AWSCluster.spec.network.vpc.ipamPool`), so
    /// no two overlap. Unset: Cluster API's default 10.0.0.0/16 for every tenant, which no Transit Gateway or
    /// peering can route to more than one of.
    pub vpc_ipam_pool: Option<String>,
    /// Netmask length of each tenant VPC taken from the pool (e.g. 20: 4,096 addresses).
    pub vpc_netmask_length: Option<u8>,
    /// CIDRs allowed to the tenant nodes' NodePorts, behind which the brokers' internal load balancers
    /// forward (`AWSCluster.spec.network.nodePortIngressRuleCidrBlocks`): the platform VPC's, where kaas-proxy
    /// runs. Empty: Cluster API's default, any address that can route to them.
    pub proxy_cidrs: Vec<String>,
    /// The ranges tenant VPCs get their CIDRs from (the IPAM pool's provisioned CIDRs): kaas-proxy dials an
    /// own-cluster tenant's brokers (the addresses of its internal load balancers) only there
    /// ([`Plan::upstream_cidrs`]). Empty: [`DEFAULT_VPC_CIDR`], what a tenant VPC gets without a pool.
    pub tenant_vpc_cidrs: Vec<String>,
}

/// The CIDR CAPA gives a managed VPC that names none (cluster-api-provider-aws v2.11.1
/// pkg/cloud/services/network/vpc.go l.44 `defaultVPCCidr`).
pub const DEFAULT_VPC_CIDR: &str = "10.0.0.0/16";

impl Network {
    /// Where an own-cluster tenant's brokers are: [`Network::tenant_vpc_cidrs`], or [`DEFAULT_VPC_CIDR`].
    pub fn tenant_ranges(&self) -> Vec<String> {
        match self.tenant_vpc_cidrs.is_empty() {
            true => vec![DEFAULT_VPC_CIDR.to_owned()],
            false => self.tenant_vpc_cidrs.clone(),
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            kubernetes_version: "v1.34.2".into(),
            strimzi_version: "1.2.0".into(),
            // Strimzi 1.2.0's default (kafka-versions.yaml l.317-320 at 1.2.0; 4.1.x is unsupported there).
            kafka_version: "4.3.1".into(),
            control_plane_instance: "m7g.large".into(),
            chart_source: "kaas".into(),
            chart_path: "./charts/kaas".into(),
            component_charts: None,
            storage_class: "kaas-encrypted-gp3".into(),
            network: Network::default(),
            cluster_bootstrap: CLUSTER_BOOTSTRAP.into(),
            namespace_bootstrap: NAMESPACE_BOOTSTRAP.into(),
            proxy_namespace: "kaas-system".into(),
            // The examples' and tests' platform: AWS's documentation account id, not a real image owner.
            images: ImageLookup {
                org: "123456789012".into(),
                format: IMAGE_LOOKUP_FORMAT.into(),
                base_os: IMAGE_LOOKUP_BASE_OS.into(),
            },
            ssh_key_name: None,
            controller_user: CONTROLLER_USER.into(),
            namespace_quota: NamespaceQuota::default(),
            offered: Offered::default(),
            namespace_pod_security: PodSecurity::Restricted,
            volume_kms_key: None,
            zones: ["eu-west-1", "us-east-1"]
                .into_iter()
                .map(|r| (r.to_owned(), ["a", "b", "c"].map(|z| format!("{r}{z}"))))
                .collect(),
        }
    }
}

/// Why a tenant could not be rendered; nothing is committed for it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The spec fails validation, or the name is not a DNS label (field `(metadata.name)`); every problem.
    #[error("invalid tenant: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<SpecError>),
    /// The object has no `metadata.name` (a file given to the CLI, say).
    #[error("the tenant has no metadata.name")]
    NoName,
    /// The demand is valid but no cluster of this platform carries it.
    #[error("sizing: {0}")]
    Sizing(#[from] SizingError),
    /// An `isolation: cluster` tenant in a region whose zones the platform has not configured.
    #[error("region {0}: no availability zones configured for it (the controller's --zones)")]
    NoZones(String),
}

/// The sizing inputs of a tenant's spec.
pub fn demand(t: &KafkaTenant) -> Demand {
    Demand {
        ingress_mbps: t.spec.throughput.ingress_mbps,
        egress_mbps: t.spec.throughput.egress_mbps,
        retention_hours: t.spec.retention_hours,
        replication_factor: t.spec.replication_factor,
        partitions: t.spec.partitions,
    }
}

/// Everything one reconcile of a tenant needs, computed once from its spec and the platform: what is
/// committed (the manifests), what its status reports (sizing, users) and what its route publishes (quota,
/// bootstrap) all read this one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The tenant id ([`names::tenant_id`]), which every platform-wide name is built from.
    pub tenant: String,
    /// The tenant's folder in the GitOps repository ([`names::folder`]).
    pub folder: String,
    /// The sizing inputs of the spec.
    pub demand: Demand,
    /// The sized cluster: `status.sizing`, the broker pool and the chart's Kafka values.
    pub sizing: Sizing,
    /// Each user's byte-rate quotas at the brokers, in `spec.users` order (the chart values').
    pub user_quotas: Vec<StrimziQuota>,
    /// The byte-rate quotas the proxy holds the whole tenant to (the route's).
    pub quota: kaas_route::Quota,
    /// Where kaas-proxy reaches the tenant's Kafka (the route's bootstrap).
    pub bootstrap: String,
    /// The ranges the tenant's broker addresses resolve into, which the route admits besides the bootstrap host
    /// (`upstream.allowed_cidrs`): an own cluster's VPC ranges, where its internal load balancers are; empty on
    /// the shared cluster, whose brokers' names are under the bootstrap Service's namespace domain.
    pub upstream_cidrs: Vec<String>,
    /// Where each user's credentials are (`status.users`).
    pub users: Vec<UserCredentials>,
    /// Every manifest of the tenant, in apply order.
    pub manifests: Vec<Value>,
}

/// Plans tenant `t` on platform `p`: validates the tenant, sizes it and renders its manifests, each once.
/// Nothing is committed for a tenant that fails.
pub fn plan(t: &KafkaTenant, p: &Platform) -> Result<Plan, RenderError> {
    let name = valid_name(t, p)?;
    let demand = demand(t);
    let sizing = sizing::size(&demand)?;
    fits_brokers(t, sizing.brokers)?;
    if t.spec.isolation == Isolation::Cluster && !p.zones.contains_key(&t.spec.region) {
        return Err(RenderError::NoZones(t.spec.region.clone()));
    }
    // Every platform-wide name is built from the id, which keeps same-named tenants of two namespaces apart.
    let tenant = tenant_id(tenant_namespace(t), &name);
    let user_quotas = t
        .spec
        .users
        .iter()
        .map(|u| {
            let own = u.quota.clone().unwrap_or_default();
            sizing::user_quota(&demand, sizing.brokers, own.ingress_mbps, own.egress_mbps)
        })
        .collect();
    let mut plan = Plan {
        folder: names::folder(t),
        quota: sizing::quota(&demand),
        bootstrap: p.proxy_bootstrap(&tenant, t.spec.isolation),
        upstream_cidrs: match t.spec.isolation {
            Isolation::Cluster => p.network.tenant_ranges(),
            Isolation::Namespace => Vec::new(),
        },
        users: user_credentials(t),
        manifests: Vec::new(),
        tenant,
        demand,
        sizing,
        user_quotas,
    };
    plan.manifests = manifests(t, &plan, &p.for_tenant(t));
    Ok(plan)
}

/// Every manifest of tenant `t`, in apply order ([`plan`] without the rest).
pub fn render(t: &KafkaTenant, p: &Platform) -> Result<Vec<Value>, RenderError> {
    plan(t, p).map(|plan| plan.manifests)
}

/// The tenant's name, once the spec validates (its versions a pair Strimzi runs, on `p`) and the name is a DNS
/// label.
fn valid_name(t: &KafkaTenant, p: &Platform) -> Result<String, RenderError> {
    let name = t.metadata.name.clone().ok_or(RenderError::NoName)?;
    let mut errors = t.spec.validate();
    if errors.iter().all(|e| !e.field.starts_with("versions.")) {
        errors.extend(offered::unoffered_pins(t, p));
        errors.extend(t.spec.validate_versions(&p.strimzi_version, &p.kafka_version));
    }
    if let Err(m) = kaas_route::check_dns_label(&name) {
        errors.insert(0, SpecError { field: "(metadata.name)".into(), message: m });
    }
    if !errors.is_empty() {
        return Err(RenderError::Invalid(errors));
    }
    Ok(name)
}

/// Refuses topics with more replicas than the tenant has brokers: only the sizing knows the broker count.
fn fits_brokers(t: &KafkaTenant, brokers: u32) -> Result<(), RenderError> {
    let crowded: Vec<SpecError> = t
        .spec
        .topics
        .iter()
        .enumerate()
        .filter(|(_, topic)| topic.replicas.is_some_and(|r| u32::from(r) > brokers))
        .map(|(i, topic)| SpecError {
            field: format!("topics[{i}].replicas"),
            message: format!(
                "{} replicas on {brokers} brokers (the tenant's sizing)",
                topic.replicas.unwrap_or_default()
            ),
        })
        .collect();
    if crowded.is_empty() {
        Ok(())
    } else {
        Err(RenderError::Invalid(crowded))
    }
}

/// The manifests of `plan`, on the platform as `t` sees it.
fn manifests(t: &KafkaTenant, plan: &Plan, p: &Platform) -> Vec<Value> {
    let ns = namespace(&plan.tenant);
    // Flux applies the tenant's folder as it is: the namespace its objects live in comes with them.
    let mut out = vec![namespace_object(&ns, &plan.tenant)];
    out.extend(access::objects(&plan.tenant, t.spec.isolation, p));
    // `plan` refused a cluster tenant in a region without zones.
    if let (Isolation::Cluster, Some(zones)) = (t.spec.isolation, p.zones.get(&t.spec.region)) {
        out.extend(cluster_api::cluster_objects(&plan.tenant, &ns, &t.spec.region, zones, &plan.sizing, p));
        out.extend(flux::components(&plan.tenant, &ns, p));
    }
    out.push(flux::kafka_release(t, plan, &ns, p));
    out
}

/// The management-cluster Namespace holding the tenant's objects, first in apply order.
fn namespace_object(ns: &str, tenant: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns, "labels": labels(tenant) } })
}

fn labels(tenant: &str) -> Value {
    json!({ "app.kubernetes.io/managed-by": "kaas-controller", TENANT_LABEL: tenant })
}

fn meta(name: &str, ns: &str, tenant: &str) -> Value {
    json!({ "name": name, "namespace": ns, "labels": labels(tenant) })
}

/// Where each user's credentials are: Strimzi names a KafkaUser's Secret after it, in the Kafka's namespace,
/// on the tenant's own cluster (`isolation: cluster`) or on this one. Pure, like the rest of rendering.
pub fn user_credentials(t: &KafkaTenant) -> Vec<UserCredentials> {
    let tenant = tenant_id_of(t);
    let cluster = match t.spec.isolation {
        Isolation::Cluster => Some(format!("{}/{tenant}", namespace(&tenant))),
        Isolation::Namespace => None,
    };
    t.spec
        .users
        .iter()
        .map(|u| UserCredentials {
            name: u.name.clone(),
            secret: u.name.clone(),
            namespace: kafka_namespace(&tenant, t.spec.isolation),
            cluster: cluster.clone(),
        })
        .collect()
}

/// Multi-document YAML, in order.
pub fn to_yaml(objects: &[Value]) -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(o)?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
