//! Cluster API objects of an `isolation: cluster` tenant, for AWS (v1beta2): Cluster, AWSCluster,
//! KubeadmControlPlane, the pools' AWSMachineTemplates and KubeadmConfigTemplates, and one MachineDeployment per zone
//! of the broker and system pools. Explicit objects rather than a ClusterClass topology: every tenant's broker
//! pool is sized differently, and explicit objects make each tenant's Git diff say exactly what changes. Pure.
//!
//! Machines ([`machines`]): the platform's own images, no key pair unless the platform names one, IMDSv2,
//! encrypted root volumes, templates named by their spec (CAPA refuses edits to an AWSMachineTemplate).
//!
//! Neighbours: [`super`] (the entry point) places these after the tenant's Namespace; [`super::flux`] installs
//! into the cluster they make, through the kubeconfig Cluster API writes.

use serde_json::{json, Value};

use super::{meta, Network, Platform};
use crate::sizing::{Sizing, SYSTEM_INSTANCE, SYSTEM_NODES, ZONES};

mod machines;

use machines::{bootstrap_template, health_checks, machine_template, Pool, POOL_LABEL};

/// What Cilium needs open between nodes in VXLAN overlay mode, the chart's default as `components()` installs
/// it: the AWS security-group example of cilium/cilium Documentation/operations/system_requirements.rst
/// ("Firewall Rules", at 00c88111): UDP 8472, the health checks' TCP 4240, ICMP echo 8/0. CAPA opens these from the control-plane and node security groups to
/// both (v2.11.1 pkg/cloud/services/securitygroup/securitygroups.go `getSecurityGroupIngressRules`); without them
/// it applies Calico's BGP and IP-in-IP instead (api/v1beta2/defaults.go `SetDefaults_NetworkSpec`). For ICMP,
/// AWS reads `fromPort` as the type and `toPort` as the code (EC2 IpPermission).
const CILIUM_INGRESS_RULES: [(&str, &str, i64, i64); 3] = [
    ("VXLAN overlay (cilium)", "udp", 8472, 8472),
    ("health checks (cilium)", "tcp", 4240, 4240),
    ("ICMP echo health checks (cilium)", "icmp", 8, 0),
];

fn aws_cluster_spec(region: &str, n: &Network, ssh_key_name: Option<&str>) -> Value {
    let rules: Vec<Value> = CILIUM_INGRESS_RULES
        .iter()
        .map(|(description, protocol, from, to)| {
            json!({ "description": description, "protocol": protocol, "fromPort": from, "toPort": to })
        })
        .collect();
    // An empty key name launches without a key pair; omitted, CAPA uses one named `default`
    // (v2.11.1 pkg/cloud/services/ec2/instances.go:220-244, bastion.go:40). Machines inherit the cluster's.
    let mut spec = json!({
        "region": region,
        "sshKeyName": ssh_key_name.unwrap_or(""),
        "network": {
            "cni": { "cniIngressRules": rules },
            // CAPA's defaults, stated because [`Platform::zones`] relies on them: the region's first three
            // available zones in name order get the managed VPC's subnets (v2.11.1
            // pkg/cloud/services/network/subnets.go `getDefaultSubnets`, account.go `getAvailableZones`).
            "vpc": { "availabilityZoneUsageLimit": ZONES, "availabilityZoneSelection": "Ordered" },
        },
    });
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

/// One MachineDeployment of a pool, in one zone: CAPA puts its machines in that zone's private subnet
/// (v2.11.1 pkg/cloud/services/ec2/instances.go `findSubnet`, `FilterByZone(failureDomain)`); without a
/// failure domain every worker lands in the first private subnet, one zone. `template` and `bootstrap` name the
/// pool's AWSMachineTemplate and KubeadmConfigTemplate.
fn machine_deployment(
    tenant: &str,
    ns: &str,
    pool: &Pool,
    template: &str,
    bootstrap: &str,
    zone: &str,
    p: &Platform,
) -> Value {
    // The zone's last part (`1a` of `eu-west-1a`): a MachineDeployment's name must be a label value, 63
    // characters at most (cluster-api v1.11.3 internal/webhooks/machinedeployment.go:177), which a whole zone
    // name after the tenant id may pass.
    let name = format!("{tenant}-{}-{}", pool.short, zone.rsplit('-').next().unwrap_or(zone));
    let labels = json!({
        "kaas.dev/pool": pool.short, "kaas.dev/role": pool.role, "kaas.dev/machine-deployment": name,
        POOL_LABEL: pool.short,
    });
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "MachineDeployment",
        "metadata": meta(&name, ns, tenant),
        "spec": {
            "clusterName": tenant,
            "replicas": pool.per_zone,
            "selector": { "matchLabels": { "kaas.dev/machine-deployment": name } },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "clusterName": tenant,
                    "version": p.kubernetes_version,
                    "failureDomain": zone,
                    "bootstrap": { "configRef": {
                        "apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfigTemplate", "name": bootstrap,
                    }},
                    "infrastructureRef": {
                        "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSMachineTemplate", "name": template,
                    },
                }
            }
        }
    })
}

/// The Cluster API objects of tenant `tenant`'s own cluster in namespace `ns`, in apply order; `zones` are the
/// region's three ([`Platform::zones`]).
pub(super) fn cluster_objects(
    tenant: &str,
    ns: &str,
    region: &str,
    zones: &[String; 3],
    s: &Sizing,
    p: &Platform,
) -> Vec<Value> {
    let cp = format!("{tenant}-control-plane");
    let external_cloud = json!([{ "name": "cloud-provider", "value": "external" }]);
    let node_registration =
        json!({ "name": "{{ ds.meta_data.local_hostname }}", "kubeletExtraArgs": external_cloud });
    let control_plane = Pool::control_plane(&p.control_plane_instance);
    // The sizing makes brokers (and system nodes) a multiple of the zones, so each zone gets an equal share.
    let pools = [
        Pool::brokers(&s.instance_type, s.brokers / ZONES),
        Pool::system(SYSTEM_INSTANCE, SYSTEM_NODES / ZONES),
    ];
    let cp_template = machine_template(tenant, ns, &control_plane, p);
    let mut out = vec![
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
            "spec": aws_cluster_spec(region, &p.network, p.ssh_key_name.as_deref()),
        }),
        json!({
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
            "kind": "KubeadmControlPlane",
            "metadata": meta(&cp, ns, tenant),
            "spec": {
                "replicas": 3,
                "version": p.kubernetes_version,
                "machineTemplate": { "spec": { "infrastructureRef": {
                    "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSMachineTemplate", "name": cp_template["metadata"]["name"],
                }}},
                "kubeadmConfigSpec": {
                    "initConfiguration": { "nodeRegistration": node_registration },
                    "joinConfiguration": { "nodeRegistration": node_registration },
                },
            }
        }),
        cp_template,
    ];
    let templates: Vec<Value> = pools.iter().map(|pool| machine_template(tenant, ns, pool, p)).collect();
    out.extend(templates.iter().cloned());
    let bootstraps: Vec<Value> =
        pools.iter().map(|pool| bootstrap_template(tenant, ns, pool, &node_registration)).collect();
    out.extend(bootstraps.iter().cloned());
    let name = |o: &Value| o["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    for ((pool, template), bootstrap) in pools.iter().zip(&templates).zip(&bootstraps) {
        let (template, bootstrap) = (name(template), name(bootstrap));
        out.extend(
            zones.iter().map(|zone| machine_deployment(tenant, ns, pool, &template, &bootstrap, zone, p)),
        );
    }
    out.extend(health_checks(tenant, ns));
    out
}

#[cfg(test)]
mod tests;
