//! Broker-address rewriting by walking the wire format: the responses that name brokers are walked with the
//! bounded [`Reader`] (never decoded into messages), each broker endpoint's `host`/`port` is spliced to the
//! proxy's name for that node (`b<node-id>.<tenant>.<domain>`, advertised port), and everything else is copied
//! through byte for byte. Node ids are kept. The original addresses are returned so the tenant's broker table can learn them.
//!
//! Broker bytes are hostile input: a walk checks every length and count against the bytes that arrived, so a
//! broken response is an error naming the field, never an allocation sized by the broker. Pure: no I/O. A
//! response that names no broker costs one walk and no allocation (no edits: forward it as it came).
//!
//! One walk ([`scan`]) finds everything the response path needs: the splices, the addresses to learn, where
//! `throttle_time_ms` is, and where every endpoint is, so that the leak guard ([`foreign`]) checks the bytes
//! that go to the client at those places without walking them again. [`super::process_response`] puts it
//! together. Neighbours: [`super::wire`] (cursor and splices), [`super::apis`] (which versions come here).

use std::ops::Range;

use bytes::{BufMut, Bytes};
use kaas_route::HostPort;
use kafka_protocol::messages::ApiKey;

use super::apis::ResponseAction;
use super::codec::Frame;
use super::inflight::InFlight;
use super::usage::{fetch_partition_head, TopicId};
use super::ResponseError;

use super::wire::{put_string, Edits, Reader, WireError, WireResult};

/// How the proxy names brokers to clients.
#[derive(Debug, Clone)]
pub struct Advertise {
    /// `.<tenant>.<domain>`, appended to `b<node-id>`.
    suffix: String,
    /// The proxy's advertised port, written into every rewritten endpoint.
    pub port: u16,
}

impl Advertise {
    /// Names for `tenant` under `domain`, reached on `port`.
    pub fn new(tenant: &str, domain: &str, port: u16) -> Self {
        Advertise { suffix: format!(".{tenant}.{domain}"), port }
    }

    /// The name clients use for broker `node_id`: `b<node-id>.<tenant>.<domain>`.
    pub fn host(&self, node_id: i32) -> String {
        format!("b{node_id}{}", self.suffix)
    }

    /// Whether `host` is [`Advertise::host`] of `node_id` (without building it).
    pub fn is_host(&self, host: &str, node_id: i32) -> bool {
        host.strip_prefix('b')
            .and_then(|rest| rest.strip_suffix(self.suffix.as_str()))
            .is_some_and(|id| id == node_id.to_string())
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

/// Why a response body could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The body does not hold what its API and version promise (short, bad count or length, trailing bytes).
    #[error("malformed {api:?} v{version} response: {error}")]
    Malformed {
        /// The response's API.
        api: ApiKey,
        /// The response's version.
        version: i16,
        /// Which field failed and how.
        error: WireError,
    },
    /// [`scan`] was asked to walk an API that names no brokers; a bug in the caller, not in the broker.
    #[error("{api:?} is not a response the proxy rewrites")]
    NotRewritten {
        /// The API asked for.
        api: ApiKey,
    },
}

/// What a walk found: the splices to make, the endpoints seen and where `throttle_time_ms` is.
#[derive(Debug, Default)]
pub struct Scan {
    /// Splices turning the broker's endpoints into the proxy's names; empty without an [`Advertise`].
    pub edits: Edits,
    /// Upstream addresses of the brokers seen, by node id; negative ids, unparsable addresses and
    /// DescribeCluster's controllers are left out.
    pub learned: Vec<(i32, HostPort)>,
    /// Every endpoint walked, in order: the leak guard's facts ([`foreign`]).
    pub endpoints: Vec<Endpoint>,
    /// Where the response's `throttle_time_ms` is, from the start of the body (Produce, Fetch and the share
    /// APIs; the field the quotas raise).
    pub throttle_at: Option<usize>,
    /// Metadata (v10+): each topic's id and where its name is in the walked body, for the usage records of
    /// Produce and Fetch v13+, which name topics by id ([`super::usage`]). Positions, not copies: nothing is
    /// allocated for names unless usage is recorded.
    pub topic_ids: Vec<(TopicId, Range<usize>)>,
}

/// One broker endpoint a walk saw: its node and where its `host` (then `port`) starts in the walked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's node id; below zero, "no node".
    pub node_id: i32,
    /// Offset of the `host` string (length prefix included) in the walked body.
    pub at: usize,
}

/// Walks the body (after the response header) of an `api` response of `version`. With `adv`, every endpoint
/// gets a splice to the proxy's name; without, endpoints are only collected (the proxy's own metadata refresh).
pub fn scan(api: ApiKey, version: i16, body: &[u8], adv: Option<&Advertise>) -> Result<Scan, RewriteError> {
    let mut r = Reader::new(body, flexible(api, version));
    let mut w = Walk { adv, learn: true, scan: Scan::default() };
    let walked = match api {
        ApiKey::Metadata => w.metadata(&mut r, version),
        ApiKey::FindCoordinator => w.find_coordinator(&mut r, version),
        ApiKey::DescribeCluster => w.describe_cluster(&mut r, version),
        ApiKey::DescribeConfigs => w.describe_configs(&mut r, version),
        ApiKey::Produce => w.produce(&mut r, version),
        ApiKey::Fetch => w.fetch(&mut r, version),
        ApiKey::ShareFetch => w.share_fetch(&mut r),
        ApiKey::ShareAcknowledge => w.share_acknowledge(&mut r),
        _ => return Err(RewriteError::NotRewritten { api }),
    };
    walked.and_then(|()| r.finish("end of response")).map_err(|error| RewriteError::Malformed {
        api,
        version,
        error,
    })?;
    Ok(w.scan)
}

/// Whether responses of `api` at `version` use the compact encodings and tagged fields (KIP-482).
pub fn flexible(api: ApiKey, version: i16) -> bool {
    api.response_header_version(version) >= 1
}

/// The body-level view of [`super::process_response`], which it calls (so there is one rewrite): the body
/// (after the response header) of an `api` response of `version`, rewritten, as a response the proxy rewrites
/// gets it. For tests, fuzz targets and tools that hold bodies rather than frames.
pub fn rewrite_response(
    api: ApiKey,
    version: i16,
    body: &[u8],
    adv: &Advertise,
) -> Result<Rewritten, ResponseError> {
    let header_len = if flexible(api, version) { 5 } else { 4 };
    let frame = Frame::build(header_len + body.len(), |b| {
        b.put_i32(0);
        if header_len == 5 {
            b.put_u8(0); // no tagged fields
        }
        b.put_slice(body);
    });
    let request = InFlight {
        correlation_id: 0,
        api_key: api as i16,
        version,
        action: ResponseAction::Rewrite(api),
        throttle_ms: 0,
    };
    let processed = super::process_response(frame, &request, adv)?;
    let body = processed.rewritten.then(|| processed.frame.into_body().slice(header_len..));
    Ok(Rewritten { body, learned: processed.learned })
}

/// The state of one walk; the [`Reader`] is passed alongside so tagged-field payloads can be walked with
/// readers of their own.
struct Walk<'b> {
    adv: Option<&'b Advertise>,
    /// False for DescribeCluster's controller listing: renamed, but not routable as brokers.
    learn: bool,
    scan: Scan,
}

// Smallest encodings of array elements, so a count the remaining bytes cannot hold is refused up front.
const ENDPOINT_MIN: usize = 4 + 1 + 4;
const TOPIC_MIN: usize = 2;
const PARTITION_MIN: usize = 4;
const UUID: usize = 16;

impl Walk<'_> {
    /// `node_id`, `host`, `port`: one broker endpoint, spliced in place. Ids below zero are "no node" (a failed
    /// coordinator lookup, say); their address, if any, is blanked rather than passed on.
    fn endpoint(&mut self, r: &mut Reader<'_>, field: &'static str) -> WireResult<()> {
        let node_id = r.i32(field)?;
        let start = r.pos();
        let host_range = r.string(field)?;
        let host = r.text(host_range, field)?;
        let port = r.i32(field)?;
        let at = start..r.pos();
        self.scan.endpoints.push(Endpoint { node_id, at: start });
        if node_id < 0 {
            if !host.is_empty() && self.adv.is_some() {
                self.splice(at, "", -1, r.flexible());
            }
            return Ok(());
        }
        if self.learn {
            if let Some(addr) = parse_addr(host, port) {
                self.scan.learned.push((node_id, addr));
            }
        }
        if let Some(adv) = self.adv {
            self.splice(at, &adv.host(node_id), i32::from(adv.port), r.flexible());
        }
        Ok(())
    }

    fn splice(&mut self, at: Range<usize>, host: &str, port: i32, flexible: bool) {
        let mut with = Vec::with_capacity(host.len() + 6);
        put_string(&mut with, host, flexible);
        with.extend_from_slice(&port.to_be_bytes());
        self.scan.edits.replace(at, with);
    }

    /// An array of NodeEndpoint (KIP-951 and share groups): node_id, host, port, rack, tagged fields.
    fn node_endpoints(&mut self, r: &mut Reader<'_>) -> WireResult<()> {
        r.each("node_endpoints", ENDPOINT_MIN, |r| {
            self.endpoint(r, "node_endpoints.host")?;
            r.nullable_string("node_endpoints.rack")?;
            r.skip_tagged_fields("node_endpoints tags")
        })
    }

    /// Top-level tagged fields where tag 0 holds `node_endpoints` (Produce v10+, Fetch v16+). Absent in the
    /// common case: then this is a scan. When present, the field's size is recomputed after the splices.
    fn tagged_node_endpoints(&mut self, r: &mut Reader<'_>, has_endpoints: bool) -> WireResult<()> {
        r.tagged_fields("tags", |tag, size_at, payload| {
            if tag != 0 || !has_endpoints {
                return Ok(false);
            }
            let (start, edits_before) = (payload.pos(), self.scan.edits.len());
            self.node_endpoints(payload)?;
            if self.scan.edits.len() > edits_before {
                self.scan.edits.resize(size_at, start..payload.pos());
            }
            Ok(true)
        })
    }

    fn metadata(&mut self, r: &mut Reader<'_>, v: i16) -> WireResult<()> {
        if v >= 3 {
            r.i32("throttle_time_ms")?;
        }
        r.each("brokers", ENDPOINT_MIN, |r| {
            self.endpoint(r, "brokers.host")?;
            if v >= 1 {
                r.nullable_string("brokers.rack")?;
            }
            r.skip_tagged_fields("brokers tags")
        })?;
        if v >= 2 {
            r.nullable_string("cluster_id")?;
        }
        if v >= 1 {
            r.i32("controller_id")?;
        }
        r.each("topics", TOPIC_MIN, |r| {
            r.i16("topics.error_code")?;
            let name = r.nullable_string("topics.name")?;
            if v >= 10 {
                let mut id = TopicId::default();
                id.copy_from_slice(r.take(UUID, "topics.topic_id")?);
                // A topic that does not exist (or may not be described) comes back with the zero id.
                if let Some(name) = name.filter(|_| id != TopicId::default()) {
                    self.scan.topic_ids.push((id, name));
                }
            }
            if v >= 1 {
                r.i8("topics.is_internal")?;
            }
            r.each("topics.partitions", PARTITION_MIN, |r| {
                r.i16("partitions.error_code")?;
                r.i32("partitions.partition_index")?;
                r.i32("partitions.leader_id")?;
                if v >= 7 {
                    r.i32("partitions.leader_epoch")?;
                }
                r.skip_array("partitions.replica_nodes", 4)?;
                r.skip_array("partitions.isr_nodes", 4)?;
                if v >= 5 {
                    r.skip_array("partitions.offline_replicas", 4)?;
                }
                r.skip_tagged_fields("partitions tags")
            })?;
            if v >= 8 {
                r.i32("topics.topic_authorized_operations")?;
            }
            r.skip_tagged_fields("topics tags")
        })?;
        if (8..=10).contains(&v) {
            r.i32("cluster_authorized_operations")?;
        }
        if v >= 13 {
            r.i16("error_code")?;
        }
        r.skip_tagged_fields("tags")
    }

    fn find_coordinator(&mut self, r: &mut Reader<'_>, v: i16) -> WireResult<()> {
        if v >= 1 {
            r.i32("throttle_time_ms")?;
        }
        if v <= 3 {
            r.i16("error_code")?;
            if v >= 1 {
                r.nullable_string("error_message")?;
            }
            self.endpoint(r, "host")?;
        } else {
            r.each("coordinators", 2 + ENDPOINT_MIN, |r| {
                r.string("coordinators.key")?;
                self.endpoint(r, "coordinators.host")?;
                r.i16("coordinators.error_code")?;
                r.nullable_string("coordinators.error_message")?;
                r.skip_tagged_fields("coordinators tags")
            })?;
        }
        r.skip_tagged_fields("tags")
    }

    fn describe_cluster(&mut self, r: &mut Reader<'_>, v: i16) -> WireResult<()> {
        r.i32("throttle_time_ms")?;
        r.i16("error_code")?;
        r.nullable_string("error_message")?;
        if v >= 1 {
            // endpoint_type 2 lists controllers: renamed so they never leak, but not routable as brokers.
            self.learn = r.i8("endpoint_type")? != 2;
        }
        r.string("cluster_id")?;
        r.i32("controller_id")?;
        r.each("brokers", ENDPOINT_MIN, |r| {
            self.endpoint(r, "brokers.host")?;
            r.nullable_string("brokers.rack")?;
            if v >= 2 {
                r.i8("brokers.is_fenced")?;
            }
            r.skip_tagged_fields("brokers tags")
        })?;
        r.i32("cluster_authorized_operations")?;
        r.skip_tagged_fields("tags")
    }

    fn produce(&mut self, r: &mut Reader<'_>, v: i16) -> WireResult<()> {
        r.each("responses", TOPIC_MIN, |r| {
            topic_name_or_id(r, v, "responses.name")?;
            r.each("partition_responses", PARTITION_MIN, |r| {
                r.skip(4 + 2 + 8 + 8, "partition_responses.base_offset")?;
                if v >= 5 {
                    r.skip(8, "partition_responses.log_start_offset")?;
                }
                if v >= 8 {
                    r.each("record_errors", PARTITION_MIN, |r| {
                        r.i32("record_errors.batch_index")?;
                        r.nullable_string("record_errors.batch_index_error_message")?;
                        r.skip_tagged_fields("record_errors tags")
                    })?;
                    r.nullable_string("partition_responses.error_message")?;
                }
                // current_leader (tag 0) is a node id and epoch: no address.
                r.skip_tagged_fields("partition_responses tags")
            })?;
            r.skip_tagged_fields("responses tags")
        })?;
        self.scan.throttle_at = Some(r.pos());
        r.i32("throttle_time_ms")?;
        self.tagged_node_endpoints(r, v >= 10)
    }

    fn fetch(&mut self, r: &mut Reader<'_>, v: i16) -> WireResult<()> {
        self.scan.throttle_at = Some(r.pos());
        r.i32("throttle_time_ms")?;
        if v >= 7 {
            r.i16("error_code")?;
            r.i32("session_id")?;
        }
        r.each("responses", TOPIC_MIN, |r| {
            topic_name_or_id(r, v, "responses.topic")?;
            r.each("partitions", PARTITION_MIN, |r| {
                fetch_partition_head(r, v)?;
                r.skip_nullable_bytes("partitions.records")?;
                // diverging_epoch, current_leader, snapshot_id: offsets, ids and epochs, no address.
                r.skip_tagged_fields("partitions tags")
            })?;
            r.skip_tagged_fields("responses tags")
        })?;
        self.tagged_node_endpoints(r, v >= 16)
    }

    /// ShareFetch v1 (KIP-932).
    fn share_fetch(&mut self, r: &mut Reader<'_>) -> WireResult<()> {
        self.scan.throttle_at = Some(r.pos());
        r.i32("throttle_time_ms")?;
        r.i16("error_code")?;
        r.nullable_string("error_message")?;
        r.i32("acquisition_lock_timeout_ms")?;
        r.each("responses", UUID, |r| {
            r.skip(UUID, "responses.topic_id")?;
            r.each("partitions", PARTITION_MIN, |r| {
                r.i32("partitions.partition_index")?;
                r.i16("partitions.error_code")?;
                r.nullable_string("partitions.error_message")?;
                r.i16("partitions.acknowledge_error_code")?;
                r.nullable_string("partitions.acknowledge_error_message")?;
                leader_id_and_epoch(r)?;
                r.skip_nullable_bytes("partitions.records")?;
                r.each("acquired_records", 18, |r| {
                    r.skip(18, "acquired_records.delivery_count")?;
                    r.skip_tagged_fields("acquired_records tags")
                })?;
                r.skip_tagged_fields("partitions tags")
            })?;
            r.skip_tagged_fields("responses tags")
        })?;
        self.node_endpoints(r)?;
        r.skip_tagged_fields("tags")
    }

    /// ShareAcknowledge v1 (KIP-932).
    fn share_acknowledge(&mut self, r: &mut Reader<'_>) -> WireResult<()> {
        self.scan.throttle_at = Some(r.pos());
        r.i32("throttle_time_ms")?;
        r.i16("error_code")?;
        r.nullable_string("error_message")?;
        r.each("responses", UUID, |r| {
            r.skip(UUID, "responses.topic_id")?;
            r.each("partitions", PARTITION_MIN, |r| {
                r.i32("partitions.partition_index")?;
                r.i16("partitions.error_code")?;
                r.nullable_string("partitions.error_message")?;
                leader_id_and_epoch(r)?;
                r.skip_tagged_fields("partitions tags")
            })?;
            r.skip_tagged_fields("responses tags")
        })?;
        self.node_endpoints(r)?;
        r.skip_tagged_fields("tags")
    }
}

/// Produce and Fetch name a topic by string up to v12 and by id from v13.
fn topic_name_or_id(r: &mut Reader<'_>, v: i16, name_field: &'static str) -> WireResult<()> {
    if v <= 12 {
        r.string(name_field).map(|_| ())
    } else {
        r.skip(UUID, "responses.topic_id")
    }
}

fn leader_id_and_epoch(r: &mut Reader<'_>) -> WireResult<()> {
    r.skip(8, "current_leader")?;
    r.skip_tagged_fields("current_leader tags")
}

/// `host:port` from a broker's endpoint, bracketing IPv6 literals.
pub(crate) fn parse_addr(host: &str, port: i32) -> Option<HostPort> {
    let port = u16::try_from(port).ok()?;
    let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    HostPort::parse(&addr).ok()
}

mod configs;
mod guard;

pub use configs::hidden_config;
pub use guard::{foreign, foreign_endpoints};

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;
