//! Hostile Kafka frames from a client that completed its TLS handshake: each ends exactly that connection,
//! unforwarded, with a log line naming what was wrong and a counter.

use std::time::Duration;

use bytes::Bytes;
use kaas_e2e::raw;
use kafka_protocol::messages::MetadataRequest;
use tokio::io::AsyncWriteExt;

use super::arena::Arena;

/// Sends `bytes` on a fresh connection to `target` and asserts the proxy closed it, logged `log` and counted a
/// refused frame with `reason` (`kaas_proxy_session_frames_refused_total`).
pub async fn refused(arena: &Arena, bytes: &[u8], log: &str, reason: &str) {
    let mut conn = arena.connect().await;
    conn.write_all(bytes).await.expect("write");
    conn.flush().await.expect("flush");
    assert!(raw::closed_within(conn.get_mut(), Duration::from_secs(5)).await, "connection not closed");
    arena.expect_log(log);
    arena.expect_metric(&refusals(reason), 1.0);
}

/// `kaas_proxy_session_frames_refused_total` of tenant `target` for `reason`.
pub fn refusals(reason: &str) -> String {
    format!("kaas_proxy_session_frames_refused_total{{tenant=\"target\",reason=\"{reason}\"}}")
}

/// `kaas_proxy_session_errors_total` of tenant `target`.
pub const SESSION_ERRORS: &str = "kaas_proxy_session_errors_total{tenant=\"target\"}";

/// A request frame of `api_key` v`version`: request header v1 (null client id), then `body`.
pub fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&api_key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(body);
    with_length(&b)
}

/// `body` behind its length prefix.
pub fn with_length(body: &[u8]) -> Vec<u8> {
    let mut b = u32::try_from(body.len()).expect("test frame").to_be_bytes().to_vec();
    b.extend_from_slice(body);
    b
}

/// A real Metadata v12 request of librdkafka's shape (all topics).
pub fn metadata_v12() -> Bytes {
    raw::frame(9, 12, &MetadataRequest::default()).expect("encode Metadata v12")
}
