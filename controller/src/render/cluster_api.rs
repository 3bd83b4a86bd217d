//! Cluster API objects of an `isolation: cluster` tenant, for AWS (v1beta2): Cluster, AWSCluster,
//! KubeadmControlPlane, the AWSMachineTemplates and MachineDeployments of the broker and system pools, and their
//! KubeadmConfigTemplate. Explicit objects rather than a ClusterClass topology: every tenant's broker pool is
//! sized differently, and explicit objects make each tenant's Git diff say exactly what changes. Root volumes
//! are encrypted. Pure.
//!
//! Neighbours: [`super`] (the entry point) places these after the tenant's Namespace; [`super::flux`] installs
//! into the cluster they make, through the kubeconfig Cluster API writes.

use serde_json::{json, Value};

use super::{meta, Network, Platform};
use crate::sizing::{Sizing, SYSTEM_INSTANCE, SYSTEM_NODES};

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

/// The Cluster API objects of tenant `tenant`'s own cluster in namespace `ns`, in apply order.
pub(super) fn cluster_objects(tenant: &str, ns: &str, region: &str, s: &Sizing, p: &Platform) -> Vec<Value> {
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
