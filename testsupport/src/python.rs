//! The project's Python environment (`.venv`, made by install-prereqs): `tests/python/kafka_clients.py` with its
//! JSON output parsed, and Helm chart rendering with the Helm v4 SDK.

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

/// Renders `charts/<chart>` with the Helm v4 SDK (the chart tests' renderer) as release `name` in `namespace`,
/// `values` over the chart's defaults: every object, as one multi-document YAML stream.
pub fn render_chart(
    chart: &str,
    values: &serde_json::Value,
    name: &str,
    namespace: &str,
) -> anyhow::Result<String> {
    const RENDER: &str = r#"
import json, sys
import helm_python as helm
chart, values, name, namespace = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
out = helm.Chart.load(chart).render(values, name=name, namespace=namespace)
print("\n---\n".join(text for template, text in sorted(out.items()) if not template.endswith("NOTES.txt")))
"#;
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    anyhow::ensure!(python.exists(), "{} missing; run scripts/install-prereqs.sh", python.display());
    let chart_dir = root.join("charts").join(chart);
    let out = Command::new(python)
        .args(["-c", RENDER])
        .arg(&chart_dir)
        .arg(values.to_string())
        .args([name, namespace])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "rendering {}: {}\n{}",
        chart_dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}
