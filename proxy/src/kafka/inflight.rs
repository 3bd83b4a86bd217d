//! In-flight requests of one connection, oldest first. Kafka answers requests on a connection in order, so each
//! response is matched to the front entry and decoded with that request's API and version. Produce with
//! acks=0 gets no response from Kafka and is not queued; some brokers (Tansu) answer it anyway, so the last
//! few such correlation ids are remembered and their answers recognised and dropped, as the client expects none.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;

use super::apis::ResponseAction;

/// What the proxy remembers of a request until its response comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// The id its response must carry.
    pub correlation_id: i32,
    /// Raw, as sent; possibly unknown to the proxy.
    pub api_key: i16,
    /// The request's API version, which the response shares.
    pub version: i16,
    /// What to do with the response.
    pub action: ResponseAction,
    /// The least `throttle_time_ms` its response gets: set by the request path when this request exceeded the
    /// tenant's produce quota, and by the response path when the response exceeds the fetch quota.
    pub throttle_ms: i32,
}

impl InFlight {
    /// The API, when the key is one kafka-protocol knows.
    pub fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }
}

/// A response that matches no request: the broker broke Kafka's in-order promise, or sent something unasked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflightError {
    /// A response came while no request was outstanding (and it answers no remembered acks=0 Produce).
    #[error("response with correlation id {0} to no outstanding request")]
    Unexpected(i32),
    /// A response's correlation id is not the oldest outstanding request's.
    #[error("response with correlation id {got}, but the oldest outstanding request has {expected}")]
    OutOfOrder {
        /// The oldest outstanding request's id.
        expected: i32,
        /// The response's id.
        got: i32,
    },
}

/// How many acks=0 correlation ids are remembered.
const UNANSWERED_MEMORY: usize = 1024;

/// When a request passed through the proxy, for the latency of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The request had been read from the client.
    pub read: Instant,
    /// The request had been written to the broker; `None` if its response overtook that record.
    pub sent: Option<Instant>,
}

/// What a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The oldest outstanding request, and when it passed.
    Request(InFlight, Timing),
    /// An acks=0 Produce the client expects no answer to: drop it.
    Unsolicited,
}

#[derive(Debug, Default)]
struct Queues {
    expected: VecDeque<(InFlight, Timing)>,
    /// How many entries at the back of `expected` are not yet marked sent.
    unsent: usize,
    unanswered: VecDeque<i32>,
}

/// Shared by the two directions of one connection: requests push, responses pop.
#[derive(Debug, Default)]
pub struct InflightQueue(Mutex<Queues>);

impl InflightQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a request whose response will come, behind those already outstanding; `read` is when it had
    /// been read from the client.
    pub fn push(&self, entry: InFlight, read: Instant) {
        let mut q = self.lock();
        q.expected.push_back((entry, Timing { read, sent: None }));
        q.unsent += 1;
    }

    /// Marks every request pushed since the last call as written to the broker at `at`.
    pub fn mark_sent(&self, at: Instant) {
        let mut q = self.lock();
        let n = std::mem::take(&mut q.unsent).min(q.expected.len());
        for (_, timing) in q.expected.iter_mut().rev().take(n) {
            timing.sent = Some(at);
        }
    }

    /// Records a request that expects no response (Produce with acks=0).
    pub fn push_unanswered(&self, correlation_id: i32) {
        let mut q = self.lock();
        if q.unanswered.len() == UNANSWERED_MEMORY {
            q.unanswered.pop_front();
        }
        q.unanswered.push_back(correlation_id);
    }

    /// What a response with `correlation_id` answers.
    pub fn pop(&self, correlation_id: i32) -> Result<Answer, InflightError> {
        let mut q = self.lock();
        if let Some(&(front, timing)) = q.expected.front().filter(|f| f.0.correlation_id == correlation_id) {
            q.expected.pop_front();
            q.unsent = q.unsent.min(q.expected.len());
            return Ok(Answer::Request(front, timing));
        }
        if let Some(at) = q.unanswered.iter().position(|&c| c == correlation_id) {
            q.unanswered.drain(..=at);
            return Ok(Answer::Unsolicited);
        }
        match q.expected.front() {
            None => Err(InflightError::Unexpected(correlation_id)),
            Some((front, _)) => {
                Err(InflightError::OutOfOrder { expected: front.correlation_id, got: correlation_id })
            }
        }
    }

    /// Requests awaiting a response (acks=0 Produce not counted).
    pub fn len(&self) -> usize {
        self.lock().expected.len()
    }

    /// Whether no response is awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: i32) -> InFlight {
        InFlight {
            correlation_id: id,
            api_key: 3,
            version: 12,
            action: ResponseAction::Forward,
            throttle_ms: 0,
        }
    }

    /// The request a response answers, without its timing.
    fn answered(a: Result<Answer, InflightError>) -> Result<Option<InFlight>, InflightError> {
        a.map(|a| match a {
            Answer::Request(r, _) => Some(r),
            Answer::Unsolicited => None,
        })
    }

    #[test]
    fn matches_in_order() {
        let q = InflightQueue::default();
        assert_eq!(q.pop(1), Err(InflightError::Unexpected(1)));
        let now = Instant::now();
        q.push(req(1), now);
        q.push(req(2), now);
        assert_eq!(q.pop(2), Err(InflightError::OutOfOrder { expected: 1, got: 2 }));
        assert_eq!(answered(q.pop(1)), Ok(Some(req(1))));
        assert_eq!(answered(q.pop(2)), Ok(Some(req(2))));
        assert!(q.is_empty());
    }

    #[test]
    fn answers_to_acks_0_are_recognised_and_bounded() {
        let q = InflightQueue::default();
        q.push_unanswered(1);
        q.push(req(2), Instant::now());
        q.push_unanswered(3);
        assert_eq!(q.pop(1), Ok(Answer::Unsolicited));
        assert_eq!(answered(q.pop(2)), Ok(Some(req(2))));
        assert_eq!(q.pop(3), Ok(Answer::Unsolicited));
        assert_eq!(q.pop(3), Err(InflightError::Unexpected(3)));
        for id in 0..(UNANSWERED_MEMORY as i32 + 10) {
            q.push_unanswered(id);
        }
        assert_eq!(q.pop(5), Err(InflightError::Unexpected(5)), "oldest forgotten");
        assert_eq!(q.pop(UNANSWERED_MEMORY as i32 + 9), Ok(Answer::Unsolicited));
    }

    #[test]
    fn sent_marks_only_the_requests_written_since_the_last_mark() {
        let q = InflightQueue::default();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(1);
        let t2 = t0 + std::time::Duration::from_millis(2);
        q.push(req(1), t0);
        q.push(req(2), t0);
        q.mark_sent(t1);
        q.push(req(3), t1);
        let Ok(Answer::Request(_, first)) = q.pop(1) else { panic!("answers 1") };
        assert_eq!(first, Timing { read: t0, sent: Some(t1) });
        q.mark_sent(t2);
        let Ok(Answer::Request(_, second)) = q.pop(2) else { panic!("answers 2") };
        assert_eq!(second.sent, Some(t1), "marked once, by the write that carried it");
        let Ok(Answer::Request(_, third)) = q.pop(3) else { panic!("answers 3") };
        assert_eq!(third, Timing { read: t1, sent: Some(t2) });
        q.push(req(4), t2);
        let Ok(Answer::Request(_, overtaken)) = q.pop(4) else { panic!("answers 4") };
        assert_eq!(overtaken.sent, None, "a response before the write was recorded");
        q.mark_sent(t2);
        assert!(q.is_empty());
    }
}
