//! Real Tansu brokers, one process each, in-memory storage, stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port};

#[derive(Debug)]
pub struct Tansu {
    pub port: u16,
    child: Child,
}

/// `$KAAS_TANSU` (the bench's release build), else `~/.cargo/bin/tansu` (where install-prereqs puts it), else
/// whatever PATH finds.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KAAS_TANSU") {
        return PathBuf::from(path);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cargo/bin/tansu");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("tansu")
}

impl Tansu {
    /// Starts a broker on a free loopback port; `cluster_id` tells clusters apart in tests.
    pub fn start(cluster_id: &str) -> anyhow::Result<Tansu> {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--cluster-id",
                cluster_id,
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start tansu ({e}); run scripts/install-prereqs.sh"))?;
        let tansu = Tansu { port, child };
        wait_for_port(port, Duration::from_secs(20))?;
        Ok(tansu)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
