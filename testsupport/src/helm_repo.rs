//! A Helm chart repository over HTTP for Flux's source-controller: charts built here (each a gzip tar of
//! `<name>/Chart.yaml` and its other files, by the `tar` command) and the repository's `index.yaml` naming
//! them, served as static files on loopback, one thread per connection, `Connection: close`. It stands in for
//! public chart repositories this machine cannot reach, with charts of the same names and versions, so that
//! what Flux and Helm do with them (fetch, install, upgrade, uninstall) is real.
//!
//! Neighbours: [`crate::git_http`] serves Git the same way; [`crate::flux`] runs the source-controller that
//! reads both.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use crate::loopback::LoopbackServer;

/// One chart: its name, version, and files by their path inside the chart (`templates/configmap.yaml`,
/// `crds/kafka.yaml`); `Chart.yaml` is written from the name and version.
#[derive(Debug, Clone)]
pub struct Chart {
    pub name: String,
    pub version: String,
    pub files: Vec<(String, String)>,
}

/// The repository, serving until dropped.
#[derive(Debug)]
pub struct HelmRepo {
    pub port: u16,
    _server: LoopbackServer,
    _dir: tempfile::TempDir,
}

impl HelmRepo {
    /// Builds every chart of `charts` and the index, then serves them at [`HelmRepo::url`].
    pub fn start(charts: &[Chart]) -> anyhow::Result<HelmRepo> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("repo");
        std::fs::create_dir(&root)?;
        let mut index = String::from("apiVersion: v1\nentries:\n");
        for chart in charts {
            let file = package(chart, dir.path(), &root)?;
            index.push_str(&format!(
                "  {name}:\n    - apiVersion: v2\n      name: {name}\n      version: {version}\n      urls:\n        \
                 - {file}\n      created: \"2026-01-01T00:00:00Z\"\n",
                name = chart.name,
                version = chart.version,
            ));
        }
        index.push_str("generated: \"2026-01-01T00:00:00Z\"\n");
        std::fs::write(root.join("index.yaml"), index)?;

        let server = LoopbackServer::start("helm repository", root, serve)?;
        Ok(HelmRepo { port: server.port, _server: server, _dir: dir })
    }

    /// The repository's URL, as a HelmRepository's `spec.url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// Writes `chart` under `work/src/<name>/` and packs it as `<root>/<name>-<version>.tgz`; the file's name.
fn package(chart: &Chart, work: &Path, root: &Path) -> anyhow::Result<String> {
    let src = work.join("src").join(&chart.version);
    let base = src.join(&chart.name);
    std::fs::create_dir_all(&base)?;
    let meta = format!(
        "apiVersion: v2\nname: {}\nversion: {}\nappVersion: \"{}\"\ntype: application\ndescription: a stand-in of \
         the upstream chart of this name and version\n",
        chart.name, chart.version, chart.version
    );
    std::fs::write(base.join("Chart.yaml"), meta)?;
    for (path, text) in &chart.files {
        let path = base.join(path);
        std::fs::create_dir_all(path.parent().context("a chart file's folder")?)?;
        std::fs::write(path, text)?;
    }
    let file = format!("{}-{}.tgz", chart.name, chart.version);
    let out = Command::new("tar")
        .arg("-czf")
        .arg(root.join(&file))
        .arg("-C")
        .arg(&src)
        .arg(&chart.name)
        .output()
        .context("run tar")?;
    anyhow::ensure!(out.status.success(), "tar {file}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(file)
}

fn serve(mut stream: TcpStream, root: &Path) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().context("no method")?.to_owned();
    let target = parts.next().context("no target")?.to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let name = target.split('?').next().unwrap_or_default().trim_start_matches('/');
    // Only the files at the top of the repository, by their plain names.
    let file = (!name.is_empty() && !name.contains('/') && !name.starts_with('.'))
        .then(|| std::fs::read(root.join(name)).ok())
        .flatten();
    let (status, body) = match (method.as_str(), file) {
        ("GET" | "HEAD", Some(body)) => ("200 OK", body),
        ("GET" | "HEAD", None) => ("404 Not Found", b"not found\n".to_vec()),
        _ => ("405 Method Not Allowed", Vec::new()),
    };
    let kind = if name.ends_with(".yaml") { "text/yaml" } else { "application/gzip" };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method == "GET" {
        stream.write_all(&body)?;
    }
    stream.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(port: u16, path: &str) -> anyhow::Result<(String, Vec<u8>)> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").context("no head")?;
        let status = String::from_utf8_lossy(&answer[..split]).lines().next().unwrap_or_default().to_owned();
        Ok((status, answer[split + 4..].to_vec()))
    }

    #[test]
    fn the_index_names_each_chart_and_the_archive_holds_its_files() -> anyhow::Result<()> {
        let chart = Chart {
            name: "cilium".into(),
            version: "1.18.0".into(),
            files: vec![("templates/cm.yaml".into(), "kind: ConfigMap\n".into())],
        };
        let repo = HelmRepo::start(&[chart])?;
        let (status, index) = get(repo.port, "/index.yaml")?;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let index: serde_json::Value = serde_norway::from_slice(&index)?;
        assert_eq!(index["entries"]["cilium"][0]["version"], "1.18.0");
        assert_eq!(index["entries"]["cilium"][0]["urls"][0], "cilium-1.18.0.tgz");

        let (status, tgz) = get(repo.port, "/cilium-1.18.0.tgz")?;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let tmp = tempfile::tempdir()?;
        std::fs::write(tmp.path().join("c.tgz"), tgz)?;
        let listing = Command::new("tar").arg("-tzf").arg(tmp.path().join("c.tgz")).output()?;
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(
            listing.contains("cilium/Chart.yaml") && listing.contains("cilium/templates/cm.yaml"),
            "{listing}"
        );

        assert_eq!(get(repo.port, "/absent-0.1.0.tgz")?.0, "HTTP/1.1 404 Not Found");
        assert_eq!(get(repo.port, "/../etc/passwd")?.0, "HTTP/1.1 404 Not Found");
        Ok(())
    }
}
