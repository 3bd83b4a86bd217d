//! What the two directions of one session share, and the ways a session ends on the proxy's initiative: idle
//! ([`idle`]), or closed between requests when the proxy drains or the tenant's route is retired
//! ([`close_when_quiet`], then [`close_gracefully`]). Neighbours: [`super::run`] selects over these and the two
//! pumps ([`super::pump`]) that the [`super::directions`] drive.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::SessionContext;
use crate::kafka::inflight::InflightQueue;

/// Ends a session the proxy closes: TLS close_notify and FIN, then the client's remaining input is read (for at
/// most a second) before the socket is dropped. Dropping it with unread input would send a TCP reset, which can
/// destroy responses the client has not read yet.
pub(super) async fn close_gracefully<C: AsyncRead + AsyncWrite + Unpin>(mut client: C) {
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
    let drain = async {
        let mut sink = [0u8; 4096];
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// When the proxy drains or the tenant's route is retired: stops forwarding requests, lets every response
/// still owed reach the client, then completes, so the client sees a connection closed between requests and
/// reconnects (to another proxy, or to the new route) with nothing lost: a request it sent that was not
/// forwarded gets no answer, and the client retries it.
pub(super) async fn close_when_quiet(shared: &Shared, ctx: &SessionContext) -> &'static str {
    let why = tokio::select! {
        () = ctx.draining.cancelled() => "the proxy is draining",
        () = ctx.tenant.retired() => "the tenant's route changed",
    };
    shared.closing.store(true, Ordering::SeqCst);
    loop {
        let flushed = shared.flushed.notified();
        if shared.inflight.is_empty() && shared.unwritten.load(Ordering::SeqCst) == 0 {
            return why;
        }
        flushed.await;
    }
}

/// What the two directions of one session share (both run in the session's task; atomics keep it `Sync`).
pub(super) struct Shared {
    pub(super) inflight: InflightQueue,
    /// Signalled for each response matched, to wake a request side held back by `max_inflight`.
    pub(super) answered: Notify,
    pub(super) started: Instant,
    /// When a frame last went either way, microseconds after `started`.
    pub(super) last_activity_micros: AtomicU64,
    /// Set when the session is to close between requests: no further request is forwarded.
    pub(super) closing: AtomicBool,
    /// Until when the client is not read (a quota's throttle), microseconds after `started`; 0: not muted.
    pub(super) muted_until_micros: AtomicU64,
    /// Responses handed to the client side and not yet written.
    pub(super) unwritten: AtomicUsize,
    /// Signalled after each write to the client.
    pub(super) flushed: Notify,
}

impl Shared {
    pub(super) fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_micros()).unwrap_or(u64::MAX)
    }

    pub(super) fn touch(&self, at: Instant) {
        self.last_activity_micros.fetch_max(self.micros(at), Ordering::Relaxed);
    }

    /// Reads nothing more from the client until `until` (a quota's throttle, KIP-219).
    pub(super) fn mute_until(&self, until: Instant) {
        self.muted_until_micros.fetch_max(self.micros(until), Ordering::Relaxed);
    }

    /// The end of the current mute, if it lies ahead.
    pub(super) fn muted(&self) -> Option<Instant> {
        let until = self.started + Duration::from_micros(self.muted_until_micros.load(Ordering::Relaxed));
        (until > Instant::now()).then_some(until)
    }

    pub(super) fn last_activity(&self) -> Instant {
        self.started + Duration::from_micros(self.last_activity_micros.load(Ordering::Relaxed))
    }
}

/// Completes once the session has had no request outstanding and no frame either way for `timeout`.
pub(super) async fn idle(shared: &Shared, timeout: Duration) {
    loop {
        tokio::time::sleep_until((shared.last_activity() + timeout).into()).await;
        let now = Instant::now();
        if shared.last_activity() + timeout > now {
            continue;
        }
        if shared.inflight.is_empty() {
            return;
        }
        // A request is outstanding (a long poll, a JoinGroup waiting for its group): the broker owes an
        // answer, so the session is not idle; look again a timeout later.
        shared.touch(now);
    }
}
