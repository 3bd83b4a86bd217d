//! Rendering: a `KafkaTenant` and its sizing → the manifests committed to the GitOps repository. Pure: no I/O.
//!
//! `isolation: cluster` renders explicit Cluster API v1beta2 objects for AWS (Cluster, AWSCluster,
//! KubeadmControlPlane, AWSMachineTemplates, MachineDeployments, KubeadmConfigTemplate) rather than a
//! ClusterClass topology: every tenant's broker pool is sized differently, and explicit objects make each
//! tenant's Git diff say exactly what changes. Root volumes are encrypted; Kafka's data volumes are PVCs of the
//! chart's encrypted storage class. Then a Flux `HelmRelease` of `charts/kaas` that deploys into the new
//! cluster through `<tenant>-kubeconfig`. `isolation: namespace` renders only the HelmRelease, into a tenant
//! namespace on the shared cluster. Either way the management-cluster Namespace `kaas-<tenant>` that holds
//! these objects comes first, since Flux applies the folder as it is and creates no namespaces.

use serde_json::{json, Value};

use crate::crd::{AclResource, Isolation, KafkaTenant, PatternType, SpecError, Topic, UserCredentials};
use crate::names::{
    self, helm_release as release_name, kafka_namespace, kubeconfig_secret, namespace, tenant_id,
    tenant_id_of, tenant_namespace, topic_resource_name, KAFKA_RELEASE, TENANT_GENERATION, TENANT_LABEL,
};
use crate::sizing::{self, Demand, Sizing, SizingError, SYSTEM_INSTANCE, SYSTEM_NODES};

/// Platform-wide settings the rendering needs besides the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    /// Kubernetes version of tenant clusters' control planes and workers, with the `v` (`v1.34.2`; 1.34 or newer:
    /// the brokers' volumes are tuned by a `storage.k8s.io/v1` VolumeAttributesClass, GA in 1.34). A tenant's
    /// `spec.versions` overrides this and the two below ([`Platform::for_tenant`]).
    pub kubernetes_version: String,
    /// The Strimzi operator's Helm chart version on tenant clusters.
    pub strimzi_version: String,
    /// Apache Kafka version of tenants' brokers (one every platform Strimzi supports).
    pub kafka_version: String,
    /// EC2 instance type of tenant clusters' control-plane machines.
    pub control_plane_instance: String,
    /// Flux source holding `charts/kaas` (a GitRepository in `flux-system`).
    pub chart_source: String,
    /// Path of the chart inside that source.
    pub chart_path: String,
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
}

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
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            kubernetes_version: "v1.34.2".into(),
            strimzi_version: "1.2.0".into(),
            kafka_version: "4.1.0".into(),
            control_plane_instance: "m7g.large".into(),
            chart_source: "kaas".into(),
            chart_path: "./charts/kaas".into(),
            storage_class: "kaas-encrypted-gp3".into(),
            network: Network::default(),
            cluster_bootstrap: "kafka-bootstrap.{tenant}.internal.kaas.dev:9094".into(),
            namespace_bootstrap: "kaas-kafka-bootstrap.tenant-{tenant}.svc:9093".into(),
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

/// Every manifest of the tenant, in apply order.
pub fn render(t: &KafkaTenant, p: &Platform) -> Result<Vec<Value>, RenderError> {
    let name = t.metadata.name.clone().ok_or(RenderError::NoName)?;
    let mut errors = t.spec.validate();
    if let Err(m) = kaas_route::check_dns_label(&name) {
        errors.insert(0, SpecError { field: "(metadata.name)".into(), message: m });
    }
    if !errors.is_empty() {
        return Err(RenderError::Invalid(errors));
    }
    let sizing = sizing::size(&demand(t))?;
    // Only the sizing knows the broker count a topic's replicas must fit in.
    let crowded: Vec<SpecError> = t
        .spec
        .topics
        .iter()
        .enumerate()
        .filter(|(_, topic)| topic.replicas.is_some_and(|r| u32::from(r) > sizing.brokers))
        .map(|(i, topic)| SpecError {
            field: format!("topics[{i}].replicas"),
            message: format!(
                "{} replicas on {} brokers (the tenant's sizing)",
                topic.replicas.unwrap_or_default(),
                sizing.brokers
            ),
        })
        .collect();
    if !crowded.is_empty() {
        return Err(RenderError::Invalid(crowded));
    }
    let p = &p.for_tenant(t);
    // Every platform-wide name is built from the id, which keeps same-named tenants of two namespaces apart.
    let name = tenant_id(tenant_namespace(t), &name);
    let ns = namespace(&name);
    // Flux applies the tenant's folder as it is: the namespace its objects live in comes with them.
    let mut out = vec![namespace_object(&ns, &name)];
    if t.spec.isolation == Isolation::Cluster {
        out.extend(cluster_objects(&name, &ns, &t.spec.region, &sizing, p));
        out.extend(components(&name, &ns, p));
    }
    out.push(helm_release(t, &name, &ns, &sizing, p));
    Ok(out)
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

fn machine_template(name: &str, ns: &str, tenant: &str, instance: &str, profile: &str) -> Value {
    json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
        "kind": "AWSMachineTemplate",
        "metadata": meta(name, ns, tenant),
        "spec": { "template": { "spec": {
            "instanceType": instance,
            "iamInstanceProfile": profile,
            "rootVolume": { "size": 64, "type": "gp3", "encrypted": true },
        }}}
    })
}

fn machine_deployment(name: &str, ns: &str, tenant: &str, replicas: u32, version: &str, role: &str) -> Value {
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "MachineDeployment",
        "metadata": meta(name, ns, tenant),
        "spec": {
            "clusterName": tenant,
            "replicas": replicas,
            "selector": { "matchLabels": { "kaas.dev/pool": name } },
            "template": {
                "metadata": { "labels": { "kaas.dev/pool": name, "kaas.dev/role": role } },
                "spec": {
                    "clusterName": tenant,
                    "version": version,
                    "bootstrap": { "configRef": {
                        "apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfigTemplate", "name": format!("{tenant}-workers"),
                    }},
                    "infrastructureRef": {
                        "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSMachineTemplate", "name": name,
                    },
                }
            }
        }
    })
}

fn aws_cluster_spec(region: &str, n: &Network) -> Value {
    let mut spec = json!({ "region": region });
    if let Some(pool) = &n.vpc_ipam_pool {
        let mut ipam = json!({ "id": pool });
        if let Some(len) = n.vpc_netmask_length {
            ipam["netmaskLength"] = json!(len);
        }
        spec["network"]["vpc"]["ipamPool"] = ipam;
    }
    if !n.proxy_cidrs.is_empty() {
        spec["network"]["nodePortIngressRuleCidrBlocks"] = json!(n.proxy_cidrs);
    }
    spec
}

fn cluster_objects(tenant: &str, ns: &str, region: &str, s: &Sizing, p: &Platform) -> Vec<Value> {
    let cp = format!("{tenant}-control-plane");
    let external_cloud = json!([{ "name": "cloud-provider", "value": "external" }]);
    let node_registration =
        json!({ "name": "{{ ds.meta_data.local_hostname }}", "kubeletExtraArgs": external_cloud });
    vec![
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": meta(tenant, ns, tenant),
            "spec": {
                "clusterNetwork": { "pods": { "cidrBlocks": ["192.168.0.0/16"] } },
                "controlPlaneRef": { "apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": cp },
                "infrastructureRef": { "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSCluster", "name": tenant },
            }
        }),
        json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
            "kind": "AWSCluster",
            "metadata": meta(tenant, ns, tenant),
            "spec": aws_cluster_spec(region, &p.network),
        }),
        json!({
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
            "kind": "KubeadmControlPlane",
            "metadata": meta(&cp, ns, tenant),
            "spec": {
                "replicas": 3,
                "version": p.kubernetes_version,
                "machineTemplate": { "spec": { "infrastructureRef": {
                    "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSMachineTemplate", "name": cp,
                }}},
                "kubeadmConfigSpec": {
                    "initConfiguration": { "nodeRegistration": node_registration },
                    "joinConfiguration": { "nodeRegistration": node_registration },
                },
            }
        }),
        machine_template(
            &cp,
            ns,
            tenant,
            &p.control_plane_instance,
            "control-plane.cluster-api-provider-aws.sigs.k8s.io",
        ),
        machine_template(
            &format!("{tenant}-brokers"),
            ns,
            tenant,
            &s.instance_type,
            "nodes.cluster-api-provider-aws.sigs.k8s.io",
        ),
        machine_template(
            &format!("{tenant}-system"),
            ns,
            tenant,
            SYSTEM_INSTANCE,
            "nodes.cluster-api-provider-aws.sigs.k8s.io",
        ),
        json!({
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2",
            "kind": "KubeadmConfigTemplate",
            "metadata": meta(&format!("{tenant}-workers"), ns, tenant),
            "spec": { "template": { "spec": { "joinConfiguration": { "nodeRegistration": node_registration } } } },
        }),
        machine_deployment(
            &format!("{tenant}-brokers"),
            ns,
            tenant,
            s.brokers,
            &p.kubernetes_version,
            "kafka-broker",
        ),
        machine_deployment(
            &format!("{tenant}-system"),
            ns,
            tenant,
            SYSTEM_NODES,
            &p.kubernetes_version,
            "system",
        ),
    ]
}

/// The chart values: the one contract between the controller and `charts/kaas`.
pub fn chart_values(t: &KafkaTenant, tenant: &str, s: &Sizing, p: &Platform) -> Value {
    let users: Vec<Value> = t
        .spec
        .users
        .iter()
        .map(|u| {
            let acls: Vec<Value> = u
                .acls
                .iter()
                .map(|a| {
                    let resource = match a.resource {
                        AclResource::Topic => {
                            json!({ "type": "topic", "name": a.name, "patternType": pattern(a.pattern_type) })
                        }
                        AclResource::Group => {
                            json!({ "type": "group", "name": a.name, "patternType": pattern(a.pattern_type) })
                        }
                        AclResource::Cluster => json!({ "type": "cluster" }),
                    };
                    json!({ "resource": resource, "operations": a.operations })
                })
                .collect();
            let quota = u.quota.clone().unwrap_or_default();
            let quotas = sizing::user_quota(&demand(t), s.brokers, quota.ingress_mbps, quota.egress_mbps);
            json!({ "name": u.name, "acls": acls, "quotas": quotas })
        })
        .collect();
    let topics: Vec<Value> = t.spec.topics.iter().map(|topic| topic_values(t, topic, s)).collect();
    let mut values = json!({
        "tenant": tenant,
        "kafka": {
            "version": p.kafka_version,
            "brokers": s.brokers,
            "controllers": 3,
            "storage": storage_values(t, tenant, s, p),
            "retentionHours": t.spec.retention_hours,
            "replicationFactor": t.spec.replication_factor,
            "minInsyncReplicas": min_insync_replicas(t.spec.replication_factor),
            "partitions": s.partitions,
            "instanceType": s.instance_type,
        },
        "users": users,
        "topics": topics,
        // The platform components are the controller's to place (below), never one copy per tenant release.
        "components": {
            "strimzi": { "enabled": false },
            "certManager": { "enabled": false },
            "externalDns": { "enabled": false },
        },
    });
    // On its own cluster the proxy reaches the tenant through the `proxy` listener's internal load balancer,
    // at the name and port of the route: the listener listens there and external-dns publishes the name.
    if t.spec.isolation == Isolation::Cluster {
        let bootstrap = p.proxy_bootstrap(tenant, Isolation::Cluster);
        if let Some((host, port)) = bootstrap.rsplit_once(':') {
            values["kafka"]["proxyListener"] = json!({ "bootstrapHostname": host });
            if let Ok(port) = port.parse::<u16>() {
                values["kafka"]["proxyListener"]["port"] = json!(port);
            }
        }
    }
    values
}

/// The brokers' volumes: size and class, and past gp3's baseline the throughput (and IOPS) the sizing
/// provisioned each volume with, which the chart sets through a VolumeAttributesClass (without it every volume
/// would run at 125 MiB/s whatever the sizing allowed).
fn storage_values(t: &KafkaTenant, tenant: &str, s: &Sizing, p: &Platform) -> Value {
    let mut storage =
        json!({ "size": format!("{}Gi", s.storage_per_broker_gib), "class": storage_class(t, tenant, p) });
    if let Some(a) = sizing::gp3_attributes(s.monthly_cost.provisioned_mbps_per_volume) {
        storage["throughputMiBps"] = json!(a.throughput_mibps);
        storage["iops"] = json!(a.iops);
    }
    storage
}

/// A topic's chart values: every figure explicit (the tenant's where the spec leaves it out), so the Git diff
/// of a tenant change shows each topic it touches. Retention is left to the brokers' `log.retention.hours`
/// (the tenant's) unless the topic has its own; a topic whose replicas differ from the tenant's gets its own
/// `min.insync.replicas` by the tenant's rule (with fewer, `acks=all` producers could never write to it).
fn topic_values(t: &KafkaTenant, topic: &Topic, s: &Sizing) -> Value {
    let replicas = topic.replicas.unwrap_or(t.spec.replication_factor);
    let mut config = serde_json::Map::new();
    for (k, v) in &topic.config {
        config.insert(k.clone(), json!(v));
    }
    if let Some(h) = topic.retention_hours {
        config.insert("retention.ms".into(), json!(u64::from(h) * 3_600_000));
    }
    if replicas != t.spec.replication_factor && !config.contains_key("min.insync.replicas") {
        config.insert("min.insync.replicas".into(), json!(min_insync_replicas(replicas)));
    }
    let mut out = json!({
        "name": topic.name,
        "partitions": topic.partitions.unwrap_or(s.partitions),
        "replicas": replicas,
        "config": config,
    });
    let resource = topic_resource_name(&topic.name);
    if resource != topic.name {
        out["resourceName"] = json!(resource);
    }
    out
}

/// Replicas that must acknowledge an `acks=all` write: one fewer than the copies (so one broker may be down),
/// at least one.
fn min_insync_replicas(replicas: u16) -> u16 {
    (replicas.max(2) - 1).max(1)
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

/// The StorageClass of the brokers' volumes, which the tenant's release creates. On its own cluster the
/// platform's name; on the shared cluster one per tenant, since a StorageClass is cluster-wide and Helm lets
/// only one release own it (a second tenant's install of the same name would fail).
pub fn storage_class(t: &KafkaTenant, tenant: &str, p: &Platform) -> String {
    match t.spec.isolation {
        Isolation::Cluster => p.storage_class.clone(),
        Isolation::Namespace => format!("kaas-{tenant}-gp3"),
    }
}

fn pattern(p: PatternType) -> &'static str {
    match p {
        PatternType::Literal => "literal",
        PatternType::Prefix => "prefix",
    }
}

fn helm_release(t: &KafkaTenant, tenant: &str, ns: &str, s: &Sizing, p: &Platform) -> Value {
    let mut spec = json!({
        "interval": "10m",
        "releaseName": KAFKA_RELEASE,
        "targetNamespace": kafka_namespace(tenant, t.spec.isolation),
        "install": { "createNamespace": true, "remediation": { "retries": 3 } },
        "upgrade": { "remediation": { "retries": 3 } },
        "chart": { "spec": {
            "chart": p.chart_path,
            "sourceRef": { "kind": "GitRepository", "name": p.chart_source, "namespace": "flux-system" },
        }},
        "values": chart_values(t, tenant, s, p),
    });
    if t.spec.isolation == Isolation::Cluster {
        spec["kubeConfig"] = kube_config(tenant);
        // Kafka's custom resources need the Strimzi operator's CRDs, its volumes the EBS CSI driver, its
        // PodMonitor the Prometheus Operator's CRDs.
        spec["dependsOn"] = json!(["strimzi", "aws-ebs-csi-driver", "prometheus-operator-crds"]
            .map(|c| json!({ "name": format!("{tenant}-{c}") })));
    }
    let mut metadata = meta(&release_name(tenant), ns, tenant);
    if let Some(g) = t.metadata.generation {
        metadata["annotations"] = json!({ TENANT_GENERATION: g.to_string() });
    }
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": metadata,
        "spec": spec,
    })
}

fn kube_config(tenant: &str) -> Value {
    json!({ "secretRef": { "name": kubeconfig_secret(tenant), "key": "value" } })
}

/// One platform component of a tenant cluster: an upstream Helm chart installed through the tenant's kubeconfig.
struct Component {
    /// Release name, and the suffix of the Flux objects' names (`<tenant>-<short>`).
    short: &'static str,
    chart: &'static str,
    version: String,
    url: &'static str,
    oci: bool,
    namespace: &'static str,
    values: Value,
    /// Components installed (and Ready) before this one.
    after: &'static [&'static str],
}

/// The platform components a tenant cluster needs before its Kafka, as Flux HelmReleases of their upstream
/// charts (with their HelmRepository sources) beside the tenant's own release, installed into the tenant's
/// cluster through its kubeconfig, in order (`dependsOn`): the pod network (Cilium), the AWS cloud controller
/// manager (the kubelets run with `cloud-provider: external`, so nodes stay tainted uninitialized without it;
/// its image follows the cluster's Kubernetes minor), the EBS CSI driver (the brokers' gp3 volumes), then the
/// Strimzi operator, cert-manager, external-dns and the Prometheus Operator's CRDs (the chart's PodMonitor).
/// The CNI and the cloud controller run before any pod network exists (host network, tolerating the
/// uninitialized taint), which is why they come first. On the shared cluster of `isolation: namespace` the
/// platform runs all of them once, for every tenant.
fn components(tenant: &str, ns: &str, p: &Platform) -> Vec<Value> {
    let minor =
        p.kubernetes_version.trim_start_matches('v').splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    let list = [
        Component {
            short: "cilium",
            chart: "cilium",
            version: "1.18.0".into(),
            url: "https://helm.cilium.io/",
            oci: false,
            namespace: "kube-system",
            values: json!({ "ipam": { "mode": "kubernetes" }, "kubeProxyReplacement": false }),
            after: &[],
        },
        Component {
            short: "aws-cloud-controller-manager",
            chart: "aws-cloud-controller-manager",
            version: "0.0.12".into(),
            url: "https://kubernetes.github.io/cloud-provider-aws",
            oci: false,
            namespace: "kube-system",
            values: json!({
                "image": { "tag": format!("v{minor}.0") },
                "args": ["--v=2", "--cloud-provider=aws", "--configure-cloud-routes=false"],
            }),
            after: &[],
        },
        Component {
            short: "aws-ebs-csi-driver",
            chart: "aws-ebs-csi-driver",
            version: "2.62.0".into(),
            url: "https://kubernetes-sigs.github.io/aws-ebs-csi-driver",
            oci: false,
            namespace: "kube-system",
            // The node's instance profile grants the EBS calls (AWSMachineTemplate iamInstanceProfile).
            values: json!({ "controller": { "replicaCount": 2 } }),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "strimzi",
            chart: "strimzi-kafka-operator",
            version: p.strimzi_version.clone(),
            url: "oci://quay.io/strimzi-helm",
            oci: true,
            namespace: "strimzi",
            values: json!({ "watchAnyNamespace": true }),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "cert-manager",
            chart: "cert-manager",
            version: "v1.19.1".into(),
            url: "https://charts.jetstack.io",
            oci: false,
            namespace: "cert-manager",
            values: json!({ "crds": { "enabled": true } }),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "external-dns",
            chart: "external-dns",
            version: "1.19.0".into(),
            url: "https://kubernetes-sigs.github.io/external-dns/",
            oci: false,
            namespace: "external-dns",
            values: json!({ "provider": { "name": "aws" }, "policy": "upsert-only", "txtOwnerId": tenant }),
            after: &["cilium", "aws-cloud-controller-manager"],
        },
        Component {
            short: "prometheus-operator-crds",
            chart: "prometheus-operator-crds",
            version: "25.0.0".into(),
            url: "https://prometheus-community.github.io/helm-charts",
            oci: false,
            namespace: "kube-system",
            values: json!({}),
            after: &[],
        },
    ];
    let mut out = Vec::new();
    for c in list {
        let name = format!("{tenant}-{}", c.short);
        let mut repo = json!({ "interval": "1h", "url": c.url });
        if c.oci {
            repo["type"] = json!("oci");
        }
        out.push(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": meta(&name, ns, tenant),
            "spec": repo,
        }));
        let mut spec = json!({
            "interval": "30m",
            "releaseName": c.short,
            "targetNamespace": c.namespace,
            "kubeConfig": kube_config(tenant),
            "install": { "createNamespace": true, "crds": "CreateReplace" },
            "upgrade": { "crds": "CreateReplace" },
            "chart": { "spec": { "chart": c.chart, "version": c.version, "sourceRef": { "kind": "HelmRepository", "name": name } } },
            "values": c.values,
        });
        if !c.after.is_empty() {
            spec["dependsOn"] = c.after.iter().map(|a| json!({ "name": format!("{tenant}-{a}") })).collect();
        }
        out.push(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": meta(&name, ns, tenant),
            "spec": spec,
        }));
    }
    out
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
mod tests;
