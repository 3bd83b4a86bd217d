//! The `kaas-controller` binary. Without a cluster: `crd` prints the KafkaTenant CRD, `render -f tenant.yaml`
//! prints a tenant's manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kaas_controller::crd::KafkaTenant;
use kaas_controller::{gitops, render};
use kube::CustomResourceExt;

#[derive(Debug, Parser)]
#[command(version, about = "KafkaTenant controller: sizing, Cluster API + Flux manifests, GitOps")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the KafkaTenant CustomResourceDefinition (YAML).
    Crd,
    /// Print the manifests of the tenant in FILE (YAML, one KafkaTenant).
    Render {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Render every tenant file (*.yaml) in DIR and commit each to tenants/<tenant>/ of the repository.
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
    },
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
        Command::Render { file } => print!("{}", render_file(&file)?.1),
        Command::Sync { repo, remote, branch, dir } => {
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
                match render_file(&file).and_then(|(tenant, yaml)| {
                    let name = tenant.metadata.name.clone().unwrap_or_default();
                    let msg = gitops::message(&name, tenant.metadata.generation);
                    Ok((name, repo.write_tenant_named(&tenant, gitops::tenant_files(yaml), &msg)?))
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

/// Reads, validates and renders one tenant file.
fn render_file(file: &std::path::Path) -> anyhow::Result<(KafkaTenant, String)> {
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let tenant: KafkaTenant = serde_norway::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a KafkaTenant: {e}", file.display()))?;
    let manifests = render::render(&tenant, &render::Platform::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok((tenant, render::to_yaml(&manifests)?))
}
