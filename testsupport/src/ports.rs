//! Loopback ports for the servers the tests start and must name before they bind (API servers, controllers,
//! Kafka brokers, the proxy's admin endpoint).
//!
//! Binding port 0 and handing the number on races twice: any process's outgoing connection can be given that
//! port as its local port before the server binds it (the kernel draws both from the ephemeral range), and a
//! parallel test process can be given the same number. Both happened in CI (`bind: address already in use`
//! from Cluster API's manager and from the proxy's admin endpoint). So ports here come from below the ephemeral
//! range, where no outgoing connection is ever placed, and from one counter shared by every test process on the
//! machine through a locked file, so two processes get the same port only once the whole range has come round.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::ops::Range;

/// Where ports are handed out when the ephemeral range cannot be read (no Linux `/proc`): below Linux's
/// default (32768–60999).
const FALLBACK: Range<u16> = 15_000..32_768;

/// The lowest port handed out (below it lie well-known services' ports).
const LOWEST: u16 = 15_000;

/// A port no server holds now, that no outgoing connection will take, and that no other test process is given
/// until the range comes round.
pub fn free_port() -> u16 {
    match claim() {
        Ok(port) => port,
        Err(e) => panic!("no free loopback port: {e}"),
    }
}

/// `n` distinct ports, as [`free_port`].
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

fn claim() -> std::io::Result<u16> {
    let range = range();
    let path = std::env::temp_dir().join("kaas-test-ports");
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let last = text.trim().parse::<u16>().ok();
    if let Some(port) = next(last, &range, bindable) {
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        file.write_all(port.to_string().as_bytes())?;
        return Ok(port);
    }
    Err(std::io::Error::other(format!("every port in {range:?} is bound")))
}

/// The first port after `last` (round the range) that `free` accepts; the range's start when `last` is unknown
/// or outside it.
fn next(last: Option<u16>, range: &Range<u16>, free: impl Fn(u16) -> bool) -> Option<u16> {
    let start = last.filter(|p| range.contains(p)).map_or(range.start, |p| p + 1);
    (start..range.end).chain(range.start..start).find(|&p| free(p))
}

/// Free on every address (a server binding the wildcard address conflicts with one on loopback); a machine
/// without IPv6 has nothing bound there.
fn bindable(port: u16) -> bool {
    let taken =
        |r: std::io::Result<TcpListener>| matches!(r, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse);
    TcpListener::bind(("0.0.0.0", port)).is_ok() && !taken(TcpListener::bind(("::", port)))
}

/// [`LOWEST`] up to the first port of the kernel's ephemeral range. A range that starts too low to leave room
/// below it is refused by name: ports inside it would race outgoing connections again.
fn range() -> Range<u16> {
    let path = "/proc/sys/net/ipv4/ip_local_port_range";
    let Ok(text) = std::fs::read_to_string(path) else { return FALLBACK };
    match text.split_whitespace().next().and_then(|low| low.parse::<u16>().ok()) {
        Some(low) if low >= LOWEST + 1_000 => LOWEST..low,
        Some(low) if low >= 2_024 => 1_024..low,
        low => panic!(
            "{path} starts the ephemeral range at {low:?}: no room below it for test ports that no outgoing \
             connection can take (raise it, e.g. to 32768)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_port_follows_the_last_round_the_range_skipping_bound_ones() {
        let range = 100..105;
        // (the last port handed out, ports bound now, the next one)
        let cases: [(Option<u16>, &[u16], Option<u16>); 6] = [
            (None, &[], Some(100)),
            (Some(100), &[], Some(101)),
            (Some(104), &[], Some(100)),
            (Some(7), &[], Some(100)),
            (Some(101), &[102, 103], Some(104)),
            (Some(101), &[100, 101, 102, 103, 104], None),
        ];
        for (last, bound, want) in cases {
            assert_eq!(next(last, &range, |p| !bound.contains(&p)), want, "after {last:?}, {bound:?} bound");
        }
    }

    #[test]
    fn ports_come_from_below_the_ephemeral_range_distinct_and_bindable() {
        let ports = free_ports(50);
        let range = range();
        assert!(ports.iter().all(|p| range.contains(p)), "{ports:?} outside {range:?}");
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok()), "{ports:?}");
    }
}
