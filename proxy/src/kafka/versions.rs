//! ApiVersions interception: the broker's list of APIs is capped so a client never picks a version whose
//! response the proxy could not walk and rewrite, and blocked APIs are removed, as are API keys the proxy does
//! not know (it refuses them: their responses could carry addresses it cannot see).
//!
//! The response is walked with the bounded [`Reader`] and edited in place (entries dropped, ranges narrowed,
//! the count fixed); the feature lists after the entries are copied through unread.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

use super::apis::{policy, usable_versions, Policy};
use super::wire::{uvarint, Edits, Reader, WireError, WireResult};

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

/// An ApiVersions response body that does not hold what its version promises.
#[derive(Debug, thiserror::Error)]
#[error("malformed ApiVersions v{version} response: {error}")]
pub struct VersionsError {
    /// The version the body was read as.
    pub version: i16,
    /// Which field failed and how.
    pub error: WireError,
}

/// One entry of the broker's list, and where it sits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiEntry {
    /// Raw, as the broker sent it; possibly unknown to the proxy.
    pub api_key: i16,
    /// The versions the broker supports, before capping.
    pub range: VersionRange,
    /// Where the entry starts, where its max_version ends, and where it ends (after its tagged fields).
    at: usize,
    versions_end: usize,
    end: usize,
}

/// Walks an ApiVersions response body: its error code, and each entry in turn. An error response stops after
/// the error code (brokers answer an unsupported request version with a v0 body whatever was asked).
fn walk(
    body: &[u8],
    version: i16,
    mut each: impl FnMut(ApiEntry),
) -> Result<(i16, Option<CountField>), VersionsError> {
    let mut r = Reader::new(body, version >= 3);
    let walked = (|| -> WireResult<(i16, Option<CountField>)> {
        let error_code = r.i16("error_code")?;
        if error_code != 0 {
            return Ok((error_code, None));
        }
        let count_at = r.pos();
        let count = r.nullable_count("api_keys", 6)?.unwrap_or(0);
        let count_field = CountField { at: count_at..r.pos(), count };
        for _ in 0..count {
            let at = r.pos();
            let api_key = r.i16("api_keys.api_key")?;
            let min = r.i16("api_keys.min_version")?;
            let max = r.i16("api_keys.max_version")?;
            let versions_end = r.pos();
            r.skip_tagged_fields("api_keys tags")?;
            each(ApiEntry { api_key, range: VersionRange { min, max }, at, versions_end, end: r.pos() });
        }
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        r.skip_tagged_fields("tags")?;
        r.finish("end of response")?;
        Ok((0, Some(count_field)))
    })();
    walked.map_err(|error| VersionsError { version, error })
}

struct CountField {
    at: std::ops::Range<usize>,
    count: usize,
}

/// The broker's version range for `api`, if it offers it (for the proxy's own requests).
pub fn broker_range(body: &[u8], version: i16, api: ApiKey) -> Result<Option<VersionRange>, VersionsError> {
    let mut found = None;
    walk(body, version, |e| {
        if e.api_key == api as i16 {
            found = Some(e.range);
        }
    })?;
    Ok(found)
}

/// Caps and filters the API list of an ApiVersions response body of `version` (see [`policy`]).
pub fn cap_api_versions(body: &[u8], version: i16) -> Result<Capped, VersionsError> {
    let mut edits = Edits::default();
    let mut dropped = 0;
    let (error_code, count) = walk(body, version, |e| {
        let keep = match ApiKey::try_from(e.api_key).map(policy) {
            Err(_) | Ok(Policy::Blocked) => None,
            Ok(Policy::Rewrite { from_version, decodable }) => {
                usable_versions(e.range, from_version, decodable)
            }
            Ok(Policy::PassThrough | Policy::Versions) => Some(e.range),
        };
        match keep {
            None => {
                dropped += 1;
                edits.replace(e.at..e.end, Vec::new());
            }
            Some(r) if r != e.range => {
                let mut b = Vec::with_capacity(4);
                b.extend_from_slice(&r.min.to_be_bytes());
                b.extend_from_slice(&r.max.to_be_bytes());
                edits.replace(e.at + 2..e.versions_end, b);
            }
            Some(_) => {}
        }
    })?;
    let Some(count) = count else { return Ok(Capped::ErrorResponse(error_code)) };
    if edits.is_empty() {
        return Ok(Capped::Unchanged);
    }
    if dropped > 0 {
        let n = count.count - dropped;
        let encoded = if version >= 3 { uvarint(n as u32 + 1) } else { (n as i32).to_be_bytes().to_vec() };
        edits.replace(count.at, encoded);
    }
    let mut out = BytesMut::new();
    edits.apply(body, &mut out);
    Ok(Capped::Changed(out.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn entry(key: i16, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default().with_api_key(key).with_min_version(min).with_max_version(max)
    }

    fn encode(msg: &ApiVersionsResponse, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        msg.encode(&mut b, version).expect("encode");
        b.freeze()
    }

    #[test]
    fn caps_rewritten_hides_blocked_and_unknown() {
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
