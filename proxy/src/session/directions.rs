//! The two directions of a session: [`Requests`] (client → broker: headers read, in-flight recorded, the
//! produce quota and the fetch cap applied) and [`Responses`] (broker → client: matched, rewritten, throttled,
//! timed). Neighbours: [`super::pump`] drives them; [`super::shared`] is what they share.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use super::pump::Frames;
use super::shared::Shared;
use super::{SessionContext, SessionError};
use crate::kafka::codec::{i32_at, Frame};
use crate::kafka::inflight::{Answer, InFlight, Timing};
use crate::kafka::{cap_fetch, inspect_request, process_response, ResponseError};
use crate::kafka::{header, usage};
use crate::metrics::TenantMetrics;
use crate::usage::Direction;

/// Client → upstream: read the header, remember what the response will need, forward the frame as it came
/// (counted by API). Holds the client back while `max_inflight` requests await their responses.
pub(super) struct Requests<'s> {
    pub(super) shared: &'s Shared,
    pub(super) ctx: &'s SessionContext,
    pub(super) metrics: Option<&'s TenantMetrics>,
    pub(super) max_inflight: usize,
}

impl Frames for Requests<'_> {
    fn has_room(&self) -> bool {
        self.shared.inflight.len() < self.max_inflight
            && !self.shared.closing.load(Ordering::Relaxed)
            && self.shared.muted().is_none()
    }

    async fn ready(&mut self) {
        // `notify_one` stores a permit when nobody waits, so an answer between the check and the wait is
        // not missed.
        while !self.has_room() {
            match self.shared.muted() {
                Some(until) => tokio::time::sleep_until(until.into()).await,
                None => self.shared.answered.notified().await,
            }
        }
    }

    fn frame(&mut self, mut frame: Frame, arrived: Instant) -> Result<Option<Bytes>, SessionError> {
        self.shared.touch(arrived);
        let mut seen = inspect_request(&frame)?;
        if let Some(m) = self.metrics {
            m.request(seen.inflight.api_key);
        }
        if let (Some(auditor), Some(api), Some(at)) = (&self.ctx.audit, seen.inflight.api(), seen.body_offset)
        {
            auditor.request(api, seen.inflight.version, seen.inflight.correlation_id, &frame.body()[at..]);
        }
        if let Some((usage, meter)) = &self.ctx.usage {
            meter.request();
            if let (Some(ApiKey::Produce), Some(at)) = (seen.inflight.api(), seen.body_offset) {
                let (body, version) = (&frame.body()[at..], seen.inflight.version);
                if meter.add(Direction::Produce, |each| usage::produced(body, version, each)).is_err() {
                    usage.unreadable();
                }
            }
        }
        let produce =
            self.ctx.tenant.quotas.produce.as_ref().filter(|_| seen.inflight.api() == Some(ApiKey::Produce));
        if let Some(limit) = produce {
            let throttle = limit.take(frame.body().len() + 4, arrived);
            if !throttle.is_zero() {
                seen.inflight.throttle_ms = throttle_ms(throttle);
                self.shared.mute_until(arrived + throttle);
                if let Some(m) = self.metrics {
                    m.throttled("produce", throttle);
                }
            }
        }
        if seen.expects_response {
            self.shared.inflight.push(seen.inflight, arrived);
        } else {
            self.shared.inflight.push_unanswered(seen.inflight.correlation_id);
        }
        // The header was read above: only a Fetch body's max_bytes is looked at here, and lowered in place.
        cap_fetch(&mut frame, &seen, self.ctx.max_fetch_bytes)?;
        Ok(Some(frame.into_bytes()))
    }

    fn written(&mut self, at: Instant) {
        self.shared.inflight.mark_sent(at);
    }
}

/// A response's body after its header; empty when the header cannot be read (a walk of it then fails).
fn response_body(frame: &Frame, api: ApiKey, version: i16) -> &[u8] {
    let header = header::response_header_len(frame.body(), api.response_header_version(version));
    header.ok().and_then(|at| frame.body().get(at..)).unwrap_or(&[])
}

/// A throttle as Kafka's `throttle_time_ms`, rounded up.
fn throttle_ms(throttle: Duration) -> i32 {
    i32::try_from(throttle.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
}

impl Responses<'_> {
    /// The throttle the tenant's quotas ask of the response to `request`: the produce throttle the request
    /// earned, or (a Fetch) the fetch throttle the response's own size, `bytes` as the broker sent it, earns
    /// now; the client is not read for as long. [`process_response`] writes it into the response.
    fn throttle_ms(&mut self, request: &InFlight, bytes: usize, arrived: Instant) -> i32 {
        let fetch = self.ctx.tenant.quotas.fetch.as_ref().filter(|_| request.api() == Some(ApiKey::Fetch));
        let Some(limit) = fetch else { return request.throttle_ms };
        let throttle = limit.take(bytes, arrived);
        if throttle.is_zero() {
            return request.throttle_ms;
        }
        self.shared.mute_until(arrived + throttle);
        if let Some(m) = self.ctx.metrics.as_deref() {
            m.throttled("fetch", throttle);
        }
        throttle_ms(throttle)
    }
}

/// Upstream → client: match the response to its request and rewrite it if it names brokers, and answer quotas;
/// once written, record how long the pair took in the proxy and upstream.
pub(super) struct Responses<'s> {
    pub(super) shared: &'s Shared,
    pub(super) ctx: &'s SessionContext,
    /// Requests answered by the frames being written: API key, when the request passed, when its response
    /// arrived.
    pub(super) done: Vec<(i16, Timing, Instant)>,
}

impl Frames for Responses<'_> {
    fn frame(&mut self, frame: Frame, arrived: Instant) -> Result<Option<Bytes>, SessionError> {
        let ctx = self.ctx;
        self.shared.touch(arrived);
        let correlation_id =
            i32_at(frame.body(), 0).ok_or(SessionError::UpstreamTruncated(frame.body().len()))?;
        let answer = self.shared.inflight.pop(correlation_id)?;
        self.shared.answered.notify_one();
        let (mut request, timing) = match answer {
            Answer::Request(r, timing) => (r, timing),
            Answer::Unsolicited => {
                tracing::trace!(peer = %ctx.peer, correlation_id, "dropped a broker's answer to acks=0");
                return Ok(None);
            }
        };
        request.throttle_ms = self.throttle_ms(&request, frame.body().len() + 4, arrived);
        if let (Some(auditor), Some(api)) = (&ctx.audit, request.api()) {
            if crate::audit::observes(api) {
                auditor.response(
                    api,
                    request.version,
                    correlation_id,
                    response_body(&frame, api, request.version),
                );
            }
        }
        let processed = match process_response(frame, &request, &ctx.advertise) {
            Ok(p) => p,
            Err(e) => {
                if let (ResponseError::Leak { addresses, .. }, Some(m)) = (&e, &ctx.metrics) {
                    m.leaked(*addresses as u64);
                }
                return Err(e.into());
            }
        };
        // Counted once it is sure to pass (a response the leak guard stops never reaches the client); the
        // rewrite leaves record sets as they were.
        if let (Some((usage, meter)), Some(ApiKey::Fetch)) = (&ctx.usage, request.api()) {
            let (body, version) =
                (response_body(&processed.frame, ApiKey::Fetch, request.version), request.version);
            if meter.add(Direction::Fetch, |each| usage::fetched(body, version, each)).is_err() {
                usage.unreadable();
            }
        }
        if !processed.learned.is_empty() {
            ctx.tenant.learn(processed.learned);
        }
        if let (Some((_, meter)), false) = (&ctx.usage, processed.topic_ids.is_empty()) {
            meter.learn_topics(processed.frame.body(), &processed.topic_ids);
        }
        if ctx.metrics.is_some() {
            self.done.push((request.api_key, timing, arrived));
        }
        self.shared.unwritten.fetch_add(1, Ordering::SeqCst);
        Ok(Some(processed.frame.into_bytes()))
    }

    fn written(&mut self, at: Instant) {
        self.shared.unwritten.store(0, Ordering::SeqCst);
        self.shared.flushed.notify_waiters();
        let Some(m) = self.ctx.metrics.as_deref() else { return };
        for (api_key, timing, arrived) in self.done.drain(..) {
            // A response that overtook the record of its request's write counts as all upstream time.
            let sent = timing.sent.unwrap_or(timing.read).min(arrived);
            let proxy = sent.saturating_duration_since(timing.read) + at.saturating_duration_since(arrived);
            m.latency(api_key, proxy, arrived.saturating_duration_since(sent));
        }
    }
}
