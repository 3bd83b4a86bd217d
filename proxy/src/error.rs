//! The data path's error vocabulary, by side (pingora-error is the model): whose fault a failure was — the
//! client's or the upstream's (the tenant's own cluster) — whether trying again can help, and a
//! bounded `label` for logs and metrics. Every error of the connection path implements [`Blame`]; their
//! sources stay typed.

/// Who a failure is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client: its bytes, its TLS, its connection.
    Client,
    /// The tenant's cluster: its answers, its availability.
    Upstream,
}

impl Side {
    /// `client` or `upstream`: the value of log fields and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What every connection-path error tells besides its message.
pub trait Blame {
    /// Whose fault it was.
    fn side(&self) -> Side;
    /// Whether the same request, tried again, can succeed (a broker restarting: yes; an unknown name: no).
    fn retryable(&self) -> bool;
    /// A short, bounded name of the kind of failure, for logs and metric labels.
    fn label(&self) -> &'static str;
}
