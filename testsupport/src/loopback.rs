//! A thread-per-connection server on a loopback port, for the harness's HTTP servers over a folder
//! ([`crate::git_http`], [`crate::helm_repo`]): each connection is served on a thread of its own, and the
//! server stops accepting when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Answers one connection from files under a folder.
pub type Serve = fn(TcpStream, &Path) -> anyhow::Result<()>;

/// Serves `serve` over `root` on `127.0.0.1:<port>` until dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl LoopbackServer {
    /// Binds a free loopback port and serves every connection with `serve`; `name` prefixes its errors.
    pub fn start(name: &'static str, root: PathBuf, serve: Serve) -> anyhow::Result<LoopbackServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let root = root.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream, &root) {
                        eprintln!("{name}: {e:#}");
                    }
                });
            }
        });
        Ok(LoopbackServer { port, stop })
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
