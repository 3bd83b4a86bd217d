//! The `kaas-controller` binary. Without a cluster: `crd` prints the KafkaTenant CRD, `render -f tenant.yaml`
//! prints a tenant's manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kaas_controller::crd::KafkaTenant;
use kaas_controller::render;
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
        Command::Render { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let tenant: KafkaTenant = serde_norway::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a KafkaTenant: {e}", file.display()))?;
            let manifests = render::render(&tenant, &render::Platform::default())
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            print!("{}", render::to_yaml(&manifests)?);
        }
    }
    Ok(())
}
