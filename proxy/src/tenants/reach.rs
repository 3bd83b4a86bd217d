//! Where the proxy may dial for a tenant: its bootstrap hosts, and broker addresses under its allowed names or
//! in its allowed ranges, never a link-local or metadata-service address. Broker addresses come from the
//! cluster's own responses, which whoever may alter `advertised.listeners` controls: without this, a tenant could
//! point `b<id>.<tenant>.<domain>` at the instance metadata service, the management API server or any internal
//! port. Pure: [`crate::upstream`] asks [`Reach::admits`] with the addresses a name resolved to, before dialling.

use std::net::IpAddr;

use kaas_route::{Cidr, HostPort};

/// A tenant's upstream allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// The configured bootstrap hosts: the operator's, dialled whatever they resolve to, on any port.
    bootstrap_hosts: Vec<String>,
    /// DNS suffixes broker names may end in (`acme.svc` admits `kafka-0.acme.svc`, not `xacme.svc`).
    suffixes: Vec<String>,
    /// Ranges broker addresses may resolve into.
    cidrs: Vec<Cidr>,
}

/// Why an address was not dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{addr} is not one of the tenant's upstream addresses ({why})")]
pub struct NotAllowed {
    /// The address as the cluster named it.
    pub addr: HostPort,
    /// Which rule refused it.
    pub why: String,
}

impl Reach {
    /// The allow-list of a tenant with these bootstrap servers: `suffixes` and `cidrs` as configured (malformed
    /// ones were refused by route validation), or when neither is given, derived from the bootstrap servers —
    /// each name's parent domain (`kafka-bootstrap.acme.svc` → `acme.svc`) and each IP address itself.
    pub fn new(bootstrap: &[HostPort], suffixes: &[String], cidrs: &[String]) -> Reach {
        let bootstrap_hosts: Vec<String> = bootstrap.iter().map(|b| b.host.to_ascii_lowercase()).collect();
        let (suffixes, cidrs) = if suffixes.is_empty() && cidrs.is_empty() {
            let ips =
                bootstrap_hosts.iter().filter_map(|h| h.parse::<IpAddr>().ok()).map(Cidr::host).collect();
            let parents = bootstrap_hosts
                .iter()
                .filter(|h| h.parse::<IpAddr>().is_err())
                .filter_map(|h| h.split_once('.').map(|(_, parent)| parent.to_owned()))
                // A bare top-level domain would admit half the internet.
                .filter(|p| p.contains('.'))
                .collect();
            (parents, ips)
        } else {
            let suffixes = suffixes.iter().map(|s| s.trim_matches('.').to_ascii_lowercase()).collect();
            (suffixes, cidrs.iter().filter_map(|c| c.parse().ok()).collect())
        };
        Reach { bootstrap_hosts, suffixes, cidrs }
    }

    /// The addresses of `resolved` (what `addr` resolved to) the proxy may dial, in order; an error naming the
    /// rule when there is none.
    pub fn admits(&self, addr: &HostPort, resolved: &[IpAddr]) -> Result<Vec<IpAddr>, NotAllowed> {
        let host = addr.host.to_ascii_lowercase();
        if self.bootstrap_hosts.contains(&host) {
            return Ok(resolved.to_vec());
        }
        let named = host.parse::<IpAddr>().is_err()
            && self
                .suffixes
                .iter()
                .any(|s| host.strip_suffix(s.as_str()).is_some_and(|rest| rest.ends_with('.')));
        let mut why = "neither under an allowed name nor in an allowed range";
        let admitted: Vec<IpAddr> = resolved
            .iter()
            .copied()
            .filter(|ip| match refused_always(*ip) {
                Some(reason) => {
                    why = reason;
                    false
                }
                None if self.cidrs.iter().any(|c| c.contains(*ip)) => true,
                None if ip.is_loopback() => {
                    why = "loopback, and no allowed range holds it";
                    false
                }
                None => named,
            })
            .collect();
        if admitted.is_empty() {
            return Err(NotAllowed { addr: addr.clone(), why: why.into() });
        }
        Ok(admitted)
    }
}

/// Addresses no tenant's broker may name, whatever its allow-list says: the link-local ranges (the instance
/// metadata services of AWS, GCP and Azure at 169.254.169.254, AWS's IPv6 one at fd00:ec2::254), unspecified,
/// multicast and broadcast addresses.
fn refused_always(ip: IpAddr) -> Option<&'static str> {
    let aws_metadata_v6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254));
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if ip == aws_metadata_v6 || link_local {
        Some("a link-local or metadata-service address")
    } else if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("an unspecified, multicast or broadcast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> HostPort {
        HostPort::parse(s).expect("host:port")
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().expect("ip")).collect()
    }

    /// A reach, a broker address, what it resolved to, and the addresses dialled or a word of the refusal.
    type Case<'a> = (&'a Reach, &'a str, &'a [&'a str], Result<&'a [&'a str], &'a str>);

    #[test]
    fn derived_from_the_bootstrap() {
        let namespace = Reach::new(&[hp("kaas-kafka-bootstrap.tenant-a.svc:9093")], &[], &[]);
        let local = Reach::new(&[hp("127.0.0.1:19092")], &[], &[]);
        let cases: &[Case] = &[
            // Strimzi's per-broker names under the bootstrap's parent domain.
            (
                &namespace,
                "kaas-kafka-0.kaas-kafka-brokers.tenant-a.svc:9093",
                &["10.1.2.3"],
                Ok(&["10.1.2.3"]),
            ),
            (&namespace, "kaas-kafka-0.tenant-b.svc:9093", &["10.1.2.4"], Err("neither")),
            (&namespace, "x-tenant-a.svc:9093", &["10.1.2.4"], Err("neither")),
            // A name under the suffix still may not resolve to the metadata service or loopback.
            (&namespace, "evil.tenant-a.svc:80", &["169.254.169.254"], Err("metadata")),
            (&namespace, "evil.tenant-a.svc:80", &["127.0.0.1"], Err("loopback")),
            (&namespace, "evil.tenant-a.svc:80", &["fd00:ec2::254"], Err("metadata")),
            // The bootstrap host itself, on any port, whatever it resolves to: the operator named it.
            (&namespace, "kaas-kafka-bootstrap.tenant-a.svc:9094", &["10.9.9.9"], Ok(&["10.9.9.9"])),
            // Local brokers: the bootstrap address admits itself, and nothing else of the loopback range.
            (&local, "127.0.0.1:19093", &["127.0.0.1"], Ok(&["127.0.0.1"])),
            (&local, "localhost:19093", &["::1", "127.0.0.1"], Ok(&["127.0.0.1"])),
            (&local, "127.0.0.2:19093", &["127.0.0.2"], Err("loopback")),
            (&local, "169.254.169.254:80", &["169.254.169.254"], Err("metadata")),
            (&local, "10.0.0.1:9092", &["10.0.0.1"], Err("neither")),
            (&local, "239.0.0.1:9092", &["239.0.0.1"], Err("multicast")),
        ];
        for (reach, addr, resolved, want) in cases {
            let got = reach.admits(&hp(addr), &ips(resolved));
            match (want, got) {
                (Ok(want), Ok(got)) => assert_eq!(got, ips(want), "{addr}"),
                (Err(why), Err(e)) => assert!(e.to_string().contains(why), "{addr}: {e}"),
                (want, got) => panic!("{addr}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn configured_lists_replace_the_derived_ones() {
        let bootstrap = [hp("kafka-bootstrap.acme.internal.kaas.dev:9094")];
        let reach = Reach::new(&bootstrap, &[".Acme.Internal.Kaas.Dev.".into()], &["10.20.0.0/16".into()]);
        // A Strimzi load-balancer listener advertises the NLB's own name; the tenant's VPC range admits it.
        let nlb = hp("k8s-a-b-0123.elb.us-east-1.amazonaws.com:9094");
        assert_eq!(reach.admits(&nlb, &ips(&["10.20.3.4"])), Ok(ips(&["10.20.3.4"])));
        assert!(reach.admits(&nlb, &ips(&["10.30.3.4"])).is_err(), "another VPC's load balancer");
        assert!(reach.admits(&hp("b1.acme.internal.kaas.dev:9094"), &ips(&["10.99.0.1"])).is_ok());
        // Default derivation never admits a whole top-level domain.
        let bare = Reach::new(&[hp("kafka.dev:9092")], &[], &[]);
        assert!(bare.admits(&hp("anything.dev:9092"), &ips(&["10.0.0.1"])).is_err());
    }
}
