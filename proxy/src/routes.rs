//! Routes: what the proxy serves right now — every tenant with its broker table ([`crate::tenants`]) and the TLS
//! configuration of its names ([`crate::tls`]), built together from one version of the [`Settings`] and swapped
//! whole when a reload brings new ones. Each connection takes one [`RouteSet`] when it starts and keeps it, so a
//! reload never changes a connection under way.
//!
//! This is the one module that turns settings into routing state (TLS server configurations, upstream TLS with
//! its clients CA, principal mappers), so `config` stays plain validated settings below everything else, and
//! `tenants` and `tls` do not depend on one another. Neighbours: [`crate::listener`] reads the current set per connection;
//! [`crate::reload`] watches the files and calls [`Reloader::reload`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::acme::AcmeCerts;
use crate::config::principal::PrincipalMapper;
use crate::config::Settings;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::Metrics;
use crate::tenants::quota::Quotas;
use crate::tenants::reach::Reach;
use crate::tenants::{Tenant, TenantTable};
use crate::tls::{FrontError, TenantTls, TlsFront};
use crate::upstream::tls::{UpstreamTls, UpstreamTlsError};

/// Why routes could not be built from validated settings (the settings stay as they were).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A TLS server configuration could not be built from the loaded certificates.
    #[error(transparent)]
    Tls(#[from] FrontError),
    /// A tenant's upstream TLS could not be built from its loaded material.
    #[error("tenant {tenant}: upstream TLS: {source}")]
    Upstream {
        /// The tenant.
        tenant: String,
        /// What failed.
        source: UpstreamTlsError,
    },
}

/// One version of the routes: the tenants and their TLS configurations.
#[derive(Debug)]
pub struct RouteSet {
    /// Server name → tenant, with each tenant's learned brokers.
    pub tenants: TenantTable,
    /// Each tenant's TLS server configuration.
    pub tls: TlsFront,
    /// TLS to each tenant's brokers, for tenants that have it.
    upstream_tls: HashMap<String, Arc<UpstreamTls>>,
    /// Principal mapping rules, for tenants that have them.
    principals: HashMap<String, Arc<PrincipalMapper>>,
    /// Tenants whose certificate comes from ACME, with the broker ids it covers.
    acme: Vec<(String, Vec<u32>)>,
}

impl RouteSet {
    /// Builds from `settings`, keeping the broker addresses `previous` already learned for tenants that remain,
    /// and the whole previous version of tenants whose new entry was left out ([`Settings::skipped_tenants`]),
    /// with the new entry's CRL when that one loaded ([`Settings::skipped_crls`]: revocation fails closed).
    /// A tenant whose route is unchanged (same fingerprint) is carried over as the same [`Tenant`], so its open
    /// sessions are not retired; see [`TenantTable::retired_since`].
    /// ACME tenants' configurations read their certificate from `acme` per handshake.
    pub fn build(
        settings: &Settings,
        previous: Option<&RouteSet>,
        acme: Option<&Arc<AcmeCerts>>,
    ) -> Result<RouteSet, BuildError> {
        let unchanged = |name: &str, fingerprint: u64| {
            previous.and_then(|p| p.tenants.get(name)).filter(|old| old.fingerprint == fingerprint).cloned()
        };
        let fresh = settings.tenants.iter().filter(|t| unchanged(&t.name, t.fingerprint).is_none());
        let mut tenants = TenantTable::new(
            &settings.domain,
            fresh.map(|t| {
                Tenant::new(t.name.clone(), t.bootstrap.clone())
                    .with_reach(Reach::new(&t.bootstrap, &t.allowed_hosts, &t.allowed_cidrs))
                    .fingerprinted(t.fingerprint)
                    .with_quotas(Quotas::new(t.quota.as_ref()))
            }),
        );
        if let Some(previous) = previous {
            for tenant in tenants.iter() {
                if let Some(old) = previous.tenants.get(&tenant.name) {
                    tenant.learn(old.brokers());
                }
            }
        }
        for t in &settings.tenants {
            if let Some(old) = unchanged(&t.name, t.fingerprint) {
                tenants.keep(old);
            }
        }
        let mut tls = TlsFront::new(
            settings.default_cert.clone(),
            settings.tenants.iter().map(|t| TenantTls {
                name: &t.name,
                cert: t.cert.clone(),
                resolver: acme
                    .filter(|_| t.acme_broker_ids.is_some())
                    .map(|certs| certs.resolver(&t.name, settings.default_cert.clone())),
                client_roots: t.client_roots.clone(),
                client_crls: t.client_crls.clone(),
            }),
        )?;
        let mut upstream_tls = HashMap::new();
        for t in &settings.tenants {
            let Some(upstream) = &t.upstream else { continue };
            let built = UpstreamTls::from_settings(upstream)
                .map_err(|source| BuildError::Upstream { tenant: t.name.clone(), source })?;
            upstream_tls.insert(t.name.clone(), Arc::new(built));
        }
        let mut principals: HashMap<String, Arc<PrincipalMapper>> =
            settings.tenants.iter().filter_map(|t| Some((t.name.clone(), t.principals.clone()?))).collect();
        for name in &settings.skipped_tenants {
            let Some((previous, tenant)) = previous.and_then(|p| Some((p, p.tenants.get(name)?.clone())))
            else {
                continue;
            };
            tracing::warn!(tenant = %name, "its new route does not load; serving its previous one");
            tenants.keep(tenant);
            // A CRL of the new entry that loaded applies all the same: revocation fails closed.
            let crls = settings.skipped_crls.iter().find(|(n, _)| n == name).map(|(_, c)| c.clone());
            tls.carry(&previous.tls, name, crls)?;
            if let Some(u) = previous.upstream_tls(name) {
                upstream_tls.insert(name.clone(), u);
            }
            if let Some(p) = previous.principals.get(name) {
                principals.insert(name.clone(), p.clone());
            }
        }
        let acme = settings.tenants.iter().filter_map(|t| Some((t.name.clone(), t.acme_broker_ids.clone()?)));
        Ok(RouteSet { tenants, tls, upstream_tls, principals, acme: acme.collect() })
    }

    /// The tenants whose certificate comes from ACME, each with the broker ids its certificate covers.
    pub fn acme_tenants(&self) -> impl Iterator<Item = (&str, &[u32])> {
        self.acme.iter().map(|(name, ids)| (name.as_str(), ids.as_slice()))
    }

    /// The principal name a client certificate `subject` of `tenant` is logged under.
    pub fn principal(&self, tenant: &str, subject: &str) -> String {
        match self.principals.get(tenant) {
            Some(mapper) => mapper.map(subject),
            None => subject.to_owned(),
        }
    }

    /// The tenant's upstream TLS; `None`: its brokers are reached in plaintext.
    pub fn upstream_tls(&self, tenant: &str) -> Option<Arc<UpstreamTls>> {
        self.upstream_tls.get(tenant).cloned()
    }
}

/// The state of the routes: what an operator checks after changing tenants or rotating certificates.
#[derive(Debug, Clone, Default)]
pub struct RouteMetrics {
    generation: Gauge,
    applied: Counter,
    refused: Counter,
    last_applied: Gauge,
    tenants: Gauge,
    left_out: Gauge,
}

impl RouteMetrics {
    /// Registers the route series in `registry`, at zero.
    pub fn register(registry: &mut Registry) -> RouteMetrics {
        let metrics = RouteMetrics::default();
        registry.register(
            "routes_generation",
            "Route sets applied since start (1 = the start-up configuration)",
            metrics.generation.clone(),
        );
        registry.register_collector(Box::new(ReloadOutcomes {
            applied: metrics.applied.clone(),
            refused: metrics.refused.clone(),
        }));
        registry.register(
            "routes_last_applied_timestamp_seconds",
            "Unix time the current route set was applied",
            metrics.last_applied.clone(),
        );
        registry.register("routes_tenants", "Tenants in the current route set", metrics.tenants.clone());
        registry.register(
            "routes_left_out",
            "Entries of the tenants_file left out of the current route set because they do not load",
            metrics.left_out.clone(),
        );
        metrics
    }

    /// A route set was applied (at start-up or on reload) with `tenants` tenants and `left_out` entries of the
    /// tenants_file left out.
    pub fn applied(&self, tenants: usize, left_out: usize) {
        let routes = self;
        routes.generation.inc();
        if routes.generation.get() > 1 {
            routes.applied.inc();
        }
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        routes.last_applied.set(i64::try_from(now).unwrap_or(i64::MAX));
        routes.tenants.set(i64::try_from(tenants).unwrap_or(i64::MAX));
        routes.left_out.set(i64::try_from(left_out).unwrap_or(i64::MAX));
    }

    /// A changed configuration was refused; the current routes stay.
    pub fn refused(&self) {
        self.refused.inc();
    }
}

/// `kaas_proxy_routes_reloads_total{outcome}`: both outcomes always present, in a fixed order.
#[derive(Debug)]
struct ReloadOutcomes {
    applied: Counter,
    refused: Counter,
}

impl Collector for ReloadOutcomes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let help = "Route reloads after a change of the configuration or a file it names, by outcome.";
        let mut family = encoder.encode_descriptor("routes_reloads", help, None, MetricType::Counter)?;
        for (outcome, counter) in [("applied", &self.applied), ("refused", &self.refused)] {
            let labels = [("outcome", outcome)];
            counter.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The current [`RouteSet`], replaced atomically.
#[derive(Debug)]
pub struct Routes {
    current: RwLock<Arc<RouteSet>>,
}

impl Routes {
    /// Starts with `first` as the current set.
    pub fn new(first: RouteSet) -> Self {
        Routes { current: RwLock::new(Arc::new(first)) }
    }

    /// The set a new connection uses (a cheap clone of an `Arc`).
    pub fn current(&self) -> Arc<RouteSet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, next: RouteSet) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }
}

/// Applies new settings to a running proxy: tenants, certificates and client CAs. Connections already open keep
/// the routes they started with; those of a tenant whose route changed or was removed close once its
/// `reload_grace_seconds` have passed and nothing is outstanding on them (clients reconnect to the new route).
/// The listen address, advertised port and limits stay as started.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// The start-only settings the proxy runs with, to say which a reloaded file changes in vain.
    pub(crate) started: crate::config::StartOnly,
    pub(crate) routes: Arc<Routes>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) route_metrics: RouteMetrics,
    pub(crate) acme: Option<Arc<AcmeCerts>>,
}

impl Reloader {
    /// Swaps in routes built from `settings`; returns how many tenants they hold.
    pub fn reload(&self, settings: &Settings) -> Result<usize, BuildError> {
        let next = match RouteSet::build(settings, Some(&self.routes.current()), self.acme.as_ref()) {
            Ok(next) => next,
            Err(e) => {
                self.route_metrics.refused();
                return Err(e);
            }
        };
        let tenants = next.tenants.iter().count();
        let retired = next.tenants.retired_since(&self.routes.current().tenants);
        self.metrics.add_tenants(settings.tenants.iter().map(|t| t.name.as_str()));
        self.routes.replace(next);
        for tenant in retired {
            tracing::info!(
                tenant = %tenant.name,
                grace_seconds = settings.reload_grace.as_secs(),
                "route changed or removed; open sessions move to the new route when the grace period ends"
            );
            tenant.retire_after(settings.reload_grace);
        }
        let in_vain = crate::config::changed_since_start(&self.started, &settings.start_only());
        if !in_vain.is_empty() {
            tracing::warn!(
                settings = %in_vain.join(", "),
                "changed in the configuration file, but applied only when the proxy starts: it keeps the values \
                 it started with until its next restart"
            );
        }
        self.route_metrics.applied(tenants, settings.skipped.len());
        self.metrics.certificates(settings.certificate_expiry());
        Ok(tenants)
    }

    /// Counts a changed configuration that did not validate (the current routes stay).
    pub fn refused(&self) {
        self.route_metrics.refused();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_state_is_exposed() {
        let mut m = Metrics::new(["acme"]);
        let routes = RouteMetrics::register(m.registry());
        let text = m.encode();
        for line in [
            "kaas_proxy_routes_generation 0",
            "kaas_proxy_routes_reloads_total{outcome=\"applied\"} 0",
            "kaas_proxy_routes_reloads_total{outcome=\"refused\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        routes.applied(1, 0); // start-up
        routes.applied(3, 1); // a reload
        routes.refused();
        let text = m.encode();
        for line in [
            "kaas_proxy_routes_generation 2",
            "kaas_proxy_routes_reloads_total{outcome=\"applied\"} 1",
            "kaas_proxy_routes_reloads_total{outcome=\"refused\"} 1",
            "kaas_proxy_routes_tenants 3",
            "kaas_proxy_routes_left_out 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        let stamp = crate::metrics::value(&text, "kaas_proxy_routes_last_applied_timestamp_seconds")
            .expect("timestamp");
        assert!(stamp > 1_700_000_000, "{stamp}");
    }
}
