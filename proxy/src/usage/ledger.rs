//! The ledger: what each tenant's principals moved in the current window, by topic and direction, and how long
//! their connections were open. Sessions write to it through their [`Meter`]; [`Ledger::roll`] closes the
//! window and hands back its [`Entry`]s. No I/O.
//!
//! Locking: a session takes its own principal's lock once per Produce request or Fetch response (never per
//! frame, never a tenant-wide lock); counting requests is a relaxed atomic add. The tenant's principal table is
//! locked when a session starts and when a window closes. Memory is bounded per tenant and window: at most
//! `max_keys` (principal, topic) entries, the rest folded into the [`OTHER`] topic and counted; principals with
//! no open connection leave the table when their window closes.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;

use crate::kafka::usage::{Topic, TopicId, Volume};

/// The topic name volumes are folded into once a tenant has `max_keys` entries in a window.
pub const OTHER: &str = "(other)";

/// Which way records moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to broker: Produce requests.
    Produce,
    /// Broker to client: Fetch responses.
    Fetch,
}

impl Direction {
    const ALL: [Direction; 2] = [Direction::Produce, Direction::Fetch];
}

/// A (topic, direction)'s totals in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Record-set bytes.
    pub bytes: u64,
    /// Records.
    pub records: u64,
    /// Produce requests, or Fetch responses, that named the topic.
    pub requests: u64,
}

impl Counts {
    fn add(&mut self, v: Volume) {
        // Record counts are the client's word (a batch header): saturate rather than wrap.
        self.bytes = self.bytes.saturating_add(v.bytes);
        self.records = self.records.saturating_add(v.records);
        self.requests = self.requests.saturating_add(1);
    }
}

/// How a closed window names a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKey {
    /// By name: named so by the message, or by a Metadata response for its id.
    Name(Box<str>),
    /// By id: a Produce or Fetch v13+ whose topic no Metadata response through the proxy has named.
    Id(TopicId),
    /// Everything past the tenant's `max_keys` in the window.
    Other,
}

/// One line of a closed window.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// What a principal moved on a topic one way.
    Topic {
        /// The tenant.
        tenant: Arc<str>,
        /// The principal (after the tenant's mapping rules); `None`: the client presented no certificate.
        principal: Option<Arc<str>>,
        /// The topic.
        topic: TopicKey,
        /// The way.
        direction: Direction,
        /// The totals.
        counts: Counts,
        /// For [`TopicKey::Other`]: how many volumes were folded into it.
        folded: u64,
    },
    /// A principal's connections in the window.
    Connections {
        /// The tenant.
        tenant: Arc<str>,
        /// The principal, as in [`Entry::Topic`].
        principal: Option<Arc<str>>,
        /// Seconds its connections were open within the window, summed.
        seconds: f64,
        /// Connections it opened in the window.
        opened: u64,
        /// Requests of any API it sent in the window.
        requests: u64,
    },
}

/// Every tenant's ledger.
#[derive(Debug)]
pub struct Ledger {
    tenants: Mutex<HashMap<Arc<str>, Arc<TenantLedger>>>,
    max_keys: usize,
    epoch: Instant,
    /// Volumes folded into [`OTHER`], all tenants: `kaas_proxy_usage_folded_total`.
    pub(super) folded: Counter,
}

/// A tenant's principals, the topic names its Metadata responses told, and its key budget.
#[derive(Debug)]
struct TenantLedger {
    name: Arc<str>,
    principals: Mutex<HashMap<Option<Arc<str>>, Arc<PrincipalLedger>>>,
    /// Topic id → name, learned from Metadata responses; at most `max_keys` ids.
    names: RwLock<HashMap<TopicId, Arc<str>>>,
    /// (principal, topic) entries made in this window.
    keys: AtomicUsize,
}

#[derive(Debug)]
struct PrincipalLedger {
    requests: AtomicU64,
    window: Mutex<Window>,
}

/// A principal's open window. Connection time: each open connection counts from `max(its start, window start)`;
/// `open_from` sums those starts (µs since the ledger's epoch), so the open connections' time at any `t` is
/// `open × t − open_from`.
#[derive(Debug, Default)]
struct Window {
    names: HashMap<Box<str>, [Counts; 2]>,
    ids: HashMap<TopicId, [Counts; 2]>,
    other: [Counts; 2],
    folded: u64,
    open: u64,
    open_from: u128,
    closed_micros: u128,
    opened: u64,
    start: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while counting leaves counts, not broken invariants: keep counting.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    /// An empty ledger allowing `max_keys` (principal, topic) entries per tenant and window.
    pub fn new(max_keys: usize) -> Self {
        Ledger { tenants: Mutex::default(), max_keys, epoch: Instant::now(), folded: Counter::default() }
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// A connection of `principal` to `tenant` opened at `at`: its meter, which closes the connection's time
    /// when dropped.
    pub fn open(self: &Arc<Self>, tenant: &str, principal: Option<&str>, at: Instant) -> Meter {
        let tenant = {
            let mut tenants = lock(&self.tenants);
            match tenants.get(tenant) {
                Some(t) => t.clone(),
                None => {
                    let name: Arc<str> = tenant.into();
                    let t = Arc::new(TenantLedger {
                        name: name.clone(),
                        principals: Mutex::default(),
                        names: RwLock::default(),
                        keys: AtomicUsize::new(0),
                    });
                    tenants.insert(name, t.clone());
                    t
                }
            }
        };
        let since = self.micros(at);
        let principal = {
            let mut principals = lock(&tenant.principals);
            let p = principals.entry(principal.map(Arc::from)).or_insert_with(|| {
                Arc::new(PrincipalLedger { requests: AtomicU64::new(0), window: Mutex::default() })
            });
            // Under the table's lock, so a closing window cannot drop the entry between lookup and count.
            let mut w = lock(&p.window);
            w.open += 1;
            w.opened += 1;
            w.open_from += u128::from(since.max(w.start));
            drop(w);
            p.clone()
        };
        Meter { ledger: self.clone(), tenant, principal, since }
    }

    /// Closes every tenant's window at `at` and returns its entries; principals without an open connection
    /// leave the table.
    pub fn roll(&self, at: Instant) -> Vec<Entry> {
        let end = self.micros(at);
        let tenants: Vec<Arc<TenantLedger>> = lock(&self.tenants).values().cloned().collect();
        let mut entries = Vec::new();
        for tenant in tenants {
            let mut principals = lock(&tenant.principals);
            principals.retain(|principal, p| {
                let requests = p.requests.swap(0, Ordering::Relaxed);
                let mut w = lock(&p.window);
                let closed = std::mem::take(&mut *w);
                w.open = closed.open;
                w.open_from = u128::from(closed.open) * u128::from(end);
                w.start = end;
                let open_micros =
                    (u128::from(closed.open) * u128::from(end)).saturating_sub(closed.open_from);
                let seconds = (closed.closed_micros + open_micros) as f64 / 1e6;
                let keep = closed.open > 0;
                drop(w);
                tenant.entries(principal, closed, seconds, requests, &mut entries);
                keep
            });
            tenant.keys.store(0, Ordering::Relaxed);
        }
        entries
    }
}

impl TenantLedger {
    /// A principal's closed window as entries: one per (topic, direction) that moved anything, then its
    /// connections (when it had any time or requests).
    fn entries(
        &self,
        principal: &Option<Arc<str>>,
        w: Window,
        seconds: f64,
        requests: u64,
        out: &mut Vec<Entry>,
    ) {
        let topics = w.names.into_iter().map(|(n, c)| (TopicKey::Name(n), c, 0));
        let topics = topics.chain(w.ids.into_iter().map(|(id, c)| (TopicKey::Id(id), c, 0)));
        let topics = topics.chain(std::iter::once((TopicKey::Other, w.other, w.folded)));
        for (topic, counts, folded) in topics {
            for (direction, counts) in Direction::ALL.into_iter().zip(counts) {
                if counts != Counts::default() {
                    out.push(Entry::Topic {
                        tenant: self.name.clone(),
                        principal: principal.clone(),
                        topic: topic.clone(),
                        direction,
                        counts,
                        folded,
                    });
                }
            }
        }
        if seconds > 0.0 || requests > 0 || w.opened > 0 {
            out.push(Entry::Connections {
                tenant: self.name.clone(),
                principal: principal.clone(),
                seconds,
                opened: w.opened,
                requests,
            });
        }
    }
}

/// Whether Kafka accepts `name` as a topic's: 1 to 249 of `[A-Za-z0-9._-]` (Kafka's `Topic.validate`).
fn is_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One connection's handle on its principal's window.
#[derive(Debug)]
pub struct Meter {
    ledger: Arc<Ledger>,
    tenant: Arc<TenantLedger>,
    principal: Arc<PrincipalLedger>,
    since: u64,
}

impl Meter {
    /// A request of any API.
    pub fn request(&self) {
        self.principal.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what one message moved `direction`: `walk` reports each topic's volume (one of the walkers of
    /// [`crate::kafka::usage`]).
    pub fn add<E>(
        &self,
        direction: Direction,
        walk: impl FnOnce(&mut dyn FnMut(Topic<'_>, Volume)) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut w = lock(&self.principal.window);
        let w = &mut *w;
        let slot = direction as usize;
        walk(&mut |topic, volume| {
            let resolved;
            let topic = match topic {
                Topic::Id(id) => {
                    match self.tenant.names.read().unwrap_or_else(PoisonError::into_inner).get(&id) {
                        Some(name) => {
                            resolved = name.clone();
                            Topic::Name(&resolved)
                        }
                        None => Topic::Id(id),
                    }
                }
                named => named,
            };
            let counts = match topic {
                // A name Kafka would refuse takes no entry: such topics cannot exist, and a client sending
                // thousands of made-up long names must not spend the tenant's budget or the proxy's memory.
                Topic::Name(name) if !is_topic_name(name) => None,
                Topic::Name(name) => match w.names.get_mut(name) {
                    Some(c) => Some(c),
                    None if self.new_key() => Some(w.names.entry(name.into()).or_default()),
                    None => None,
                },
                Topic::Id(id) => match w.ids.contains_key(&id) {
                    true => w.ids.get_mut(&id),
                    false if self.new_key() => Some(w.ids.entry(id).or_default()),
                    false => None,
                },
            };
            match counts {
                Some(c) => c[slot].add(volume),
                None => {
                    w.other[slot].add(volume);
                    w.folded += 1;
                    self.ledger.folded.inc();
                }
            }
        })
    }

    /// Whether the tenant may have one more entry in this window (and counts it).
    fn new_key(&self) -> bool {
        let max = self.ledger.max_keys;
        self.tenant
            .keys
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| (k < max).then_some(k + 1))
            .is_ok()
    }

    /// Learns topic names by id from a Metadata response: `body` and the places of [`crate::kafka::Processed`]'s
    /// `topic_ids`. At most `max_keys` ids per tenant; names that are not UTF-8 are skipped.
    pub fn learn_topics(&self, body: &[u8], ids: &[(TopicId, Range<usize>)]) {
        let known = self.tenant.names.read().unwrap_or_else(PoisonError::into_inner);
        if ids.iter().all(|(id, _)| known.contains_key(id)) {
            return;
        }
        drop(known);
        let mut names = self.tenant.names.write().unwrap_or_else(PoisonError::into_inner);
        for (id, at) in ids {
            if names.len() >= self.ledger.max_keys && !names.contains_key(id) {
                break;
            }
            if let Some(name) = body.get(at.clone()).and_then(|n| std::str::from_utf8(n).ok()) {
                names.insert(*id, name.into());
            }
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let now = self.ledger.micros(Instant::now());
        let mut w = lock(&self.principal.window);
        let from = self.since.max(w.start);
        w.open = w.open.saturating_sub(1);
        w.open_from = w.open_from.saturating_sub(u128::from(from));
        w.closed_micros += u128::from(now.saturating_sub(from));
    }
}

#[cfg(test)]
mod tests;
