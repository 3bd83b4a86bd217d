//! Listener: the one TLS port. Accepts sockets and runs each connection's way through the proxy:
//! ClientHello → route → (broker address) → handshake → upstream connection → session.
//!
//! A refused connection is logged once, with the peer and the reason, and never opens an upstream connection.
//! One connection's failure never touches another's.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::admin::Health;
use crate::config::Settings;
use crate::kafka::rewrite::Advertise;
use crate::metrics::{Metrics, Refused};
use crate::router::{RouteTable, Target};
use crate::session::{self, SessionContext, SessionError};
use crate::tls::{self, HelloError, Refusal, TlsFront};
use crate::upstream::Connector;

/// Time a client has to complete its ClientHello and handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    admin: Option<TcpListener>,
    health: Arc<Health>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Tenants and their TLS configurations; replaced whole on reload, read once per connection.
    routes: std::sync::RwLock<Arc<Routes>>,
    connector: Connector,
    advertised_port: u16,
    max_frame_bytes: u32,
    open: AtomicUsize,
    closed: Notify,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] tls::FrontError),
}

impl Proxy {
    /// Binds the listening socket. With port 0 the advertised port defaults to the port actually bound.
    pub async fn bind(settings: &Settings) -> Result<Proxy, StartError> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Bind { addr: settings.listen, source })?;
        let bound =
            listener.local_addr().map_err(|source| StartError::Bind { addr: settings.listen, source })?;
        let admin = match settings.admin_listen {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?)
            }
            None => None,
        };
        let routes = Routes::build(settings, None)?;
        let advertised_port = match settings.advertised_port {
            0 => bound.port(),
            p => p,
        };
        let shared = Arc::new(Shared {
            routes: std::sync::RwLock::new(Arc::new(routes)),
            connector: Connector {
                connect_timeout: settings.connect_timeout,
                max_frame_bytes: settings.max_frame_bytes,
            },
            advertised_port,
            max_frame_bytes: settings.max_frame_bytes,
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            metrics: Arc::new(Metrics::new(settings.tenants.iter().map(|t| t.name.as_str()))),
        });
        Ok(Proxy { listener, admin, health: Arc::default(), shared })
    }

    /// A handle that swaps in new routes while the proxy runs.
    pub fn reloader(&self) -> Reloader {
        Reloader { shared: self.shared.clone() }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits up to `drain` for open connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain: Duration) {
        info!(listen = ?self.local_addr().ok(), domain = %self.shared.routes().table.domain, "kaas-proxy serving");
        if let Some(admin) = self.admin {
            tokio::spawn(crate::admin::serve(admin, self.health.clone(), self.shared.metrics.clone()));
        }
        self.health.ready.store(true, Ordering::SeqCst);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        self.shared.metrics.accepted();
                        let shared = self.shared.clone();
                        shared.open.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(async move {
                            handle(tcp, peer, &shared).await;
                            if shared.open.fetch_sub(1, Ordering::SeqCst) == 1 {
                                shared.closed.notify_waiters();
                            }
                        });
                    }
                    // Out of file descriptors and the like: back off rather than spin.
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        self.health.ready.store(false, Ordering::SeqCst);
        drop(self.listener);
        let open = self.shared.open.load(Ordering::SeqCst);
        info!(open, "stopped accepting; draining connections");
        let drained = async {
            while self.shared.open.load(Ordering::SeqCst) > 0 {
                let notified = self.shared.closed.notified();
                if self.shared.open.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(drain, drained).await.is_err() {
            warn!(
                open = self.shared.open.load(Ordering::SeqCst),
                "drain timeout; closing remaining connections"
            );
        }
    }
}

/// The route table and the TLS configurations built from one version of the settings.
#[derive(Debug)]
struct Routes {
    table: RouteTable,
    front: TlsFront,
}

impl Routes {
    /// Builds from `settings`, keeping the broker addresses `previous` already learned for tenants that remain.
    fn build(settings: &Settings, previous: Option<&Routes>) -> Result<Routes, StartError> {
        let table = RouteTable::from_settings(settings);
        if let Some(previous) = previous {
            for tenant in table.tenants() {
                if let Some(old) = previous.table.tenant(&tenant.name) {
                    tenant.learn(old.brokers());
                }
            }
        }
        let front = TlsFront::new(settings.default_cert.clone(), &table)?;
        Ok(Routes { table, front })
    }
}

impl Shared {
    fn routes(&self) -> Arc<Routes> {
        self.routes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Applies new settings to a running proxy: tenants, certificates and client CAs. Connections already open keep
/// the routes they started with. The listen address, advertised port and limits stay as started.
#[derive(Debug, Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
}

impl Reloader {
    pub fn reload(&self, settings: &Settings) -> Result<usize, StartError> {
        let next = Routes::build(settings, Some(&self.shared.routes()))?;
        let tenants = next.table.tenants().count();
        self.shared.metrics.add_tenants(settings.tenants.iter().map(|t| t.name.as_str()));
        *self.shared.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(tenants)
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, shared: &Shared) {
    let _ = tcp.set_nodelay(true);
    let start = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls::read_client_hello(tcp)).await {
        Ok(Ok(start)) => start,
        Ok(Err(HelloError::Closed)) => return,
        Ok(Err(e)) => {
            let why = match e {
                HelloError::PlaintextKafka => Refused::Plaintext,
                _ => Refused::NotTls,
            };
            shared.metrics.refused(why);
            return warn!(%peer, error = %e, "connection refused");
        }
        Err(_) => {
            shared.metrics.refused(Refused::NoClientHello);
            return warn!(%peer, "connection refused: no ClientHello within {HANDSHAKE_TIMEOUT:?}");
        }
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    let routes = shared.routes();
    let (tenant, target) = match routes.table.resolve(sni.as_deref()) {
        Ok(route) => route,
        Err(e) => {
            warn!(%peer, sni = sni.as_deref().unwrap_or("-"), error = %e, "TLS refused: unrecognized_name");
            shared.metrics.refused(Refused::UnrecognizedName);
            return tls::refuse(start, Refusal::UnrecognizedName).await;
        }
    };
    let sni = sni.unwrap_or_default();
    let broker_addr = match target {
        Target::Bootstrap => None,
        Target::Broker(id) => match shared.connector.resolve_broker(&tenant, id).await {
            Ok(addr) => Some(addr),
            Err(e) if !e.retryable() => {
                warn!(%peer, %sni, tenant = %tenant.name, error = %e, "TLS refused: unrecognized_name");
                shared.metrics.refused(Refused::UnrecognizedName);
                return tls::refuse(start, Refusal::UnrecognizedName).await;
            }
            Err(e) => {
                warn!(%peer, %sni, tenant = %tenant.name, error = %e, "TLS refused: tenant cluster unavailable");
                shared.metrics.refused(Refused::ClusterUnavailable);
                return tls::refuse(start, Refusal::Unavailable).await;
            }
        },
    };
    let config = routes.front.config_for(&tenant.name);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls::finish(start, config));
    let connect = async {
        match &broker_addr {
            Some(addr) => shared.connector.connect(addr).await.map(|s| (s, addr.clone())),
            None => shared.connector.connect_bootstrap(&tenant).await,
        }
    };
    let (client, upstream) = tokio::join!(handshake, connect);
    let client = match client {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared.metrics.refused(Refused::Handshake);
            return warn!(%peer, %sni, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            shared.metrics.refused(Refused::Handshake);
            return warn!(%peer, %sni, "TLS handshake timed out");
        }
    };
    let (upstream, upstream_addr) = match upstream {
        Ok(u) => u,
        Err(e) => {
            shared.metrics.refused(Refused::UpstreamUnavailable);
            return warn!(%peer, %sni, tenant = %tenant.name, retryable = e.retryable(), error = %e,
                "upstream unavailable; closing client connection");
        }
    };
    tracing::debug!(%peer, %sni, tenant = %tenant.name, %target, upstream = %upstream_addr, "session open");
    let ctx = SessionContext {
        advertise: Advertise::new(&tenant.name, &routes.table.domain, shared.advertised_port),
        tenant,
        max_frame_bytes: shared.max_frame_bytes,
        peer,
    };
    shared.metrics.session_started(&ctx.tenant.name);
    let result = session::run(client, upstream, &ctx).await;
    shared.metrics.session_ended(&ctx.tenant.name, result.is_err());
    if let Err(SessionError::Response(e)) = &result {
        shared.metrics.malformed_response(&ctx.tenant.name, e.api());
    }
    match result {
        Ok(()) => tracing::debug!(%peer, %sni, "session closed"),
        Err(e) => warn!(%peer, %sni, tenant = %ctx.tenant.name, error = %e, "session closed on error"),
    }
}
