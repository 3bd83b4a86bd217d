//! The `kaas-controller` binary. Without a cluster: `crd` prints the KafkaTenant CRD, `render -f tenant.yaml`
//! prints a tenant's manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kaas_controller::crd::KafkaTenant;
use kaas_controller::watched::{Cluster, HelmRelease};
use kaas_controller::{apis, gitops, names, reconcile, render};
use kube::{CustomResourceExt, ResourceExt};
use platform_flags::PlatformArgs;

mod platform_flags;

#[derive(Debug, Parser)]
#[command(version, about = "KafkaTenant controller: sizing, Cluster API + Flux manifests, GitOps")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Command {
    /// Print the KafkaTenant CustomResourceDefinition (YAML).
    Crd,
    /// Print the manifests of the tenant in FILE (YAML, one KafkaTenant).
    Render {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// Print the sizing of the tenant in FILE (or of the stated throughput and retention) with the limits that
    /// decided it and its monthly on-demand cost.
    Size {
        #[arg(short = 'f', long = "file", required_unless_present_all = ["ingress_mbps", "retention_hours"])]
        file: Option<PathBuf>,
        /// Produced into the cluster, MB/s (overrides the file's).
        #[arg(long = "ingress-mbps")]
        ingress_mbps: Option<u32>,
        /// Consumed out of it, MB/s, every consumer group counted (overrides the file's; default: the ingress).
        #[arg(long = "egress-mbps")]
        egress_mbps: Option<u32>,
        /// How long records are kept (overrides the file's).
        #[arg(long = "retention-hours")]
        retention_hours: Option<u32>,
        /// Copies of each partition (overrides the file's; default 3).
        #[arg(long = "replication-factor")]
        replication_factor: Option<u16>,
        /// `text` (default) or `json` (the `status.sizing` object).
        #[arg(long, value_enum, default_value_t = SizeOutput::Text)]
        output: SizeOutput,
    },
    /// Run the controller against the cluster in the current kubeconfig (or in-cluster configuration).
    Run {
        /// GitOps repository to clone and push to (credentials from the usual git configuration).
        #[arg(long, env = "KAAS_GITOPS_URL")]
        gitops_url: String,
        #[arg(long, env = "KAAS_GITOPS_BRANCH", default_value = "main")]
        gitops_branch: String,
        /// The Flux GitRepository (in flux-system) that holds the GitOps repository: each tenant's own Flux
        /// Kustomization reads its folder from it.
        #[arg(long, env = "KAAS_GITOPS_FLUX_SOURCE", default_value = gitops::FLUX_SOURCE)]
        gitops_flux_source: String,
        /// Where the controller keeps its clone.
        #[arg(long, default_value = "/var/lib/kaas-controller/gitops")]
        workdir: PathBuf,
        /// Namespace and name of the ConfigMap the proxy reads its routes from.
        #[arg(long, default_value = reconcile::ROUTES_NAMESPACE)]
        routes_namespace: String,
        #[arg(long, default_value = reconcile::ROUTES_CONFIG_MAP)]
        routes_config_map: String,
        /// Path, as the proxy sees it, of each tenant's client CA (`{tenant}` is replaced); when set, the
        /// published routes require client certificates signed by it, and the tenant's Strimzi CAs are copied
        /// into the proxy's upstream Secret (`/etc/kaas-proxy/upstream/{tenant}.clients-ca.crt` is the clients CA).
        #[arg(long)]
        client_ca_template: Option<String>,
        /// Path prefix, as the proxy sees it, of each tenant's upstream TLS material (`{tenant}` is replaced;
        /// files `<prefix>cluster-ca.crt`, `<prefix>clients-ca.crt` copied from Strimzi, and
        /// `<prefix>clients-ca-intermediate.{crt,key}`, an intermediate the controller issues from the clients CA
        /// and renews at half its 3-day life; the clients CA's key stays in the controller); when set, routes
        /// reach brokers over TLS and each client keeps its own identity there.
        #[arg(long, default_value = reconcile::UPSTREAM_FILES)]
        upstream_files_template: String,
        /// The named opt-in to publish routes that reach the brokers in plaintext (`upstream: { plaintext: true
        /// }`): for brokers without a TLS listener on a network the platform trusts. Without it every route is
        /// mutual TLS upstream.
        #[arg(long, conflicts_with = "upstream_files_template")]
        plaintext_upstream: bool,
        /// The address a tenant's clients are given (`status.bootstrap`): the proxy's name for the tenant and
        /// its port; `{tenant}` is replaced by the tenant id.
        #[arg(long, default_value = reconcile::CLIENT_ADDRESS)]
        client_address_template: String,
        /// Published routes have kaas-proxy order each tenant's certificate by ACME (`<tenant>.<domain>` and
        /// every broker's `b<id>` name); kaas-proxy must run its ACME client. Without it, the proxy's default
        /// certificate serves every tenant and must name each one.
        #[arg(long)]
        route_acme: bool,
        /// Address of the /metrics and /healthz endpoint.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_listen: std::net::SocketAddr,
        #[command(flatten)]
        election: Election,
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// Render every tenant file (*.yaml) in DIR and commit each to tenants/<namespace>/<name>/ of the repository.
    Sync {
        /// Work tree of the GitOps repository (with --remote: where the clone is kept).
        #[arg(long)]
        repo: PathBuf,
        /// Clone this remote into --repo and push every change to --branch.
        #[arg(long)]
        remote: Option<String>,
        #[arg(long, default_value = "main")]
        branch: String,
        #[arg(short = 'f', long = "dir")]
        dir: PathBuf,
        #[command(flatten)]
        platform: PlatformArgs,
    },
}

/// Leader election: replicas share one Lease and only its holder reconciles.
#[derive(Debug, clap::Args)]
struct Election {
    /// Namespace of the Lease (the controller's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kaas-system")]
    lease_namespace: String,
    #[arg(long, default_value = "kaas-controller")]
    lease_name: String,
    /// This replica's name in the Lease (default: the host name, which is the pod's name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long a leader that stopped renewing keeps the lease before another replica takes over.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    lease_duration_seconds: u64,
}

/// How `size` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SizeOutput {
    Text,
    Json,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaas-controller: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Crd => print!("{}", serde_norway::to_string(&KafkaTenant::crd())?),
        Command::Render { file, platform } => {
            print!("{}", render::to_yaml(&render_file(&file, &platform.platform()?)?.1)?)
        }
        Command::Size { file, ingress_mbps, egress_mbps, retention_hours, replication_factor, output } => {
            let overrides = (ingress_mbps, egress_mbps, retention_hours, replication_factor);
            print!("{}", size_command(file.as_deref(), overrides, output)?)
        }
        Command::Run {
            gitops_url,
            gitops_branch,
            gitops_flux_source,
            workdir,
            routes_namespace,
            routes_config_map,
            client_ca_template,
            route_acme,
            upstream_files_template,
            plaintext_upstream,
            client_address_template,
            metrics_listen,
            election,
            platform,
        } => {
            // The route source lives where kaas-proxy runs: the shared cluster's brokers admit it from there.
            let platform =
                render::Platform { proxy_namespace: routes_namespace.clone(), ..platform.platform()? };
            let repo = gitops::Repo::clone_remote(&gitops_url, &workdir, &gitops_branch)?
                .with_flux_source(&gitops_flux_source);
            let routes = reconcile::RouteSource {
                namespace: routes_namespace,
                config_map: routes_config_map,
                client_ca: client_ca_template,
                upstream_files: (!plaintext_upstream).then_some(upstream_files_template),
                client_address: client_address_template,
                acme: route_acme,
                ..Default::default()
            };
            tokio::runtime::Runtime::new()?.block_on(serve(
                repo,
                routes,
                platform,
                metrics_listen,
                election,
            ))?;
        }
        Command::Sync { repo, remote, branch, dir, platform } => {
            let platform = platform.platform()?;
            let repo = match remote {
                Some(url) => gitops::Repo::clone_remote(&url, &repo, &branch)?,
                None => gitops::Repo::local(&repo)?,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            let mut failed = 0;
            // A bad tenant is reported and skipped; every other tenant is still synced.
            for file in files {
                match render_file(&file, &platform).and_then(|(tenant, manifests)| {
                    let name = names::folder(&tenant);
                    let msg = gitops::message(&name, tenant.metadata.generation);
                    let yaml = render::to_yaml(&manifests)?;
                    let derive = |committed: Option<&str>| {
                        gitops::tenant_files(render::yaml_over(&tenant, &manifests, &yaml, committed))
                    };
                    let outcome = repo.write_tenant_from(&name, &derive, &msg)?;
                    Ok((name, outcome))
                }) {
                    Ok((name, gitops::Outcome::Committed(sha))) => {
                        println!("{name}: committed {}", &sha[..12.min(sha.len())])
                    }
                    Ok((name, gitops::Outcome::Unchanged)) => println!("{name}: unchanged"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("kaas-controller: {e:#}");
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} tenant file(s) not synced");
        }
    }
    Ok(())
}

async fn serve(
    repo: gitops::Repo,
    routes: reconcile::RouteSource,
    platform: render::Platform,
    metrics_listen: std::net::SocketAddr,
    election: Election,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use kube::runtime::{events, watcher, Controller};
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // The workspace's one crypto provider, chosen explicitly for the API server connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await?;
    let identity = match election.identity {
        Some(id) => id,
        None => format!("{}-{}", hostname(), std::process::id()),
    };
    let reporter =
        events::Reporter { controller: "kaas-controller".into(), instance: Some(identity.clone()) };
    let ctx = std::sync::Arc::new(reconcile::Context {
        client: client.clone(),
        repo: std::sync::Arc::new(std::sync::Mutex::new(repo)),
        platform,
        routes,
        metrics: kaas_controller::metrics::Metrics::default(),
        events: Some(events::Recorder::new(client.clone(), reporter)),
        failures: reconcile::Failures::default(),
    });
    // Bound before the election, so a follower answers /healthz and shows kaas_controller_leader 0.
    let listener = tokio::net::TcpListener::bind(metrics_listen).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics and /healthz");
    let metrics = ctx.clone();
    tokio::spawn(kaas_controller::endpoint::serve(listener, move || metrics.metrics.encode()));
    let served = check_apis(&client, &ctx.metrics).await?;

    let duration = std::time::Duration::from_secs(election.lease_duration_seconds);
    let mut elector = kaas_lease::Elector::new(
        client.clone(),
        &election.lease_namespace,
        &election.lease_name,
        &identity,
        duration,
    );
    tokio::select! {
        () = elector.acquire() => {}
        () = shutdown_signal() => return Ok(()),
    }
    ctx.metrics.set_leader(true);
    // Checked by the leader only: a follower must not write, and a verb the role lacks fails here, loudly.
    if let Err(e) = reconcile::ensure_route_source(&client, &ctx.routes).await {
        let _ = elector.release().await;
        return Err(e.into());
    }
    let tenants = kube::Api::<KafkaTenant>::all(client.clone());
    let controller = Controller::new(tenants, watcher::Config::default());
    // A Cluster or HelmRelease changing (Cluster API or Flux reporting it up) reconciles its tenant at once,
    // rather than at the next requeue: they carry the tenant id label, mapped back through the tenant cache.
    let store = controller.store();
    let owner = move |labels: &std::collections::BTreeMap<String, String>| {
        let id = labels.get(names::TENANT_LABEL).cloned();
        store
            .state()
            .into_iter()
            .filter(move |t| id.as_deref() == Some(names::tenant_id_of(t).as_str()))
            .map(|t| kube::runtime::reflector::ObjectRef::from_obj(t.as_ref()))
    };
    let labelled = || watcher::Config::default().labels(names::TENANT_LABEL);
    let owner_of_cluster = owner.clone();
    // A kind not served is not watched: kube-runtime's `watches` has no back-off (kube-runtime 5.0.0
    // `controller/mod.rs`, `watches_with`), so its watcher would re-list a 404 without pause. Tenants are
    // re-read on their requeue meanwhile.
    let mut controller = controller;
    if served(apis::CLUSTER) {
        let api = kube::Api::<Cluster>::all(client.clone());
        controller = controller.watches(api, labelled(), move |c| owner_of_cluster(c.labels()));
    }
    if served(apis::HELM_RELEASE) {
        let api = kube::Api::<HelmRelease>::all(client);
        controller = controller.watches(api, labelled(), move |r| owner(r.labels()));
    }
    let controller = controller
        .graceful_shutdown_on(shutdown_signal())
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        });
    tokio::select! {
        () = controller => {
            // Shut down by a signal: hand the lease over now rather than after its duration.
            ctx.metrics.set_leader(false);
            if let Err(e) = elector.release().await {
                tracing::warn!(error = %e, "lease not released");
            }
            Ok(())
        }
        // Another replica may be reconciling already: stop at once (the pod restarts as a follower).
        lost = elector.hold() => Err(anyhow::anyhow!("stopped leading: {lost}")),
    }
}

/// Asks discovery for every kind the controller needs ([`apis::NEEDED`]), sets `kaas_controller_api_served`
/// for each, logs one warning naming those not served, and says which are. The tenants that need none of the
/// missing kinds are served as usual; the others are `Degraded` (`ApiNotServed`) until their CRDs are there.
async fn check_apis(
    client: &kube::Client,
    metrics: &kaas_controller::metrics::Metrics,
) -> anyhow::Result<impl Fn(apis::NeededApi) -> bool> {
    let checked = apis::check(client).await.map_err(|e| anyhow::anyhow!("API discovery: {e}"))?;
    for (api, served) in &checked {
        metrics.set_api_served(api, *served == apis::Served::Yes);
    }
    match apis::report(&checked) {
        Some(missing) => tracing::warn!(%missing, "APIs not served; tenants that need them are Degraded"),
        None => tracing::info!("every API the controller needs is served"),
    }
    Ok(move |api| checked.iter().any(|(a, s)| *a == api && *s == apis::Served::Yes))
}

/// SIGTERM (the kubelet's stop) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kaas-controller".into())
}

/// The `size` command: the tenant in `file` (or a default spec) with the flags' values over it, validated,
/// sized and printed.
fn size_command(
    file: Option<&std::path::Path>,
    (ingress, egress, retention, rf): (Option<u32>, Option<u32>, Option<u32>, Option<u16>),
    output: SizeOutput,
) -> anyhow::Result<String> {
    use kaas_controller::sizing;
    let (label, mut spec) = match file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let tenant: KafkaTenant = serde_norway::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a KafkaTenant: {e}", file.display()))?;
            (file.display().to_string(), tenant.spec)
        }
        // Without a file every figure comes from the flags; what they leave out takes the spec's defaults.
        None => (
            "flags".to_owned(),
            serde_norway::from_str("{throughput: {ingressMBps: 1, egressMBps: 1}, retentionHours: 1}")?,
        ),
    };
    if let Some(i) = ingress {
        spec.throughput.ingress_mbps = i;
        if file.is_none() && egress.is_none() {
            spec.throughput.egress_mbps = i;
        }
    }
    spec.throughput.egress_mbps = egress.unwrap_or(spec.throughput.egress_mbps);
    spec.retention_hours = retention.unwrap_or(spec.retention_hours);
    spec.replication_factor = rf.unwrap_or(spec.replication_factor);
    let errors = spec.validate();
    anyhow::ensure!(
        errors.is_empty(),
        "{label}: {}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    );
    let tenant = KafkaTenant::new("size", spec);
    let s = sizing::size(&render::demand(&tenant)).map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    Ok(match output {
        SizeOutput::Text => sizing::explain(&s),
        SizeOutput::Json => serde_json::to_string_pretty(&s)? + "\n",
    })
}

/// Reads, validates and renders one tenant file.
fn render_file(
    file: &std::path::Path,
    platform: &render::Platform,
) -> anyhow::Result<(KafkaTenant, Vec<serde_json::Value>)> {
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let tenant: KafkaTenant = serde_norway::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a KafkaTenant: {e}", file.display()))?;
    let manifests =
        render::render(&tenant, platform).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok((tenant, manifests))
}
