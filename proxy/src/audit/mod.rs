//! The audit trail: one event per security-relevant action, as CloudEvents JSON lines ([`event`]) in a
//! rotated file (the [`crate::sink`] the usage records use): a session authenticated (tenant, principal,
//! client address, TLS version and cipher, certificate serial and expiry) or refused (reason, sampled like the
//! log), SASL to the broker (mechanism, user, verdict: [`sasl`]), and every administrative request
//! ([`admin::AUDITED`]) with what it named and the broker's answer for each ([`outcome`]). Nothing of records,
//! config values or credentials is ever written.
//!
//! Neighbours: the listener reports sessions and refusals; the session hands each audited request and its
//! response to its [`Auditor`]; the server starts and stops [`Audit`].

pub mod admin;
pub mod event;
pub mod outcome;
pub mod requests;
pub mod sasl;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::ApiKey;
use prometheus_client::registry::Registry;

use crate::config::AuditSettings;
use crate::sink::{rfc3339, FileSink, Sink};
use admin::{AdminError, Named};
pub use event::{Certificate, Event};

/// The audit trail of one proxy process.
#[derive(Debug)]
pub struct Audit {
    sink: Sink,
    source: event::Source,
    sequence: AtomicU64,
    /// Tenants whose events are not written.
    excluded: HashSet<String>,
}

impl Audit {
    /// Starts the sink's writer thread; registers `kaas_proxy_audit_*` in `registry`.
    pub fn start(settings: &AuditSettings, registry: &mut Registry) -> std::io::Result<Arc<Audit>> {
        let file = FileSink::new(settings.file.clone(), settings.file_max_bytes, settings.file_keep);
        let sink = Sink::start(file, settings.buffer_records, "audit events")?;
        sink.register(registry, "audit");
        let started_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        Ok(Arc::new(Audit {
            sink,
            source: event::Source { replica: settings.replica.clone(), started_ms },
            sequence: AtomicU64::new(0),
            excluded: settings.exclude_tenants.iter().cloned().collect(),
        }))
    }

    /// Whether events about `tenant` are written (those about no known tenant are).
    pub fn records(&self, tenant: Option<&str>) -> bool {
        tenant.is_none_or(|t| !self.excluded.contains(t))
    }

    /// Writes `event` (queued; dropped and counted when the queue is full), unless its tenant is excluded.
    pub fn emit(&self, event: Event) {
        if !self.records(event.tenant()) {
            return;
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        self.sink.send([event::line(&self.source, sequence, &rfc3339(SystemTime::now()), &event)]);
    }

    /// The auditor of one session of `principal` of `tenant` from `client`; `None` for an excluded tenant.
    pub fn session(
        self: &Arc<Self>,
        tenant: &str,
        principal: Option<&str>,
        client: SocketAddr,
    ) -> Option<Auditor> {
        self.records(Some(tenant)).then(|| Auditor {
            audit: self.clone(),
            tenant: tenant.to_owned(),
            principal: principal.map(str::to_owned),
            client,
            pending: Mutex::default(),
            sasl: Mutex::default(),
            sasl_unconfirmed: AtomicBool::new(false),
            sasl_succeeded: AtomicBool::new(false),
        })
    }

    /// At shutdown: waits up to `within` for the queued events to be written.
    pub async fn finish(&self, within: Duration) {
        self.sink.finish(within).await;
    }
}

/// An audited request awaiting its response.
#[derive(Debug)]
struct Pending {
    api: ApiKey,
    version: i16,
    resources: Result<Named, AdminError>,
}

/// One session's view of the audit trail: holds each audited request until its response is read, and writes
/// the event then (or, for requests still unanswered, when the session ends).
#[derive(Debug)]
pub struct Auditor {
    audit: Arc<Audit>,
    tenant: String,
    principal: Option<String>,
    client: SocketAddr,
    /// In the order sent, with their correlation ids (a client may reuse one: the broker answers in order, so
    /// the first with an id is the one answered); at most `max_inflight_requests_per_connection`.
    pending: Mutex<VecDeque<(i32, Pending)>>,
    /// The connection's SASL exchange with the broker, and the SaslAuthenticate requests awaiting answers.
    sasl: Mutex<(sasl::Exchange, VecDeque<i32>)>,
    /// An exchange the broker answered without error awaits its confirmation by another request: the fast path
    /// of every request reads this, not the lock.
    sasl_unconfirmed: AtomicBool,
    /// A SASL exchange of the session succeeded.
    sasl_succeeded: AtomicBool,
}

impl Auditor {
    /// A request of `api` at `version` going to the broker; `body` is after the request header. Only the
    /// audited APIs are kept.
    pub fn request(&self, api: ApiKey, version: i16, correlation_id: i32, body: &[u8]) {
        match api {
            ApiKey::SaslHandshake => return self.sasl().0.handshake(body, version),
            ApiKey::SaslAuthenticate => {
                let mut sasl = self.sasl();
                sasl.0.authenticate(body, version);
                sasl.1.push_back(correlation_id);
                return;
            }
            ApiKey::ApiVersions => return,
            _ => self.confirm_sasl(),
        }
        if !admin::AUDITED.contains(&api) {
            return;
        }
        let resources = requests::resources(api, version, body);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.push_back((correlation_id, Pending { api, version, resources }));
    }

    /// A request other than SASL's passes: an exchange the broker answered without error succeeded.
    fn confirm_sasl(&self) {
        if !self.sasl_unconfirmed.swap(false, Ordering::Relaxed) {
            return;
        }
        let exchange = {
            let mut sasl = self.sasl();
            sasl.0.succeeded().then(|| sasl.0.clone())
        };
        if let Some(exchange) = exchange {
            self.sasl_succeeded.store(true, Ordering::Relaxed);
            self.sasl_event(exchange, admin::Outcome::new(0, None));
        }
    }

    fn sasl_event(&self, exchange: sasl::Exchange, outcome: admin::Outcome) {
        self.audit.emit(Event::Sasl {
            tenant: self.tenant.clone(),
            principal: self.principal.clone(),
            client: self.client,
            mechanism: exchange.mechanism,
            user: exchange.user,
            outcome,
        });
    }

    /// The response to the request `correlation_id`; `body` is after the response header. Writes the event of
    /// an audited request.
    pub fn response(&self, api: ApiKey, version: i16, correlation_id: i32, body: &[u8]) {
        if api == ApiKey::SaslAuthenticate {
            let refused = {
                let mut sasl = self.sasl();
                let Some(at) = sasl.1.iter().position(|id| *id == correlation_id) else { return };
                sasl.1.remove(at);
                let refused = sasl.0.answered(body, version).map(|o| (sasl.0.clone(), o));
                if refused.is_none() {
                    self.sasl_unconfirmed.store(true, Ordering::Relaxed);
                }
                refused
            };
            if let Some((exchange, outcome)) = refused {
                self.sasl_event(exchange, outcome);
            }
            return;
        }
        let pending = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let at = pending.iter().position(|(id, _)| *id == correlation_id);
            at.and_then(|at| pending.remove(at))
        };
        let Some((_, Pending { api, version, resources })) = pending else { return };
        let (outcome, named, note) = match resources {
            Ok(mut named) => match outcome::outcomes(api, version, body, &mut named) {
                Ok(outcome) => (outcome, named, None),
                Err(e) => (None, named, Some(format!("response {e}"))),
            },
            Err(e) => (None, Named::default(), Some(format!("request {e}"))),
        };
        self.emit(api, version, outcome, named, note);
    }

    fn emit(
        &self,
        api: ApiKey,
        api_version: i16,
        outcome: Option<admin::Outcome>,
        named: Named,
        note: Option<String>,
    ) {
        self.audit.emit(Event::Admin {
            tenant: self.tenant.clone(),
            principal: self.principal.clone(),
            client: self.client,
            api: format!("{api:?}"),
            api_version,
            outcome,
            resources: named.resources,
            resources_omitted: named.omitted,
            note,
        });
    }
}

impl Auditor {
    fn sasl(&self) -> std::sync::MutexGuard<'_, (sasl::Exchange, VecDeque<i32>)> {
        self.sasl.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the audit trail reads requests (and responses) of `api`: the administrative APIs and SASL's.
pub fn observes(api: ApiKey) -> bool {
    admin::AUDITED.contains(&api) || matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
}

impl Drop for Auditor {
    fn drop(&mut self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        // A session that never authenticated (no certificate, no SASL success) whose requests the broker left
        // unanswered: the broker did not act on them (it closes such a connection), and a stranger repeating
        // that must not fill the trail.
        if self.principal.is_none() && !self.sasl_succeeded.load(Ordering::Relaxed) {
            return;
        }
        for (_, Pending { api, version, resources }) in pending {
            let (resources, note) = match resources {
                Ok(named) => (named, "no response: the connection closed first".to_owned()),
                Err(e) => {
                    (Named::default(), format!("request {e}; no response: the connection closed first"))
                }
            };
            self.emit(api, version, None, resources, Some(note));
        }
    }
}

#[cfg(test)]
mod tests;
