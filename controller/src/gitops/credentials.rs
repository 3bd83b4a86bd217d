//! The GitOps remote's credentials, kept out of every place git would show them. A URL such as
//! `https://user:token@git.example.com/gitops.git` (the chart's `gitops.urlSecret`) is split: git only ever sees
//! the URL without them (so no command line, `.git/config`, log line or tenant status carries the token), and a
//! credential helper given on each command answers git's request from the environment of that one command,
//! as Flux's source-controller hands credentials to its Git client rather than to a URL. Whatever git prints
//! is still passed through [`Credentials::redact`] before it reaches an error message.
//!
//! Neighbours: [`super::Repo`] runs every git command with [`Credentials::git_args`] and
//! [`Credentials::git_env`]; `main.rs` splits the URL it is given ([`split`]).

use std::fmt;

/// Environment variables the helper reads (set only on the git command that needs them).
const USERNAME_VAR: &str = "KAAS_GIT_USERNAME";
const PASSWORD_VAR: &str = "KAAS_GIT_PASSWORD";

/// A username and password (or token) for the GitOps remote. `Debug` shows neither.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(redacted)")
    }
}

/// `url` without its userinfo, and the credentials it carried (percent-decoded), if any. Only `http(s)://`
/// URLs carry them this way; anything else (a path, `ssh://`, `git@host:path`) is returned as it is.
pub fn split(url: &str) -> (String, Option<Credentials>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return (url.to_owned(), None);
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return (url.to_owned(), None) };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let credentials = Credentials { username: decode(username), password: decode(password) };
    (format!("{scheme}://{host}"), Some(credentials))
}

/// Percent-decoding of a userinfo part (`%40` is `@`); a malformed escape is kept as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Credentials {
    /// The `-c` options that make git ask our helper, and only it: the empty value first clears any helper the
    /// machine's git configuration names. The helper's text names variables, never their values.
    pub fn git_args() -> [String; 4] {
        let helper = format!(
            "!f() {{ test \"$1\" = get || exit 0; echo \"username=${USERNAME_VAR}\"; echo \"password=${PASSWORD_VAR}\"; }}; f"
        );
        ["-c".into(), "credential.helper=".into(), "-c".into(), format!("credential.helper={helper}")]
    }

    /// The environment of one git command that may need the credentials.
    pub fn git_env(&self) -> [(&'static str, &str); 2] {
        [(USERNAME_VAR, &self.username), (PASSWORD_VAR, &self.password)]
    }

    /// `text` (git's output, an argument list) with the password and any URL userinfo replaced by `***`.
    pub fn redact(credentials: Option<&Credentials>, text: &str) -> String {
        let mut out = text.to_owned();
        if let Some(c) = credentials.filter(|c| !c.password.is_empty()) {
            out = out.replace(&c.password, "***");
        }
        redact_userinfo(&out)
    }
}

/// Every `scheme://userinfo@` in `text` with its userinfo replaced by `***`.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end =
            tail.find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"').unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_from_http_urls_only() {
        let cred = |u: &str, p: &str| Some(Credentials { username: u.into(), password: p.into() });
        let table: [(&str, &str, Option<Credentials>); 7] = [
            (
                "https://user:tok@git.example.com/p/g.git",
                "https://git.example.com/p/g.git",
                cred("user", "tok"),
            ),
            (
                "https://x-access-token:gh%40p%2F1@github.com/o/r",
                "https://github.com/o/r",
                cred("x-access-token", "gh@p/1"),
            ),
            ("http://tok@127.0.0.1:8080/g.git", "http://127.0.0.1:8080/g.git", cred("tok", "")),
            ("https://git.example.com/p/g.git", "https://git.example.com/p/g.git", None),
            ("https://git.example.com/a@b/g.git", "https://git.example.com/a@b/g.git", None),
            ("/srv/git/gitops.git", "/srv/git/gitops.git", None),
            ("ssh://git@git.example.com/p/g.git", "ssh://git@git.example.com/p/g.git", None),
        ];
        for (url, plain, credentials) in table {
            assert_eq!(split(url), (plain.to_owned(), credentials), "{url}");
        }
    }

    #[test]
    fn nothing_shown_carries_the_secret() {
        let (_, c) = split("https://user:s3cr%3At@git.example.com/g.git");
        let c = c.expect("credentials");
        assert_eq!(format!("{c:?}"), "Credentials(redacted)");
        let said = "fatal: unable to access 'https://user:s3cr:t@git.example.com/g.git/': 403 (s3cr:t)";
        let shown = Credentials::redact(Some(&c), said);
        assert_eq!(shown, "fatal: unable to access 'https://***@git.example.com/g.git/': 403 (***)");
        assert_eq!(Credentials::redact(None, "clone https://a:b@h/x y"), "clone https://***@h/x y");
        assert!(
            Credentials::git_args().iter().all(|a| !a.contains("s3cr")),
            "the helper names variables only"
        );
    }
}
