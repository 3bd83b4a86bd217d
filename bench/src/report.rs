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
    let _ = writeln!(o, "\nRatios kaas-proxy ÷ nginx (same scenario, mean over rounds):\n");
    for (scenario, metric, better) in [
        ("throughput", "MB/s", "higher is better"),
        ("latency", "p99 µs", "lower is better"),
        ("idle-connections", "KiB/connection", "lower is better"),
        ("handshakes-full", "handshakes/s", "higher is better"),
        ("handshakes-resumed", "handshakes/s", "higher is better"),
    ] {
        let mean = |target: &str| {
            let vals: Vec<f64> = rows
                .iter()
                .filter(|r| r.scenario == scenario && r.target == target)
                .filter_map(|r| match scenario {
                    "throughput" => r.mb_per_s,
                    "latency" => r.p99_us.map(|v| v as f64),
                    _ => r.value,
                })
                .collect();
            (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
        };
        if let (Some(p), Some(n)) = (mean("kaas-proxy"), mean("nginx")) {
            let _ = writeln!(o, "- {scenario}: {metric} {p:.1} vs {n:.1} → **{:.2}×** ({better})", p / n);
        }
    }
    let _ = writeln!(o, "\nReproduce: `{command}`");
    o
}

/// A bar chart per metric (throughput, p99 latency) of the first upstream's rows.
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
            let x = x0 + 10.0 + 40.0 * j as f64;
            let colour = match *label {
                "kaas-proxy" => "#2b7bb9",
                "nginx" => "#999999",
                _ => "#6ab04c",
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
