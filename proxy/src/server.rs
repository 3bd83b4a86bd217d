//! The server: one process's sockets and tasks. [`Server::bind`] binds the TLS port (and the admin and ACME
//! HTTP-01 ports when configured) and builds the first routes; [`Server::run`] starts the admin endpoint and the
//! ACME client, serves connections through [`crate::listener`], and on shutdown turns readiness off, keeps
//! accepting for `stop.delay`, then drains. Nothing here touches a connection's bytes.
//!
//! Neighbours: [`crate::listener`] (the TLS port and each connection's stages), [`crate::routes`] (the routing
//! state it builds and hands to [`Reloader`]), [`crate::admin`], [`crate::acme`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::acme::{AcmeCerts, AcmeMetrics, Manager};
use crate::admin::Health;
use crate::audit::Audit;
use crate::config::Settings;
use crate::listener::{Limits, Listener, ListenerMetrics, Services};
use crate::metrics::Metrics;
use crate::routes::{BuildError, Reloader, RouteMetrics, RouteSet, Routes};
use crate::upstream::Connector;
use crate::usage::Usage;

/// How long the last usage records and audit events get to reach their files when the proxy stops.
const WRITE_AT_EXIT: Duration = Duration::from_secs(5);

/// A bound proxy, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    admin: Option<TcpListener>,
    /// The probes' own endpoint (`probe_listen`).
    probes: Option<TcpListener>,
    health: Arc<Health>,
    routes: Arc<Routes>,
    metrics: Arc<Metrics>,
    route_metrics: RouteMetrics,
    /// ACME tenants' issued certificates and the pending challenge answers; `None` without ACME.
    acme_certs: Option<Arc<AcmeCerts>>,
    /// The ACME client, started with the proxy.
    acme: Option<Manager>,
    /// The ACME HTTP-01 listener (`acme.http01_listen`).
    http01: Option<TcpListener>,
    /// The usage recorder; `None` without a `usage` section.
    usage: Option<Arc<Usage>>,
    /// The audit trail; `None` without an `audit` section.
    audit: Option<Arc<Audit>>,
    /// The settings a reload cannot change, as the proxy started with them.
    started: crate::config::StartOnly,
}

/// Why [`Server::bind`] failed; the process cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The TLS or admin address cannot be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The routes could not be built from the loaded settings.
    #[error(transparent)]
    Routes(#[from] BuildError),
    /// The ACME store directory cannot be created.
    #[error(transparent)]
    AcmeStore(#[from] crate::acme::store::StoreError),
    /// The usage records' writer could not be started.
    #[error("usage records: cannot start the writer: {0}")]
    Usage(std::io::Error),
    /// The audit trail's writer could not be started.
    #[error("audit trail: cannot start the writer: {0}")]
    Audit(std::io::Error),
}

/// How the proxy stops after its shutdown signal.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// Time between readiness going false and the listener closing, for load balancers to take the proxy out.
    pub delay: Duration,
    /// Time open sessions get to close between requests before the remaining connections are dropped.
    pub drain: Duration,
}

async fn bind_optional(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, StartError> {
    match addr {
        Some(addr) => {
            Ok(Some(TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?))
        }
        None => Ok(None),
    }
}

impl Server {
    /// Binds the listening sockets. With port 0 the advertised port defaults to the port actually bound.
    pub async fn bind(settings: &Settings) -> Result<Server, StartError> {
        let socket = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Bind { addr: settings.listen, source })?;
        let bound =
            socket.local_addr().map_err(|source| StartError::Bind { addr: settings.listen, source })?;
        let admin = bind_optional(settings.admin_listen).await?;
        let probes = bind_optional(settings.probe_listen).await?;
        let advertised_port = match settings.advertised_port {
            0 => bound.port(),
            p => p,
        };
        let mut metrics = Metrics::new(settings.tenants.iter().map(|t| t.name.as_str()));
        // Subsystems register the metrics they own before the registry is shared.
        let acme_metrics = AcmeMetrics::register(metrics.registry());
        let route_metrics = RouteMetrics::register(metrics.registry());
        let listener_metrics = ListenerMetrics::register(metrics.registry());
        let usage = match &settings.usage {
            Some(u) => Some(Usage::start(u, metrics.registry()).map_err(StartError::Usage)?),
            None => None,
        };
        let audit = match &settings.audit {
            Some(a) => Some(Audit::start(a, metrics.registry()).map_err(StartError::Audit)?),
            None => None,
        };
        let metrics = Arc::new(metrics);
        route_metrics.applied(settings.tenants.len(), settings.skipped.len());
        metrics.certificates(settings.certificate_expiry());
        let acme_certs = settings.acme.as_ref().map(|_| Arc::new(AcmeCerts::default()));
        let http01 = bind_optional(settings.acme.as_ref().and_then(|a| a.http01_listen)).await?;
        let acme = match (&settings.acme, &acme_certs) {
            (Some(acme), Some(certs)) => {
                Some(Manager::new(acme.clone(), certs.clone(), (metrics.clone(), acme_metrics)).await?)
            }
            _ => None,
        };
        let routes = Arc::new(Routes::new(RouteSet::build(settings, None, acme_certs.as_ref())?));
        let connector = Connector {
            connect_timeout: settings.connect_timeout,
            max_frame_bytes: settings.max_frame_bytes,
            metrics: metrics.clone(),
        };
        let listener = Listener::new(
            socket,
            routes.clone(),
            connector,
            advertised_port,
            Limits::of(settings),
            (metrics.clone(), listener_metrics),
            Services { acme: acme_certs.clone(), usage: usage.clone(), audit: audit.clone() },
        );
        Ok(Server {
            listener,
            admin,
            probes,
            health: Arc::default(),
            routes,
            metrics,
            route_metrics,
            acme_certs,
            acme,
            http01,
            usage,
            audit,
            started: settings.start_only(),
        })
    }

    /// A handle that swaps in new routes while the proxy runs.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            started: self.started.clone(),
            routes: self.routes.clone(),
            metrics: self.metrics.clone(),
            route_metrics: self.route_metrics.clone(),
            acme: self.acme_certs.clone(),
        }
    }

    /// The address the TLS port is bound to (the real port when configured with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then readiness goes false at once, connections are still accepted for
    /// `stop.delay` (so a load balancer notices first), the listener closes, open sessions close between
    /// requests, and after at most `stop.drain` the remaining connections are dropped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>, stop: Shutdown) {
        let domain = self.routes.current().tenants.domain.clone();
        info!(listen = ?self.local_addr().ok(), %domain, "kaas-proxy serving");
        if let Some(admin) = self.admin.take() {
            tokio::spawn(crate::admin::serve(admin, self.health.clone(), self.metrics.clone()));
        }
        if let Some(probes) = self.probes.take() {
            tokio::spawn(crate::admin::serve_probes(probes, self.health.clone()));
        }
        // Readiness does not wait for certificates: a tenant whose order is pending is served the default
        // certificate meanwhile, and the other tenants are not held up by it.
        if let (Some(http01), Some(certs)) = (self.http01.take(), &self.acme_certs) {
            tokio::spawn(crate::acme::http01::serve(http01, certs.clone()));
        }
        if let Some(acme) = self.acme.take() {
            let routes = self.routes.clone();
            tokio::spawn(acme.run(move || {
                let current = routes.current();
                let tenants = current.acme_tenants().map(|(tenant, ids)| (tenant.to_owned(), ids.to_vec()));
                (current.tenants.domain.clone(), tenants.collect())
            }));
        }
        let windows = CancellationToken::new();
        let closing_windows =
            self.usage.as_ref().map(|usage| tokio::spawn(usage.clone().run(windows.clone())));
        self.health.ready.store(true, Ordering::SeqCst);
        self.listener.accept_until(shutdown).await;
        self.health.ready.store(false, Ordering::SeqCst);
        info!(
            delay_seconds = stop.delay.as_secs_f32(),
            "shutting down: not ready; still accepting meanwhile"
        );
        self.listener.accept_until(tokio::time::sleep(stop.delay)).await;
        if !self.listener.drain(stop.drain).await {
            warn!("drain timeout; closed the remaining connections");
            if self.usage.is_some() {
                warn!(
                    "usage records: the sessions still open at the drain timeout are counted up to now only"
                );
            }
        }
        // The sessions have ended (their meters with them): the open window is complete. The window timer is
        // stopped first, so the last window is closed once.
        windows.cancel();
        if let Some(task) = closing_windows {
            let _ = task.await;
        }
        if let Some(usage) = &self.usage {
            usage.finish(WRITE_AT_EXIT).await;
        }
        if let Some(audit) = &self.audit {
            audit.finish(WRITE_AT_EXIT).await;
        }
    }
}
