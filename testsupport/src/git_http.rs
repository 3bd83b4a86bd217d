//! Git's smart HTTP protocol over a folder of bare repositories, for Flux's source-controller (which fetches
//! only over HTTP(S) or SSH). Git's own `git http-backend` does the protocol, run as CGI per request; this is
//! only the HTTP/1.1 framing around it, on loopback, one thread per connection, `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use base64::Engine as _;

use crate::loopback::LoopbackServer;

/// Serves every bare repository under `root` at `http://127.0.0.1:<port>/<name>.git` until dropped.
#[derive(Debug)]
pub struct GitHttp {
    pub port: u16,
    _server: LoopbackServer,
}

impl GitHttp {
    pub fn start(root: &Path) -> anyhow::Result<GitHttp> {
        let server = LoopbackServer::start("git http", root.to_path_buf(), serve)?;
        Ok(GitHttp { port: server.port, _server: server })
    }

    /// As [`GitHttp::start`], answering only requests that carry HTTP basic credentials `username:password`
    /// (401 with a `WWW-Authenticate` challenge otherwise, as a Git host does), kept in `root/.basic-auth`.
    pub fn start_with_basic_auth(root: &Path, username: &str, password: &str) -> anyhow::Result<GitHttp> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        std::fs::write(root.join(BASIC_AUTH), format!("Basic {token}"))?;
        Self::start(root)
    }

    pub fn url(&self, repository: &str) -> String {
        format!("http://127.0.0.1:{}/{repository}", self.port)
    }
}

/// The file under the served root holding the one `Authorization` value accepted, when there is one.
const BASIC_AUTH: &str = ".basic-auth";

fn serve(stream: TcpStream, root: &Path) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) =
        (parts.next().context("no method")?.to_owned(), parts.next().context("no target")?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    if header("transfer-encoding").is_some() {
        return respond(stream, "411 Length Required", &[], b"chunked request bodies are not supported\n");
    }
    let authenticated = match std::fs::read_to_string(root.join(BASIC_AUTH)) {
        Ok(wanted) if header("authorization").as_deref() != Some(wanted.trim()) => {
            let challenge = [("WWW-Authenticate".to_owned(), "Basic realm=\"git\"".to_owned())];
            return respond(stream, "401 Unauthorized", &challenge, b"authentication required\n");
        }
        Ok(_) => true,
        Err(_) => false,
    };
    let length: usize = header("content-length").map(|l| l.parse()).transpose()?.unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;

    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_LENGTH", length.to_string())
        .env("REMOTE_ADDR", "127.0.0.1");
    // http-backend lets only an authenticated user push (its `http.receivepack` default).
    if authenticated {
        cgi.env("REMOTE_USER", "git");
    }
    for (variable, name) in [
        ("CONTENT_TYPE", "content-type"),
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        ("GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(value) = header(name) {
            cgi.env(variable, value);
        }
    }
    let mut child = cgi.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("stdin writer panicked"))??;

    // CGI output: headers (one may be `Status:`), a blank line, the body.
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| output.stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)));
    let (head, body) = match split {
        Some((end, start)) => {
            (String::from_utf8_lossy(&output.stdout[..end]).into_owned(), &output.stdout[start..])
        }
        None => return respond(stream, "502 Bad Gateway", &[], b"git http-backend wrote no headers\n"),
    };
    let mut status = "200 OK".to_owned();
    let mut out_headers = Vec::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => status = value.trim().to_owned(),
            Some((name, value)) => out_headers.push((name.trim().to_owned(), value.trim().to_owned())),
            None => {}
        }
    }
    respond(stream, &status, &out_headers, body)
}

fn respond(
    mut stream: TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> anyhow::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
        crate::git(Some(dir), args)
    }

    #[test]
    fn a_clone_over_http_sees_what_was_pushed_and_unknown_repositories_are_404() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        git(tmp.path(), &["init", "--quiet", "--bare", "--initial-branch=main", "gitops.git"])?;
        let work = tmp.path().join("work");
        git(tmp.path(), &["clone", "--quiet", "gitops.git", "work"])?;
        std::fs::write(work.join("a.yaml"), "kind: ConfigMap\n")?;
        let who = ["-c", "user.name=t", "-c", "user.email=t@t"];
        git(&work, &["add", "a.yaml"])?;
        git(&work, &[who[0], who[1], who[2], who[3], "commit", "--quiet", "-m", "one"])?;
        git(&work, &["push", "--quiet", "origin", "main"])?;

        let server = GitHttp::start(tmp.path())?;
        git(tmp.path(), &["clone", "--quiet", &server.url("gitops.git"), "cloned"])?;
        assert_eq!(std::fs::read_to_string(tmp.path().join("cloned/a.yaml"))?, "kind: ConfigMap\n");
        let missing = Command::new("git")
            .current_dir(tmp.path())
            .args(["clone", "--quiet", &server.url("absent.git"), "absent"])
            .output()?;
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"), "{missing:?}");
        Ok(())
    }
}
