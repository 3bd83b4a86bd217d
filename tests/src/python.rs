//! Runs `tests/python/kafka_clients.py` with the project's virtual environment and parses its JSON output.

use std::process::Command;

use crate::repo_root;

pub fn run_client(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    anyhow::ensure!(python.exists(), "{} missing; run scripts/install-prereqs.sh", python.display());
    let out = Command::new(python).arg(root.join("tests/python/kafka_clients.py")).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "python client {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}
