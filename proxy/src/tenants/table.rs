//! The tenant table: every tenant the proxy serves, and per tenant the broker addresses learned from the
//! responses of its own cluster. Addresses only ever come from the tenant's cluster, never from a client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kaas_route::HostPort;
use tokio_util::sync::CancellationToken;

use super::quota::Quotas;
use super::reach::Reach;
use super::refresh::{self, RefreshGate};
use super::sni::{self, SniError, Target};

/// One tenant: its bootstrap servers and the node id → address table of its cluster.
#[derive(Debug)]
pub struct Tenant {
    /// The tenant's DNS label, as configured: its key in the [`TenantTable`].
    pub name: String,
    /// The configured bootstrap servers; [`Self::bootstrap_order`] rotates through them.
    pub bootstrap: Vec<HostPort>,
    brokers: RwLock<HashMap<i32, HostPort>>,
    next_bootstrap: AtomicUsize,
    /// Held while the proxy asks the cluster for metadata, so a burst of connections to an unknown id causes
    /// one refresh, not one each.
    pub(crate) refresh: tokio::sync::Mutex<()>,
    /// Places for connections waiting for that refresh ([`refresh::MAX_WAITERS`]).
    pub(crate) refresh_waiters: tokio::sync::Semaphore,
    /// When the cluster may be asked again, and the ids it did not report.
    pub(crate) refresh_gate: RefreshGate,
    /// What the route was made from (the entry and the files it names); equal fingerprints, same route.
    pub fingerprint: u64,
    /// Byte rates all the tenant's connections share.
    pub quotas: Quotas,
    /// The addresses the proxy may dial for it.
    pub reach: Reach,
    /// Cancelled when this version of the tenant's route has been replaced or removed and its grace period
    /// has passed: its sessions then close as soon as nothing is outstanding.
    retired: CancellationToken,
}

impl Tenant {
    /// A tenant whose broker table is still empty: it fills as the cluster's responses name brokers.
    pub fn new(name: String, bootstrap: Vec<HostPort>) -> Self {
        Tenant {
            name,
            reach: Reach::new(&bootstrap, &[], &[]),
            bootstrap,
            brokers: RwLock::default(),
            next_bootstrap: AtomicUsize::new(0),
            refresh: tokio::sync::Mutex::new(()),
            refresh_waiters: tokio::sync::Semaphore::new(refresh::MAX_WAITERS),
            refresh_gate: RefreshGate::default(),
            fingerprint: 0,
            quotas: Quotas::default(),
            retired: CancellationToken::new(),
        }
    }

    /// With these quotas.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// With this allow-list instead of the one derived from its bootstrap servers.
    pub fn with_reach(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// With the fingerprint of what its route was made from.
    pub fn fingerprinted(mut self, fingerprint: u64) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    /// Completes when this version of the tenant's route is retired (see [`Tenant::retire_after`]).
    pub async fn retired(&self) {
        self.retired.cancelled().await
    }

    /// Retires this version after `grace`: a changed or removed route lets open sessions finish for that long.
    pub fn retire_after(self: &Arc<Self>, grace: Duration) {
        let tenant = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            tracing::info!(tenant = %tenant.name, "grace period over; closing the previous route's sessions");
            tenant.retired.cancel();
        });
    }

    /// The upstream address of node `id`, if the cluster has reported it.
    pub fn broker(&self, id: i32) -> Option<HostPort> {
        self.brokers.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Every learned node id and address.
    pub fn brokers(&self) -> Vec<(i32, HostPort)> {
        let table = self.brokers.read().unwrap_or_else(|p| p.into_inner());
        table.iter().map(|(id, a)| (*id, a.clone())).collect()
    }

    /// Records addresses the tenant's cluster reported.
    pub fn learn(&self, endpoints: impl IntoIterator<Item = (i32, HostPort)>) {
        let mut table = self.brokers.write().unwrap_or_else(|p| p.into_inner());
        for (id, addr) in endpoints {
            if table.get(&id) != Some(&addr) {
                tracing::debug!(tenant = %self.name, node = id, upstream = %addr, "learned broker address");
                table.insert(id, addr);
            }
        }
    }

    /// Bootstrap servers in the order to try them: rotated per call, so connections spread over the list.
    pub fn bootstrap_order(&self) -> impl Iterator<Item = &HostPort> {
        let n = self.bootstrap.len().max(1);
        let start = self.next_bootstrap.fetch_add(1, Ordering::Relaxed) % n;
        self.bootstrap.iter().cycle().skip(start).take(self.bootstrap.len())
    }
}

/// All tenants under one domain.
#[derive(Debug)]
pub struct TenantTable {
    /// The proxy's domain, lowercased.
    pub domain: String,
    tenants: HashMap<String, Arc<Tenant>>,
}

impl TenantTable {
    /// A table of `tenants` under `domain`; a later tenant with the same name replaces an earlier one.
    pub fn new(domain: &str, tenants: impl IntoIterator<Item = Tenant>) -> Self {
        TenantTable {
            domain: domain.to_ascii_lowercase(),
            tenants: tenants.into_iter().map(|t| (t.name.clone(), Arc::new(t))).collect(),
        }
    }

    /// The tenant and target a TLS server name asks for.
    pub fn resolve(&self, server_name: Option<&str>) -> Result<(Arc<Tenant>, Target), SniError> {
        let name = server_name.ok_or(SniError::Missing)?;
        let (tenant, target) = sni::parse(name, &self.domain)?;
        let tenant = self
            .tenants
            .get(&tenant.to_ascii_lowercase())
            .ok_or_else(|| SniError::UnknownTenant(name.to_owned()))?;
        Ok((tenant.clone(), target))
    }

    /// Adds (or replaces) a tenant as it is, broker table included: a tenant carried over from the previous
    /// routes.
    pub fn keep(&mut self, tenant: Arc<Tenant>) {
        self.tenants.insert(tenant.name.clone(), tenant);
    }

    /// The tenant named exactly `name` (no case folding).
    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(name)
    }

    /// Every tenant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.values()
    }

    /// The tenants of `previous` this table no longer serves as they were: removed, or replaced by a changed
    /// route (a tenant carried over unchanged is the very same `Arc`).
    pub fn retired_since(&self, previous: &TenantTable) -> Vec<Arc<Tenant>> {
        previous
            .iter()
            .filter(|old| !self.get(&old.name).is_some_and(|now| Arc::ptr_eq(now, old)))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> HostPort {
        HostPort::parse(s).expect("test address")
    }

    #[test]
    fn resolves_and_refuses() {
        let table = TenantTable::new("Kaas.localhost", [Tenant::new("acme".into(), vec![hp("127.0.0.1:1")])]);
        let (t, target) = table.resolve(Some("b3.ACME.kaas.localhost")).expect("known tenant");
        assert_eq!((t.name.as_str(), target), ("acme", Target::Broker(3)));
        assert_eq!(table.resolve(None).err(), Some(SniError::Missing));
        assert!(matches!(table.resolve(Some("other.kaas.localhost")), Err(SniError::UnknownTenant(_))));
    }

    #[test]
    fn learns_and_rotates() {
        let t = Tenant::new("acme".into(), vec![hp("a:1"), hp("b:1"), hp("c:1")]);
        assert_eq!(t.broker(1), None);
        t.learn([(1, hp("k1:9092")), (2, hp("k2:9092"))]);
        t.learn([(1, hp("k1b:9092"))]);
        assert_eq!(t.broker(1), Some(hp("k1b:9092")));
        assert_eq!(t.broker(2), Some(hp("k2:9092")));
        let firsts: Vec<_> = (0..4).map(|_| t.bootstrap_order().next().cloned()).collect();
        assert_eq!(firsts, [Some(hp("a:1")), Some(hp("b:1")), Some(hp("c:1")), Some(hp("a:1"))]);
        assert_eq!(t.bootstrap_order().count(), 3);
    }
}
