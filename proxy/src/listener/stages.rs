//! A connection's stages, in order, each a function with one job that hands on or refuses: [`hello`] (the
//! ClientHello, within the handshake timeout; an `acme-tls/1` hello is answered by [`answer_acme_challenge`] and
//! goes no further) → [`route`] (server name → tenant and target; the tenant's connection limit; a broker's
//! address) → [`authenticate`] (the rest of the client's handshake, and its certificate's identity) and
//! [`connect`] (the tenant's broker or bootstrap), in the order [`connection`] picks from the tenant's
//! authentication → [`session`]. Refusals are [`Refused`]; the listener ([`super::handle`]) logs and counts
//! them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kaas_route::{HostPort, Identity};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::StartHandshake;
use tracing::{field, info, warn, Span};

use super::refused::{Halt, Refused};
use super::Shared;
use crate::acme::challenge;
use crate::error::Blame;
use crate::kafka::rewrite::Advertise;
use crate::kafka::ResponseError;
use crate::metrics::TenantConnection;
use crate::routes::RouteSet;
use crate::session::{self, SessionContext, SessionError};
use crate::tenants::{Target, Tenant};
use crate::tls;
use crate::upstream::identity::ClientIdentity;
use crate::upstream::tls::{Principal, UpstreamStream, UpstreamTls};
use crate::upstream::UpstreamError;

/// The stages; a session that starts is not a refusal, whatever its end.
pub(super) async fn connection(tcp: TcpStream, peer: SocketAddr, state: &Shared) -> Result<(), Halt> {
    let _ = tcp.set_nodelay(true);
    let start = hello(tcp, state.limits.handshake_timeout).await?;
    if challenge::offers_acme_tls(&start.client_hello()) {
        return answer_acme_challenge(start, state).await;
    }
    let routes = state.routes.current();
    let (to, counted) = match route(&start, &routes, state).await {
        Ok(found) => found,
        Err(refused) => return Err(Halt { refused, handshake: Some(start) }),
    };
    let (client, upstream) = if client_first(&routes, &to) {
        // No unauthenticated peer makes the proxy open a connection (a TLS handshake, with `upstream.tls`) to
        // the tenant's brokers, and with `identity: client` its certificate is the identity to present; an
        // upstream failure then closes the connection after the handshake.
        let (client, identity) = authenticate(start, &routes, &to, state).await?;
        (client, connect(&to, state, Principal::Client(identity.as_ref())).await?)
    } else {
        // Brokers that cannot be reached (or whose certificate does not verify) end the client's handshake
        // with an alert.
        let upstream = match connect(&to, state, Principal::Client(None)).await {
            Ok(upstream) => upstream,
            Err(refused) => return Err(Halt { refused, handshake: Some(start) }),
        };
        (authenticate(start, &routes, &to, state).await?.0, upstream)
    };
    let limits = state.limits;
    let ctx = SessionContext {
        advertise: Advertise::new(&to.tenant.name, &routes.tenants.domain, state.advertised_port),
        metrics: counted.as_ref().map(|c| c.metrics().clone()),
        tenant: to.tenant,
        max_frame_bytes: limits.max_frame_bytes,
        max_inflight: limits.max_inflight,
        max_fetch_bytes: limits.max_fetch_bytes,
        idle_timeout: limits.idle_timeout,
        draining: state.draining.clone(),
        peer,
    };
    session(client, upstream, &ctx, state).await;
    Ok(())
}

/// Whether the client's handshake comes before the upstream connection: for a tenant whose clients must
/// present a certificate, or whose brokers see each client's own identity.
fn client_first(routes: &RouteSet, to: &Destination) -> bool {
    routes.tls.authenticates_clients(&to.tenant.name)
        || to.upstream_tls.as_deref().and_then(UpstreamTls::identity) == Some(Identity::Client)
}

/// Hello: the ClientHello, within the handshake timeout.
async fn hello(tcp: TcpStream, within: Duration) -> Result<StartHandshake<TcpStream>, Refused> {
    match tokio::time::timeout(within, tls::read_client_hello(tcp)).await {
        Ok(hello) => hello.map_err(Refused::Hello),
        Err(_) => Err(Refused::NoClientHello(within)),
    }
}

/// A TLS-ALPN-01 validation (the hello offers `acme-tls/1`): answered with the challenge certificate of its
/// name while an order waits for it, else refused; never routed to a tenant.
async fn answer_acme_challenge(start: StartHandshake<TcpStream>, state: &Shared) -> Result<(), Halt> {
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

/// Where a connection goes: the tenant, the target its name asked for, the broker's address, the TLS to it.
struct Destination {
    tenant: Arc<Tenant>,
    target: Target,
    /// The broker's upstream address for `b<id>` names; `None` for bootstrap.
    broker: Option<HostPort>,
    /// TLS to the tenant's brokers; `None`: plaintext.
    upstream_tls: Option<Arc<UpstreamTls>>,
}

/// Route: the server name names a tenant and a target; the connection counts against the tenant's limit from
/// here on (the returned guard); a broker's address comes from the tenant's own cluster. Its refusals end the
/// handshake with a TLS alert ([`Refused::alert`]).
async fn route(
    start: &StartHandshake<TcpStream>,
    routes: &RouteSet,
    state: &Shared,
) -> Result<(Destination, Option<TenantConnection>), Refused> {
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
    Ok((Destination { tenant, target, broker, upstream_tls }, counted))
}

/// Authenticate: the rest of the client's handshake with the tenant's TLS configuration, and the identity of
/// the certificate it presented (where it presented one).
async fn authenticate(
    start: StartHandshake<TcpStream>,
    routes: &RouteSet,
    to: &Destination,
    state: &Shared,
) -> Result<(TlsStream<TcpStream>, Option<ClientIdentity>), Refused> {
    let config = routes.tls.config_for(&to.tenant.name);
    let client = handshake(start, config, state.limits.handshake_timeout).await?;
    let identity = client_identity(&client, routes, &to.tenant.name);
    Ok((client, identity))
}

/// The rest of a client's handshake, within the handshake timeout.
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

/// Connect: the upstream connection for `to`, its broker or one of the tenant's bootstrap servers,
/// presenting `who`.
async fn connect(to: &Destination, state: &Shared, who: Principal<'_>) -> Result<UpstreamStream, Refused> {
    let tls = to.upstream_tls.as_deref();
    let (upstream, addr) = match &to.broker {
        Some(addr) => {
            state.connector.connect(&to.tenant.name, addr, tls, who).await.map(|s| (s, addr.clone()))
        }
        None => state.connector.connect_bootstrap(&to.tenant, tls, who).await,
    }
    .map_err(Refused::Upstream)?;
    tracing::debug!(target = %to.target, upstream = %addr, "session open");
    Ok(upstream)
}

/// Session: the two-way frame pump, counted by tenant; how it ended is logged here.
async fn session(
    client: TlsStream<TcpStream>,
    upstream: UpstreamStream,
    ctx: &SessionContext,
    state: &Shared,
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
