//! ApiVersions interception: the broker's list of APIs is capped so a client never picks a version whose
//! response the proxy could not decode and rewrite, and blocked APIs are removed. Unknown API keys pass
//! unchanged: the proxy never decodes their responses.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable};

use kafka_protocol::protocol::VersionRange;

use super::apis::{policy, usable_versions, Policy};

/// Outcome of capping one ApiVersions response body.
#[derive(Debug, PartialEq)]
pub enum Capped {
    /// The body to send instead.
    Changed(Bytes),
    /// Nothing needed changing.
    Unchanged,
    /// An error response (for example UNSUPPORTED_VERSION, which brokers encode as v0): no API list to cap.
    ErrorResponse(i16),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decode ApiVersions v{version} response: {reason}")]
pub struct VersionsError {
    pub version: i16,
    pub reason: String,
}

pub fn cap_api_versions(body: &Bytes, version: i16) -> Result<Capped, VersionsError> {
    let decoded = ApiVersionsResponse::decode(&mut body.clone(), version)
        .or_else(|e| ApiVersionsResponse::decode(&mut body.clone(), 0).map_err(|_| e));
    let mut msg = decoded.map_err(|e| VersionsError { version, reason: format!("{e:#}") })?;
    if msg.error_code != 0 {
        return Ok(Capped::ErrorResponse(msg.error_code));
    }
    let before = msg.api_keys.clone();
    msg.api_keys.retain_mut(|entry| {
        let Ok(api) = ApiKey::try_from(entry.api_key) else { return true };
        match policy(api) {
            Policy::Blocked => false,
            Policy::Rewrite { from_version, decodable } => {
                let broker = VersionRange { min: entry.min_version, max: entry.max_version };
                match usable_versions(broker, from_version, decodable) {
                    Some(r) => {
                        (entry.min_version, entry.max_version) = (r.min, r.max);
                        true
                    }
                    None => false,
                }
            }
            Policy::PassThrough | Policy::Versions => true,
        }
    });
    if msg.api_keys == before {
        return Ok(Capped::Unchanged);
    }
    let mut out = BytesMut::new();
    msg.encode(&mut out, version).map_err(|e| VersionsError { version, reason: format!("{e:#}") })?;
    Ok(Capped::Changed(out.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn entry(key: i16, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default().with_api_key(key).with_min_version(min).with_max_version(max)
    }

    fn encode(msg: &ApiVersionsResponse, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        msg.encode(&mut b, version).expect("encode");
        b.freeze()
    }

    #[test]
    fn caps_rewritten_hides_blocked_keeps_unknown() {
        let msg = ApiVersionsResponse::default().with_api_keys(vec![
            entry(ApiKey::Produce as i16, 0, 99),
            entry(ApiKey::Metadata as i16, 0, 99),
            entry(ApiKey::JoinGroup as i16, 0, 99),
            entry(ApiKey::DescribeQuorum as i16, 0, 2),
            entry(ApiKey::ShareFetch as i16, 0, 0),
            entry(999, 0, 7),
        ]);
        for version in 0..=4 {
            let Capped::Changed(out) = cap_api_versions(&encode(&msg, version), version).expect("decodes")
            else {
                panic!("v{version}: expected a change");
            };
            let got = ApiVersionsResponse::decode(&mut out.clone(), version).expect("re-decodes");
            let keys: Vec<_> =
                got.api_keys.iter().map(|e| (e.api_key, e.min_version, e.max_version)).collect();
            assert_eq!(
                keys,
                [
                    (ApiKey::Produce as i16, 0, ApiKey::Produce.valid_versions().max),
                    (ApiKey::Metadata as i16, 0, ApiKey::Metadata.valid_versions().max),
                    (ApiKey::JoinGroup as i16, 0, 99),
                    (999, 0, 7),
                ],
                "v{version}"
            );
        }
    }

    #[test]
    fn unchanged_and_error_responses_pass() {
        let fine = ApiVersionsResponse::default().with_api_keys(vec![entry(ApiKey::Metadata as i16, 0, 12)]);
        assert_eq!(cap_api_versions(&encode(&fine, 3), 3).expect("decodes"), Capped::Unchanged);
        // A broker answers an unsupported ApiVersions version with a v0 error body.
        let err = ApiVersionsResponse::default().with_error_code(35).with_api_keys(vec![entry(18, 0, 3)]);
        assert_eq!(cap_api_versions(&encode(&err, 0), 4).expect("decodes as v0"), Capped::ErrorResponse(35));
        assert!(cap_api_versions(&Bytes::from_static(&[0, 0, 9]), 3).is_err());
    }
}
