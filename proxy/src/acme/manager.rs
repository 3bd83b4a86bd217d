//! The ACME manager: looks at the ACME tenants every second, decides for each whether its certificate serves,
//! is due for renewal (by the CA's renewal information, else two thirds of its lifetime) or a retry is due, starts
//! orders (each its own task, up to `MAX_ORDERS` at once), takes in their ends (installing certificates, or
//! scheduling retries), and with the `kubernetes` store follows the replica that orders.
//!
//! Neighbours: [`super::order`] (one order), [`super::schedule`] (when), [`super::certs`] (what handshakes read),
//! [`super::store`] (the account and certificates kept), [`super::client`] (the CA's `Retry-After`),
//! [`crate::metrics`] (orders, renewals, expiry).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier, ExternalAccountKey, NewAccount};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use super::certs::{certificate_id, leaf_facts, names_for, AcmeCerts};
use super::order::{order, OrderContext, OrderError};
use super::schedule::{self, Trigger, Window};
use super::store::{DirStore, KubeStore, Store, StoreError};
use super::AcmeMetrics;
use super::{challenge, client};
use crate::config::{AcmeSettings, StoreSettings};
use crate::metrics::Metrics;

/// How often the manager looks at the tenants: a tenant added by a reload is ordered within this.
const TICK: Duration = Duration::from_secs(1);

/// Orders in flight at once, each its own task: a slow order (a CA validating slowly, a DNS-01 hook waiting for
/// propagation) does not hold up the other tenants', and a first start with many tenants does not open an order
/// per tenant at once.
const MAX_ORDERS: usize = 4;

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
    acme_metrics: AcmeMetrics,
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
        (metrics, acme_metrics): (Arc<Metrics>, AcmeMetrics),
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
        Ok(Manager {
            settings,
            certs,
            metrics,
            acme_metrics,
            store,
            context,
            account,
            orders,
            ordering,
            plans,
            mirrored,
        })
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
            self.acme_metrics.renewal(trigger.label());
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
            self.acme_metrics.challenge_failed(self.settings.challenge.label());
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
