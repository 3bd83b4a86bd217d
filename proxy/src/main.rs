//! The `kaas-proxy` binary: reads the configuration, serves until SIGINT/SIGTERM, drains, exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kaas_proxy::{config, Proxy};

/// Kafka-protocol-aware TLS ingress and tenant router: one TLS port for every tenant, tenant chosen by SNI.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// YAML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the configuration, report every error, and exit.
    #[arg(long)]
    check: bool,
    /// Seconds to let open connections finish after a shutdown signal.
    #[arg(long, default_value_t = 30)]
    drain_timeout_seconds: u64,
    /// Seconds between checks of the configuration and tenants_file for changes (0: never reload).
    #[arg(long, default_value_t = 5)]
    reload_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // One crypto provider for the process, chosen explicitly (builders also get it passed in).
    if rustls::crypto::ring::default_provider().install_default().is_err() {
        tracing::debug!("a crypto provider was already installed");
    }
    let settings = match config::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("invalid configuration {e}");
            return ExitCode::from(2);
        }
    };
    settings.warn_skipped();
    if args.check {
        println!(
            "{}: ok ({} tenants, {} left out)",
            args.config.display(),
            settings.tenants.len(),
            settings.skipped.len()
        );
        return ExitCode::SUCCESS;
    }
    let proxy = match Proxy::bind(&settings).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kaas-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.reload_seconds > 0 {
        let (path, every, reloader) =
            (args.config.clone(), Duration::from_secs(args.reload_seconds), proxy.reloader());
        tokio::spawn(async move { kaas_proxy::reload::watch(&path, every, reloader).await });
    }
    proxy.run(shutdown_signal(), Duration::from_secs(args.drain_timeout_seconds)).await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
