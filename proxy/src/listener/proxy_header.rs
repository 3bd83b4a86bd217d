//! PROXY protocol v2 (HAProxy's `proxy-protocol.txt`, section 2.2): the header a load balancer in front of the
//! proxy (an AWS NLB with proxy protocol on, HAProxy's `send-proxy-v2`) writes before the client's first byte,
//! naming the client's own address. Read only from the addresses `proxy_protocol_trusted_cidrs` names, and
//! required from them; anyone else's header is refused by the hello stage ([`crate::tls::HelloError`]), since
//! a header from a stranger would let it choose the address the per-address limits and logs see.
//!
//! Bounded like every parser of hostile bytes: 16 fixed bytes, then at most [`MAX_REST`] more (addresses and
//! TLVs, which are skipped), read exactly, so not one byte of the TLS stream behind it is consumed. Neighbours:
//! [`super::Listener`] reads it in the connection's task before the per-address limits are applied.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The 12 bytes a v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The most bytes after the fixed 16 that are read: both addresses of IPv6 (36) and TLVs a load balancer adds
/// (AWS: the VPC endpoint id, about 30), with room to spare.
pub const MAX_REST: usize = 1024;

/// Why a trusted peer's header was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The connection's first bytes are not a v2 header (a v1 text header starts `PROXY `).
    #[error("no PROXY protocol v2 header from a trusted load balancer (first bytes {0:02x?})")]
    Signature(Vec<u8>),
    /// A version other than 2.
    #[error("PROXY protocol version {0}: only 2 is read")]
    Version(u8),
    /// A command other than LOCAL (0) or PROXY (1).
    #[error("PROXY protocol command {0}: neither LOCAL nor PROXY")]
    Command(u8),
    /// More bytes than [`MAX_REST`] announced.
    #[error("PROXY protocol header announces {0} bytes after its first 16, over {MAX_REST}")]
    TooLong(usize),
    /// The addresses of the family do not fit in the announced length.
    #[error("PROXY protocol {family} addresses need {need} bytes, the header has {len}")]
    Short {
        /// `TCP4` or `TCP6`.
        family: &'static str,
        /// Bytes the addresses take.
        need: usize,
        /// Bytes announced.
        len: usize,
    },
    /// The connection closed or failed in the header.
    #[error("connection closed in its PROXY protocol header")]
    Closed,
    /// The header did not come within the hello timeout.
    #[error("no PROXY protocol header within {0:?}")]
    Timeout(Duration),
}

/// From the fixed first 16 bytes: how many bytes follow.
pub fn rest_len(fixed: &[u8; 16]) -> Result<usize, HeaderError> {
    if fixed[..12] != SIGNATURE {
        return Err(HeaderError::Signature(fixed[..12].to_vec()));
    }
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 {
        return Err(HeaderError::Version(version));
    }
    if command > 1 {
        return Err(HeaderError::Command(command));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_REST {
        return Err(HeaderError::TooLong(len));
    }
    Ok(len)
}

/// The client's address in a whole header (`fixed`, then `rest`); `None` for a LOCAL header (the load
/// balancer's own health check) or an address family other than TCP over IPv4 or IPv6 (the connection's own
/// peer is then the client).
pub fn source(fixed: &[u8; 16], rest: &[u8]) -> Result<Option<SocketAddr>, HeaderError> {
    if fixed[12] & 0x0f == 0 {
        return Ok(None);
    }
    let (family, need) = match fixed[13] {
        0x11 => ("TCP4", 12),
        0x21 => ("TCP6", 36),
        _ => return Ok(None),
    };
    if rest.len() < need {
        return Err(HeaderError::Short { family, need, len: rest.len() });
    }
    let port = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
    Ok(Some(if need == 12 {
        let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
        SocketAddr::from((ip, port(8)))
    } else {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&rest[..16]);
        SocketAddr::from((Ipv6Addr::from(octets), port(32)))
    }))
}

/// Reads a whole header from `tcp` within `within`: the client's address, or `None` when the connection's peer
/// is the client ([`source`]).
pub async fn read(tcp: &mut TcpStream, within: Duration) -> Result<Option<SocketAddr>, HeaderError> {
    let read = async {
        let mut fixed = [0u8; 16];
        tcp.read_exact(&mut fixed).await.map_err(|_| HeaderError::Closed)?;
        let mut rest = vec![0u8; rest_len(&fixed)?];
        tcp.read_exact(&mut rest).await.map_err(|_| HeaderError::Closed)?;
        source(&fixed, &rest)
    };
    tokio::time::timeout(within, read).await.unwrap_or(Err(HeaderError::Timeout(within)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> ([u8; 16], Vec<u8>) {
        let mut fixed = [0u8; 16];
        fixed[..12].copy_from_slice(&SIGNATURE);
        fixed[12] = 0x20 | command;
        fixed[13] = family;
        let rest = [addresses, tlvs].concat();
        fixed[14..].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        (fixed, rest)
    }

    #[test]
    fn the_clients_address_is_read_and_everything_else_refused_by_name() {
        let v4 = [[192, 0, 2, 7], [10, 0, 0, 1]].concat();
        let v4 = [&v4[..], &40000u16.to_be_bytes(), &9092u16.to_be_bytes()].concat();
        let (fixed, rest) = header(1, 0x11, &v4, b"\x03\x00\x04abcd");
        assert_eq!(rest_len(&fixed), Ok(rest.len()));
        assert_eq!(source(&fixed, &rest), Ok(Some("192.0.2.7:40000".parse().expect("addr"))));

        let client: Ipv6Addr = "2001:db8::7".parse().expect("v6");
        let v6 = [&client.octets()[..], &[0u8; 16], &443u16.to_be_bytes(), &9092u16.to_be_bytes()].concat();
        let (fixed, rest) = header(1, 0x21, &v6, &[]);
        assert_eq!(source(&fixed, &rest), Ok(Some("[2001:db8::7]:443".parse().expect("addr"))));

        // The load balancer's health check (LOCAL), and families without a TCP address: the peer is the client.
        assert_eq!(source(&header(0, 0x00, &[], &[]).0, &[]), Ok(None));
        assert_eq!(source(&header(1, 0x31, &[0; 216], &[]).0, &[0; 216]), Ok(None));

        let (fixed, rest) = header(1, 0x21, &v4, &[]);
        assert_eq!(source(&fixed, &rest), Err(HeaderError::Short { family: "TCP6", need: 36, len: 12 }));
        let mut v1 = [0u8; 16];
        v1.copy_from_slice(b"PROXY TCP4 192.0");
        assert!(matches!(rest_len(&v1), Err(HeaderError::Signature(_))));
        let mut wrong = header(1, 0x11, &v4, &[]).0;
        wrong[12] = 0x11;
        assert_eq!(rest_len(&wrong), Err(HeaderError::Version(1)));
        wrong[12] = 0x22;
        assert_eq!(rest_len(&wrong), Err(HeaderError::Command(2)));
        wrong[12] = 0x21;
        wrong[14..].copy_from_slice(&1025u16.to_be_bytes());
        assert_eq!(rest_len(&wrong), Err(HeaderError::TooLong(1025)));
    }
}
