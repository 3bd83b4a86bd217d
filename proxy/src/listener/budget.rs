//! Budgets: how many connections one key may hold at once — a peer address for `max_connections_per_ip`
//! and `max_handshakes_per_ip`, a tenant for `max_handshakes_per_tenant` — so one address or one tenant's
//! strangers cannot take what everyone shares. Bookkeeping only, no I/O: the listener asks
//! [`Budget::admit`] and holds the returned [`Slot`] for as long as the connection counts.
//!
//! An IPv6 peer is counted by its /64 ([`block_of`]), the smallest block a single site is given: counting
//! single addresses would let one host rotate through 2^64 of them. IPv4-mapped IPv6 addresses (a dual-stack
//! listener's view of IPv4 peers) count as the IPv4 address they carry.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Connections held per key, up to a maximum each.
#[derive(Debug)]
pub struct Budget<K> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// One admitted connection of a key; dropping it frees its place.
#[derive(Debug)]
pub struct Slot<K: Eq + Hash> {
    budget: Arc<Budget<K>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Budget<K> {
    /// At most `max` connections per key.
    pub fn new(max: usize) -> Arc<Budget<K>> {
        Arc::new(Budget { max, open: Mutex::new(HashMap::new()) })
    }

    /// A place for one more connection of `key`, or the number it holds when that is the maximum.
    pub fn admit(self: &Arc<Self>, key: K) -> Result<Slot<K>, usize> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return Err(*count);
        }
        *count += 1;
        Ok(Slot { budget: self.clone(), key })
    }

    /// Keys holding a place (the map holds no others).
    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl<K: Eq + Hash> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.budget.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The block `ip` is counted in: the IPv4 address itself, an IPv6 address's /64.
pub fn block_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn blocks() {
        let cases = [
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),
            ("2001:db8:1:2::1", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
        ];
        for (peer, want) in cases {
            assert_eq!(block_of(ip(peer)), ip(want), "{peer}");
        }
    }

    #[test]
    fn a_block_gets_at_most_max_and_gets_its_places_back() {
        let budget = Budget::new(2);
        let peers = |s: &str| budget.admit(block_of(ip(s)));
        let a = peers("192.0.2.1").expect("first");
        let b = peers("::ffff:192.0.2.1").expect("second, the same peer over IPv6-mapped");
        assert_eq!(peers("192.0.2.1").err(), Some(2), "third refused, naming the count");
        let other = peers("192.0.2.2").expect("another peer is not affected");
        let v6 = [peers("2001:db8::1"), peers("2001:db8::2")];
        assert!(v6.iter().all(Result::is_ok));
        assert!(peers("2001:db8::ffff").is_err(), "a third address of the same /64");
        assert!(peers("2001:db8:0:1::1").is_ok(), "the next /64 is another peer");
        drop(a);
        let again = peers("192.0.2.1").expect("a place freed by a close");
        drop((b, again, other, v6));
        assert_eq!(budget.keys(), 0, "no entry is kept for peers without connections");
    }

    #[test]
    fn any_key_has_its_own_count() {
        let budget = Budget::new(1);
        let victim = budget.admit("victim".to_owned()).expect("first");
        assert_eq!(budget.admit("victim".to_owned()).err(), Some(1));
        let other = budget.admit("other".to_owned()).expect("another tenant is not affected");
        drop((victim, other));
        assert_eq!(budget.keys(), 0);
    }
}
