//! Results: JSON for machines, a Markdown table for people, an SVG chart of throughput and latency per target.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub target: String,
    pub upstream: String,
    pub round: usize,
    pub mb_per_s: Option<f64>,
    pub records_per_s: Option<f64>,
    pub requests: Option<u64>,
    pub errors: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    /// Handshakes per second, or KiB per idle connection, depending on the scenario.
    pub value: Option<f64>,
    pub value_unit: Option<String>,
    pub cpu_seconds: Option<f64>,
    pub cpu_s_per_gb: Option<f64>,
    pub peak_rss_mib: Option<f64>,
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}
fn u(v: Option<u64>) -> String {
    v.map_or("–".into(), |x| x.to_string())
}

pub fn markdown(rows: &[Row], command: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| scenario | target | upstream | MB/s | records/s | p50 µs | p99 µs | p99.9 µs | other | CPU s/GB | peak RSS MiB | errors |");
    let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let other = match (&r.value, &r.value_unit) {
            (Some(v), Some(unit)) => format!("{v:.1} {unit}"),
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.target,
            r.upstream,
            f(r.mb_per_s, 1),
            f(r.records_per_s, 0),
            u(r.p50_us),
            u(r.p99_us),
            u(r.p999_us),
            other,
            f(r.cpu_s_per_gb, 2),
            f(r.peak_rss_mib, 1),
            r.errors
        );
    }
    let _ = writeln!(o, "\nRatios kaas-proxy ÷ nginx (same upstream and scenario, mean over rounds):\n");
    let mut upstreams: Vec<&str> = rows.iter().map(|r| r.upstream.as_str()).collect();
    upstreams.dedup();
    for up in upstreams {
        let mean = |scenario: &str, target: &str, pick: &dyn Fn(&Row) -> Option<f64>| {
            let vals: Vec<f64> = rows
                .iter()
                .filter(|r| r.upstream == up && r.scenario == scenario && r.target == target)
                .filter_map(pick)
                .collect();
            (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
        };
        let mbps = |r: &Row| r.mb_per_s;
        let p99 = |r: &Row| r.p99_us.map(|v| v as f64);
        let value = |r: &Row| r.value;
        let ratio = |label: &str, p: Option<f64>, n: Option<f64>, unit: &str, better: &str| match (p, n) {
            (Some(p), Some(n)) if n != 0.0 => {
                format!("- {up} {label}: {p:.1} vs {n:.1} {unit} → **{:.2}×** ({better})\n", p / n)
            }
            _ => String::new(),
        };
        o += &ratio(
            "throughput",
            mean("throughput", "kaas-proxy", &mbps),
            mean("throughput", "nginx", &mbps),
            "MB/s",
            "goal ≥ 1.0",
        );
        // Added latency: each TLS path's p99 minus the direct p99 on the same workload.
        let direct = mean("latency", "direct", &p99);
        let added = |t: &str| Some(mean("latency", t, &p99)? - direct?);
        match (added("kaas-proxy"), added("nginx")) {
            // A TLS path measured at or below direct is noise, and a ratio of it means nothing.
            (Some(p), Some(n)) if p <= 0.0 || n <= 0.0 => {
                o += &format!("- {up} added p99 latency: {p:.1} vs {n:.1} µs → within noise (one is ≤ 0)\n");
            }
            (p, n) => o += &ratio("added p99 latency", p, n, "µs", "goal ≤ 1.2"),
        }
        o += &ratio(
            "idle memory",
            mean("idle-connections", "kaas-proxy", &value),
            mean("idle-connections", "nginx", &value),
            "KiB/conn",
            "lower is better; goal ≤ 64 KiB",
        );
        o += &ratio(
            "full handshakes",
            mean("handshakes-full", "kaas-proxy", &value),
            mean("handshakes-full", "nginx", &value),
            "/s",
            "higher is better",
        );
        o += &ratio(
            "resumed handshakes",
            mean("handshakes-resumed", "kaas-proxy", &value),
            mean("handshakes-resumed", "nginx", &value),
            "/s",
            "higher is better",
        );
        o += &ratio(
            "metadata storm",
            mean("metadata-storm", "kaas-proxy", &value),
            mean("metadata-storm", "nginx", &value),
            "bootstraps/s",
            "higher is better",
        );
        o += &ratio(
            "end-to-end p99",
            mean("end-to-end", "kaas-proxy", &p99),
            mean("end-to-end", "nginx", &p99),
            "µs",
            "lower is better",
        );
    }
    let _ = writeln!(o, "\nReproduce: `{command}`");
    o
}

/// A bar chart per metric (throughput, p99 latency), one bar per target and upstream.
pub fn svg(rows: &[Row]) -> String {
    let tp: Vec<(&str, f64)> = rows
        .iter()
        .filter(|r| r.scenario == "throughput")
        .filter_map(|r| Some((r.target.as_str(), r.mb_per_s?)))
        .collect();
    let lat: Vec<(&str, f64)> = rows
        .iter()
        .filter(|r| r.scenario == "latency")
        .filter_map(|r| Some((r.target.as_str(), r.p99_us? as f64)))
        .collect();
    let mut o = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"300\" font-family=\"sans-serif\" font-size=\"12\">\n",
    );
    for (i, (title, data)) in
        [("Produce throughput (MB/s)", &tp), ("Small-request p99 latency (µs)", &lat)].into_iter().enumerate()
    {
        let x0 = 20.0 + 380.0 * i as f64;
        let _ = writeln!(o, "<text x=\"{}\" y=\"20\" font-weight=\"bold\">{title}</text>", x0);
        let max = data.iter().map(|(_, v)| *v).fold(1.0, f64::max);
        for (j, (label, v)) in data.iter().enumerate() {
            let h = 220.0 * v / max;
            let x = x0 + 10.0 + 55.0 * j as f64;
            let colour = if label.starts_with("kaas-proxy") {
                "#2b7bb9"
            } else if label.starts_with("nginx") {
                "#999999"
            } else {
                "#6ab04c"
            };
            let _ = writeln!(o, "<rect x=\"{x}\" y=\"{:.1}\" width=\"30\" height=\"{h:.1}\" fill=\"{colour}\"><title>{label}: {v:.1}</title></rect>", 260.0 - h);
            let _ = writeln!(
                o,
                "<text x=\"{x}\" y=\"275\" font-size=\"9\" transform=\"rotate(30 {x} 275)\">{label}</text>"
            );
        }
    }
    o.push_str("</svg>\n");
    o
}
