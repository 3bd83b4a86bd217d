//! A plain TCP relay in front of an upstream broker that counts the connections it accepts, so tests can
//! prove the proxy opened no upstream connection for a refused client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

#[derive(Debug)]
pub struct CountingRelay {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    pub async fn start(target: String) -> anyhow::Result<CountingRelay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(CountingRelay { port, accepted, task })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP relay whose target can be switched, as a load balancer takes an unready instance out: connections
/// already relayed stay with their instance, new ones go to the current target.
#[derive(Debug)]
pub struct SwitchRelay {
    pub port: u16,
    target: Arc<std::sync::RwLock<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl SwitchRelay {
    pub async fn start(target: String) -> anyhow::Result<SwitchRelay> {
        // Both loopbacks: `*.localhost` names resolve to ::1 as well as 127.0.0.1.
        let listener = TcpListener::bind("[::]:0").await?;
        let port = listener.local_addr()?.port();
        let target = Arc::new(std::sync::RwLock::new(target));
        let current = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = current.read().map(|t| t.clone()).unwrap_or_default();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(SwitchRelay { port, target, task })
    }

    /// Sends new connections to `target` from now on.
    pub fn switch(&self, target: String) {
        if let Ok(mut t) = self.target.write() {
            *t = target;
        }
    }
}

impl Drop for SwitchRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
