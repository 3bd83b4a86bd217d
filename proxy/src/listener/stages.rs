//! A connection's stages, in order, each a function with one job that hands on or refuses: [`hello`] (the
//! ClientHello, within the hello timeout; an `acme-tls/1` hello is answered by [`answer_acme_challenge`] and
//! goes no further) → [`route`] (server name → tenant and target; a place among the tenant's handshakes) →
//! [`authenticate`] (the rest of the client's handshake, and its certificate's identity), [`admit`] (the
//! tenant's connection limit), [`find_broker`] (a `b<id>` name's address) and [`connect`] (the tenant's broker
//! or bootstrap), in the order [`connection`] picks from the tenant's authentication → [`session`]. Refusals are [`Refused`]; the listener ([`super::handle`]) logs and counts
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
use super::{Handshaking, Shared};
use crate::acme::challenge;
use crate::audit::{Certificate, Event};
use crate::error::Blame;
use crate::kafka::rewrite::Advertise;
use crate::kafka::ResponseError;
use crate::metrics::TenantConnection;
use crate::routes::RouteSet;
use crate::session::{self, SessionContext, SessionError};
use crate::sink::rfc3339;
use crate::tenants::{Target, Tenant};
use crate::tls;
use crate::upstream::identity::ClientIdentity;
use crate::upstream::tls::{Principal, UpstreamStream, UpstreamTls};
use crate::upstream::UpstreamError;

/// The stages; a session that starts is not a refusal, whatever its end. `handshaking` holds the connection's
/// place among its address's handshakes until it has authenticated.
pub(super) async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    state: &Shared,
    mut handshaking: Handshaking,
    seen: &mut Seen,
) -> Result<(), Halt> {
    let _ = tcp.set_nodelay(true);
    let start = hello(tcp, state.limits.hello_timeout).await?;
    if challenge::offers_acme_tls(&start.client_hello()) {
        return answer_acme_challenge(start, state).await;
    }
    if state.audit.is_some() {
        seen.server_name = start.client_hello().server_name().map(str::to_owned);
    }
    let routes = state.routes.current();
    let mut to = match route(&start, &routes, state, &mut handshaking) {
        Ok(to) => to,
        Err(refused) => return Err(Halt { refused, handshake: Some(start) }),
    };
    if state.audit.is_some() {
        seen.tenant = Some(to.tenant.name.clone());
    }
    // The client certificate's principal (after the tenant's mapping rules); `None` without one.
    let mut principal = None;
    let (client, upstream, counted) = if client_first(&routes, &to) {
        // Nothing reaches the tenant's cluster before the client has authenticated: no metadata refresh for
        // an unknown broker id, no connection (a TLS handshake, with `upstream.tls`); with `identity: client`
        // its certificate is the identity to present. A failure after the handshake closes the connection.
        let (client, identity) = authenticate(start, &routes, &to, state).await?;
        drop(handshaking);
        let counted = admit(&to, state)?;
        find_broker(&mut to, state).await?;
        let upstream = connect(&to, state, Principal::Client(identity.as_ref().map(|(id, _)| id))).await?;
        audit_authenticated(state, &to, &client, identity.as_ref(), peer);
        principal = identity.map(|(_, principal)| principal);
        (client, upstream, counted)
    } else {
        // A tenant that does not authenticate clients by certificate: brokers that cannot be found or reached
        // (or whose certificate does not verify) end the client's handshake with an alert.
        let before = async {
            find_broker(&mut to, state).await?;
            connect(&to, state, Principal::Client(None)).await
        };
        let upstream = match before.await {
            Ok(upstream) => upstream,
            Err(refused) => return Err(Halt { refused, handshake: Some(start) }),
        };
        let (client, _) = authenticate(start, &routes, &to, state).await?;
        drop(handshaking);
        let counted = admit(&to, state)?;
        audit_authenticated(state, &to, &client, None, peer);
        (client, upstream, counted)
    };
    let limits = &state.limits;
    let usage = state.usage.as_ref().map(|u| (u.clone(), u.meter(&to.tenant.name, principal.as_deref())));
    let audit = state.audit.as_ref().and_then(|a| a.session(&to.tenant.name, principal.as_deref(), peer));
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
        usage,
        audit,
    };
    session(client, upstream, &ctx, state).await;
    Ok(())
}

/// What a connection's stages learned before a refusal, for its audit event: filled only with an audit trail.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The server name of the ClientHello.
    pub(super) server_name: Option<String>,
    /// The tenant it routed to.
    pub(super) tenant: Option<String>,
}

/// The audit event of a session that starts: who, from where, over what TLS, with which certificate.
fn audit_authenticated(
    state: &Shared,
    to: &Destination,
    client: &TlsStream<TcpStream>,
    identity: Option<&(ClientIdentity, String)>,
    peer: SocketAddr,
) {
    let Some(audit) = &state.audit else { return };
    let tls = client.get_ref().1;
    let certificate = identity.map(|(id, _)| Certificate {
        subject: id.subject.clone(),
        serial: id.serial.clone(),
        not_after: rfc3339(
            std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(id.not_after).unwrap_or(0)),
        ),
    });
    audit.emit(Event::Authenticated {
        tenant: to.tenant.name.clone(),
        principal: identity.map(|(_, principal)| principal.clone()),
        client: peer,
        server_name: tls.server_name().unwrap_or_default().to_owned(),
        tls_version: tls.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
        cipher_suite: tls.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default(),
        certificate,
    });
}

/// Admission: an authenticated connection counts against its tenant's `max_connections_per_tenant` from here
/// on (the returned guard).
fn admit(to: &Destination, state: &Shared) -> Result<Option<TenantConnection>, Refused> {
    let limit = state.limits.max_connections_per_tenant;
    state.metrics.admit(&to.tenant.name, limit).map_err(|open| Refused::TenantLimit { open })
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

/// Route: the server name names a tenant and a target; the connection takes a place among the tenant's
/// handshakes. A tenant already at `max_connections_per_tenant` is refused here (it is counted against only
/// once authenticated, [`admit`]). Its refusals end the handshake with a TLS alert ([`Refused::alert`]).
fn route(
    start: &StartHandshake<TcpStream>,
    routes: &RouteSet,
    state: &Shared,
    handshaking: &mut Handshaking,
) -> Result<Destination, Refused> {
    let sni = start.client_hello().server_name().map(str::to_owned);
    Span::current().record("sni", field::display(sni.as_deref().unwrap_or("-")));
    let (tenant, target) = routes.tenants.resolve(sni.as_deref()).map_err(Refused::UnknownName)?;
    Span::current().record("tenant", field::display(&tenant.name));
    if let Some(open) = state.metrics.tenant_full(&tenant.name, state.limits.max_connections_per_tenant) {
        return Err(Refused::TenantLimit { open });
    }
    let slot = state.handshakes_by_tenant.admit(tenant.name.clone());
    handshaking.by_tenant = Some(slot.map_err(|open| Refused::TenantHandshakeLimit { open })?);
    let upstream_tls = routes.upstream_tls(&tenant.name);
    Ok(Destination { tenant, target, broker: None, upstream_tls })
}

/// Find the broker: for `b<id>` names its address, from the tenant's broker table or its cluster, within the
/// handshake timeout.
async fn find_broker(to: &mut Destination, state: &Shared) -> Result<(), Refused> {
    let Target::Broker(id) = to.target else { return Ok(()) };
    let within = state.limits.handshake_timeout;
    let found = tokio::time::timeout(
        within,
        state.connector.resolve_broker(&to.tenant, to.upstream_tls.as_deref(), id),
    );
    match found.await {
        Ok(Ok(addr)) => to.broker = Some(addr),
        Ok(Err(e @ UpstreamError::UnknownNode { .. })) => return Err(Refused::UnknownNode(e)),
        Ok(Err(e)) => return Err(Refused::ClusterUnavailable(e)),
        Err(_) => return Err(Refused::ClusterUnavailable(UpstreamError::ResolveTimeout(within))),
    }
    Ok(())
}

/// Authenticate: the rest of the client's handshake with the tenant's TLS configuration, and the identity of
/// the certificate it presented (where it presented one).
async fn authenticate(
    start: StartHandshake<TcpStream>,
    routes: &RouteSet,
    to: &Destination,
    state: &Shared,
) -> Result<(TlsStream<TcpStream>, Option<(ClientIdentity, String)>), Refused> {
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

/// The client's verified certificate identity and its principal (after the tenant's principal mapping rules),
/// which is recorded on the connection's span.
fn client_identity(
    client: &TlsStream<TcpStream>,
    routes: &RouteSet,
    tenant: &str,
) -> Option<(ClientIdentity, String)> {
    let leaf = client.get_ref().1.peer_certificates()?.first()?;
    match ClientIdentity::from_leaf(leaf) {
        Ok(id) => {
            let principal = routes.principal(tenant, &id.subject);
            Span::current().record("principal", field::display(printable(&principal)));
            Some((id, principal))
        }
        Err(e) => {
            warn!(error = %e, "client certificate subject unreadable");
            None
        }
    }
}

/// `text` with every control character written as its escape (`\n`, `\u{1b}`): a certificate subject is the
/// client's text, and a line break or terminal escape in it must not forge or hide log lines.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// Connect: the upstream connection for `to`, its broker or one of the tenant's bootstrap servers,
/// presenting `who`.
async fn connect(to: &Destination, state: &Shared, who: Principal<'_>) -> Result<UpstreamStream, Refused> {
    let tls = to.upstream_tls.as_deref();
    let (upstream, addr) = match &to.broker {
        Some(addr) => state.connector.connect(&to.tenant, addr, tls, who).await.map(|s| (s, addr.clone())),
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

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_in_subjects_are_escaped_for_the_log() {
        let cases = [
            ("CN=alice,O=acme", "CN=alice,O=acme"),
            ("CN=mallory\n2026-12-07T00:00:00Z INFO forged", "CN=mallory\\n2026-12-07T00:00:00Z INFO forged"),
            ("CN=\u{1b}[2Jclear", "CN=\\u{1b}[2Jclear"),
            ("CN=Zoë", "CN=Zoë"),
        ];
        for (subject, logged) in cases {
            assert_eq!(printable(subject), logged, "{subject:?}");
        }
    }
}
