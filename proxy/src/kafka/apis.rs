//! What the proxy does with each API's responses. One table, read by the request path (what to track), the
//! response path (what to decode) and the ApiVersions interception (what to cap or hide).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// The proxy's treatment of one API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Responses pass through as raw bytes, never decoded.
    PassThrough,
    /// Responses of versions `from_version..=decodable.max` carry broker addresses (in endpoints, or in
    /// DescribeConfigs' values): walked and rewritten.
    /// Versions above `decodable.max` cannot be read, so ApiVersions caps the API there.
    Rewrite {
        /// First version whose responses carry broker addresses; earlier ones pass through.
        from_version: i16,
        /// The versions the walker can read ([`walkable`]); empty (`0..=-1`) when it reads none.
        decodable: VersionRange,
    },
    /// ApiVersions itself: capped and filtered so clients only pick versions the proxy can rewrite.
    Versions,
    /// Controller-quorum and inter-broker APIs whose messages carry addresses clients must never learn or set:
    /// hidden from ApiVersions and refused.
    Blocked,
}

/// The versions [`super::rewrite`] walks, per API: written out rather than taken from the kafka-protocol
/// crate, so an upgrade that adds a version cannot send it to a walker that has not learnt its layout (the
/// rewrite tests fail until it does).
pub fn walkable(api: ApiKey) -> Option<VersionRange> {
    use ApiKey::*;
    let (min, max) = match api {
        Metadata => (0, 13),
        FindCoordinator => (0, 6),
        DescribeCluster => (0, 2),
        // kafka-protocol (and so the oracle) reads v1–v4; Kafka 4 removed v0.
        DescribeConfigs => (1, 4),
        Produce => (3, 13),
        Fetch => (4, 18),
        ShareFetch | ShareAcknowledge => (1, 1),
        _ => return None,
    };
    Some(VersionRange { min, max })
}

/// The proxy's treatment of `api`: the one table every path reads.
pub fn policy(api: ApiKey) -> Policy {
    use ApiKey::*;
    let decodable = walkable(api).unwrap_or(VersionRange { min: 0, max: -1 });
    let rewrite = |from_version| Policy::Rewrite { from_version, decodable };
    match api {
        Metadata | FindCoordinator | DescribeCluster => rewrite(0),
        // Brokers describe their own listeners and quorum: values redacted (`rewrite::hidden_config`).
        DescribeConfigs => rewrite(0),
        // KIP-951: leader endpoints ride along with NOT_LEADER errors.
        Produce => rewrite(10),
        Fetch => rewrite(16),
        // KIP-932 share groups: node_endpoints in every version, including the early-access v0 the walker
        // cannot read (so v0 is refused and hidden).
        ShareFetch | ShareAcknowledge => rewrite(0),
        ApiVersions => Policy::Versions,
        Vote
        | BeginQuorumEpoch
        | EndQuorumEpoch
        | DescribeQuorum
        | FetchSnapshot
        | AddRaftVoter
        | RemoveRaftVoter
        | UpdateRaftVoter
        | BrokerRegistration
        | ControllerRegistration => Policy::Blocked,
        _ => Policy::PassThrough,
    }
}

/// What to do with the response to a request of `api` at `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    /// Pass the response through untouched.
    Forward,
    /// Walk the response body of this API and rewrite the broker addresses in it.
    Rewrite(ApiKey),
    /// An ApiVersions response: cap and filter the advertised versions.
    CapVersions,
}

/// Why a request is refused before it reaches the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefusal {
    /// An API key the proxy does not know: its response could carry broker addresses the proxy cannot see, so
    /// it is refused (fail closed) and ApiVersions does not offer it.
    #[error("API key {0} is not one the proxy knows (a newer Kafka API?); refused, since its response could carry internal addresses")]
    Unknown(i16),
    /// A controller-quorum or inter-broker API ([`Policy::Blocked`]).
    #[error("{0:?} is not available through the proxy (its messages carry internal addresses)")]
    Blocked(ApiKey),
    /// A version of an address-carrying API whose response the walker cannot read (ApiVersions did not
    /// offer it).
    #[error("{api:?} v{version} is outside the versions the proxy can rewrite ({range}; ApiVersions advertised that)")]
    Unreadable {
        /// The requested API.
        api: ApiKey,
        /// The requested version.
        version: i16,
        /// The readable versions, as `min..=max` text for the message.
        range: String,
    },
}

/// The response action for a request, or why the request must not go upstream.
pub fn classify(key: i16, version: i16) -> Result<ResponseAction, RequestRefusal> {
    let Ok(api) = ApiKey::try_from(key) else { return Err(RequestRefusal::Unknown(key)) };
    match policy(api) {
        Policy::PassThrough => Ok(ResponseAction::Forward),
        Policy::Versions => Ok(ResponseAction::CapVersions),
        Policy::Blocked => Err(RequestRefusal::Blocked(api)),
        Policy::Rewrite { from_version, .. } if version < from_version => Ok(ResponseAction::Forward),
        Policy::Rewrite { decodable, .. } if version < decodable.min || version > decodable.max => {
            Err(RequestRefusal::Unreadable { api, version, range: decodable.to_string() })
        }
        Policy::Rewrite { .. } => Ok(ResponseAction::Rewrite(api)),
    }
}

/// The versions of a rewritten API a client may use, given the broker's range: those without addresses
/// (below `from_version`) and those the proxy decodes, as one contiguous range (the upper part if they are
/// not contiguous). `None` when nothing is left.
pub fn usable_versions(
    broker: VersionRange,
    from_version: i16,
    decodable: VersionRange,
) -> Option<VersionRange> {
    let upper_min = from_version.max(decodable.min);
    let contiguous = from_version >= decodable.min;
    let min = if contiguous && broker.min < from_version { broker.min } else { broker.min.max(upper_min) };
    let max = broker.max.min(decodable.max);
    (min <= max).then_some(VersionRange { min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreadable(api: ApiKey, version: i16, range: &str) -> RequestRefusal {
        RequestRefusal::Unreadable { api, version, range: range.into() }
    }

    #[test]
    fn usable_ranges() {
        let r = |min, max| VersionRange { min, max };
        // Produce: v0-9 carry no address, v3-13 decodable.
        assert_eq!(usable_versions(r(0, 12), 10, r(3, 13)), Some(r(0, 12)));
        assert_eq!(usable_versions(r(0, 20), 10, r(3, 13)), Some(r(0, 13)));
        // ShareFetch: addresses from v0, only v1 decodable.
        assert_eq!(usable_versions(r(0, 1), 0, r(1, 1)), Some(r(1, 1)));
        assert_eq!(usable_versions(r(0, 0), 0, r(1, 1)), None);
        // Addresses from v2 but only v5+ decodable: the gap forces the upper part.
        assert_eq!(usable_versions(r(0, 9), 2, r(5, 7)), Some(r(5, 7)));
    }

    #[test]
    fn classification() {
        use ResponseAction::*;
        let cases = [
            (ApiKey::Metadata as i16, 12, Ok(Rewrite(ApiKey::Metadata))),
            (ApiKey::Metadata as i16, 0, Ok(Rewrite(ApiKey::Metadata))),
            (ApiKey::Metadata as i16, 14, Err(unreadable(ApiKey::Metadata, 14, "0..13"))),
            (ApiKey::ShareFetch as i16, 0, Err(unreadable(ApiKey::ShareFetch, 0, "1..1"))),
            (ApiKey::ShareFetch as i16, 1, Ok(Rewrite(ApiKey::ShareFetch))),
            (ApiKey::Produce as i16, 9, Ok(Forward)),
            (ApiKey::Produce as i16, 10, Ok(Rewrite(ApiKey::Produce))),
            (ApiKey::Fetch as i16, 15, Ok(Forward)),
            (ApiKey::Fetch as i16, 16, Ok(Rewrite(ApiKey::Fetch))),
            (ApiKey::ApiVersions as i16, 3, Ok(CapVersions)),
            (ApiKey::DescribeQuorum as i16, 2, Err(RequestRefusal::Blocked(ApiKey::DescribeQuorum))),
            (ApiKey::JoinGroup as i16, 99, Ok(Forward)),
            // Fail closed: a key no release of the protocol crate knows could carry addresses in its response.
            (32_000, 0, Err(RequestRefusal::Unknown(32_000))),
            (-1, 0, Err(RequestRefusal::Unknown(-1))),
        ];
        for (key, version, want) in cases {
            assert_eq!(classify(key, version), want, "key {key} v{version}");
        }
    }
}
