//! Connections per peer address, for `max_connections_per_ip`: one address cannot take the connections that
//! every tenant shares (`max_connections`). Bookkeeping only, no I/O: the listener asks [`Peers::admit`] as it
//! accepts and holds the returned [`PeerSlot`] for the connection's life.
//!
//! An IPv6 peer is counted by its /64, the smallest block a single site is given: counting single addresses
//! would let one host rotate through 2^64 of them. IPv4-mapped IPv6 addresses (a dual-stack listener's view of
//! IPv4 peers) count as the IPv4 address they carry.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Open connections per peer block, up to a maximum each.
#[derive(Debug)]
pub struct Peers {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection of a peer; dropping it frees its place.
#[derive(Debug)]
pub struct PeerSlot {
    peers: Arc<Peers>,
    block: IpAddr,
}

impl Peers {
    /// At most `max` connections per peer block.
    pub fn new(max: usize) -> Arc<Peers> {
        Arc::new(Peers { max, open: Mutex::new(HashMap::new()) })
    }

    /// A place for one more connection from `ip`, or the number its block has open when that is the maximum.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PeerSlot, usize> {
        let block = block_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(block).or_insert(0);
        if *count >= self.max {
            return Err(*count);
        }
        *count += 1;
        Ok(PeerSlot { peers: self.clone(), block })
    }

    /// Peer blocks with a connection open (the map holds no others).
    #[cfg(test)]
    pub fn blocks(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.block) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.block);
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
        let peers = Peers::new(2);
        let a = peers.admit(ip("192.0.2.1")).expect("first");
        let b = peers.admit(ip("::ffff:192.0.2.1")).expect("second, the same peer over IPv6-mapped");
        assert_eq!(peers.admit(ip("192.0.2.1")).err(), Some(2), "third refused, naming the count");
        let other = peers.admit(ip("192.0.2.2")).expect("another peer is not affected");
        let v6 = [peers.admit(ip("2001:db8::1")), peers.admit(ip("2001:db8::2"))];
        assert!(v6.iter().all(Result::is_ok));
        assert!(peers.admit(ip("2001:db8::ffff")).is_err(), "a third address of the same /64");
        assert!(peers.admit(ip("2001:db8:0:1::1")).is_ok(), "the next /64 is another peer");
        drop(a);
        let again = peers.admit(ip("192.0.2.1")).expect("a place freed by a close");
        drop((b, again, other, v6));
        assert_eq!(peers.blocks(), 0, "no entry is kept for peers without connections");
    }
}
