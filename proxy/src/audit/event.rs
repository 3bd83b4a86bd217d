//! An audit event as written: one CloudEvents 1.0 JSON object per line (structured mode), its `type` naming the
//! action and the version of its `data` (`io.kaas.proxy.admin.v1`), its `subject` the tenant. The schema is in
//! docs/operate/audit.md.

use std::net::SocketAddr;

use serde::Serialize;
use serde_json::{json, Value};

use super::admin::{Outcome, Resource};

/// A client certificate as the audit trail names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Certificate {
    /// Its subject, RFC 2253.
    pub subject: String,
    /// Its serial number, hex.
    pub serial: String,
    /// Its expiry, RFC 3339.
    pub not_after: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A client completed its TLS handshake and its session starts.
    Authenticated {
        /// The tenant.
        tenant: String,
        /// The certificate's principal after the tenant's mapping rules; `None` without a certificate.
        principal: Option<String>,
        /// Where the client connects from (after a PROXY protocol header, the client's own address).
        client: SocketAddr,
        /// The name the client asked for (SNI).
        server_name: String,
        /// `TLSv1_3`, `TLSv1_2`.
        tls_version: String,
        /// The negotiated cipher suite.
        cipher_suite: String,
        /// The client's certificate, when it presented one.
        certificate: Option<Certificate>,
    },
    /// A connection was refused before its session (one event per refusal and reason, a few a second; the
    /// rest counted in `left_out`).
    Refused {
        /// The name the client asked for, when it sent one.
        server_name: Option<String>,
        /// The tenant that name routes to, when it does.
        tenant: Option<String>,
        /// Where the client connects from.
        client: SocketAddr,
        /// The refusal's reason (`kaas_proxy_listener_refused_total`'s label).
        reason: &'static str,
        /// What was wrong, for a person.
        message: String,
        /// Refusals of the same reason not written since the last one written.
        left_out: u64,
    },
    /// SASL to the broker ended: its verdict.
    Sasl {
        /// The tenant.
        tenant: String,
        /// The client certificate's principal, as in [`Event::Authenticated`] (usually none with SASL).
        principal: Option<String>,
        /// Where the client connects from.
        client: SocketAddr,
        /// The mechanism asked for.
        mechanism: Option<String>,
        /// The user the client named (PLAIN, SCRAM); `None` for other mechanisms.
        user: Option<String>,
        /// The broker's verdict.
        outcome: Outcome,
    },
    /// An administrative request and the broker's answer.
    Admin {
        /// The tenant.
        tenant: String,
        /// The principal, as in [`Event::Authenticated`].
        principal: Option<String>,
        /// Where the client connects from.
        client: SocketAddr,
        /// The API (`CreateTopics`).
        api: String,
        /// Its version.
        api_version: i16,
        /// The broker's answer to the request as a whole, for the APIs that have one.
        outcome: Option<Outcome>,
        /// What the request named, each with the broker's answer (the first [`super::admin::MAX_RESOURCES`]).
        resources: Vec<Resource>,
        /// Resources past those, counted.
        resources_omitted: usize,
        /// Why resources or answers are missing: the request or response could not be read, or no response
        /// came before the connection closed.
        note: Option<String>,
    },
}

impl Event {
    /// The CloudEvents `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Authenticated { .. } => "io.kaas.proxy.session.authenticated.v1",
            Event::Refused { .. } => "io.kaas.proxy.session.refused.v1",
            Event::Sasl { .. } => "io.kaas.proxy.sasl.authenticated.v1",
            Event::Admin { .. } => "io.kaas.proxy.admin.v1",
        }
    }

    /// The tenant the event is about, when one is known.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Event::Authenticated { tenant, .. }
            | Event::Admin { tenant, .. }
            | Event::Sasl { tenant, .. } => Some(tenant),
            Event::Refused { tenant, .. } => tenant.as_deref(),
        }
    }

    fn data(&self) -> Value {
        match self {
            Event::Authenticated {
                tenant,
                principal,
                client,
                server_name,
                tls_version,
                cipher_suite,
                certificate,
            } => {
                json!({ "tenant": tenant, "principal": principal, "client_address": client.to_string(),
                        "server_name": server_name, "tls_version": tls_version, "cipher_suite": cipher_suite,
                        "certificate": certificate })
            }
            Event::Refused { server_name, tenant, client, reason, message, left_out } => {
                json!({ "tenant": tenant, "server_name": server_name, "client_address": client.to_string(),
                        "reason": reason, "message": message, "left_out": left_out })
            }
            Event::Sasl { tenant, principal, client, mechanism, user, outcome } => {
                json!({ "tenant": tenant, "principal": principal, "client_address": client.to_string(),
                        "mechanism": mechanism, "user": user, "outcome": outcome })
            }
            Event::Admin {
                tenant,
                principal,
                client,
                api,
                api_version,
                outcome,
                resources,
                resources_omitted,
                note,
            } => {
                json!({ "tenant": tenant, "principal": principal, "client_address": client.to_string(),
                        "api": api, "api_version": api_version, "outcome": outcome, "resources": resources,
                        "resources_omitted": resources_omitted, "note": note })
            }
        }
    }
}

/// What every event of one proxy process shares.
#[derive(Debug, Clone)]
pub struct Source {
    /// The replica (its pod's name).
    pub replica: String,
    /// When its process started, milliseconds since the Unix epoch: with the sequence, a unique id.
    pub started_ms: u128,
}

/// `event` as one CloudEvents JSON line, numbered `sequence`, happening at `time` (RFC 3339).
pub fn line(source: &Source, sequence: u64, time: &str, event: &Event) -> String {
    let envelope = json!({
        "specversion": "1.0",
        "id": format!("{}-{}-{sequence}", source.replica, source.started_ms),
        "source": format!("kaas-proxy/{}", source.replica),
        "type": event.kind(),
        "time": time,
        "subject": event.tenant(),
        "datacontenttype": "application/json",
        "data": event.data(),
    });
    envelope.to_string()
}
