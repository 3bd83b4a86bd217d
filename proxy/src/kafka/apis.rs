//! What the proxy does with each API's responses. One table, read by the request path (what to track), the
//! response path (what to decode) and the ApiVersions interception (what to cap or hide).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// The proxy's treatment of one API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Responses pass through as raw bytes, never decoded.
    PassThrough,
    /// Responses of versions `from_version..=decodable.max` carry broker addresses: decoded and rewritten.
    /// Versions above `decodable.max` cannot be read, so ApiVersions caps the API there.
    Rewrite { from_version: i16, decodable: VersionRange },
    /// ApiVersions itself: capped and filtered so clients only pick versions the proxy can rewrite.
    Versions,
    /// Controller-quorum and inter-broker APIs whose messages carry addresses clients must never learn or set:
    /// hidden from ApiVersions and refused.
    Blocked,
}

pub fn policy(api: ApiKey) -> Policy {
    use ApiKey::*;
    let rewrite = |from_version| Policy::Rewrite { from_version, decodable: api.valid_versions() };
    match api {
        Metadata | FindCoordinator | DescribeCluster => rewrite(0),
        // KIP-951: leader endpoints ride along with NOT_LEADER errors.
        Produce => rewrite(10),
        Fetch => rewrite(16),
        // KIP-932 share groups: node_endpoints in every version the crate knows.
        ShareFetch | ShareAcknowledge => rewrite(api.valid_versions().min),
        ApiVersions => Policy::Versions,
        Vote | BeginQuorumEpoch | EndQuorumEpoch | DescribeQuorum | FetchSnapshot | AddRaftVoter
        | RemoveRaftVoter | UpdateRaftVoter | BrokerRegistration | ControllerRegistration => Policy::Blocked,
        _ => Policy::PassThrough,
    }
}

/// What to do with the response to a request of `api` at `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    Forward,
    Rewrite(ApiKey),
    CapVersions,
}

/// Why a request is refused before it reaches the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefusal {
    #[error("{0:?} is not available through the proxy (its messages carry internal addresses)")]
    Blocked(ApiKey),
    #[error("{api:?} v{version} is newer than the proxy can rewrite (up to v{max}; ApiVersions advertised that)")]
    TooNew { api: ApiKey, version: i16, max: i16 },
}

/// The response action for a request, or why the request must not go upstream.
pub fn classify(api: Option<ApiKey>, version: i16) -> Result<ResponseAction, RequestRefusal> {
    let Some(api) = api else { return Ok(ResponseAction::Forward) };
    match policy(api) {
        Policy::PassThrough => Ok(ResponseAction::Forward),
        Policy::Versions => Ok(ResponseAction::CapVersions),
        Policy::Blocked => Err(RequestRefusal::Blocked(api)),
        Policy::Rewrite { decodable, .. } if version > decodable.max => {
            Err(RequestRefusal::TooNew { api, version, max: decodable.max })
        }
        Policy::Rewrite { from_version, decodable } if version >= from_version.max(decodable.min) => {
            Ok(ResponseAction::Rewrite(api))
        }
        Policy::Rewrite { .. } => Ok(ResponseAction::Forward),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        use ResponseAction::*;
        let cases = [
            (Some(ApiKey::Metadata), 12, Ok(Rewrite(ApiKey::Metadata))),
            (Some(ApiKey::Metadata), 0, Ok(Rewrite(ApiKey::Metadata))),
            (Some(ApiKey::Metadata), 14, Err(RequestRefusal::TooNew { api: ApiKey::Metadata, version: 14, max: 13 })),
            (Some(ApiKey::Produce), 9, Ok(Forward)),
            (Some(ApiKey::Produce), 10, Ok(Rewrite(ApiKey::Produce))),
            (Some(ApiKey::Fetch), 15, Ok(Forward)),
            (Some(ApiKey::Fetch), 16, Ok(Rewrite(ApiKey::Fetch))),
            (Some(ApiKey::ApiVersions), 3, Ok(CapVersions)),
            (Some(ApiKey::DescribeQuorum), 2, Err(RequestRefusal::Blocked(ApiKey::DescribeQuorum))),
            (Some(ApiKey::JoinGroup), 99, Ok(Forward)),
            (None, 0, Ok(Forward)),
        ];
        for (api, version, want) in cases {
            assert_eq!(classify(api, version), want, "{api:?} v{version}");
        }
    }
}
