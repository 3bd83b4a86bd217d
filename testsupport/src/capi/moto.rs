//! moto, the AWS emulator CAPA's calls go to: started from the venv `scripts/install-prereqs.sh` makes
//! (`~/.cache/kaas/moto/venv`) through `testsupport/moto/serve.py` (moto's server with two answers made as AWS
//! makes them), seeded with what a platform's AWS account holds before any cluster exists (the AMIs its image
//! lookup finds, CAPA's instance profiles, a key pair only when asked), and read back with boto3
//! (`testsupport/moto/aws.py`) as a [`Snapshot`].
//!
//! What moto cannot judge, and so no test here may rely on it refusing: a RunInstances naming a key pair or an
//! image that does not exist is accepted (AWS refuses both). Tests judge images by seeding only the platform's
//! (CAPA's lookup then fails where AWS's would) and key pairs by what CAPA asked for ([`Instance::key_name`]).
//!
//! Neighbours: [`super`] starts this before CAPA and hands CAPA [`Moto::endpoint`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;

use crate::{free_port, repo_root, wait_for_port};

/// The instance profiles `clusterawsadm` creates in a platform's account and the rendered AWSMachineTemplates
/// name: `control-plane` and `nodes` with its suffix (cluster-api-provider-aws v2.13.0,
/// `iam/api/v1beta1/types.go` line 80, `DefaultNameSuffix`). CAPA's RunInstances fails on a profile the
/// account lacks (moto answers `NoSuchEntity`).
pub const INSTANCE_PROFILES: [&str; 2] =
    ["control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io"];

/// Longest a boto3 query may take before it is killed.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// An image the platform's account publishes, as CAPA's lookup finds it: owner `org`, named by CAPA's default
/// format `capa-ami-{base_os}-?{k8s version}-*` (cluster-api-provider-aws v2.13.0,
/// `pkg/cloud/services/ec2/ami.go` line 77) unless `name_format` is given (the same Go template fields), with
/// `architecture` (`x86_64` or `arm64`, as EC2 names them), hvm and available (the lookup filters on both).
#[derive(Debug, Clone)]
pub struct Image {
    pub org: String,
    pub base_os: String,
    pub kubernetes_version: String,
    pub architecture: String,
    pub name_format: Option<String>,
}

impl Image {
    /// The name CAPA's lookup pattern matches: the template's fields filled in, its `?` a `v` (the lookup
    /// trims the version's `v` and lets `?` stand for it) and `*` a build stamp.
    pub fn name(&self) -> String {
        let format = self.name_format.as_deref().unwrap_or("capa-ami-{{.BaseOS}}-?{{.K8sVersion}}-*");
        format
            .replace("{{.BaseOS}}", &self.base_os)
            .replace("{{.K8sVersion}}", self.kubernetes_version.trim_start_matches('v'))
            .replace('?', "v")
            .replace('*', "20261201")
    }
}

/// What the emulated account holds before any cluster.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    pub images: Vec<Image>,
    /// EC2 key pairs; none by default, as a platform that sets no key name has none.
    pub key_pairs: Vec<String>,
}

/// moto's server, running; killed on `Drop`.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    python: PathBuf,
    child: Child,
    log: PathBuf,
    /// Image ids by image name, as seeded.
    pub images: BTreeMap<String, String>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's venv.
pub fn python() -> anyhow::Result<PathBuf> {
    let cache = std::env::var_os("KAAS_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/kaas")
    });
    let python = cache.join("moto/venv/bin/python");
    anyhow::ensure!(python.exists(), "{} missing: run scripts/install-prereqs.sh", python.display());
    Ok(python)
}

impl Moto {
    /// Starts moto with `seed`'s images (MOTO_AMIS_PATH replaces moto's own list, so the lookup sees only the
    /// platform's) and creates CAPA's instance profiles and `seed`'s key pairs in `region`.
    pub fn start(dir: &Path, region: &str, seed: &Seed) -> anyhow::Result<Moto> {
        let python = python()?;
        let mut images = BTreeMap::new();
        let amis: Vec<serde_json::Value> = seed
            .images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let id = format!("ami-0ca9a0000000{i:05x}");
                images.insert(image.name(), id.clone());
                serde_json::json!({
                    "ami_id": id, "name": image.name(), "description": image.name(), "owner_id": image.org,
                    "public": true, "virtualization_type": "hvm", "architecture": image.architecture,
                    "state": "available", "platform": null, "image_type": "machine", "hypervisor": "xen",
                    "root_device_name": "/dev/sda1", "root_device_type": "ebs", "sriov": "simple",
                    "creation_date": "2026-12-01T00:00:00.000Z",
                })
            })
            .collect();
        let amis_path = dir.join("amis.json");
        std::fs::write(&amis_path, serde_json::to_vec_pretty(&amis)?)?;
        let port = free_port();
        let log = dir.join("moto.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&python)
            .arg(repo_root().join("testsupport/moto/serve.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_AMIS_PATH", &amis_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("start moto")?;
        let moto = Moto { endpoint: format!("http://127.0.0.1:{port}"), python, child, log, images };
        wait_for_port(port, Duration::from_secs(30)).with_context(|| moto.logs())?;
        let mut profiles = vec!["instance-profiles"];
        profiles.extend(INSTANCE_PROFILES);
        moto.aws(region, &profiles)?;
        for key in &seed.key_pairs {
            moto.aws(region, &["key-pair", key])?;
        }
        Ok(moto)
    }

    /// `http://127.0.0.1:<port>`: every service on one port.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Everything CAPA builds that the tests look at, in `region`.
    pub fn snapshot(&self, region: &str) -> anyhow::Result<Snapshot> {
        let json = self.aws(region, &["snapshot"])?;
        serde_json::from_str(&json).with_context(|| format!("moto snapshot: {json}"))
    }

    /// The last lines of moto's log, for a failure message.
    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Answers other than 200, and tracebacks: each request is logged.
        let lines: Vec<&str> = text.lines().filter(|l| !l.ends_with("\" 200 -")).collect();
        format!(
            "--- moto (all but its 200s, last 30)\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// Runs `aws.py endpoint region args`, killed after [`QUERY_TIMEOUT`]; its standard output.
    fn aws(&self, region: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut child = Command::new(&self.python)
            .arg(repo_root().join("testsupport/moto/aws.py"))
            .args([self.endpoint.as_str(), region])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start testsupport/moto/aws.py")?;
        let deadline = Instant::now() + QUERY_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("aws.py {args:?} took over {QUERY_TIMEOUT:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "aws.py {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// What moto holds in one region (written by `aws.py snapshot`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub vpcs: Vec<Vpc>,
    pub security_groups: Vec<SecurityGroup>,
    pub subnets: Vec<Subnet>,
    pub instances: Vec<Instance>,
    pub images: Vec<SeededImage>,
    pub load_balancers: Vec<LoadBalancer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub id: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub ingress: Vec<Rule>,
}

/// One ingress permission: ports absent for protocols without ports (`-1`, or a number such as 4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub source_groups: Vec<String>,
    pub cidrs: Vec<String>,
}

impl std::fmt::Display for Rule {
    /// `udp 8472 from [sg-1, sg-2]`, `4 from [sg-1]`, `tcp 30000-32767 from [0.0.0.0/0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.protocol)?;
        match (self.from_port, self.to_port) {
            (Some(from), Some(to)) if from == to => write!(f, " {from}")?,
            (Some(from), Some(to)) => write!(f, " {from}-{to}")?,
            _ => {}
        }
        let sources: Vec<&str> = self.source_groups.iter().chain(&self.cidrs).map(String::as_str).collect();
        write!(f, " from [{}]", sources.join(", "))
    }
}

impl Rule {
    /// Whether this rule admits `protocol` (`tcp`, `udp`) on `port` from group `source`.
    pub fn admits(&self, protocol: &str, port: i32, source: &str) -> bool {
        let proto = self.protocol == "-1" || self.protocol == protocol;
        let ports = match (self.from_port, self.to_port) {
            (Some(from), Some(to)) => (from..=to).contains(&port) || (from == -1 && to == -1),
            _ => true,
        };
        proto && ports && self.source_groups.iter().any(|g| g == source)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub zone: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub id: String,
    /// EC2's state name: `pending`, `running`, `terminated`, ...
    pub state: String,
    pub instance_type: String,
    pub image: String,
    /// The key pair it was launched with; `None` when launched with none.
    pub key_name: Option<String>,
    pub zone: String,
    pub subnet: Option<String>,
    /// EC2's `MetadataOptions` as described (`HttpTokens`, `HttpPutResponseHopLimit`, ...).
    pub metadata_options: serde_json::Value,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeededImage {
    pub id: String,
    pub name: String,
    /// The account that published it.
    pub owner: Option<String>,
    pub architecture: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub name: String,
    /// `classic`, `network` or `application`.
    pub kind: String,
    /// `internet-facing` or `internal`.
    pub scheme: Option<String>,
}

impl Snapshot {
    /// The instances tagged as cluster `cluster`'s (CAPA tags every resource it owns so), not terminated.
    pub fn live_instances(&self, cluster: &str) -> Vec<&Instance> {
        let tag = format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{cluster}");
        self.instances.iter().filter(|i| i.tags.contains_key(&tag) && i.state != "terminated").collect()
    }

    /// The VPCs tagged as cluster `cluster`'s (CAPA's, which it deletes with the cluster).
    pub fn vpcs(&self, cluster: &str) -> Vec<&Vpc> {
        let tag = format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{cluster}");
        self.vpcs.iter().filter(|v| v.tags.contains_key(&tag)).collect()
    }

    /// Cluster `cluster`'s security group of `role` (CAPA's `sigs.k8s.io/cluster-api-provider-aws/role` tag:
    /// `node`, `controlplane`, `lb`, `apiserver-lb`, `bastion`).
    pub fn security_group(&self, cluster: &str, role: &str) -> Option<&SecurityGroup> {
        let tag = format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{cluster}");
        self.security_groups.iter().find(|g| {
            g.tags.contains_key(&tag)
                && g.tags.get("sigs.k8s.io/cluster-api-provider-aws/role").map(String::as_str) == Some(role)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// boto3 calls CAPA makes where moto 5.2.6 alone answers otherwise than AWS (testsupport/moto/serve.py).
    const AS_AWS: &str = r#"
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
ec2, elbv2 = boto3.client("ec2", **kw), boto3.client("elbv2", **kw)
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
sg = ec2.create_security_group(GroupName="n", Description="n", VpcId=vpc)["GroupId"]
ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{"IpProtocol": "4", "UserIdGroupPairs": [{"GroupId": sg}]}])
rule = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"][0]
assert rule["IpProtocol"] == "4" and "FromPort" not in rule, rule
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
lb = elbv2.create_load_balancer(Name="n", Type="network", Subnets=[subnet])["LoadBalancers"][0]["LoadBalancerArn"]
assert elbv2.describe_target_groups(LoadBalancerArn=lb)["TargetGroups"] == []
"#;

    #[test]
    fn the_launcher_answers_portless_rules_and_empty_target_groups_as_aws_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let moto = Moto::start(dir.path(), "eu-west-1", &Seed::default()).expect("moto");
        let out = Command::new(python().expect("moto venv"))
            .args(["-c", AS_AWS, moto.endpoint()])
            .output()
            .expect("run python");
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), moto.logs());
        let snapshot = moto.snapshot("eu-west-1").expect("snapshot");
        let group = snapshot.security_groups.iter().find(|g| g.name == "n").expect("the group");
        assert_eq!(group.ingress[0].to_string(), format!("4 from [{}]", group.id));
    }
}
