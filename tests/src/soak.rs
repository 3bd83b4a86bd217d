//! The soak's instruments: the real `kaas-proxy` binary as its own process (so what is sampled is the proxy
//! alone, not the clients beside it), a sample of that process every interval (resident memory, open file
//! descriptors, threads, the connections it holds, the clients' produce latency), and what a run leaves
//! behind: a CSV, an SVG chart and the memory slope. `tests/tests/e2e/soak/kafka.rs` drives the load.
//!
//! The pure parts (CSV, slope, chart) take samples and return text or numbers, and are tested here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context;

use crate::certs::Certs;
use crate::DOMAIN;

/// One reading of the proxy process and of the load, taken every interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the load started.
    pub elapsed_seconds: f64,
    pub rss_kib: u64,
    pub open_fds: u64,
    pub threads: u64,
    /// `kaas_proxy_listener_connections_open`.
    pub connections: f64,
    /// `kaas_proxy_runtime_tasks`.
    pub tasks: f64,
    /// Produce round trips (send to acknowledgement) in the interval: median and slowest, milliseconds.
    pub produce_p50_ms: f64,
    pub produce_max_ms: f64,
    /// Records acknowledged and consumed so far.
    pub acked: u64,
    pub consumed: u64,
    /// Errors any client reported so far.
    pub errors: u64,
}

/// The CSV header, in the order of [`csv_row`].
pub const CSV_HEADER: &str = "elapsed_seconds,rss_kib,open_fds,threads,connections,tasks,produce_p50_ms,\
                              produce_max_ms,acked,consumed,errors";

/// One CSV line (no newline).
pub fn csv_row(s: &Sample) -> String {
    format!(
        "{:.1},{},{},{},{},{},{:.2},{:.2},{},{},{}",
        s.elapsed_seconds,
        s.rss_kib,
        s.open_fds,
        s.threads,
        s.connections,
        s.tasks,
        s.produce_p50_ms,
        s.produce_max_ms,
        s.acked,
        s.consumed,
        s.errors
    )
}

/// The least-squares slope of `y` over `x` (units of y per unit of x); `None` with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points
        .iter()
        .fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    (den > 0.0).then(|| num / den)
}

/// Resident memory growth in KiB per minute over the samples from `after_seconds` on (the first minute is
/// warm-up: buffers and caches filling).
pub fn rss_slope_kib_per_minute(samples: &[Sample], after_seconds: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.elapsed_seconds >= after_seconds)
        .map(|s| (s.elapsed_seconds / 60.0, s.rss_kib as f64))
        .collect();
    slope(&points)
}

/// An SVG chart of a run: one panel per series, sharing the time axis.
pub fn svg(samples: &[Sample], title: &str) -> String {
    type Pick = fn(&Sample) -> f64;
    let panels: [(&str, Pick); 6] = [
        ("resident memory, MiB", |s| s.rss_kib as f64 / 1024.0),
        ("open file descriptors", |s| s.open_fds as f64),
        ("connections open", |s| s.connections),
        ("runtime tasks", |s| s.tasks),
        ("threads", |s| s.threads as f64),
        ("produce round trip, slowest in 10 s, ms", |s| s.produce_max_ms),
    ];
    let (width, panel_height, left, top) = (720.0, 110.0, 60.0, 30.0);
    let plot_width = width - left - 20.0;
    let height = top + panels.len() as f64 * (panel_height + 30.0);
    let end = samples.last().map_or(1.0, |s| s.elapsed_seconds.max(1.0));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" \
         font-size=\"11\">\n<text x=\"{left}\" y=\"18\" font-size=\"13\">{}</text>",
        escape(title)
    );
    for (i, (name, pick)) in panels.iter().enumerate() {
        let y0 = top + i as f64 * (panel_height + 30.0) + 15.0;
        let max = samples.iter().map(pick).fold(0.0_f64, f64::max).max(1e-9);
        let points: Vec<String> = samples
            .iter()
            .map(|s| {
                let x = left + s.elapsed_seconds / end * plot_width;
                let y = y0 + panel_height - pick(s) / max * panel_height;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            out,
            "<text x=\"{left}\" y=\"{:.1}\">{} (max {:.1})</text>\n\
             <rect x=\"{left}\" y=\"{y0:.1}\" width=\"{plot_width}\" height=\"{panel_height}\" fill=\"none\" \
             stroke=\"#bbb\"/>\n<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>",
            y0 - 4.0,
            escape(name),
            max,
            points.join(" ")
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{:.1}\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{end:.0} s</text>\n</svg>",
        height - 4.0,
        left + plot_width,
        height - 4.0
    );
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What `/proc/<pid>` says of a process: resident KiB, open descriptors, threads.
pub fn process_stats(pid: u32) -> anyhow::Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("process status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).context("open descriptors")?.count() as u64;
    Ok((field("VmRSS:")?, fds, field("Threads:")?))
}

/// The real `kaas-proxy` binary, built for the profile the tests run under, as a child process with its
/// configuration and log in a folder. Killed on drop.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
}

impl ProxyProcess {
    /// Builds the binary (quick when it is up to date) and starts it with `tenants_yaml` as its tenants file,
    /// writing `kaas-proxy.yaml`, `tenants.yaml` and `kaas-proxy.log` into `dir`.
    pub fn start(certs: &Certs, dir: &Path, tenants_yaml: &str) -> anyhow::Result<ProxyProcess> {
        let binary = build_proxy()?;
        let (port, admin_port) = (crate::free_port(), crate::free_port());
        let config = dir.join("kaas-proxy.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: \"[::]:{port}\"\ndomain: {DOMAIN}\nadmin_listen: \"127.0.0.1:{admin_port}\"\n\
                 tls:\n  cert: {}\n  key: {}\ntenants: []\ntenants_file: tenants.yaml\n",
                certs.cert.display(),
                certs.key.display()
            ),
        )?;
        std::fs::write(dir.join("tenants.yaml"), tenants_yaml)?;
        let log = std::fs::File::create(dir.join("kaas-proxy.log"))?;
        let log_too = log.try_clone()?;
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            // Reloads come from SIGHUP only, so each one is the soak's.
            .args(["--reload-seconds", "0", "--shutdown-delay-seconds", "0"])
            .env("RUST_LOG", std::env::var("SOAK_PROXY_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let proxy = ProxyProcess { child, port, admin_port, dir: dir.to_path_buf() };
        crate::wait_for_port(port, Duration::from_secs(20))?;
        Ok(proxy)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replaces the tenants file and sends SIGHUP: the proxy reloads at once.
    pub fn reload(&self, tenants_yaml: &str) -> anyhow::Result<()> {
        let path = self.dir.join("tenants.yaml");
        let tmp = self.dir.join("tenants.yaml.tmp");
        std::fs::write(&tmp, tenants_yaml)?;
        std::fs::rename(&tmp, &path)?;
        let status = Command::new("kill").args(["-HUP", &self.pid().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -HUP {}", self.pid());
        Ok(())
    }

    /// The value of the metric sample `series` (0 when absent).
    pub fn metric(&self, series: &str) -> anyhow::Result<f64> {
        Ok(crate::proxy::sample(&crate::proxy::metrics(self.admin_port)?, series))
    }

    /// The proxy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kaas-proxy.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo build -p kaas-proxy` for this test binary's profile; the binary's path.
fn build_proxy() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let release = !cfg!(debug_assertions);
    let mut build = Command::new(cargo);
    build.current_dir(crate::repo_root()).args(["build", "-q", "-p", "kaas-proxy", "--bin", "kaas-proxy"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().context("cargo build -p kaas-proxy")?;
    anyhow::ensure!(status.success(), "cargo build -p kaas-proxy failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    Ok(target.join(if release { "release" } else { "debug" }).join("kaas-proxy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(elapsed_seconds: f64, rss_kib: u64) -> Sample {
        Sample {
            elapsed_seconds,
            rss_kib,
            open_fds: 40,
            threads: 3,
            connections: 12.0,
            tasks: 30.0,
            produce_p50_ms: 2.5,
            produce_max_ms: 9.25,
            acked: 100,
            consumed: 90,
            errors: 0,
        }
    }

    #[test]
    fn slope_is_least_squares() {
        type Case<'a> = (&'a [(f64, f64)], Option<f64>);
        let cases: &[Case] = &[
            (&[], None),
            (&[(1.0, 5.0)], None),
            (&[(1.0, 5.0), (1.0, 7.0)], None),
            (&[(0.0, 0.0), (1.0, 2.0), (2.0, 4.0)], Some(2.0)),
            (&[(0.0, 10.0), (1.0, 10.0), (2.0, 10.0)], Some(0.0)),
            // Noise around a flat line: the fit, not the last minus the first.
            (&[(0.0, 1.0), (1.0, 3.0), (2.0, 1.0), (3.0, 3.0)], Some(0.4)),
        ];
        for (points, want) in cases {
            let got = slope(points);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{points:?}: {g} != {w}"),
                _ => assert_eq!(got, *want, "{points:?}"),
            }
        }
    }

    #[test]
    fn rss_slope_skips_the_warm_up() {
        // Fast growth in the first minute, then 60 KiB a minute.
        let samples = [
            sample(0.0, 1_000),
            sample(30.0, 20_000),
            sample(60.0, 30_000),
            sample(90.0, 30_030),
            sample(120.0, 30_060),
        ];
        let s = rss_slope_kib_per_minute(&samples, 60.0).expect("slope");
        assert!((s - 60.0).abs() < 1e-6, "{s}");
    }

    #[test]
    fn csv_rows_match_the_header() {
        let row = csv_row(&sample(10.0, 2048));
        assert_eq!(row, "10.0,2048,40,3,12,30,2.50,9.25,100,90,0");
        assert_eq!(row.split(',').count(), CSV_HEADER.split(',').count());
    }

    #[test]
    fn the_chart_has_a_panel_per_series_scaled_to_its_maximum() {
        let chart = svg(&[sample(0.0, 1024), sample(10.0, 2048)], "soak <2 min>");
        assert_eq!(chart.matches("<polyline").count(), 6);
        assert!(chart.contains("resident memory, MiB (max 2.0)"), "{chart}");
        assert!(chart.contains("soak &lt;2 min&gt;"));
        // The last memory point sits on the panel's top edge (its maximum), at the right end.
        assert!(chart.contains("700.0,45.0\""), "{chart}");
    }
}
