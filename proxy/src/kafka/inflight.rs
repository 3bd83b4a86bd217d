//! In-flight requests of one connection, oldest first. Kafka answers requests on a connection in order, so each
//! response is matched to the front entry and decoded with that request's API and version. Produce with
//! acks=0 gets no response and is never queued.

use std::collections::VecDeque;
use std::sync::Mutex;

use kafka_protocol::messages::ApiKey;

use super::apis::ResponseAction;

/// What the proxy remembers of a request until its response comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    pub correlation_id: i32,
    pub api_key: i16,
    pub version: i16,
    pub action: ResponseAction,
}

impl InFlight {
    pub fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflightError {
    #[error("response with correlation id {0} to no outstanding request")]
    Unexpected(i32),
    #[error("response with correlation id {got}, but the oldest outstanding request has {expected}")]
    OutOfOrder { expected: i32, got: i32 },
}

/// Shared by the two directions of one connection: requests push, responses pop.
#[derive(Debug, Default)]
pub struct InflightQueue(Mutex<VecDeque<InFlight>>);

impl InflightQueue {
    pub fn push(&self, entry: InFlight) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push_back(entry);
    }

    /// Takes the request a response with `correlation_id` answers.
    pub fn pop(&self, correlation_id: i32) -> Result<InFlight, InflightError> {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match q.front() {
            None => Err(InflightError::Unexpected(correlation_id)),
            Some(front) if front.correlation_id != correlation_id => {
                Err(InflightError::OutOfOrder { expected: front.correlation_id, got: correlation_id })
            }
            Some(_) => Ok(q.pop_front().expect("front exists")),
        }
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: i32) -> InFlight {
        InFlight { correlation_id: id, api_key: 3, version: 12, action: ResponseAction::Forward }
    }

    #[test]
    fn matches_in_order() {
        let q = InflightQueue::default();
        assert_eq!(q.pop(1), Err(InflightError::Unexpected(1)));
        q.push(req(1));
        q.push(req(2));
        assert_eq!(q.pop(2), Err(InflightError::OutOfOrder { expected: 1, got: 2 }));
        assert_eq!(q.pop(1).map(|r| r.correlation_id), Ok(1));
        assert_eq!(q.pop(2).map(|r| r.correlation_id), Ok(2));
        assert!(q.is_empty());
    }
}
