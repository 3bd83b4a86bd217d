//! One ACME order, in its own task: placed (naming the certificate it replaces), its challenges answered
//! (TLS-ALPN-01 and HTTP-01 through [`AcmeCerts`], published to the other replicas with the `kubernetes` store;
//! DNS-01 through the operator's hook), validated, finalized, and the new key and chain stored. Why an order
//! failed, as [`OrderError`].
//!
//! Neighbours: [`super::Manager`] starts orders and takes in their ends; [`super::challenge`] builds the
//! TLS-ALPN-01 answers, [`super::dns01`] runs the hook, [`super::store`] keeps what is issued.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use super::certs::AcmeCerts;
use super::store::{KubeStore, Store, StoreError};
use super::{challenge, dns01};
use crate::config::certs::{self, CertError};
use crate::config::{AcmeSettings, ChallengeKind};

/// With the `kubernetes` store, how long the ordering replica waits between publishing its challenge answers
/// and telling the CA to validate, so the watch has brought them to every replica (each copies them within a
/// tenth of a second of seeing them).
const PROPAGATION: Duration = Duration::from_secs(2);

/// How long an order may wait for the CA to validate and to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

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
    pub(super) fn rate_limited(&self) -> bool {
        matches!(self, OrderError::Acme(instant_acme::Error::Api(p))
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited"))
    }

    /// How long the CA asked to wait when polling the order would have gone past its deadline.
    pub(super) fn poll_wait(&self) -> Option<Duration> {
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

/// Challenge answers as published to the other replicas: TLS-ALPN-01 digests by name, HTTP-01 key
/// authorizations by token.
type Answers = (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>);

/// What an order needs beyond its account, shared by the orders in flight.
#[derive(Debug)]
pub(super) struct OrderContext {
    pub(super) settings: Arc<AcmeSettings>,
    pub(super) certs: Arc<AcmeCerts>,
    pub(super) store: Arc<Store>,
    /// With the `kubernetes` store, the challenge answers of every order in flight (TLS-ALPN-01 digests by name,
    /// HTTP-01 key authorizations by token): each publish writes all of them, under this lock, so one order's
    /// publish never takes away another's answers.
    pub(super) published: tokio::sync::Mutex<Answers>,
}

/// One order for `names` of `tenant` (naming the certificate it `replaces`, RFC 9773 §5) as `account`, answered
/// by the configured challenge; the key and chain go to the store. Returns the new certificate, as stored.
pub(super) async fn order(
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
}
