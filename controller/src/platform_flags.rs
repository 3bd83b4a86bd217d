//! The `kaas-controller` binary's platform flags (a module of the binary, beside [`main`](crate)): the settings
//! `render`, `sync` and `run` share, validated as they are parsed, into a [`render::Platform`].
//!
//! Neighbours: `main.rs` flattens [`PlatformArgs`] into its commands; [`render`] reads the platform.

use kaas_controller::render;

/// The platform's settings for tenants: `render`, `sync` and `run` take the same, so what `render` prints is what
/// `run` commits.
#[derive(Debug, clap::Args)]
pub struct PlatformArgs {
    /// AWS account id (12 digits) owning the tenant machines' images, built by image-builder
    /// (docs/controller/aws-account.md): required, since CAPA's default images have no arm64 build.
    #[arg(long, value_parser = parse_account)]
    image_lookup_org: String,
    /// Name pattern of those images (CAPA's imageLookupFormat; `{{.BaseOS}}`, `{{.K8sVersion}}`).
    #[arg(long, default_value = render::IMAGE_LOOKUP_FORMAT)]
    image_lookup_format: String,
    /// Base OS put into the pattern (CAPA's imageLookupBaseOS).
    #[arg(long, default_value = render::IMAGE_LOOKUP_BASE_OS)]
    image_lookup_base_os: String,
    /// EC2 key pair on tenant machines; unset: none (reach machines through SSM).
    #[arg(long)]
    ssh_key_name: Option<String>,
    /// A region's three availability zones, `REGION=ZONE,ZONE,ZONE` (repeatable): the first three available
    /// in name order, where CAPA makes a tenant VPC's subnets. An own-cluster tenant elsewhere is refused.
    #[arg(long = "zones", value_parser = parse_zones)]
    zones: Vec<(String, [String; 3])>,
    /// Bootstrap address of a tenant's Kafka (`isolation: cluster`) as the proxy reaches it; `{tenant}` is
    /// replaced by the tenant id.
    #[arg(long, default_value = render::CLUSTER_BOOTSTRAP)]
    cluster_bootstrap_template: String,
    /// The same for `isolation: namespace` tenants, whose Kafka runs in `tenant-{tenant}` of the shared cluster.
    #[arg(long, default_value = render::NAMESPACE_BOOTSTRAP)]
    namespace_bootstrap_template: String,
    /// AWS VPC IPAM pool id each own-cluster tenant's VPC CIDR is allocated from, so none overlap and the
    /// platform's Transit Gateway (or peering) can route to every one.
    #[arg(long)]
    vpc_ipam_pool: Option<String>,
    /// Netmask length of each tenant VPC taken from that pool.
    #[arg(long, value_parser = clap::value_parser!(u8).range(16..=28))]
    vpc_netmask_length: Option<u8>,
    /// CIDR (repeatable) allowed to the tenant nodes' NodePorts behind the brokers' load balancers: the
    /// platform VPC's, where kaas-proxy runs.
    #[arg(long = "proxy-cidr", value_parser = parse_cidr)]
    proxy_cidrs: Vec<String>,
    /// CIDR (repeatable) tenant VPCs are allocated from (the IPAM pool's): kaas-proxy dials an own-cluster
    /// tenant's brokers only there. Required with --vpc-ipam-pool; without one, CAPA's 10.0.0.0/16.
    #[arg(long = "tenant-vpc-cidr", value_parser = parse_cidr)]
    tenant_vpc_cidrs: Vec<String>,
    /// One HTTP(S) Helm repository serving every platform component chart of tenant clusters (Cilium, the
    /// AWS cloud controller manager and EBS CSI driver, Strimzi and its Drain Cleaner, cert-manager,
    /// external-dns, the Prometheus Operator's CRDs) under their upstream names and versions: a mirror, for an
    /// air-gapped platform.
    /// Unset: each from its upstream repository.
    #[arg(long, value_parser = render::component_charts_url)]
    component_charts_url: Option<String>,
    /// The Kubernetes user this controller runs as (`system:serviceaccount:<namespace>:<name>` for its
    /// ServiceAccount): each tenant's folder grants it `get` on exactly the Secrets it reads for that tenant.
    #[arg(long, default_value = render::CONTROLLER_USER)]
    controller_user: String,
    /// The most brokers one namespace's tenants may order together; a tenant that would take its namespace
    /// over is refused (NamespaceQuotaExceeded). Unset: no cap.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    namespace_max_brokers: Option<u32>,
    /// The most GiB of broker storage (brokers × storage per broker) one namespace's tenants may order
    /// together. Unset: no cap.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    namespace_max_storage_gib: Option<u64>,
    /// A Kubernetes version (repeatable, `v1.35.1`) tenants may pin besides the platform's default: one the
    /// platform has built machine images for under --image-lookup-org. Any other pin is refused.
    #[arg(long = "tenant-kubernetes-version", value_parser = parse_kubernetes_version)]
    tenant_kubernetes_versions: Vec<String>,
    /// A Strimzi operator chart version (repeatable, `1.1.0`) tenants may pin besides the platform's default:
    /// one the platform has vetted (and mirrored, with --component-charts-url). Any other pin is refused.
    #[arg(long = "tenant-strimzi-version", value_parser = parse_strimzi_version)]
    tenant_strimzi_versions: Vec<String>,
    /// The Pod Security Standard a namespace tenant's Kafka namespace enforces: `restricted`, which the shared
    /// cluster's Strimzi operator must meet (STRIMZI_POD_SECURITY_PROVIDER_CLASS=restricted), or `baseline`,
    /// the named opt-out for one that cannot.
    #[arg(long, default_value = "restricted", value_parser = parse_pod_security)]
    namespace_pod_security: render::PodSecurity,
    /// The ARN of the KMS key each tenant's EBS volumes (brokers' and machines' root volumes) are encrypted
    /// with, `{tenant}` replaced by its id: `arn:aws:kms:REGION:ACCOUNT:alias/kaas-{tenant}`. The keys are the
    /// platform's to create (docs/controller/aws-account.md). Unset: the account's default EBS key.
    #[arg(long, value_parser = parse_kms_key_template)]
    volume_kms_key_template: Option<String>,
}

impl PlatformArgs {
    pub fn platform(self) -> anyhow::Result<render::Platform> {
        anyhow::ensure!(
            self.vpc_ipam_pool.is_none() || !self.tenant_vpc_cidrs.is_empty(),
            "--tenant-vpc-cidr: required with --vpc-ipam-pool (the pool's CIDRs): kaas-proxy dials a tenant's \
             brokers only inside them"
        );
        let mut zones = render::Zones::new();
        for (region, three) in self.zones {
            anyhow::ensure!(!zones.contains_key(&region), "--zones: region {region} given twice");
            zones.insert(region, three);
        }
        Ok(render::Platform {
            images: render::ImageLookup {
                org: self.image_lookup_org,
                format: self.image_lookup_format,
                base_os: self.image_lookup_base_os,
            },
            ssh_key_name: self.ssh_key_name,
            zones,
            network: render::Network {
                vpc_ipam_pool: self.vpc_ipam_pool,
                vpc_netmask_length: self.vpc_netmask_length,
                proxy_cidrs: self.proxy_cidrs,
                tenant_vpc_cidrs: self.tenant_vpc_cidrs,
            },
            component_charts: self.component_charts_url,
            cluster_bootstrap: self.cluster_bootstrap_template,
            namespace_bootstrap: self.namespace_bootstrap_template,
            controller_user: self.controller_user,
            namespace_quota: render::NamespaceQuota {
                max_brokers: self.namespace_max_brokers,
                max_storage_gib: self.namespace_max_storage_gib,
            },
            offered: render::Offered {
                kubernetes: self.tenant_kubernetes_versions,
                strimzi: self.tenant_strimzi_versions,
            },
            namespace_pod_security: self.namespace_pod_security,
            volume_kms_key: self.volume_kms_key_template,
            ..Default::default()
        })
    }
}

/// An AWS account id: CAPA puts the image owner into DescribeImages' `owner-id` filter (v2.11.1
/// pkg/cloud/services/ec2/ami.go:208), which takes account ids only.
fn parse_account(s: &str) -> Result<String, String> {
    match s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        true => Ok(s.to_owned()),
        false => Err(format!("{s:?} is not an AWS account id (12 digits)")),
    }
}

/// A Kubernetes version as tenants pin them: `v1.MINOR.PATCH`, 1.34 or newer (the CRD's rule).
fn parse_kubernetes_version(s: &str) -> Result<String, String> {
    match kaas_controller::crd::is_kubernetes_version(s) {
        true => Ok(s.to_owned()),
        false => Err(format!("{s:?} is not a Kubernetes version like v1.35.1, 1.34 or newer")),
    }
}

/// A KMS key ARN naming the tenant: one key for all would let any tenant's volumes be read with every other's.
fn parse_kms_key_template(s: &str) -> Result<String, String> {
    let arn = s.split(':').collect::<Vec<_>>();
    if !(arn.len() == 6 && arn[0] == "arn" && arn[1].starts_with("aws") && arn[2] == "kms") {
        return Err(format!("{s:?} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:alias/kaas-{{tenant}})"));
    }
    if !s.contains(kaas_controller::names::TENANT_PLACEHOLDER) {
        return Err(format!("{s:?} names no {{tenant}}: every tenant would share one key"));
    }
    Ok(s.to_owned())
}

/// `restricted` or `baseline`.
fn parse_pod_security(s: &str) -> Result<render::PodSecurity, String> {
    match s {
        "restricted" => Ok(render::PodSecurity::Restricted),
        "baseline" => Ok(render::PodSecurity::Baseline),
        _ => Err(format!("{s:?} is not a Pod Security Standard kaas-controller sets (restricted, baseline)")),
    }
}

/// A Strimzi release the controller knows the Kafka versions of (`strimzi::versions`).
fn parse_strimzi_version(s: &str) -> Result<String, String> {
    match kaas_controller::strimzi::versions::release(s) {
        Some(_) => Ok(s.to_owned()),
        None => {
            let known: Vec<&str> =
                kaas_controller::strimzi::versions::RELEASES.iter().map(|r| r.strimzi).collect();
            Err(format!("{s:?} is not a Strimzi release this controller knows ({})", known.join(", ")))
        }
    }
}

/// `REGION=ZONE,ZONE,ZONE`: three distinct zones of the region, in name order.
fn parse_zones(s: &str) -> Result<(String, [String; 3]), String> {
    let (region, list) = s.split_once('=').ok_or(format!("{s:?} is not REGION=ZONE,ZONE,ZONE"))?;
    let mut zones: Vec<String> = list.split(',').map(|z| z.trim().to_owned()).collect();
    zones.sort();
    zones.dedup();
    if let Some(z) = zones.iter().find(|z| z.len() <= region.len() || !z.starts_with(region)) {
        return Err(format!("{s:?}: {z:?} is not a zone of region {region:?}"));
    }
    let three: [String; 3] =
        zones.try_into().map_err(|_| format!("{s:?}: three distinct zones, one per broker rack"))?;
    Ok((region.to_owned(), three))
}

/// An IPv4 or IPv6 CIDR (`10.0.0.0/16`), as AWS takes it.
fn parse_cidr(s: &str) -> Result<String, String> {
    s.parse::<kaas_route::Cidr>().map(|_| s.to_owned())
}
