//! ACME certificates (RFC 8555, with the `instant-acme` crate) for tenants with `tls: { acme: true }`: one
//! account per store, created once and kept; per tenant one certificate for `<tenant>.<domain>` and the
//! `b<id>.<tenant>.<domain>` of its configured broker ids (`tls.broker_ids`, default 0, 1, 2: TLS-ALPN-01
//! and HTTP-01 cannot validate a wildcard, so the broker names are ordered ahead rather than learned; a broker outside the
//! list is served the tenant's certificate, which does not cover its name, until the list is changed).
//!
//! [`Manager`] runs in its own task, each order in a task of its own (one per tenant, up to `MAX_ORDERS` at
//! once, so a slow order does not hold up another tenant's): a tenant's stored certificate serves until it expires
//! (a restart makes no order unless its renewal is due). Renewal follows the CA's renewal information (RFC 9773,
//! ARI: a random time inside the suggested window, at once when the window is over, as for a revoked
//! certificate), asked after each issuance and again after the CA's `Retry-After`, else two thirds of the
//! lifetime; a renewal's order names the certificate it `replaces`. Failures back off ([`schedule`]), never
//! sooner than the CA's `Retry-After` ([`client`] reads it), and keep the current certificate serving.
//! Challenges are TLS-ALPN-01 on the TLS port ([`challenge`]), HTTP-01 on `http01_listen` ([`http01`]) or
//! DNS-01 through the operator's hook ([`dns01`], which orders `*.<tenant>.<domain>` instead of the broker
//! names); issued certificates go to [`AcmeCerts`], which
//! the tenants' TLS configurations read on every handshake, so a new certificate serves new handshakes at once
//! and open connections are not touched.
//!
//! With the `kubernetes` store ([`kube_store`]) several replicas share one account and one certificate per
//! tenant: the replica holding the Lease orders (and publishes its challenge answers to a Secret), the others
//! serve the certificates and answer the challenges they read from the watched Secrets.
//!
//! Neighbours: [`crate::config::AcmeSettings`] (the `acme` section), [`store`] (the `dir` store),
//! [`crate::routes`] (which tenants want ACME, and their resolvers; it asks this module, not the other way), [`crate::listener`] (answers challenge
//! handshakes), [`crate::metrics`] (orders by outcome, certificate expiry).

pub mod challenge;
pub mod client;
pub mod dns01;
pub mod http01;
pub mod kube_store;
pub mod schedule;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, ExternalAccountKey, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tracing::{info, warn};

use crate::config::{AcmeSettings, ChallengeKind, StoreSettings};
use crate::metrics::Metrics;
use crate::tls::certs::{self, CertError};
use kube_store::KubeStore;
use schedule::{Trigger, Window};
use store::{DirStore, StoreError};

/// How often the manager looks at the tenants: a tenant added by a reload is ordered within this.
const TICK: Duration = Duration::from_secs(1);

/// With the `kubernetes` store, how long the ordering replica waits between publishing its challenge answers
/// and telling the CA to validate, so the watch has brought them to every replica (each copies them within a
/// tenth of a second of seeing them).
const PROPAGATION: Duration = Duration::from_secs(2);

/// How long an order may wait for the CA to validate and to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Orders in flight at once, each its own task: a slow order (a CA validating slowly, a DNS-01 hook waiting for
/// propagation) does not hold up the other tenants', and a first start with many tenants does not open an order
/// per tenant at once.
const MAX_ORDERS: usize = 4;

/// Issued certificates by tenant and pending challenge answers by name: what the handshakes read.
#[derive(Debug, Default)]
pub struct AcmeCerts {
    issued: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    challenges: RwLock<HashMap<String, Arc<ServerConfig>>>,
    /// HTTP-01: key authorizations by token.
    http_tokens: RwLock<HashMap<String, String>>,
}

impl AcmeCerts {
    /// The certificate issued for `tenant`, if any yet.
    pub fn issued(&self, tenant: &str) -> Option<Arc<CertifiedKey>> {
        self.issued.read().unwrap_or_else(|p| p.into_inner()).get(tenant).cloned()
    }

    fn install(&self, tenant: &str, cert: Arc<CertifiedKey>) {
        self.issued.write().unwrap_or_else(|p| p.into_inner()).insert(tenant.to_owned(), cert);
    }

    /// The TLS-ALPN-01 answer for `name` while its challenge is pending.
    pub fn challenge(&self, name: &str) -> Option<Arc<ServerConfig>> {
        self.challenges.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    fn set_challenge(&self, name: &str, config: Arc<ServerConfig>) {
        self.challenges.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), config);
    }

    /// The HTTP-01 key authorization for `token` while its challenge is pending.
    pub fn http_token(&self, token: &str) -> Option<String> {
        self.http_tokens.read().unwrap_or_else(|p| p.into_inner()).get(token).cloned()
    }

    fn set_http_token(&self, token: &str, key_authorization: String) {
        self.http_tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), key_authorization);
    }

    fn clear_http_tokens(&self, tokens: &[String]) {
        let mut map = self.http_tokens.write().unwrap_or_else(|p| p.into_inner());
        for token in tokens {
            map.remove(token);
        }
    }

    fn clear_challenges(&self, names: &[String]) {
        let mut map = self.challenges.write().unwrap_or_else(|p| p.into_inner());
        for name in names {
            map.remove(name);
        }
    }

    /// The certificate resolver of `tenant`'s TLS configuration: its issued certificate, read per handshake,
    /// else `fallback` (the default certificate) until the first one is issued.
    pub fn resolver(
        self: &Arc<Self>,
        tenant: &str,
        fallback: Arc<CertifiedKey>,
    ) -> Arc<dyn ResolvesServerCert> {
        Arc::new(AcmeResolver { tenant: tenant.to_owned(), certs: self.clone(), fallback })
    }
}

#[derive(Debug)]
struct AcmeResolver {
    tenant: String,
    certs: Arc<AcmeCerts>,
    fallback: Arc<CertifiedKey>,
}

impl ResolvesServerCert for AcmeResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certs.issued(&self.tenant).unwrap_or_else(|| self.fallback.clone()))
    }
}

/// The names a tenant's certificate covers, by the challenge type: DNS-01 can validate a wildcard, so
/// `<tenant>.<domain>` and `*.<tenant>.<domain>`; otherwise [`names`].
pub fn names_for(challenge: ChallengeKind, tenant: &str, domain: &str, broker_ids: &[u32]) -> Vec<String> {
    match challenge {
        ChallengeKind::Dns01 => vec![format!("{tenant}.{domain}"), format!("*.{tenant}.{domain}")],
        ChallengeKind::TlsAlpn01 | ChallengeKind::Http01 => names(tenant, domain, broker_ids),
    }
}

/// The names a tenant's certificate covers: `<tenant>.<domain>`, then `b<id>.<tenant>.<domain>` per id.
pub fn names(tenant: &str, domain: &str, broker_ids: &[u32]) -> Vec<String> {
    let base = format!("{tenant}.{domain}");
    let brokers = broker_ids.iter().map(|id| format!("b{id}.{base}"));
    std::iter::once(base.clone()).chain(brokers).collect()
}

/// The DNS names of a certificate's leaf and its validity (not-before, not-after, Unix seconds).
fn leaf_facts(cert: &CertifiedKey) -> Option<(Vec<String>, i64, i64)> {
    let (_, leaf) = x509_parser::parse_x509_certificate(cert.cert.first()?).ok()?;
    let sans = leaf.subject_alternative_name().ok()??;
    let names = sans
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    Some((names, leaf.validity().not_before.timestamp(), leaf.validity().not_after.timestamp()))
}

/// Why an order failed; the tenant keeps its current certificate.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The ACME server refused or failed a request, or could not be reached.
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// The order ended in a state other than ready or valid.
    #[error("order {0}")]
    Status(String),
    /// The CA found a challenge answer wrong, or could not reach it: the order is invalid. Holds the CA's
    /// problem detail.
    #[error("order invalid: a challenge failed validation: {0}")]
    ChallengeFailed(String),
    /// The CA offers no challenge of the configured type for a name.
    #[error("no {kind:?} challenge offered for {name}")]
    NoChallenge {
        /// The challenge type asked for.
        kind: ChallengeType,
        /// The name.
        name: String,
    },
    /// The challenge answer could not be built.
    #[error(transparent)]
    Challenge(#[from] challenge::ChallengeError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The DNS-01 hook failed.
    #[error(transparent)]
    Hook(#[from] dns01::HookError),
    /// The issued certificate and key do not load.
    #[error("issued certificate: {0}")]
    Certificate(#[from] CertError),
    /// The trust roots for the directory could not be used.
    #[error("trust_roots: {0}")]
    TrustRoots(String),
}

impl OrderError {
    /// The CA refused for its rate limits: wait longer before the next attempt.
    fn rate_limited(&self) -> bool {
        matches!(self, OrderError::Acme(instant_acme::Error::Api(p))
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited"))
    }

    /// How long the CA asked to wait when polling the order would have gone past its deadline.
    fn poll_wait(&self) -> Option<Duration> {
        match self {
            OrderError::Acme(instant_acme::Error::Timeout(Some(at))) => {
                Some(at.saturating_duration_since(std::time::Instant::now()))
            }
            _ => None,
        }
    }
}

/// Whether a new order naming the certificate it `replaces` may be placed again without: the CA offers no
/// renewal information, or says that certificate was already replaced (RFC 9773 §5).
fn replaces_refused(e: &instant_acme::Error) -> bool {
    match e {
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Api(p) => {
            p.r#type.as_deref() == Some("urn:ietf:params:acme:error:alreadyReplaced")
        }
        _ => false,
    }
}

/// Where a tenant stands.
#[derive(Debug)]
struct Plan {
    /// The names its current certificate covers (or the last order asked for).
    names: Vec<String>,
    /// Unix seconds from which to order a new certificate.
    renew_at: i64,
    /// Why at `renew_at`.
    trigger: Trigger,
    /// Consecutive failed orders.
    failures: u32,
    /// The lifetime of the certificate serving now, if any: retries of its renewal are paced by it.
    lifetime: Option<Duration>,
    /// The certificate serving now, if any.
    held: Option<Held>,
}

/// The certificate serving a tenant, as its renewal sees it.
#[derive(Debug)]
struct Held {
    not_before: i64,
    not_after: i64,
    /// Its RFC 9773 identifier: what renewalInfo is asked about, and what the renewal's order `replaces`.
    id: Option<CertificateIdentifier<'static>>,
    /// The CA's latest valid suggested window.
    window: Option<Window>,
    /// When to ask the CA's renewalInfo next (Unix seconds); `None`: not at all (the CA offers none, or the
    /// certificate has no identifier).
    ari_at: Option<i64>,
    /// Consecutive failed renewalInfo requests.
    ari_failures: u32,
    /// Where in a window to renew (0..1), drawn once per certificate so each answer keeps the same point.
    jitter: f64,
}

/// What the store held for a tenant at its first look.
enum Stored {
    /// A certificate for its names, now serving.
    Serving,
    /// An expired one, to be replaced at once (by an order naming it).
    Expired(Option<CertificateIdentifier<'static>>),
    /// None for its names.
    Nothing,
}

/// The RFC 9773 identifier of a certificate's leaf (from its Authority Key Identifier and serial).
fn certificate_id(cert: &CertifiedKey) -> Option<CertificateIdentifier<'static>> {
    CertificateIdentifier::try_from(cert.cert.first()?).ok()
}

/// Where the account and certificates are kept.
#[derive(Debug)]
enum Store {
    Dir(DirStore),
    Kube(Box<KubeStore>),
}

impl Store {
    fn account(&self, directory_url: &str) -> Result<Option<instant_acme::AccountCredentials>, StoreError> {
        match self {
            Store::Dir(d) => d.account(directory_url),
            Store::Kube(k) => k.account(directory_url),
        }
    }

    async fn put_account(
        &self,
        directory_url: &str,
        credentials: instant_acme::AccountCredentials,
    ) -> Result<(), StoreError> {
        match self {
            Store::Dir(d) => d.put_account(directory_url, credentials),
            Store::Kube(k) => k.put_account(directory_url, credentials).await,
        }
    }

    /// `tenant`'s stored certificate, when there is one that loads.
    fn certificate(&self, tenant: &str) -> Option<CertifiedKey> {
        match self {
            Store::Dir(d) => {
                let path = d.certificate_path(tenant);
                certs::load_pair(&path, &path).ok()
            }
            Store::Kube(k) => k.certificate(tenant),
        }
    }

    async fn put_certificate(&self, tenant: &str, key_pem: &str, chain_pem: &str) -> Result<(), StoreError> {
        match self {
            Store::Dir(d) => d.put_certificate(tenant, key_pem, chain_pem),
            Store::Kube(k) => k.put_certificate(tenant, key_pem, chain_pem).await,
        }
    }

    /// Whether this replica orders: always with the `dir` store, with the Lease with `kubernetes`.
    fn leading(&self) -> bool {
        match self {
            Store::Dir(_) => true,
            Store::Kube(k) => k.leading(),
        }
    }
}

/// Challenge answers as published to the other replicas: TLS-ALPN-01 digests by name, HTTP-01 key
/// authorizations by token.
type Answers = (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>);

/// What an order needs beyond its account, shared by the orders in flight.
#[derive(Debug)]
struct OrderContext {
    settings: Arc<AcmeSettings>,
    certs: Arc<AcmeCerts>,
    store: Arc<Store>,
    /// With the `kubernetes` store, the challenge answers of every order in flight (TLS-ALPN-01 digests by name,
    /// HTTP-01 key authorizations by token): each publish writes all of them, under this lock, so one order's
    /// publish never takes away another's answers.
    published: tokio::sync::Mutex<Answers>,
}

/// An order's end, as its task hands it back.
struct Done {
    tenant: String,
    names: Vec<String>,
    result: Result<CertifiedKey, OrderError>,
    /// The wait the CA asked for in a `Retry-After` during the order (on a refusal, or polling past the deadline).
    ca_wait: Option<Duration>,
}

/// Orders, stores, installs and renews the ACME tenants' certificates.
pub struct Manager {
    settings: Arc<AcmeSettings>,
    certs: Arc<AcmeCerts>,
    metrics: Arc<Metrics>,
    store: Arc<Store>,
    context: Arc<OrderContext>,
    account: Option<Account>,
    /// The orders in flight (aborted when the manager is dropped), and their tenants by task.
    orders: tokio::task::JoinSet<Done>,
    ordering: HashMap<tokio::task::Id, String>,
    plans: HashMap<String, Plan>,
    /// Challenge answers copied from the `kubernetes` store while another replica orders: TLS-ALPN-01 names and
    /// HTTP-01 tokens.
    mirrored: (BTreeSet<String>, BTreeSet<String>),
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("store", &self.store).field("plans", &self.plans).finish()
    }
}

/// The Unix second at or after `wait` from now: the manager looks at whole seconds, so a wait the CA asked for
/// is rounded up, never down.
fn seconds_after(wait: Duration) -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let due = since_epoch.saturating_add(wait);
    let seconds = due.as_secs().saturating_add(u64::from(due.subsec_nanos() > 0));
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn now_seconds() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Manager {
    /// A manager on `settings`' store; fails when the store directory cannot be created, or the Kubernetes
    /// API cannot be reached and its Secrets listed.
    pub async fn new(
        settings: Arc<AcmeSettings>,
        certs: Arc<AcmeCerts>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let store = match &settings.store {
            StoreSettings::Dir(dir) => Store::Dir(DirStore::open(dir)?),
            StoreSettings::Kubernetes(k) => Store::Kube(Box::new(KubeStore::start(k).await?)),
        };
        let store = Arc::new(store);
        let context = Arc::new(OrderContext {
            settings: settings.clone(),
            certs: certs.clone(),
            store: store.clone(),
            published: Default::default(),
        });
        let (account, plans, mirrored) = (None, HashMap::new(), Default::default());
        let (orders, ordering) = (tokio::task::JoinSet::new(), HashMap::new());
        Ok(Manager { settings, certs, metrics, store, context, account, orders, ordering, plans, mirrored })
    }

    /// Looks after the ACME tenants `wanted` gives (the domain, and each tenant with its broker ids; asked anew
    /// every tick, so tenants added by a reload are seen), for ever (the task is dropped at shutdown).
    pub async fn run(mut self, wanted: impl Fn() -> (String, Vec<(String, Vec<u32>)>)) {
        loop {
            self.collect_orders();
            let (domain, tenants) = wanted();
            let leading = self.store.leading();
            for (tenant, broker_ids) in tenants {
                let names = names_for(self.settings.challenge, &tenant, &domain, &broker_ids);
                if leading {
                    self.tend(&tenant, &names).await;
                } else {
                    self.follow(&tenant, &names);
                }
            }
            // Between looks at the tenants, copy new challenge answers at once: the CA validates right after
            // the ordering replica publishes them (it waits `PROPAGATION` first).
            for _ in 0..10 {
                tokio::time::sleep(TICK / 10).await;
                self.mirror_challenges(self.store.leading());
            }
        }
    }

    /// Takes in the orders that ended: installs their certificates, or schedules their retries.
    fn collect_orders(&mut self) {
        while let Some(ended) = self.orders.try_join_next_with_id() {
            match ended {
                Ok((id, done)) => {
                    self.ordering.remove(&id);
                    match done.result {
                        Ok(cert) => {
                            self.metrics.acme_order(&done.tenant, true);
                            if !self.install_issued(&done.tenant, &done.names, cert) {
                                warn!(tenant = done.tenant, "ACME certificate issued but not installed");
                            }
                        }
                        Err(e) => self.order_failed(&done.tenant, &done.names, &e, done.ca_wait),
                    }
                }
                // A panicked order: its tenant is looked at again (an order whose task panics is a bug).
                Err(e) => {
                    let tenant = self.ordering.remove(&e.id()).unwrap_or_default();
                    warn!(tenant, error = %e, "ACME order task ended abnormally");
                }
            }
        }
    }

    /// A replica that does not order serves what the ordering one stored, as soon as the watch brings it.
    fn follow(&mut self, tenant: &str, names: &[String]) {
        let Store::Kube(k) = &*self.store else { return };
        // The key is loaded only when the stored leaf is not the one serving already.
        let serving = self.certs.issued(tenant);
        let serving_leaf = serving.as_ref().and_then(|s| s.cert.first()).map(|c| c.as_ref());
        if k.stored_leaf(tenant).is_none_or(|leaf| Some(&leaf[..]) == serving_leaf) {
            return;
        }
        let Some(cert) = k.certificate(tenant) else { return };
        let Some((_, not_before, not_after)) = leaf_facts(&cert) else { return };
        info!(tenant, not_after, "ACME: serving the certificate another replica ordered");
        self.install(tenant, names, Arc::new(cert), not_before, not_after);
    }

    /// While another replica orders, answers the challenges it published; the ordering replica answers its
    /// own, so a replica that starts ordering drops the copies.
    fn mirror_challenges(&mut self, leading: bool) {
        let (tls_alpn, http) = match (&*self.store, leading) {
            (Store::Kube(k), false) => k.challenges(),
            _ if self.mirrored.0.is_empty() && self.mirrored.1.is_empty() => return,
            _ => Default::default(),
        };
        let gone: Vec<String> =
            self.mirrored.0.iter().filter(|n| !tls_alpn.contains_key(*n)).cloned().collect();
        self.certs.clear_challenges(&gone);
        for (name, digest) in &tls_alpn {
            if !self.mirrored.0.contains(name) {
                match challenge::server_config(name, digest) {
                    Ok(config) => self.certs.set_challenge(name, config),
                    Err(e) => warn!(name, error = %e, "ACME: published challenge answer unusable"),
                }
            }
        }
        let gone: Vec<String> = self.mirrored.1.iter().filter(|t| !http.contains_key(*t)).cloned().collect();
        self.certs.clear_http_tokens(&gone);
        for (token, key_authorization) in &http {
            if !self.mirrored.1.contains(token) {
                self.certs.set_http_token(token, key_authorization.clone());
            }
        }
        self.mirrored = (tls_alpn.into_keys().collect(), http.into_keys().collect());
    }

    /// One look at `tenant`: the CA's renewal information when it is due; nothing while its certificate is not
    /// due for renewal or a retry is not due; else an order (at the first look, the stored certificate serves
    /// when it covers `names` and has not expired).
    async fn tend(&mut self, tenant: &str, names: &[String]) {
        if self.ordering.values().any(|t| t == tenant) {
            return;
        }
        let now = now_seconds();
        let mut trigger = None;
        let mut replaces = None;
        if !self.plans.contains_key(tenant) {
            match self.reuse_stored(tenant, names, now) {
                Stored::Serving => {}
                Stored::Expired(id) => (trigger, replaces) = (Some(Trigger::Expired), id),
                Stored::Nothing => {}
            }
        }
        if let Some(plan) = self.plans.get(tenant) {
            let ari_due =
                plan.held.as_ref().is_some_and(|h| now < h.not_after && h.ari_at.is_some_and(|at| at <= now));
            if plan.names == names && ari_due {
                self.check_renewal_info(tenant, now).await;
            }
        }
        if let Some(plan) = self.plans.get(tenant) {
            if plan.names == names && now < plan.renew_at {
                return;
            }
            if self.orders.len() >= MAX_ORDERS {
                return;
            }
            trigger = match &plan.held {
                _ if plan.failures > 0 => None,
                _ if plan.names != names => Some(Trigger::Names),
                Some(h) if now >= h.not_after => Some(Trigger::Expired),
                Some(_) => Some(plan.trigger),
                None => None,
            };
            replaces = plan.held.as_ref().and_then(|h| h.id.clone());
        } else if self.orders.len() >= MAX_ORDERS {
            return;
        }
        self.start_order(tenant, names, replaces, trigger).await;
    }

    /// Starts an order for `tenant` in its own task (a renewal started by `trigger` is counted; `None` for a first
    /// issuance or a retry); [`Manager::collect_orders`] takes in its end.
    async fn start_order(
        &mut self,
        tenant: &str,
        names: &[String],
        replaces: Option<CertificateIdentifier<'static>>,
        trigger: Option<Trigger>,
    ) {
        if let Some(trigger) = trigger {
            info!(tenant, trigger = trigger.label(), replaces = replaces.is_some(), "ACME: renewing");
            self.metrics.acme_renewal(trigger.label());
        }
        let (account, ca_wait) = client::recording(self.account()).await;
        let account = match account {
            Ok(account) => account,
            Err(e) => return self.order_failed(tenant, names, &e, ca_wait),
        };
        let (context, owner, names) = (self.context.clone(), tenant.to_owned(), names.to_vec());
        let task = self.orders.spawn(async move {
            let ordered = order(&context, &account, &owner, &names, replaces);
            let (result, ca_wait) = client::recording(ordered).await;
            let ca_wait = ca_wait.or_else(|| result.as_ref().err().and_then(OrderError::poll_wait));
            Done { tenant: owner, names, result, ca_wait }
        });
        self.ordering.insert(task.id(), tenant.to_owned());
    }

    /// Counts a failed order of `tenant` for `names` and schedules its retry: backoff, never sooner than the
    /// CA's `Retry-After` (`ca_wait`).
    fn order_failed(&mut self, tenant: &str, names: &[String], e: &OrderError, ca_wait: Option<Duration>) {
        self.metrics.acme_order(tenant, false);
        if matches!(e, OrderError::ChallengeFailed(_)) {
            self.metrics.acme_challenge_failed(self.settings.challenge.label());
        }
        let now = now_seconds();
        let plan = self.plans.entry(tenant.to_owned()).or_insert_with(|| Plan {
            names: names.to_vec(),
            renew_at: now,
            trigger: Trigger::Schedule,
            failures: 0,
            lifetime: None,
            held: None,
        });
        plan.failures += 1;
        let wait = schedule::retry_after(plan.failures, e.rate_limited(), plan.lifetime, ca_wait);
        let keeps = if self.certs.issued(tenant).is_some() { "keeps its certificate" } else { "not issued" };
        warn!(
            tenant,
            error = %e,
            failures = plan.failures,
            retry_seconds = wait.as_secs(),
            ca_retry_after_seconds = ca_wait.map(|w| w.as_secs()),
            "ACME order failed; {keeps}"
        );
        plan.renew_at = seconds_after(wait);
        plan.names = names.to_vec();
    }

    /// Asks the CA's renewalInfo about `tenant`'s certificate and reschedules its renewal by the answer: a time
    /// in the suggested window, or two thirds of the lifetime when the CA offers none or the request fails.
    async fn check_renewal_info(&mut self, tenant: &str, now: i64) {
        let Some(id) = self.plans.get(tenant).and_then(|p| p.held.as_ref()?.id.clone()) else { return };
        let (answer, ca_wait) = client::recording(async {
            let account = self.account().await?;
            account.renewal_info(&id).await.map_err(OrderError::from)
        })
        .await;
        let Some(Plan { held: Some(held), lifetime, failures, renew_at, trigger, .. }) =
            self.plans.get_mut(tenant)
        else {
            return;
        };
        match answer {
            Ok((info, retry)) => {
                let window = Window {
                    start: info.suggested_window.start.unix_timestamp(),
                    end: info.suggested_window.end.unix_timestamp(),
                };
                held.ari_failures = 0;
                held.ari_at = Some(schedule::next_renewal_info(now, retry));
                if window.start < window.end {
                    held.window = Some(window);
                } else {
                    warn!(tenant, ?window, "ACME: invalid renewal window (RFC 9773 §4.2); ignored");
                }
            }
            Err(OrderError::Acme(instant_acme::Error::Unsupported(_))) => {
                info!(
                    tenant,
                    "ACME: the CA offers no renewal information; renewing at two thirds of the lifetime"
                );
                (held.ari_at, held.window) = (None, None);
            }
            Err(e) => {
                held.ari_failures += 1;
                let wait = schedule::retry_after(held.ari_failures, false, *lifetime, ca_wait);
                held.ari_at = Some(seconds_after(wait));
                warn!(tenant, error = %e, retry_seconds = wait.as_secs(), "ACME: renewal information not read; the schedule stands");
            }
        }
        // A failing renewal keeps its retry pacing; the trigger still says why it is due.
        let (at, why) = schedule::renewal(now, held.not_before, held.not_after, held.window, held.jitter);
        if (at, why) != (*renew_at, *trigger) && *failures == 0 {
            info!(
                tenant,
                renew_at = at,
                trigger = why.label(),
                window_start = held.window.map(|w| w.start),
                window_end = held.window.map(|w| w.end),
                next_check = held.ari_at,
                "ACME: renewal scheduled"
            );
            *renew_at = at;
        }
        *trigger = why;
    }

    /// At `tenant`'s first look: installs its stored certificate when it covers `names` and has not expired.
    fn reuse_stored(&mut self, tenant: &str, names: &[String], now: i64) -> Stored {
        let Some(cert) = self.store.certificate(tenant) else { return Stored::Nothing };
        let Some((covered, not_before, not_after)) = leaf_facts(&cert) else { return Stored::Nothing };
        if !names.iter().all(|n| covered.contains(n)) {
            return Stored::Nothing;
        }
        if now >= not_after {
            info!(tenant, not_after, "ACME: the stored certificate has expired; replacing it");
            return Stored::Expired(certificate_id(&cert));
        }
        info!(tenant, not_after, "ACME: reusing the stored certificate");
        self.install(tenant, names, Arc::new(cert), not_before, not_after);
        Stored::Serving
    }

    /// Installs the certificate just issued (and stored).
    fn install_issued(&mut self, tenant: &str, names: &[String], cert: CertifiedKey) -> bool {
        let Some((_, not_before, not_after)) = leaf_facts(&cert) else { return false };
        info!(tenant, not_after, "ACME: certificate issued and serving");
        self.install(tenant, names, Arc::new(cert), not_before, not_after);
        true
    }

    fn install(
        &mut self,
        tenant: &str,
        names: &[String],
        cert: Arc<CertifiedKey>,
        not_before: i64,
        not_after: i64,
    ) {
        let id = certificate_id(&cert);
        self.certs.install(tenant, cert);
        self.metrics.certificates([(tenant, not_after)]);
        let jitter = schedule::jitter();
        let now = now_seconds();
        // Until the CA's renewal information is read, the two-thirds schedule; it is asked at once (RFC 9773
        // §4.3: right after issuance), so a window already over (a revoked certificate) is seen at start.
        let (renew_at, trigger) = schedule::renewal(now, not_before, not_after, None, jitter);
        let lifetime = u64::try_from(not_after.saturating_sub(not_before)).ok().map(Duration::from_secs);
        let ari_at = id.as_ref().map(|_| now);
        let held = Held { not_before, not_after, id, window: None, ari_at, ari_failures: 0, jitter };
        let plan = Plan { names: names.to_vec(), renew_at, trigger, failures: 0, lifetime, held: Some(held) };
        self.plans.insert(tenant.to_owned(), plan);
    }

    /// The account: from the store, else created at the CA and stored.
    async fn account(&mut self) -> Result<Account, OrderError> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let settings = &self.settings;
        let http = client::client(settings.trust_roots.as_deref()).map_err(OrderError::TrustRoots)?;
        let builder = Account::builder_with_http(http);
        let account = match self.store.account(&settings.directory_url)? {
            Some(credentials) => builder.from_credentials(credentials).await?,
            None => {
                let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let eab = settings.eab.as_ref().map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
                let (account, credentials) =
                    builder.create(&new, settings.directory_url.clone(), eab.as_ref()).await?;
                self.store.put_account(&settings.directory_url, credentials).await?;
                info!(id = account.id(), "ACME: account created and stored");
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }
}

/// One order for `names` of `tenant` (naming the certificate it `replaces`, RFC 9773 §5) as `account`, answered
/// by the configured challenge; the key and chain go to the store. Returns the new certificate, as stored.
async fn order(
    context: &OrderContext,
    account: &Account,
    tenant: &str,
    names: &[String],
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<CertifiedKey, OrderError> {
    info!(tenant, names = ?names, replaces = replaces.as_ref().map(|r| r.to_string()), "ACME: ordering");
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = match replaces {
        Some(id) => match account.new_order(&NewOrder::new(&identifiers).replaces(id)).await {
            Err(e) if replaces_refused(&e) => {
                info!(tenant, error = %e, "ACME: ordering again without naming the certificate replaced");
                account.new_order(&NewOrder::new(&identifiers)).await?
            }
            placed => placed?,
        },
        None => account.new_order(&NewOrder::new(&identifiers)).await?,
    };
    let publish = match &*context.store {
        Store::Kube(k) => Some(&**k),
        Store::Dir(_) => None,
    };
    let pending = PendingChallenges {
        certs: &context.certs,
        names: Vec::new(),
        tokens: Vec::new(),
        publish,
        all: &context.published,
        published: Default::default(),
    };
    let mut records = Vec::new();
    let settings = &context.settings;
    let hook = settings.dns01_hook.as_deref().unwrap_or_default();
    let mut shared = Default::default();
    let result = answer_and_finish(&mut order, settings.challenge, pending, hook, &mut records, &mut shared)
        .await
        .map_err(validation_failure);
    // The answers published for the other replicas go whatever the outcome (the other orders' stay).
    if let Some(k) = publish {
        let mut all = context.published.lock().await;
        let (tls_alpn, http): &Answers = &shared;
        all.0.retain(|name, _| !tls_alpn.contains_key(name));
        all.1.retain(|token, _| !http.contains_key(token));
        if let Err(e) = k.publish_challenges(&all.0, &all.1).await {
            warn!(tenant, error = %e, "ACME: published challenge answers not withdrawn");
        }
    }
    // The TXT records go whatever the outcome; a failure to clear one is only logged.
    for (name, value) in records {
        if let Err(e) = dns01::run(hook, "clear", &name, &value).await {
            warn!(tenant, error = %e, "ACME: DNS-01 record not cleared");
        }
    }
    let (key_pem, chain_pem) = result?;
    context.store.put_certificate(tenant, &key_pem, &chain_pem).await?;
    let at = std::path::Path::new("issued");
    Ok(certs::pair_from_pem(chain_pem.as_bytes(), key_pem.as_bytes(), at, at)?)
}

/// Challenge answers of one order, withdrawn from the handshakes when it ends however it ends (those in the
/// `kubernetes` store by [`order`]).
struct PendingChallenges<'a> {
    certs: &'a AcmeCerts,
    /// TLS-ALPN-01 answers, by name.
    names: Vec<String>,
    /// HTTP-01 answers, by token.
    tokens: Vec<String>,
    /// The `kubernetes` store, where the other replicas read the answers.
    publish: Option<&'a KubeStore>,
    /// The answers of every order in flight, as published.
    all: &'a tokio::sync::Mutex<Answers>,
    /// This order's answers: TLS-ALPN-01 digests by name, HTTP-01 key authorizations by token.
    published: Answers,
}

impl PendingChallenges<'_> {
    /// Publishes every answer of the order (beside those of the other orders in flight) to the other replicas
    /// and gives the watch time to bring them there (before the CA is told to validate).
    async fn share(&self) -> Result<(), StoreError> {
        if let Some(k) = self.publish {
            let mut all = self.all.lock().await;
            all.0.extend(self.published.0.clone());
            all.1.extend(self.published.1.clone());
            k.publish_challenges(&all.0, &all.1).await?;
            drop(all);
            tokio::time::sleep(PROPAGATION).await;
        }
        Ok(())
    }
}

impl Drop for PendingChallenges<'_> {
    fn drop(&mut self) {
        self.certs.clear_challenges(&self.names);
        self.certs.clear_http_tokens(&self.tokens);
    }
}

/// Publishes the answer (of type `kind`) of every pending authorization, waits for the order to be ready, and
/// finalizes it: the new key (PEM) and chain (PEM).
/// DNS-01 records are published with `hook`, each recorded in `records` (name, value) for the caller to clear.
async fn answer_and_finish(
    order: &mut instant_acme::Order,
    kind: ChallengeKind,
    mut pending: PendingChallenges<'_>,
    hook: &[String],
    records: &mut Vec<(String, String)>,
    shared: &mut Answers,
) -> Result<(String, String), OrderError> {
    let kind = match kind {
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::Dns01 => ChallengeType::Dns01,
    };
    // Every answer is in place (and shared with the other replicas, once) before the CA is asked to validate
    // any: a validation may come at once, to any replica.
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => return Err(OrderError::Status(format!("authorization {other:?}"))),
        }
        let name = authz.identifier().to_string();
        let no_challenge = || OrderError::NoChallenge { kind: kind.clone(), name: name.clone() };
        let challenge = authz.challenge(kind.clone()).ok_or_else(no_challenge)?;
        let key_authorization = challenge.key_authorization();
        match kind {
            ChallengeType::Http01 => {
                pending.certs.set_http_token(&challenge.token, key_authorization.as_str().to_owned());
                pending.tokens.push(challenge.token.clone());
                pending.published.1.insert(challenge.token.clone(), key_authorization.as_str().to_owned());
            }
            ChallengeType::Dns01 => {
                let record = (dns01::record_name(&name), key_authorization.dns_value());
                records.push(record.clone());
                dns01::run(hook, "set", &record.0, &record.1).await?;
            }
            _ => {
                let digest = key_authorization.digest();
                pending.certs.set_challenge(&name, challenge::server_config(&name, digest.as_ref())?);
                pending.published.0.insert(name.clone(), digest.as_ref().to_vec());
                pending.names.push(name);
            }
        }
    }
    // Recorded before publishing: a publish that fails half-way is withdrawn too.
    *shared = pending.published.clone();
    pending.share().await?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let name = authz.identifier().to_string();
        let no_challenge = || OrderError::NoChallenge { kind: kind.clone(), name: name.clone() };
        authz.challenge(kind.clone()).ok_or_else(no_challenge)?.set_ready().await?;
    }
    let retries = RetryPolicy::new().timeout(ORDER_TIMEOUT);
    let status = order.poll_ready(&retries).await?;
    if status == OrderStatus::Invalid {
        return Err(OrderError::ChallengeFailed("order status invalid".into()));
    }
    if status != OrderStatus::Ready {
        return Err(OrderError::Status(format!("{status:?} (not ready)")));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&retries).await?;
    Ok((key_pem, chain_pem))
}

/// The problem types of RFC 8555 §6.7 that mean a name's validation failed (the CA could not reach the answer,
/// or found it wrong), as opposed to the CA or the account failing.
const VALIDATION_PROBLEMS: [&str; 6] =
    ["unauthorized", "connection", "dns", "incorrectResponse", "tls", "caa"];

/// `e` as a [`OrderError::ChallengeFailed`] when the CA's problem is a validation failure (which the CA may
/// report to whichever request comes after it: a challenge's, the order's poll, the finalization).
fn validation_failure(e: OrderError) -> OrderError {
    let failed = |p: &instant_acme::Problem| {
        let kind = p.r#type.as_deref().and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"));
        kind.is_some_and(|k| VALIDATION_PROBLEMS.contains(&k))
    };
    match e {
        OrderError::Acme(instant_acme::Error::Api(p)) if failed(&p) => {
            OrderError::ChallengeFailed(p.to_string())
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problems_are_challenge_failures() {
        let problem = |kind: &str| {
            let json = format!("{{\"type\": \"urn:ietf:params:acme:error:{kind}\", \"detail\": \"d\"}}");
            OrderError::Acme(instant_acme::Error::Api(serde_json::from_str(&json).expect("problem")))
        };
        let cases = [
            ("unauthorized", true),
            ("connection", true),
            ("incorrectResponse", true),
            ("tls", true),
            ("dns", true),
            ("caa", true),
            ("rateLimited", false),
            ("serverInternal", false),
            ("badNonce", false),
        ];
        for (kind, want) in cases {
            let got = matches!(validation_failure(problem(kind)), OrderError::ChallengeFailed(_));
            assert_eq!(got, want, "{kind}");
        }
        let crypto = OrderError::Acme(instant_acme::Error::Crypto);
        assert!(!matches!(validation_failure(crypto), OrderError::ChallengeFailed(_)));
    }

    #[test]
    fn waits_round_up_to_the_next_whole_second() {
        for millis in [1, 500, 999, 1000, 1001, 5999] {
            let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
            let due = seconds_after(Duration::from_millis(millis));
            let earliest = before + Duration::from_millis(millis);
            assert!(Duration::from_secs(u64::try_from(due).expect("positive")) >= earliest, "{millis} ms");
            assert!(
                due <= now_seconds() + i64::try_from(millis.div_ceil(1000) + 1).expect("small"),
                "{millis} ms"
            );
        }
        assert_eq!(seconds_after(Duration::MAX), i64::MAX);
    }

    #[test]
    fn names_are_the_bootstrap_name_then_each_broker() {
        let cases: [(&[u32], &[&str]); 3] = [
            (&[], &["acme.kaas.localhost"]),
            (
                &[0, 1, 2],
                &[
                    "acme.kaas.localhost",
                    "b0.acme.kaas.localhost",
                    "b1.acme.kaas.localhost",
                    "b2.acme.kaas.localhost",
                ],
            ),
            (&[111], &["acme.kaas.localhost", "b111.acme.kaas.localhost"]),
        ];
        for (ids, want) in cases {
            assert_eq!(names("acme", "kaas.localhost", ids), want, "{ids:?}");
        }
    }

    #[test]
    fn dns01_orders_the_wildcard_instead_of_broker_names() {
        let cases = [
            (ChallengeKind::Dns01, vec!["acme.kaas.localhost", "*.acme.kaas.localhost"]),
            (ChallengeKind::TlsAlpn01, vec!["acme.kaas.localhost", "b7.acme.kaas.localhost"]),
            (ChallengeKind::Http01, vec!["acme.kaas.localhost", "b7.acme.kaas.localhost"]),
        ];
        for (challenge, want) in cases {
            assert_eq!(names_for(challenge, "acme", "kaas.localhost", &[7]), want, "{challenge:?}");
        }
    }

    #[test]
    fn issued_certificates_are_kept_by_tenant_with_their_names() {
        let key = |name: &str| {
            let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
            let der = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
            let signing = crate::tls::provider().key_provider.load_private_key(der).expect("key");
            Arc::new(CertifiedKey::new(vec![ck.cert.der().clone()], signing))
        };
        let certs = AcmeCerts::default();
        let issued = key("acme.test");
        assert_eq!(leaf_facts(&issued).map(|f| f.0), Some(vec!["acme.test".to_string()]));
        assert!(certs.issued("acme").is_none());
        certs.install("acme", issued.clone());
        assert!(Arc::ptr_eq(&certs.issued("acme").expect("issued"), &issued));
        assert!(certs.issued("other").is_none());
    }
}
