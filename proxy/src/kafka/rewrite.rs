//! Broker-address rewriting: the responses that name brokers are decoded, every `host`/`port` replaced by the
//! proxy's name for that node (`b<node-id>.<tenant>.<domain>`, advertised port), and re-encoded exactly with the
//! same version. Node ids are kept. The original addresses are returned so the router can learn them.
//!
//! Pure: no I/O. A response that names no broker is left as it came (`body: None`), so the common case costs
//! one decode and no re-encode.

use bytes::{Bytes, BytesMut};
use kaas_route::HostPort;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, ShareAcknowledgeResponse, ShareFetchResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How the proxy names brokers to clients.
#[derive(Debug, Clone)]
pub struct Advertise {
    /// `.<tenant>.<domain>`, appended to `b<node-id>`.
    suffix: String,
    pub port: u16,
}

impl Advertise {
    pub fn new(tenant: &str, domain: &str, port: u16) -> Self {
        Advertise { suffix: format!(".{tenant}.{domain}"), port }
    }

    pub fn host(&self, node_id: i32) -> String {
        format!("b{node_id}{}", self.suffix)
    }
}

/// Result of rewriting one response body.
#[derive(Debug, Default, PartialEq)]
pub struct Rewritten {
    /// The new body, or `None` when the response named no broker and passes unchanged.
    pub body: Option<Bytes>,
    /// Upstream addresses seen, by node id, for the broker table.
    pub learned: Vec<(i32, HostPort)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("cannot decode {api:?} v{version} response: {reason}")]
    Decode { api: ApiKey, version: i16, reason: String },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode { api: ApiKey, version: i16, reason: String },
    #[error("{api:?} is not a response the proxy rewrites")]
    NotRewritten { api: ApiKey },
}

struct Visitor<'a> {
    adv: &'a Advertise,
    learn: bool,
    touched: bool,
    learned: Vec<(i32, HostPort)>,
}

impl Visitor<'_> {
    /// One broker endpoint. Ids below zero are "no node" (for example a coordinator error); their address,
    /// if any, is blanked rather than passed on.
    fn endpoint(&mut self, node_id: i32, host: &mut StrBytes, port: &mut i32) {
        self.touched = true;
        if node_id < 0 {
            if !host.is_empty() {
                *host = StrBytes::default();
                *port = -1;
            }
            return;
        }
        if self.learn {
            if let Ok(port) = u16::try_from(*port) {
                if let Ok(addr) = HostPort::parse(&format!("{}:{port}", bracket(host.as_str()))) {
                    self.learned.push((node_id, addr));
                }
            }
        }
        *host = StrBytes::from_string(self.adv.host(node_id));
        *port = i32::from(self.adv.port);
    }
}

fn bracket(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

fn apply<M: Decodable + Encodable>(
    api: ApiKey,
    body: &Bytes,
    version: i16,
    v: &mut Visitor<'_>,
    visit: impl FnOnce(&mut M, &mut Visitor<'_>),
) -> Result<Option<Bytes>, RewriteError> {
    let mut buf = body.clone();
    let mut msg = M::decode(&mut buf, version).map_err(|e| RewriteError::Decode {
        api,
        version,
        reason: format!("{e:#}"),
    })?;
    if !buf.is_empty() {
        return Err(RewriteError::Decode { api, version, reason: format!("{} trailing bytes", buf.len()) });
    }
    visit(&mut msg, v);
    if !v.touched {
        return Ok(None);
    }
    let encode_err = |e: anyhow::Error| RewriteError::Encode { api, version, reason: format!("{e:#}") };
    let mut out = BytesMut::with_capacity(msg.compute_size(version).map_err(encode_err)?);
    msg.encode(&mut out, version).map_err(encode_err)?;
    Ok(Some(out.freeze()))
}

/// Rewrites the body (after the response header) of an `api` response of `version`.
pub fn rewrite_response(
    api: ApiKey,
    version: i16,
    body: &Bytes,
    adv: &Advertise,
) -> Result<Rewritten, RewriteError> {
    let mut v = Visitor { adv, learn: true, touched: false, learned: Vec::new() };
    let body = match api {
        ApiKey::Metadata => apply(api, body, version, &mut v, |m: &mut MetadataResponse, v| {
            for b in &mut m.brokers {
                v.endpoint(b.node_id.0, &mut b.host, &mut b.port);
            }
        }),
        ApiKey::FindCoordinator => apply(api, body, version, &mut v, |m: &mut FindCoordinatorResponse, v| {
            if version < 4 {
                v.endpoint(m.node_id.0, &mut m.host, &mut m.port);
            }
            for c in &mut m.coordinators {
                v.endpoint(c.node_id.0, &mut c.host, &mut c.port);
            }
        }),
        ApiKey::DescribeCluster => apply(api, body, version, &mut v, |m: &mut DescribeClusterResponse, v| {
            // endpoint_type 2 lists controllers: renamed so they never leak, but not routable as brokers.
            v.learn = m.endpoint_type != 2;
            for b in &mut m.brokers {
                v.endpoint(b.broker_id.0, &mut b.host, &mut b.port);
            }
        }),
        ApiKey::Produce => apply(api, body, version, &mut v, |m: &mut ProduceResponse, v| {
            for e in &mut m.node_endpoints {
                v.endpoint(e.node_id.0, &mut e.host, &mut e.port);
            }
        }),
        ApiKey::Fetch => apply(api, body, version, &mut v, |m: &mut FetchResponse, v| {
            for e in &mut m.node_endpoints {
                v.endpoint(e.node_id.0, &mut e.host, &mut e.port);
            }
        }),
        ApiKey::ShareFetch => apply(api, body, version, &mut v, |m: &mut ShareFetchResponse, v| {
            for e in &mut m.node_endpoints {
                v.endpoint(e.node_id.0, &mut e.host, &mut e.port);
            }
        }),
        ApiKey::ShareAcknowledge => {
            apply(api, body, version, &mut v, |m: &mut ShareAcknowledgeResponse, v| {
                for e in &mut m.node_endpoints {
                    v.endpoint(e.node_id.0, &mut e.host, &mut e.port);
                }
            })
        }
        _ => Err(RewriteError::NotRewritten { api }),
    }?;
    Ok(Rewritten { body, learned: v.learned })
}

#[cfg(test)]
mod tests;
