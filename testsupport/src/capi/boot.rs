//! What an instance does when it boots, which moto's instances cannot: moto runs EC2 instances that never
//! execute their user data, so no kubeadm and no kubelet come up on them. [`Boot`] does their part, driven only
//! by what the real controllers did: for each of a cluster's Machines whose instance (the Machine's
//! `spec.providerID`, `aws:///<zone>/<instance-id>`, set by CAPA) moto reports `running`, it does in the
//! workload cluster (a second [`ControlPlane`], which `<cluster>-kubeconfig` points at) what that instance's
//! kubelet and kubeadm would:
//!
//! - the kubelet registers its Node: named by the instance's private DNS name (the Machine's `InternalDNS`
//!   address, kubeadm's default node name being the host name), `spec.providerID` (how Cluster API matches a
//!   Node to its Machine), address `127.0.0.1`, its kubelet port (this module's `tests/k8s/kubelet-portforward`
//!   process), `Ready`; a control-plane Node with kubeadm's label `node-role.kubernetes.io/control-plane`;
//! - on a control-plane instance, kubeadm writes the static pods, which the kubelet mirrors: `etcd-<node>`,
//!   `kube-apiserver-<node>`, `kube-controller-manager-<node>`, `kube-scheduler-<node>` in `kube-system`,
//!   Running and Ready (cluster-api v1.13.4 reads them so,
//!   `controlplane/kubeadm/internal/workload_cluster_conditions.go` lines 763–870); the first one also
//!   `kube-system/kubeadm-config` as `kubeadm init` does (`controllers/status.go` lines 172–204: how the
//!   control plane counts as initialized);
//! - each control-plane instance runs a REAL etcd member named after its Node (the harness's etcd build),
//!   serving client TLS with a certificate of the cluster's etcd CA (`<cluster>-etcd`, which the
//!   control-plane provider made; issued with `openssl`, as the CA key is PKCS#1 RSA) and requiring client
//!   certificates of that CA, as kubeadm's etcd does; the first initialises the etcd cluster, later
//!   ones join through the member-add API and start with `--initial-cluster-state existing`, as `kubeadm join`
//!   does. The provider reads the member list and alarms through the workload API server's
//!   `pods/portforward` to `etcd-<node>:2379` (`etcd_client_generator.go` line 52) and the API server's
//!   certificate through `kube-apiserver-<node>:6443` (`workload_cluster.go` line 255): the API server
//!   forwards both to the Node's kubelet, here `tests/k8s/kubelet-portforward`, which maps (pod, port) to the
//!   member's client port and to the workload API server.
//!
//! When an instance is no longer running, its etcd member stops and its Node and mirror pods go (if Cluster
//! API has not deleted the Node already). What this does not simulate: the workload API server keeps its data
//! in its own etcd, not in these members (they hold the membership Cluster API inspects); no container runs.
//!
//! Neighbours: [`super::ClusterApi`] (the managers and moto this follows), [`crate::apiserver`] (the etcd
//! binary; the workload control plane, whose CA signs the kubelet's serving certificate and whose API server
//! verifies it when it proxies a port-forward).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use super::moto::Moto;
use crate::apiserver::{binary, spawn, ControlPlane};
use crate::{free_port, stop, wait_for_port};

/// The static pods kubeadm writes on a control-plane node (kubeadm's manifests' names; the provider reads
/// `<component>-<node>`, `workload_cluster_conditions.go` `staticPodName`).
const STATIC_PODS: [&str; 4] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];
/// Cluster API's label of a control-plane Machine.
const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
/// How often the Machines and moto's instances are read.
const EVERY: Duration = Duration::from_secs(1);

/// The instances of one cluster, booted as they come up; everything stops on `Drop`.
#[derive(Debug)]
pub struct Boot {
    task: tokio::task::JoinHandle<()>,
    kubelet: Child,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
}

impl Drop for Boot {
    fn drop(&mut self) {
        self.task.abort();
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut children: Vec<&mut Child> = state.members.values_mut().map(|m| &mut m.child).collect();
        children.push(&mut self.kubelet);
        stop(&mut children, Duration::from_secs(5));
    }
}

/// A running etcd member.
#[derive(Debug)]
struct Member {
    peer_url: String,
    /// Client TLS, with client-certificate authentication: what `etcd-<node>:2379` forwards to.
    client_port: u16,
    /// Plain HTTP on loopback: the bridge's own door for the member-add call (client-certificate
    /// authentication applies to the TLS listener, which the provider uses).
    admin_port: u16,
    child: Child,
}

#[derive(Debug, Default)]
struct State {
    /// Booted instances: instance id → node name.
    booted: BTreeMap<String, String>,
    /// etcd members by node name, in the order they joined.
    members: BTreeMap<String, Member>,
    /// `<namespace>/<pod> <port> <address>` lines of the kubelet's routes file.
    routes: BTreeMap<String, String>,
    /// The last error a pass met (it is retried at the next), for failure texts.
    last_error: String,
    /// What was booted and stopped, in order.
    events: Vec<String>,
}

/// What a pass needs.
struct Ctx {
    management: Client,
    workload: Client,
    moto: Arc<Moto>,
    region: String,
    cluster: String,
    namespace: String,
    /// The workload API server's `host:port`, where `kube-apiserver-<node>:6443` forwards to.
    apiserver: String,
    kubelet_port: u16,
    routes: PathBuf,
    dir: PathBuf,
}

impl Boot {
    /// Starts the kubelet's port-forward endpoint and follows cluster `cluster`'s Machines in `namespace` of
    /// the management cluster and their instances in moto (`region`), booting each onto `workload`.
    pub async fn start(
        management: Client,
        moto: Arc<Moto>,
        region: &str,
        cluster: &str,
        namespace: &str,
        workload: &ControlPlane,
    ) -> anyhow::Result<Boot> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        // The kubelet's serving certificate, from the workload cluster's CA, which its API server checks
        // kubelets against; for the address its Nodes give (127.0.0.1).
        let (cert, key) = workload.kubelet_certificate(&["127.0.0.1"])?;
        let tls = (d.join("tls.crt"), d.join("tls.key"));
        std::fs::write(&tls.0, cert)?;
        std::fs::write(&tls.1, key)?;
        let routes = d.join("routes");
        std::fs::write(&routes, "")?;
        let kubelet_port = free_port();
        let kubelet = spawn(
            Command::new(binary("kubelet-portforward")?).args([
                format!("--listen=127.0.0.1:{kubelet_port}"),
                format!("--tls-cert-file={}", tls.0.display()),
                format!("--tls-private-key-file={}", tls.1.display()),
                format!("--routes={}", routes.display()),
            ]),
            &d.join("kubelet.log"),
        )?;
        wait_for_port(kubelet_port, Duration::from_secs(10))?;
        let ctx = Ctx {
            management,
            workload: workload.admin().await?,
            moto,
            region: region.to_owned(),
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
            apiserver: workload.url.trim_start_matches("https://").to_owned(),
            kubelet_port,
            routes,
            dir: d.to_path_buf(),
        };
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = pass(&ctx, &shared).await {
                    tracing::debug!(error = format!("{e:#}"), "boot");
                    lock(&shared).last_error = format!("{e:#}");
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Ok(Boot { task, kubelet, state, dir })
    }

    /// The node names of the instances booted and not stopped, by instance id.
    pub fn booted(&self) -> BTreeMap<String, String> {
        lock(&self.state).booted.clone()
    }

    /// What was booted and stopped, the last error met, and the kubelet's log: for failure texts.
    pub fn report(&self) -> String {
        let state = lock(&self.state);
        let kubelet = std::fs::read_to_string(self.dir.path().join("kubelet.log")).unwrap_or_default();
        format!(
            "--- boot: {}\nlast error: {}\n--- kubelet-portforward\n{kubelet}",
            state.events.join("; "),
            state.last_error
        )
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One pass: boots the running instances not booted yet, stops the booted ones no longer running.
async fn pass(ctx: &Ctx, state: &Mutex<State>) -> anyhow::Result<()> {
    let machines = Api::<DynamicObject>::namespaced_with(
        ctx.management.clone(),
        &ctx.namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", "Machine")),
    );
    let selector = format!("cluster.x-k8s.io/cluster-name={}", ctx.cluster);
    let machines = machines.list(&ListParams::default().labels(&selector)).await?.items;
    // moto is asked (a Python process, about 0.6 s of a core) only while an instance may be coming or going:
    // a Machine's instance not booted yet, a Machine being deleted, a booted instance whose Machine is gone.
    let instances: Vec<&str> = machines.iter().filter_map(|m| instance_of(m).map(|(_, i)| i)).collect();
    let coming = instances.iter().any(|i| !lock(state).booted.contains_key(*i));
    let going = machines.iter().any(|m| m.metadata.deletion_timestamp.is_some())
        || lock(state).booted.keys().any(|i| !instances.contains(&i.as_str()));
    if !coming && !going {
        return Ok(());
    }
    let (moto, region) = (ctx.moto.clone(), ctx.region.clone());
    let snapshot = tokio::task::spawn_blocking(move || moto.snapshot(&region)).await??;
    let running: Vec<&str> =
        snapshot.instances.iter().filter(|i| i.state == "running").map(|i| i.id.as_str()).collect();

    for machine in &machines {
        let Some((provider_id, instance)) = instance_of(machine) else { continue };
        if !running.contains(&instance) || lock(state).booted.contains_key(instance) {
            continue;
        }
        // Booted only once CAPA reported the host name the node takes.
        let Some(node) = node_name(machine) else { continue };
        let version = machine.data["spec"]["version"].as_str().unwrap_or_default().to_owned();
        let control_plane = machine.labels().contains_key(CONTROL_PLANE_LABEL);
        register_node(ctx, &node, provider_id, &version, control_plane).await?;
        if control_plane {
            boot_control_plane(ctx, state, &node, &version).await?;
        }
        let mut s = lock(state);
        s.booted.insert(instance.to_owned(), node.clone());
        s.events.push(format!(
            "booted {instance} as {node}{}",
            if control_plane { " (control plane)" } else { "" }
        ));
    }

    let gone: Vec<(String, String)> = lock(state)
        .booted
        .iter()
        .filter(|(id, _)| !running.contains(&id.as_str()))
        .map(|(id, node)| (id.clone(), node.clone()))
        .collect();
    for (instance, node) in gone {
        halt(ctx, state, &node).await?;
        let mut s = lock(state);
        s.booted.remove(&instance);
        s.events.push(format!("stopped {instance} ({node})"));
    }
    Ok(())
}

/// The Machine's `spec.providerID` (`aws:///<zone>/<instance-id>`, set once CAPA launched its instance) and
/// the instance id in it.
fn instance_of(machine: &DynamicObject) -> Option<(&str, &str)> {
    let provider_id = machine.data["spec"]["providerID"].as_str()?;
    Some((provider_id, provider_id.rsplit('/').next()?))
}

/// The node name kubeadm would use: the host name, which on EC2 is the private DNS name CAPA reports as the
/// Machine's `InternalDNS` address.
fn node_name(machine: &DynamicObject) -> Option<String> {
    machine.data["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalDNS")
        .and_then(|a| a["address"].as_str())
        .map(str::to_lowercase)
}

/// The kubelet's registration: the Node, then its status (addresses, kubelet port, Ready).
async fn register_node(
    ctx: &Ctx,
    node: &str,
    provider_id: &str,
    version: &str,
    control_plane: bool,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(ctx.workload.clone());
    let mut labels = json!({ "kubernetes.io/hostname": node });
    let mut taints = json!([]);
    if control_plane {
        // kubeadm's label and taint of a control-plane node, which the control-plane provider checks
        // (`NodeKubeadmLabelsAndTaintsSet`).
        labels["node-role.kubernetes.io/control-plane"] = json!("");
        taints = json!([{ "key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule" }]);
    }
    let object = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": node, "labels": labels },
        "spec": { "providerID": provider_id, "taints": taints },
    });
    nodes.patch(node, &PatchParams::apply("kubelet").force(), &Patch::Apply(&object)).await?;
    let now = now();
    // The conditions a kubelet reports; Cluster API's NodeHealthy wants all four (cluster-api v1.13.4
    // `internal/controllers/machine/machine_controller_status.go` lines 440–464, `summarizeNodeConditions`).
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({ "type": type_, "status": status, "reason": reason, "message": reason,
            "lastHeartbeatTime": now, "lastTransitionTime": now })
    };
    let status = json!({ "status": {
        "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": ctx.kubelet_port } },
        "nodeInfo": { "kubeletVersion": version, "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
            "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "",
            "operatingSystem": "linux", "architecture": "" },
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
        ],
    }});
    nodes.patch_status(node, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// kubeadm's part on a control-plane instance: its etcd member, the routes to it and to the API server, the
/// mirror pods, and `kubeadm-config` on the first.
async fn boot_control_plane(
    ctx: &Ctx,
    state: &Mutex<State>,
    node: &str,
    version: &str,
) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(ctx.management.clone(), &ctx.namespace);
    let etcd_ca = secrets.get(&format!("{}-etcd", ctx.cluster)).await?.data.unwrap_or_default();
    for key in ["tls.crt", "tls.key"] {
        let value = etcd_ca.get(key).with_context(|| format!("<cluster>-etcd has no {key}"))?;
        std::fs::write(ctx.dir.join(format!("etcd-ca.{key}")), &value.0)?;
    }

    let first = lock(state).members.is_empty();
    if first {
        let config = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "kubeadm-config", "namespace": "kube-system" },
            "data": { "ClusterConfiguration": format!(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n") },
        });
        let maps: Api<ConfigMap> = Api::namespaced(ctx.workload.clone(), "kube-system");
        maps.patch("kubeadm-config", &PatchParams::apply("kubeadm"), &Patch::Apply(&config)).await?;
    }
    if !lock(state).members.contains_key(node) {
        let member = start_member(ctx, state, node).await?;
        lock(state).members.insert(node.to_owned(), member);
    }
    let client_port = lock(state).members.get(node).map(|m| m.client_port).unwrap_or_default();
    {
        let mut s = lock(state);
        s.routes.insert(format!("kube-system/etcd-{node} 2379"), format!("127.0.0.1:{client_port}"));
        s.routes.insert(format!("kube-system/kube-apiserver-{node} 6443"), ctx.apiserver.clone());
        let text: String = s.routes.iter().map(|(from, to)| format!("{from} {to}\n")).collect();
        std::fs::write(&ctx.routes, text)?;
    }
    let pods: Api<Pod> = Api::namespaced(ctx.workload.clone(), "kube-system");
    for component in STATIC_PODS {
        mirror_pod(&pods, component, node, version).await?;
    }
    Ok(())
}

/// Starts node `node`'s etcd member: the cluster's first, or added through a running member's member-add API.
async fn start_member(ctx: &Ctx, state: &Mutex<State>, node: &str) -> anyhow::Result<Member> {
    let (cert, key) = etcd_certificate(&ctx.dir, node)?;
    let (admin_port, client_port, peer_port) = (free_port(), free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let (existing, admin): (Vec<String>, Option<u16>) = {
        let s = lock(state);
        let existing = s.members.iter().map(|(name, m)| format!("{name}={}", m.peer_url)).collect();
        (existing, s.members.values().next().map(|m| m.admin_port))
    };
    let cluster_state = match admin {
        None => "new",
        Some(port) => {
            // etcd's gRPC gateway: `POST /v3/cluster/member/add` (etcd v3.6 api/etcdserverpb/rpc.proto).
            let body = json!({ "peerURLs": [peer_url] }).to_string();
            post(port, "/v3/cluster/member/add", &body).await?;
            "existing"
        }
    };
    let initial: Vec<String> = existing.into_iter().chain([format!("{node}={peer_url}")]).collect();
    let data = ctx.dir.join(format!("etcd-{node}"));
    let child = spawn(
        Command::new(binary("etcd")?).args([
            format!("--name={node}"),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls=https://127.0.0.1:{client_port},http://127.0.0.1:{admin_port}"),
            format!("--advertise-client-urls=https://127.0.0.1:{client_port}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={}", initial.join(",")),
            format!("--initial-cluster-state={cluster_state}"),
            format!("--cert-file={}", cert.display()),
            format!("--key-file={}", key.display()),
            "--client-cert-auth".to_owned(),
            format!("--trusted-ca-file={}", ctx.dir.join("etcd-ca.tls.crt").display()),
            "--unsafe-no-fsync".to_owned(),
            "--log-level=warn".to_owned(),
        ]),
        &ctx.dir.join(format!("etcd-{node}.log")),
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", admin_port)).await.is_err() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "etcd member {node} not listening after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Member { peer_url, client_port, admin_port, child })
}

/// Node `node`'s etcd certificate, signed by the cluster's etcd CA (`etcd-ca.tls.crt` and `.tls.key` in `dir`)
/// for serving and, as kubeadm's `etcd/server` certificate, as a client (etcd's gRPC gateway dials the member
/// with it): (certificate file, key file).
fn etcd_certificate(dir: &Path, node: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let file = |x: &str| dir.join(format!("etcd-{node}.{x}")).display().to_string();
    let (cert, key, csr, ext) = (file("crt"), file("key"), file("csr"), file("ext"));
    let ca = |x: &str| dir.join(format!("etcd-ca.tls.{x}")).display().to_string();
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:{node}\nextendedKeyUsage=serverAuth,clientAuth\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n"
        ),
    )?;
    let subject = format!("/CN={node}");
    let request = ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(&[&request[..], &["-subj", &subject, "-keyout", &key, "-out", &csr]].concat())?;
    let sign = ["x509", "-req", "-in", &csr, "-CA", &ca("crt"), "-CAkey", &ca("key"), "-CAcreateserial"];
    openssl(&[&sign[..], &["-days", "365", "-extfile", &ext, "-out", &cert]].concat())?;
    Ok((cert.into(), key.into()))
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl").args(args).output().context("run openssl")?;
    anyhow::ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// An HTTP/1.1 POST of JSON `body` to `127.0.0.1:port`; fails unless answered 200.
async fn post(port: u16, path: &str, body: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    anyhow::ensure!(answer.starts_with("HTTP/1.1 200"), "POST {path}: {answer}");
    Ok(answer)
}

/// The kubelet's mirror of kubeadm's static pod `component` on `node`, Running and Ready.
async fn mirror_pod(pods: &Api<Pod>, component: &str, node: &str, version: &str) -> anyhow::Result<()> {
    let name = format!("{component}-{node}");
    if pods.get_opt(&name).await?.is_none() {
        let image = match component {
            "etcd" => "registry.k8s.io/etcd:3.6.5-0".to_owned(),
            _ => format!("registry.k8s.io/{component}:{version}"),
        };
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "namespace": "kube-system",
                "labels": { "component": component, "tier": "control-plane" },
                "annotations": { "kubernetes.io/config.mirror": "kaas-e2e", "kubernetes.io/config.source": "file" } },
            "spec": { "nodeName": node, "hostNetwork": true, "priorityClassName": "system-node-critical",
                "containers": [{ "name": component, "image": image }] },
        });
        pods.create(&PostParams::default(), &serde_json::from_value(pod)?).await?;
    }
    let now = now();
    let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        .iter()
        .map(|t| json!({ "type": t, "status": "True", "lastTransitionTime": now }))
        .collect();
    let status = json!({ "status": { "phase": "Running", "conditions": conditions, "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1", "startTime": now,
        "containerStatuses": [{ "name": component, "ready": true, "restartCount": 0, "image": "", "imageID": "",
            "started": true, "state": { "running": { "startedAt": now } } }] } });
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// An instance stopped: its etcd member stops, its routes, mirror pods and Node go.
async fn halt(ctx: &Ctx, state: &Mutex<State>, node: &str) -> anyhow::Result<()> {
    let member = {
        let mut s = lock(state);
        s.routes.retain(|from, _| {
            !from.ends_with(&format!("-{node} 2379")) && !from.ends_with(&format!("-{node} 6443"))
        });
        let text: String = s.routes.iter().map(|(from, to)| format!("{from} {to}\n")).collect();
        std::fs::write(&ctx.routes, text)?;
        s.members.remove(node)
    };
    if let Some(mut member) = member {
        stop(&mut [&mut member.child], Duration::from_secs(5));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.workload.clone(), "kube-system");
    for component in STATIC_PODS {
        let _ = pods.delete(&format!("{component}-{node}"), &DeleteParams::default()).await;
    }
    let nodes: Api<Node> = Api::all(ctx.workload.clone());
    if nodes.get_opt(node).await?.is_some() {
        nodes.delete(node, &DeleteParams::default()).await?;
    }
    Ok(())
}

/// Now, as Kubernetes writes a time (RFC 3339, seconds).
fn now() -> Value {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::to_value(now).unwrap_or_default()
}
