//! Runs every cell of the matrix, a few at a time, and keeps each one's outcome.
//!
//! A cell that fails through the proxy is run once more with the same client straight to the broker over
//! plaintext: if it fails there too, the broker and the client do not get along whatever sits between them
//! ([`Outcome::FailsWithoutProxy`], shown but not held against the proxy); if it passes there, the proxy broke
//! it ([`Outcome::Fail`]).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{check, Report, Target};
use crate::DOMAIN;

/// A client of the matrix: runs the scenario against one target and reports what it saw.
pub trait Client: Sync {
    /// The row's name, e.g. `franz-go (Go)`; the version comes from the client's own report.
    fn name(&self) -> String;
    /// A short name for the cell's topic and group.
    fn slug(&self) -> String;
    fn run(&self, target: &Target) -> anyhow::Result<Report>;
}

/// A broker column: one tenant of the proxy, whose cluster runs that broker.
#[derive(Debug, Clone)]
pub struct Column {
    /// e.g. `Apache Kafka 4.4.0`.
    pub broker: String,
    pub tenant: String,
    /// The broker's own plaintext bootstrap address, for the direct run of a failed cell.
    pub direct: String,
}

/// How a cell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Failed through the proxy, and the same client passes straight to the broker (or the direct run
    /// failed for another reason, given second).
    Fail(String, Option<String>),
    /// Failed through the proxy and straight to the broker alike: (through the proxy, direct).
    FailsWithoutProxy(String, String),
}

/// One client against one broker.
#[derive(Debug, Clone)]
pub struct Cell {
    pub row: usize,
    pub column: usize,
    /// The version the client reported, if it got as far as reporting.
    pub version: Option<String>,
    pub outcome: Outcome,
    /// Through the proxy (the direct run not included).
    pub elapsed: Duration,
}

/// Every cell's outcome, with the names of the rows (clients) and columns (brokers).
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub cells: Vec<Cell>,
}

impl Matrix {
    /// The cells the proxy failed: those that fail through it but not without it.
    pub fn failures(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| matches!(c.outcome, Outcome::Fail(..)))
    }

    /// What a row's client reported as its version (the same in every cell it reported from).
    pub fn version(&self, row: usize) -> Option<&str> {
        self.cells.iter().filter(|c| c.row == row).find_map(|c| c.version.as_deref())
    }
}

/// Runs every client against every column through the proxy on `proxy_port`, `parallel` cells at a time
/// (client programs are processes; a JVM starting takes most of a core for a second or two, so two at a
/// time on two cores keeps both busy without starving the brokers). Logs each cell as it ends.
pub fn run_all(
    clients: &[&dyn Client],
    columns: &[Column],
    proxy_port: u16,
    ca: &Path,
    parallel: usize,
) -> Matrix {
    let jobs: Vec<(usize, usize)> =
        (0..clients.len()).flat_map(|r| (0..columns.len()).map(move |c| (r, c))).collect();
    let next = AtomicUsize::new(0);
    let cells = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..parallel.max(1) {
            s.spawn(|| {
                while let Some(&(row, column)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let cell = run_cell(clients[row], row, &columns[column], column, proxy_port, ca);
                    cells.lock().unwrap_or_else(|p| p.into_inner()).push(cell);
                }
            });
        }
    });
    let mut cells = cells.into_inner().unwrap_or_else(|p| p.into_inner());
    cells.sort_by_key(|c| (c.row, c.column));
    Matrix {
        rows: clients.iter().map(|c| c.name()).collect(),
        columns: columns.iter().map(|c| c.broker.clone()).collect(),
        cells,
    }
}

fn run_cell(
    client: &dyn Client,
    row: usize,
    column: &Column,
    col: usize,
    proxy_port: u16,
    ca: &Path,
) -> Cell {
    let topic = format!("matrix-{}", client.slug());
    let target = Target {
        tenant: column.tenant.clone(),
        bootstrap: format!("{}.{DOMAIN}:{proxy_port}", column.tenant),
        ca: Some(ca.to_owned()),
        cert: None,
        create_topic: true,
        idempotence: None,
        proxy_port,
        group: format!("{topic}-group"),
        topic,
    };
    let started = Instant::now();
    let (version, proxied) = attempt(client, &target);
    let elapsed = started.elapsed();
    let outcome = match proxied {
        Ok(()) => Outcome::Pass,
        Err(through_proxy) => {
            let direct = Target {
                bootstrap: column.direct.clone(),
                ca: None,
                cert: None,
                topic: format!("{}-direct", target.topic),
                group: format!("{}-direct", target.group),
                ..target
            };
            match attempt(client, &direct).1 {
                Ok(()) => Outcome::Fail(through_proxy, None),
                Err(e) if same_failure(&through_proxy, &e) => Outcome::FailsWithoutProxy(through_proxy, e),
                Err(e) => Outcome::Fail(through_proxy, Some(e)),
            }
        }
    };
    eprintln!(
        "matrix: {} × {}: {} in {elapsed:.1?}",
        client.name(),
        column.broker,
        match &outcome {
            Outcome::Pass => "pass".to_owned(),
            Outcome::Fail(e, None) => format!("FAIL (passes without the proxy): {e}"),
            Outcome::Fail(e, Some(d)) => format!("FAIL: {e} (without the proxy, another failure: {d})"),
            Outcome::FailsWithoutProxy(e, d) => format!("fails without the proxy too: {e} (direct: {d})"),
        }
    );
    Cell { row, column: col, version, outcome, elapsed }
}

/// Runs the client and judges its report: (the version it reported, the verdict).
fn attempt(client: &dyn Client, target: &Target) -> (Option<String>, Result<(), String>) {
    let report = client.run(target);
    let version = report.as_ref().ok().map(|r| r.version.clone());
    (version, report.and_then(|r| check(target, &r)).map_err(|e| format!("{e:#}")))
}

/// Whether two failure reasons name the same failure: the same words up to the first number, quote or
/// parenthesis (where record counts, milliseconds, ports and topic names start to differ).
fn same_failure(a: &str, b: &str) -> bool {
    let kind = |s: &str| -> String {
        s.chars().take_while(|c| !c.is_ascii_digit() && !matches!(c, '"' | '\'' | '(')).take(160).collect()
    };
    kind(a) == kind(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_the_same_up_to_their_numbers() {
        let java = |n, topic| {
            format!("the client failed: produce: TimeoutException: Expiring {n} record(s) for {topic}-1")
        };
        assert!(same_failure(&java(99, "matrix-java"), &java(98, "matrix-java-direct")));
        assert!(!same_failure(&java(99, "x"), "the client failed: consume: TimeoutException: Expiring 1"));
        assert!(!same_failure("consumer got 999 of 1000 records", "the client failed: produce"));
    }
}
