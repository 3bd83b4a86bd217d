//! Listener: the one TLS port. Accepts sockets and takes each connection through four steps, each of which
//! either hands on or refuses: **hello** (read the ClientHello) → **route** (server name → tenant and target,
//! broker address) → **connect** (finish the client's handshake and reach the tenant's cluster, at once) →
//! **session** ([`crate::session`]).
//!
//! A refusal is counted and logged in one place (`Refused`), once, inside the connection's `conn{peer, sni,
//! tenant}` span, and never opens an upstream connection it does not need. One connection's failure never
//! touches another's. Neighbours: [`crate::routes`] (the current routes), [`crate::tls`], [`crate::router`],
//! [`crate::upstream`]; `peers` counts connections per peer address.

mod peers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kaas_route::{HostPort, Identity};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::StartHandshake;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{field, info, warn, Instrument, Span};

use crate::acme::{challenge, AcmeCerts, Manager};
use crate::admin::Health;
use crate::config::Settings;
use crate::error::{Blame, Side};
use crate::kafka::rewrite::Advertise;
use crate::kafka::ResponseError;
use crate::metrics::{Metrics, OpenConnection, RefusalReason, TenantConnection};
use crate::router::{SniError, Target, Tenant};
use crate::routes::{Reloader, RouteSet, Routes};
use crate::session::{self, SessionContext, SessionError};
use crate::tls::{self, Alert, FrontError, HelloError};
use crate::upstream::identity::ClientIdentity;
use crate::upstream::tls::{Principal, UpstreamStream, UpstreamTls};
use crate::upstream::{Connector, UpstreamError};
use peers::{PeerSlot, Peers};

/// A bound proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    admin: Option<TcpListener>,
    health: Arc<Health>,
    state: Arc<ProxyState>,
    /// The ACME client, started with the proxy.
    acme: Option<Manager>,
    /// The ACME HTTP-01 listener (`acme.http01_listen`).
    http01: Option<TcpListener>,
}

/// What every connection reads: the routes, how to reach upstreams, the limits, the metrics.
#[derive(Debug)]
struct ProxyState {
    routes: Arc<Routes>,
    connector: Connector,
    advertised_port: u16,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Open connections, waited for when draining.
    connections: TaskTracker,
    /// A permit per open connection, `max_connections` in all.
    connection_slots: Arc<Semaphore>,
    /// Open connections per peer address, `max_connections_per_ip` each.
    peers: Arc<Peers>,
    /// Cancelled when the proxy drains: sessions close between requests.
    draining: CancellationToken,
    /// ACME tenants' issued certificates and the pending TLS-ALPN-01 answers; `None` without ACME.
    acme: Option<Arc<AcmeCerts>>,
    /// When a refusal for the global or a peer's connection limit was last logged (they are logged at most once
    /// a second, a flood of them would drown the log; the metric counts each).
    limit_logged: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The limits of [`Settings`] that connections read (fixed at start-up).
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame_bytes: u32,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    max_inflight: usize,
    max_fetch_bytes: u32,
    max_connections: usize,
    max_connections_per_tenant: usize,
    max_connections_per_ip: usize,
}

/// Why [`Proxy::bind`] failed; the process cannot serve.
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
    /// A TLS server configuration could not be built from the loaded certificates.
    #[error(transparent)]
    Tls(#[from] FrontError),
    /// The ACME store directory cannot be created.
    #[error(transparent)]
    AcmeStore(#[from] crate::acme::store::StoreError),
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
        let advertised_port = match settings.advertised_port {
            0 => bound.port(),
            p => p,
        };
        let metrics = Arc::new(Metrics::new(settings.tenants.iter().map(|t| t.name.as_str())));
        metrics.routes_applied(settings.tenants.len(), settings.skipped.len());
        metrics.certificates(settings.certificate_expiry());
        let acme_certs = settings.acme.as_ref().map(|_| Arc::new(AcmeCerts::default()));
        let http01 = match settings.acme.as_ref().and_then(|a| a.http01_listen) {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?)
            }
            None => None,
        };
        let acme = match (&settings.acme, &acme_certs) {
            (Some(acme), Some(certs)) => {
                Some(Manager::new(acme.clone(), certs.clone(), metrics.clone()).await?)
            }
            _ => None,
        };
        let state = Arc::new(ProxyState {
            routes: Arc::new(Routes::new(RouteSet::build(settings, None, acme_certs.as_ref())?)),
            connector: Connector {
                connect_timeout: settings.connect_timeout,
                max_frame_bytes: settings.max_frame_bytes,
                metrics: metrics.clone(),
            },
            advertised_port,
            limits: Limits {
                max_frame_bytes: settings.max_frame_bytes,
                handshake_timeout: settings.handshake_timeout,
                idle_timeout: settings.idle_timeout,
                max_inflight: settings.max_inflight_requests_per_connection,
                max_fetch_bytes: settings.max_fetch_response_bytes,
                max_connections: settings.max_connections,
                max_connections_per_tenant: settings.max_connections_per_tenant,
                max_connections_per_ip: settings.max_connections_per_ip,
            },
            metrics,
            connections: TaskTracker::new(),
            connection_slots: Arc::new(Semaphore::new(settings.max_connections)),
            peers: Peers::new(settings.max_connections_per_ip),
            draining: CancellationToken::new(),
            acme: acme_certs,
            limit_logged: std::sync::Mutex::new(None),
        });
        Ok(Proxy { listener, admin, health: Arc::default(), state, acme, http01 })
    }

    /// A handle that swaps in new routes while the proxy runs.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            routes: self.state.routes.clone(),
            metrics: self.state.metrics.clone(),
            acme: self.state.acme.clone(),
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
        let domain = self.state.routes.current().tenants.domain.clone();
        info!(listen = ?self.local_addr().ok(), %domain, "kaas-proxy serving");
        if let Some(admin) = self.admin.take() {
            tokio::spawn(crate::admin::serve(admin, self.health.clone(), self.state.metrics.clone()));
        }
        // Readiness does not wait for certificates: a tenant whose order is pending is served the default
        // certificate meanwhile, and the other tenants are not held up by it.
        if let (Some(http01), Some(certs)) = (self.http01.take(), &self.state.acme) {
            tokio::spawn(crate::acme::http01::serve(http01, certs.clone()));
        }
        if let Some(acme) = self.acme.take() {
            let routes = self.state.routes.clone();
            tokio::spawn(acme.run(move || {
                let current = routes.current();
                let tenants = current.acme_tenants().map(|(tenant, ids)| (tenant.to_owned(), ids.to_vec()));
                (current.tenants.domain.clone(), tenants.collect())
            }));
        }
        self.health.ready.store(true, Ordering::SeqCst);
        self.accept_until(shutdown).await;
        self.health.ready.store(false, Ordering::SeqCst);
        info!(
            delay_seconds = stop.delay.as_secs_f32(),
            "shutting down: not ready; still accepting meanwhile"
        );
        self.accept_until(tokio::time::sleep(stop.delay)).await;
        drop(self.listener);
        let connections = &self.state.connections;
        connections.close();
        self.state.draining.cancel();
        info!(open = connections.len(), "stopped accepting; sessions close between requests");
        if tokio::time::timeout(stop.drain, connections.wait()).await.is_err() {
            warn!(open = connections.len(), "drain timeout; closing remaining connections");
        }
    }

    /// Accepts connections until `until` completes.
    async fn accept_until(&self, until: impl Future<Output = ()>) {
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        self.state.metrics.accepted();
                        let Ok(slot) = self.state.connection_slots.clone().try_acquire_owned() else {
                            self.state.at_limit(peer, RefusalReason::ConnectionLimit, None);
                            continue;
                        };
                        let peer_slot = match self.state.peers.admit(peer.ip()) {
                            Ok(peer_slot) => peer_slot,
                            Err(open) => {
                                self.state.at_limit(peer, RefusalReason::IpConnectionLimit, Some(open));
                                continue;
                            }
                        };
                        let state = self.state.clone();
                        let slots = (slot, peer_slot, self.state.metrics.opened());
                        self.state.connections.spawn(async move { handle(tcp, peer, &state, slots).await });
                    }
                    // Out of file descriptors and the like: back off rather than spin.
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

/// How the proxy stops after its shutdown signal.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// Time between readiness going false and the listener closing, for load balancers to take the proxy out.
    pub delay: Duration,
    /// Time open sessions get to close between requests before the remaining connections are dropped.
    pub drain: Duration,
}

impl ProxyState {
    /// Counts (and at most once a second logs) a connection closed at once because `max_connections` are open
    /// (`why` [`RefusalReason::ConnectionLimit`]), or `max_connections_per_ip` of its peer's address (`open`).
    fn at_limit(&self, peer: SocketAddr, why: RefusalReason, open: Option<usize>) {
        self.metrics.refused(why);
        let now = std::time::Instant::now();
        let mut last = self.limit_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        match open {
            None => warn!(
                %peer,
                max_connections = self.limits.max_connections,
                reason = why.label(),
                "connection refused: max_connections open (logged at most once a second)"
            ),
            Some(open) => warn!(
                %peer,
                block = %peers::block_of(peer.ip()),
                open,
                max_connections_per_ip = self.limits.max_connections_per_ip,
                reason = why.label(),
                "connection refused: the peer's address has max_connections_per_ip open (logged at most once a second)"
            ),
        }
    }
}

/// Why a connection ended before its session: the one place refusals are named, counted and logged.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("connection refused: {0}")]
    Hello(HelloError),
    #[error("connection refused: no ClientHello within {0:?}")]
    NoClientHello(Duration),
    #[error("TLS refused: unrecognized_name: {0}")]
    UnknownName(SniError),
    #[error("TLS refused: unrecognized_name: {0}")]
    UnknownNode(UpstreamError),
    #[error("TLS refused: tenant cluster unavailable: {0}")]
    ClusterUnavailable(UpstreamError),
    #[error("TLS refused: the tenant has {open} connections open, its limit (max_connections_per_tenant)")]
    TenantLimit { open: i64 },
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake failed: timed out after {0:?}")]
    HandshakeTimeout(Duration),
    #[error("upstream unavailable; closing client connection: {0}")]
    Upstream(UpstreamError),
    #[error(
        "TLS refused: unrecognized_name: acme-tls/1 offered but no ACME challenge is pending for the name"
    )]
    NoAcmeChallenge,
}

impl Blame for Refused {
    fn side(&self) -> Side {
        match self {
            Refused::ClusterUnavailable(_) | Refused::Upstream(_) => Side::Upstream,
            _ => Side::Client,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Refused::ClusterUnavailable(e) | Refused::Upstream(e) => e.retryable(),
            Refused::HandshakeTimeout(_) | Refused::NoClientHello(_) | Refused::TenantLimit { .. } => true,
            _ => false,
        }
    }

    fn label(&self) -> &'static str {
        self.reason().map_or("closed", RefusalReason::label)
    }
}

impl Refused {
    /// The TLS alert a refusal during the handshake ends it with.
    fn alert(&self) -> Option<Alert> {
        match self {
            Refused::UnknownName(_) | Refused::UnknownNode(_) | Refused::NoAcmeChallenge => {
                Some(Alert::UnrecognizedName)
            }
            // `Upstream` has a handshake left to refuse only when the upstream was dialled first.
            Refused::ClusterUnavailable(_) | Refused::Upstream(_) | Refused::TenantLimit { .. } => {
                Some(Alert::Unavailable)
            }
            _ => None,
        }
    }

    /// The metric's reason; `None` for a client that simply left before saying anything.
    fn reason(&self) -> Option<RefusalReason> {
        Some(match self {
            Refused::Hello(HelloError::Closed) => return None,
            Refused::Hello(HelloError::PlaintextKafka) => RefusalReason::Plaintext,
            Refused::Hello(HelloError::NotTls(_)) => RefusalReason::NotTls,
            Refused::Hello(HelloError::Invalid(_)) => RefusalReason::InvalidClientHello,
            Refused::NoClientHello(_) => RefusalReason::NoClientHello,
            Refused::UnknownName(_) | Refused::UnknownNode(_) | Refused::NoAcmeChallenge => {
                RefusalReason::UnrecognizedName
            }
            Refused::ClusterUnavailable(_) => RefusalReason::ClusterUnavailable,
            Refused::TenantLimit { .. } => RefusalReason::TenantConnectionLimit,
            Refused::Handshake(e) => handshake_reason(e),
            Refused::HandshakeTimeout(_) => RefusalReason::HandshakeTimeout,
            Refused::Upstream(_) => RefusalReason::UpstreamUnavailable,
        })
    }
}

/// Why a client's handshake failed, from the rustls error inside: client-certificate problems by kind, and
/// clients that offer only TLS versions before 1.2.
fn handshake_reason(e: &std::io::Error) -> RefusalReason {
    use rustls::CertificateError as C;
    use rustls::PeerIncompatible as P;
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::PeerIncompatible(
            P::Tls12NotOffered | P::Tls12NotOfferedOrEnabled | P::SupportedVersionsExtensionRequired,
        )) => RefusalReason::ProtocolVersion,
        Some(rustls::Error::NoCertificatesPresented) => RefusalReason::ClientCertMissing,
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::Expired | C::ExpiredContext { .. } => RefusalReason::ClientCertExpired,
            C::NotValidYet | C::NotValidYetContext { .. } => RefusalReason::ClientCertNotYetValid,
            C::UnknownIssuer => RefusalReason::ClientCertUnknownCa,
            C::Revoked => RefusalReason::ClientCertRevoked,
            _ => RefusalReason::ClientCertInvalid,
        },
        _ => RefusalReason::Handshake,
    }
}

/// One connection, holding its places under `max_connections` and `max_connections_per_ip` until it ends.
async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    state: &ProxyState,
    _slots: (OwnedSemaphorePermit, PeerSlot, OpenConnection),
) {
    // ERROR level so the connection's context is on every line it logs, whatever the filter.
    let span = tracing::error_span!("conn", %peer, sni = field::Empty, tenant = field::Empty, principal = field::Empty);
    async {
        let Err(Halt { refused, handshake }) = connection(tcp, peer, state).await else { return };
        if let Some(reason) = refused.reason() {
            state.metrics.refused(reason);
            warn!(side = %refused.side(), reason = %reason.label(), retryable = refused.retryable(), "{refused}");
        }
        if let (Some(start), Some(alert)) = (handshake, refused.alert()) {
            tls::refuse(start, alert).await;
        }
    }
    .instrument(span)
    .await
}

/// A refusal, and the handshake still to be ended with its alert (after it is logged).
struct Halt {
    refused: Refused,
    handshake: Option<StartHandshake<TcpStream>>,
}

impl From<Refused> for Halt {
    fn from(refused: Refused) -> Self {
        Halt { refused, handshake: None }
    }
}

/// The four steps; a session that starts is not a refusal, whatever its end.
async fn connection(tcp: TcpStream, peer: SocketAddr, state: &ProxyState) -> Result<(), Halt> {
    let _ = tcp.set_nodelay(true);
    let start = hello(tcp, state.limits.handshake_timeout).await?;
    if challenge::offers_acme_tls(&start.client_hello()) {
        return answer_acme_challenge(start, state).await;
    }
    let routes = state.routes.current();
    let (route, counted) = match route(&start, &routes, state).await {
        Ok(route) => route,
        Err(refused) => return Err(Halt { refused, handshake: Some(start) }),
    };
    let (client, upstream) = connect(start, &routes, &route, state).await?;
    let limits = state.limits;
    let ctx = SessionContext {
        advertise: Advertise::new(&route.tenant.name, &routes.tenants.domain, state.advertised_port),
        metrics: counted.as_ref().map(|c| c.metrics().clone()),
        tenant: route.tenant,
        max_frame_bytes: limits.max_frame_bytes,
        max_inflight: limits.max_inflight,
        max_fetch_bytes: limits.max_fetch_bytes,
        idle_timeout: limits.idle_timeout,
        draining: state.draining.clone(),
        peer,
    };
    run_session(client, upstream, &ctx, state).await;
    Ok(())
}

/// Step 1: the ClientHello, within the handshake timeout.
async fn hello(tcp: TcpStream, within: Duration) -> Result<StartHandshake<TcpStream>, Refused> {
    match tokio::time::timeout(within, tls::read_client_hello(tcp)).await {
        Ok(hello) => hello.map_err(Refused::Hello),
        Err(_) => Err(Refused::NoClientHello(within)),
    }
}

/// A TLS-ALPN-01 validation (the hello offers `acme-tls/1`): answered with the challenge certificate of its
/// name while an order waits for it, else refused; never routed to a tenant.
async fn answer_acme_challenge(start: StartHandshake<TcpStream>, state: &ProxyState) -> Result<(), Halt> {
    let sni = start.client_hello().server_name().map(str::to_owned);
    Span::current().record("sni", field::display(sni.as_deref().unwrap_or("-")));
    let config = sni.as_deref().and_then(|name| state.acme.as_ref()?.challenge(name));
    let Some(config) = config else {
        return Err(Halt { refused: Refused::NoAcmeChallenge, handshake: Some(start) });
    };
    let mut tls = handshake(start, config, state.limits.handshake_timeout).await?;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
    info!("answered a TLS-ALPN-01 challenge");
    Ok(())
}

/// Where a connection goes.
struct Route {
    tenant: Arc<Tenant>,
    target: Target,
    /// The broker's upstream address for `b<id>` names; `None` for bootstrap.
    broker: Option<HostPort>,
    /// TLS to the tenant's brokers; `None`: plaintext.
    upstream_tls: Option<Arc<UpstreamTls>>,
}

/// Step 2: the server name names a tenant and a target; the connection counts against the tenant's limit from
/// here on (the returned guard); a broker's address comes from the tenant's own cluster. Its refusals end the
/// handshake with a TLS alert ([`Refused::alert`]).
async fn route(
    start: &StartHandshake<TcpStream>,
    routes: &RouteSet,
    state: &ProxyState,
) -> Result<(Route, Option<TenantConnection>), Refused> {
    let sni = start.client_hello().server_name().map(str::to_owned);
    Span::current().record("sni", field::display(sni.as_deref().unwrap_or("-")));
    let (tenant, target) = routes.tenants.resolve(sni.as_deref()).map_err(Refused::UnknownName)?;
    Span::current().record("tenant", field::display(&tenant.name));
    let counted = state
        .metrics
        .admit(&tenant.name, state.limits.max_connections_per_tenant)
        .map_err(|open| Refused::TenantLimit { open })?;
    let upstream_tls = routes.upstream_tls(&tenant.name);
    let broker = match target {
        Target::Bootstrap => None,
        Target::Broker(id) => {
            match state.connector.resolve_broker(&tenant, upstream_tls.as_deref(), id).await {
                Ok(addr) => Some(addr),
                Err(e @ UpstreamError::UnknownNode { .. }) => return Err(Refused::UnknownNode(e)),
                Err(e) => return Err(Refused::ClusterUnavailable(e)),
            }
        }
    };
    Ok((Route { tenant, target, broker, upstream_tls }, counted))
}

/// Step 3: the client's handshake and the upstream connection. For a tenant whose clients must present a
/// certificate, the client's handshake comes first: no unauthenticated peer makes the proxy open a connection
/// (a TLS handshake, with `upstream.tls`) to the tenant's brokers, and with `identity: client` its certificate
/// is the identity to present; an upstream failure then closes the connection after the handshake. For other
/// tenants the upstream is dialled first, so that brokers that cannot be reached (or whose certificate does not
/// verify) end the client's handshake with `internal_error`.
async fn connect(
    start: StartHandshake<TcpStream>,
    routes: &RouteSet,
    route: &Route,
    state: &ProxyState,
) -> Result<(TlsStream<TcpStream>, UpstreamStream), Halt> {
    let within = state.limits.handshake_timeout;
    let config = routes.tls.config_for(&route.tenant.name);
    let tls = route.upstream_tls.as_deref();
    let client_first = routes.tls.authenticates_clients(&route.tenant.name)
        || tls.and_then(UpstreamTls::identity) == Some(Identity::Client);
    if client_first {
        let client = handshake(start, config, within).await?;
        let identity = client_identity(&client, routes, &route.tenant.name);
        let upstream = dial(route, state, Principal::Client(identity.as_ref())).await?;
        return Ok((client, upstream));
    }
    let upstream = match dial(route, state, Principal::Client(None)).await {
        Ok(upstream) => upstream,
        Err(refused) => return Err(Halt { refused, handshake: Some(start) }),
    };
    let client = handshake(start, config, within).await?;
    client_identity(&client, routes, &route.tenant.name);
    Ok((client, upstream))
}

/// The rest of the client's handshake, within the handshake timeout.
async fn handshake(
    start: StartHandshake<TcpStream>,
    config: Arc<rustls::ServerConfig>,
    within: Duration,
) -> Result<TlsStream<TcpStream>, Refused> {
    match tokio::time::timeout(within, tls::finish(start, config)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Refused::Handshake(e)),
        Err(_) => Err(Refused::HandshakeTimeout(within)),
    }
}

/// The client's verified certificate identity, recorded on the connection's span as `principal` (after the
/// tenant's principal mapping rules).
fn client_identity(client: &TlsStream<TcpStream>, routes: &RouteSet, tenant: &str) -> Option<ClientIdentity> {
    let leaf = client.get_ref().1.peer_certificates()?.first()?;
    match ClientIdentity::from_leaf(leaf) {
        Ok(id) => {
            Span::current().record("principal", field::display(routes.principal(tenant, &id.subject)));
            Some(id)
        }
        Err(e) => {
            warn!(error = %e, "client certificate subject unreadable");
            None
        }
    }
}

/// The upstream connection for `route`: its broker, or one of the tenant's bootstrap servers.
async fn dial(route: &Route, state: &ProxyState, who: Principal<'_>) -> Result<UpstreamStream, Refused> {
    let tls = route.upstream_tls.as_deref();
    let (upstream, addr) = match &route.broker {
        Some(addr) => {
            state.connector.connect(&route.tenant.name, addr, tls, who).await.map(|s| (s, addr.clone()))
        }
        None => state.connector.connect_bootstrap(&route.tenant, tls, who).await,
    }
    .map_err(Refused::Upstream)?;
    tracing::debug!(target = %route.target, upstream = %addr, "session open");
    Ok(upstream)
}

/// Step 4: the session, counted by tenant; how it ended is logged here.
async fn run_session(
    client: TlsStream<TcpStream>,
    upstream: UpstreamStream,
    ctx: &SessionContext,
    state: &ProxyState,
) {
    let tenant = ctx.tenant.name.as_str();
    state.metrics.session_started(tenant);
    let result = session::run(client, upstream, ctx).await;
    state.metrics.session_ended(tenant, result.is_err());
    match result {
        Ok(()) => tracing::debug!("session closed"),
        Err(e) => {
            match &e {
                SessionError::Response(ResponseError::Leak { .. }) => {}
                SessionError::Response(e) => state.metrics.malformed_response(tenant, e.api()),
                _ => {}
            }
            if let (Some(reason), Some(m)) = (e.frame_refusal(), &ctx.metrics) {
                m.frame_refused(reason);
            }
            warn!(side = %e.side(), kind = %e.label(), error = %e, "session closed on error");
        }
    }
}
