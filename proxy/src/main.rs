//! The `kaas-proxy` binary: reads the configuration, serves until SIGINT/SIGTERM, drains, exits; SIGHUP reloads.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kaas_proxy::{config, Server, Shutdown};
use tokio::sync::Notify;

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
    /// Seconds open sessions get to close between requests after the listener closed.
    #[arg(long, default_value_t = 30)]
    drain_timeout_seconds: u64,
    /// Seconds between a shutdown signal (readiness goes false at once) and the listener closing, for load
    /// balancers to take the pod out first.
    #[arg(long, default_value_t = 5)]
    shutdown_delay_seconds: u64,
    /// Seconds between checks of the configuration and the files it names for changes (0: only on SIGHUP).
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
    // A tenants_file not there yet (kaas-controller has not published any route) is no reason not to start;
    // its tenants are taken when it appears. Reloads still refuse a file that went away.
    let settings = match config::load_with(&args.config, config::Missing::Empty) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("invalid configuration {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = &settings.tenants_file_missing {
        tracing::warn!(file = %file.display(), "tenants_file not there yet: starting without its tenants");
    }
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
    let proxy = match Server::bind(&settings).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kaas-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let every = (args.reload_seconds > 0).then(|| Duration::from_secs(args.reload_seconds));
    let (path, reloader, now) = (args.config.clone(), proxy.reloader(), Arc::new(Notify::new()));
    tokio::spawn(reload_on_sighup(now.clone()));
    tokio::spawn(async move { kaas_proxy::reload::watch(&path, every, now, reloader).await });
    let stop = Shutdown {
        delay: Duration::from_secs(args.shutdown_delay_seconds),
        drain: Duration::from_secs(args.drain_timeout_seconds),
    };
    proxy.run(shutdown_signal(), stop).await;
    ExitCode::SUCCESS
}

/// Each SIGHUP asks the reload task to reload at once.
async fn reload_on_sighup(now: Arc<Notify>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            now.notify_one();
        }
    }
    #[cfg(not(unix))]
    drop(now);
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
