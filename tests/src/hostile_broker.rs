//! A hostile "broker": answers ApiVersions truthfully, then answers every address-carrying request with a
//! mutated valid response of the requested API and version (flipped bytes, lengths and counts set to -1, 0,
//! 65536 or 0x7fffffff, truncations, insertions; `kaas_proxy::testkit`). The response header is kept intact so
//! the proxy can match it to its request: what is hostile is the body the proxy must read.
//!
//! For each answer it records whether the proxy's walker accepts that body, so a test can check the proxy did
//! exactly that: forward the accepted ones, and close the connection on the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kaas_proxy::kafka::codec::{Frame, FrameStream};
use kaas_proxy::kafka::header::parse_request;
use kaas_proxy::kafka::rewrite::{rewrite_response, Advertise};
use kaas_proxy::kafka::versions::cap_api_versions;
use kaas_proxy::testkit::{mutations, random_response, Rng};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What the broker sent for one correlation id: the API and version, and whether the proxy should accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub api: ApiKey,
    pub version: i16,
    pub acceptable: bool,
}

#[derive(Debug)]
pub struct HostileBroker {
    pub port: u16,
    sent: Arc<Mutex<HashMap<i32, Sent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileBroker {
    /// Listens on a free loopback port; `seed` makes the mutations reproducible.
    pub async fn start(seed: u64) -> anyhow::Result<HostileBroker> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let rng = Arc::new(Mutex::new(Rng::new(seed)));
        let shared = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, shared.clone(), rng.clone()));
            }
        });
        Ok(HostileBroker { port, sent, task })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What was sent for a correlation id (client correlation ids pass through the proxy unchanged).
    pub fn sent(&self, correlation_id: i32) -> Option<Sent> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).get(&correlation_id).copied()
    }
}

impl Drop for HostileBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The proxy's walker, as the judge of which bodies are readable.
fn acceptable(api: ApiKey, version: i16, body: &[u8]) -> bool {
    match api {
        ApiKey::ApiVersions => cap_api_versions(body, version).is_ok(),
        _ => rewrite_response(api, version, body, &Advertise::new("t", "d", 1)).is_ok(),
    }
}

fn truthful_api_versions(version: i16) -> anyhow::Result<Bytes> {
    let apis = [
        (ApiKey::ApiVersions, 0, 4),
        (ApiKey::Metadata, 0, 13),
        (ApiKey::FindCoordinator, 0, 6),
        (ApiKey::DescribeCluster, 0, 2),
        (ApiKey::Produce, 3, 13),
        (ApiKey::Fetch, 4, 18),
        (ApiKey::ShareFetch, 1, 1),
        (ApiKey::ShareAcknowledge, 1, 1),
    ];
    let keys = apis
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default().with_api_key(*k as i16).with_min_version(*min).with_max_version(*max)
        })
        .collect();
    let mut b = BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(
        &ApiVersionsResponse::default().with_api_keys(keys),
        &mut b,
        version,
    )?;
    Ok(b.freeze())
}

/// A body for `api` v`version`: ApiVersions with correlation id 0 is the truthful one (the proxy's own
/// refresh and the test's first exchange); everything else is a mutation of a random valid response.
fn body_for(api: ApiKey, version: i16, correlation_id: i32, rng: &Mutex<Rng>) -> anyhow::Result<Bytes> {
    let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
    if api == ApiKey::ApiVersions && correlation_id <= 1 {
        return truthful_api_versions(version);
    }
    let valid = if api == ApiKey::ApiVersions {
        truthful_api_versions(version)?
    } else {
        random_response(api, version, &mut rng)
    };
    let mut all = mutations(&valid, &mut rng);
    if all.is_empty() {
        return Ok(valid);
    }
    let pick = rng.below(all.len() as u64) as usize;
    Ok(Bytes::from(all.swap_remove(pick).1))
}

async fn serve(conn: TcpStream, sent: Arc<Mutex<HashMap<i32, Sent>>>, rng: Arc<Mutex<Rng>>) {
    let mut frames = FrameStream::new(conn, 1 << 20);
    while let Ok(Some(req)) = frames.read_frame().await {
        let Ok(h) = parse_request(req.body()) else { return };
        let Some(api) = h.api() else { return };
        let Ok(body) = body_for(api, h.api_version, h.correlation_id, &rng) else { return };
        let acceptable = acceptable(api, h.api_version, &body);
        sent.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(h.correlation_id, Sent { api, version: h.api_version, acceptable });
        let flexible_header = api.response_header_version(h.api_version) >= 1;
        let frame = Frame::build(5 + body.len(), |b| {
            b.put_i32(h.correlation_id);
            if flexible_header {
                b.put_u8(0);
            }
            b.put_slice(&body);
        });
        if frames.get_mut().write_all(frame.bytes()).await.is_err() {
            return;
        }
    }
}
