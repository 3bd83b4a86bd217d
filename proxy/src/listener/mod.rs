//! Listener: the one TLS port. Accepts sockets under the global and per-address connection limits and takes each
//! connection through its stages (`stages`), each of which either hands on or refuses: **hello** (read the
//! ClientHello) → **route** (server name → tenant and target) → **authenticate** (finish the client's
//! handshake) and **connect** (find and reach the tenant's broker), in the order the tenant's authentication
//! asks → **session** ([`crate::session`]).
//!
//! Nothing before authentication: until its handshake is done a connection holds only a place among the
//! handshakes of its address (`max_handshakes_per_ip`, taken on accept) and of the tenant it names
//! (`max_handshakes_per_tenant`), each deadline-bound (`hello_timeout_seconds`, then
//! `handshake_timeout_seconds`); it counts against the tenant's `max_connections_per_tenant` only once
//! authenticated, and for a tenant that authenticates its clients nothing reaches the tenant's cluster before
//! then (no metadata refresh, no broker connection).
//!
//! A refusal is counted and logged in one place (`refused`), once, inside the connection's `conn{peer, sni,
//! tenant}` span, and never opens an upstream connection it does not need. One connection's failure never
//! touches another's. Neighbours: [`crate::server`] binds the port and drains it, [`crate::routes`] (the current
//! routes), [`crate::tls`], [`crate::tenants`], [`crate::upstream`]; `peers` counts connections per peer address.

mod budget;
pub mod metrics;
pub mod proxy_header;
mod refused;
mod stages;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{field, warn, Instrument};

use crate::acme::AcmeCerts;
use crate::audit::{Audit, Event};
use crate::config::Settings;
use crate::error::Blame;
use crate::metrics::Metrics;
use crate::routes::Routes;
use crate::tls;
use crate::upstream::Connector;
use crate::usage::Usage;
use budget::{block_of, Budget, Slot};
use kaas_route::Cidr;
pub use metrics::ListenerMetrics;
use metrics::{OpenConnection, RefusalLog, RefusalReason};
use refused::Halt;

/// The TLS port and everything its connections read.
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    shared: Arc<Shared>,
}

/// What the listener does besides routing, each present when configured.
#[derive(Debug, Default)]
pub struct Services {
    /// ACME tenants' issued certificates and the pending TLS-ALPN-01 answers.
    pub acme: Option<Arc<AcmeCerts>>,
    /// The usage recorder sessions meter through.
    pub usage: Option<Arc<Usage>>,
    /// The audit trail sessions and refusals are written to.
    pub audit: Option<Arc<Audit>>,
}

/// What every connection reads: the routes, how to reach upstreams, the limits, the metrics.
#[derive(Debug)]
struct Shared {
    routes: Arc<Routes>,
    connector: Connector,
    advertised_port: u16,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// The listener's own series.
    counts: ListenerMetrics,
    /// Open connections, waited for when draining.
    connections: TaskTracker,
    /// A permit per open connection, `max_connections` in all.
    connection_slots: Arc<Semaphore>,
    /// Open connections per peer address (block), `max_connections_per_ip` each.
    peers: Arc<Budget<IpAddr>>,
    /// Connections per peer address still in their handshake, `max_handshakes_per_ip` each.
    handshakes_by_peer: Arc<Budget<IpAddr>>,
    /// Connections per tenant still in their handshake, `max_handshakes_per_tenant` each.
    handshakes_by_tenant: Arc<Budget<String>>,
    /// Cancelled when the proxy drains: sessions close between requests.
    draining: CancellationToken,
    /// ACME tenants' issued certificates and the pending TLS-ALPN-01 answers; `None` without ACME.
    acme: Option<Arc<AcmeCerts>>,
    /// The usage recorder sessions meter through; `None` without a `usage` section.
    usage: Option<Arc<Usage>>,
    /// The audit trail sessions and refusals are written to; `None` without an `audit` section.
    audit: Option<Arc<Audit>>,
    /// Which refusals are logged (a few a second per reason; the metric counts each).
    refusal_log: RefusalLog,
}

/// The limits of [`Settings`] that connections read (fixed at start-up).
#[derive(Debug, Clone)]
pub struct Limits {
    max_frame_bytes: u32,
    hello_timeout: Duration,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    max_inflight: usize,
    max_fetch_bytes: u32,
    max_connections: usize,
    max_connections_per_tenant: usize,
    max_connections_per_ip: usize,
    max_handshakes_per_ip: usize,
    max_handshakes_per_tenant: usize,
    /// Load balancers whose connections start with a PROXY protocol v2 header ([`proxy_header`]).
    proxy_protocol_trusted: Arc<[Cidr]>,
}

impl Limits {
    /// The connection limits of `settings`.
    pub fn of(settings: &Settings) -> Limits {
        Limits {
            max_frame_bytes: settings.max_frame_bytes,
            hello_timeout: settings.hello_timeout,
            handshake_timeout: settings.handshake_timeout,
            idle_timeout: settings.idle_timeout,
            max_inflight: settings.max_inflight_requests_per_connection,
            max_fetch_bytes: settings.max_fetch_response_bytes,
            max_connections: settings.max_connections,
            max_connections_per_tenant: settings.max_connections_per_tenant,
            max_connections_per_ip: settings.max_connections_per_ip,
            max_handshakes_per_ip: settings.max_handshakes_per_ip,
            max_handshakes_per_tenant: settings.max_handshakes_per_tenant,
            proxy_protocol_trusted: settings.proxy_protocol_trusted_cidrs.clone().into(),
        }
    }
}

impl Listener {
    /// Serves `socket` with `routes`; nothing is accepted before [`Listener::accept_until`].
    pub fn new(
        socket: TcpListener,
        routes: Arc<Routes>,
        connector: Connector,
        advertised_port: u16,
        limits: Limits,
        (metrics, counts): (Arc<Metrics>, ListenerMetrics),
        Services { acme, usage, audit }: Services,
    ) -> Listener {
        let shared = Shared {
            routes,
            connector,
            advertised_port,
            connections: TaskTracker::new(),
            connection_slots: Arc::new(Semaphore::new(limits.max_connections)),
            peers: Budget::new(limits.max_connections_per_ip),
            handshakes_by_peer: Budget::new(limits.max_handshakes_per_ip),
            handshakes_by_tenant: Budget::new(limits.max_handshakes_per_tenant),
            limits,
            metrics,
            counts,
            draining: CancellationToken::new(),
            acme,
            usage,
            audit,
            refusal_log: RefusalLog::default(),
        };
        Listener { socket, shared: Arc::new(shared) }
    }

    /// The address the port is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts connections until `until` completes.
    pub async fn accept_until(&self, until: impl Future<Output = ()>) {
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                accepted = self.socket.accept() => match accepted {
                    Ok((tcp, peer)) => self.admit(tcp, peer),
                    // Out of file descriptors and the like: back off rather than spin.
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    /// A connection under `max_connections`, its address's `max_connections_per_ip` and its address's
    /// `max_handshakes_per_ip` goes on in its own task; one over any is closed at once. From a trusted load
    /// balancer, the address is the client's in its PROXY protocol header, read first (under the hello
    /// timeout) in the connection's task.
    fn admit(&self, tcp: TcpStream, peer: SocketAddr) {
        let shared = &self.shared;
        shared.counts.accepted();
        let Ok(slot) = shared.connection_slots.clone().try_acquire_owned() else {
            shared.at_limit(peer, RefusalReason::ConnectionLimit, None);
            return;
        };
        let state = shared.clone();
        // A dual-stack socket shows IPv4 peers as IPv4-mapped IPv6 (::ffff:a.b.c.d): matched as IPv4.
        let ip = peer.ip().to_canonical();
        if shared.limits.proxy_protocol_trusted.iter().any(|c| c.contains(ip)) {
            shared.connections.spawn(async move {
                let mut tcp = tcp;
                match proxy_header::read(&mut tcp, state.limits.hello_timeout).await {
                    Ok(client) => {
                        let client = client.unwrap_or(peer);
                        if let Some((slots, handshake)) = state.admit_address(client, slot) {
                            handle(tcp, client, &state, slots, handshake).await;
                        }
                    }
                    Err(e) => state.no_proxy_header(peer, &e),
                }
            });
            return;
        }
        if let Some((slots, handshake)) = shared.admit_address(peer, slot) {
            shared.connections.spawn(async move { handle(tcp, peer, &state, slots, handshake).await });
        }
    }

    /// Stops accepting; open sessions close between requests. Whether all closed within `within` (the rest are
    /// dropped).
    pub async fn drain(self, within: Duration) -> bool {
        drop(self.socket);
        let connections = &self.shared.connections;
        connections.close();
        self.shared.draining.cancel();
        tracing::info!(open = connections.len(), "stopped accepting; sessions close between requests");
        tokio::time::timeout(within, connections.wait()).await.is_ok()
    }
}

impl Shared {
    /// The places of a connection from `peer` (the client's address) under its address's
    /// `max_connections_per_ip` and `max_handshakes_per_ip`, beside its `slot` under `max_connections`; `None`,
    /// counted and logged, when the address has no place left.
    fn admit_address(&self, peer: SocketAddr, slot: OwnedSemaphorePermit) -> Option<(Places, Handshaking)> {
        let block = block_of(peer.ip());
        let peer_slot = match self.peers.admit(block) {
            Ok(peer_slot) => peer_slot,
            Err(open) => {
                self.at_limit(peer, RefusalReason::IpConnectionLimit, Some(open));
                return None;
            }
        };
        let handshaking = match self.handshakes_by_peer.admit(block) {
            Ok(handshaking) => handshaking,
            Err(open) => {
                self.at_limit(peer, RefusalReason::IpHandshakeLimit, Some(open));
                return None;
            }
        };
        let handshake = Handshaking { _by_peer: handshaking, by_tenant: None };
        Some(((slot, peer_slot, self.counts.opened()), handshake))
    }

    /// Counts and logs (sampled) a trusted load balancer's connection without a usable PROXY protocol header.
    fn no_proxy_header(&self, peer: SocketAddr, e: &proxy_header::HeaderError) {
        let why = RefusalReason::ProxyHeader;
        self.counts.refused(why);
        if let Some(left_out) = self.refusal_log.sample(why, std::time::Instant::now()) {
            warn!(%peer, reason = why.label(), left_out, "connection refused: {e}");
        }
    }

    /// Counts (and logs, sampled) a connection closed at once because `max_connections` are open (`why`
    /// [`RefusalReason::ConnectionLimit`]), or its peer's address has `open` connections, its
    /// `max_connections_per_ip` or `max_handshakes_per_ip` (`why` says which).
    fn at_limit(&self, peer: SocketAddr, why: RefusalReason, open: Option<usize>) {
        self.counts.refused(why);
        let Some(left_out) = self.refusal_log.sample(why, std::time::Instant::now()) else { return };
        match open {
            None => warn!(
                %peer,
                max_connections = self.limits.max_connections,
                reason = why.label(),
                left_out,
                "connection refused: max_connections open"
            ),
            Some(open) if why == RefusalReason::IpHandshakeLimit => warn!(
                %peer,
                block = %block_of(peer.ip()),
                open,
                max_handshakes_per_ip = self.limits.max_handshakes_per_ip,
                reason = why.label(),
                left_out,
                "connection refused: the peer's address has max_handshakes_per_ip handshakes in progress"
            ),
            Some(open) => warn!(
                %peer,
                block = %block_of(peer.ip()),
                open,
                max_connections_per_ip = self.limits.max_connections_per_ip,
                reason = why.label(),
                left_out,
                "connection refused: the peer's address has max_connections_per_ip open"
            ),
        }
    }
}

/// A connection's places under `max_connections` and `max_connections_per_ip`, and its count among the open
/// connections: held until it ends.
type Places = (OwnedSemaphorePermit, Slot<IpAddr>, OpenConnection);

/// A connection's places among the handshakes of its address and (once its ClientHello names one) its
/// tenant; dropped when it has authenticated, or ends.
#[derive(Debug)]
struct Handshaking {
    /// Held, never read: dropping it frees the place.
    _by_peer: Slot<IpAddr>,
    by_tenant: Option<Slot<String>>,
}

/// One connection, holding its places under `max_connections` and `max_connections_per_ip` until it ends; a
/// refusal is counted, logged and (during the handshake) answered with its alert here.
async fn handle(tcp: TcpStream, peer: SocketAddr, state: &Shared, _slots: Places, handshake: Handshaking) {
    // ERROR level so the connection's context is on every line it logs, whatever the filter.
    let span = tracing::error_span!("conn", %peer, sni = field::Empty, tenant = field::Empty, principal = field::Empty);
    async {
        let mut seen = stages::Seen::default();
        let Err(Halt { refused, handshake }) =
            stages::connection(tcp, peer, state, handshake, &mut seen).await
        else {
            return;
        };
        if let Some(reason) = refused.reason() {
            state.counts.refused(reason);
            if let Some(left_out) = state.refusal_log.sample(reason, std::time::Instant::now()) {
                let (side, retryable) = (refused.side(), refused.retryable());
                warn!(%side, reason = %reason.label(), retryable, left_out, "{refused}");
                // Sampled like the log: a flood of refusals cannot crowd the audit trail's queue.
                if let Some(audit) = &state.audit {
                    audit.emit(Event::Refused {
                        server_name: seen.server_name,
                        tenant: seen.tenant,
                        client: peer,
                        reason: reason.label(),
                        message: refused.to_string(),
                        left_out,
                    });
                }
            }
        }
        if let (Some(start), Some(alert)) = (handshake, refused.alert()) {
            tls::refuse(start, alert).await;
        }
    }
    .instrument(span)
    .await
}
