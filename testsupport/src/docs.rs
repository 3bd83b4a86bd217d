//! The documentation as the tests read it: README.md and every Markdown file under `docs/`, their fenced code
//! blocks (the examples the proxy's and the controller's `docs` tests load), and a link check.
//!
//! An example says what it is in its fence's info string, after the language: ```` ```yaml kaas-proxy-config ````
//! is a whole kaas-proxy configuration file, ```` ```yaml kaas-proxy-config partial ```` a fragment the tests
//! skip by name, ```` ```yaml kafkatenant ```` a `KafkaTenant`. Links are checked offline: a relative target must
//! exist, an `#anchor` into a Markdown file must be one of its headings as GitHub slugs them, and an `http(s)`
//! link must be a well-formed URI (nothing is fetched). Generated sections ([`generated_section`]) hold a
//! reference rendered from a schema ([`mod@reference`]) to its source.

pub mod reference;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// A fenced code block of a Markdown file.
#[derive(Debug, Clone)]
pub struct Block {
    /// The file, relative to the repository root.
    pub file: PathBuf,
    /// The line of its opening fence (1-based).
    pub line: usize,
    /// The words after the fence: the language first, then markers.
    pub info: Vec<String>,
    /// Its text, without the fences.
    pub text: String,
}

impl Block {
    /// Whether `marker` is among the words after the language.
    pub fn has(&self, marker: &str) -> bool {
        self.info.iter().skip(1).any(|w| w == marker)
    }

    /// `file:line`, for messages.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// README.md and every `*.md` under `docs/` of the repository at `root`, relative to it, in a stable order.
pub fn markdown_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(root.join(&dir)).with_context(|| dir.display().to_string())? {
            let path = dir.join(entry?.file_name());
            if root.join(&path).is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The fenced code blocks (```` ``` ```` at the start of a line, possibly indented) of every file of
/// [`markdown_files`]; an unclosed fence is an error.
pub fn blocks(root: &Path) -> anyhow::Result<Vec<Block>> {
    let mut all = Vec::new();
    for file in markdown_files(root)? {
        let text = std::fs::read_to_string(root.join(&file)).with_context(|| file.display().to_string())?;
        let mut open: Option<Block> = None;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            match (&mut open, trimmed.strip_prefix("```")) {
                (None, Some(info)) => {
                    let info = info.split_whitespace().map(str::to_owned).collect();
                    open = Some(Block { file: file.clone(), line: i + 1, info, text: String::new() });
                }
                (Some(_), Some(rest)) if rest.trim().is_empty() => all.extend(open.take()),
                (Some(block), _) => {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
                (None, None) => {}
            }
        }
        if let Some(block) = open {
            anyhow::bail!("{}: the fence is never closed", block.place());
        }
    }
    Ok(all)
}

/// Runs `check` on every block marked `marker`; a block also marked `partial` is parsed as YAML and skipped, by
/// name. Fails naming every block `check` refuses, and when no block is marked (a check of nothing).
pub fn check_examples(
    root: &Path,
    marker: &str,
    check: impl Fn(&Block) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (mut checked, mut partial, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for block in blocks(root)?.into_iter().filter(|b| b.has(marker)) {
        if block.has("partial") {
            serde_norway::from_str::<serde_norway::Value>(&block.text)
                .with_context(|| format!("{}: not YAML", block.place()))?;
            partial.push(block.place());
            continue;
        }
        match check(&block) {
            Ok(()) => checked.push(block.place()),
            Err(e) => failures.push(format!("{}: {e:#}", block.place())),
        }
    }
    println!("{marker}: checked {checked:?}; partial, skipped: {partial:?}");
    anyhow::ensure!(failures.is_empty(), "`{marker}` examples refused:\n{}", failures.join("\n"));
    anyhow::ensure!(!checked.is_empty(), "no block is marked `{marker}`: the check would check nothing");
    Ok(())
}

/// Fails naming every YAML block that `looks_like` an example of `marker` but is not marked so.
pub fn every_lookalike_is_marked(
    root: &Path,
    marker: &str,
    looks_like: impl Fn(&Block) -> bool,
) -> anyhow::Result<()> {
    let unmarked: Vec<String> = blocks(root)?
        .into_iter()
        .filter(|b| b.info.first().map(String::as_str) == Some("yaml") && !b.has(marker) && looks_like(b))
        .map(|b| b.place())
        .collect();
    anyhow::ensure!(
        unmarked.is_empty(),
        "examples without `{marker}` after their fence's language: {unmarked:?}"
    );
    Ok(())
}

/// Holds the generated section `name` of the Markdown file `file` (relative to `root`) to `content`: the lines
/// between `<!-- name:begin ... -->` and `<!-- name:end -->`. With `UPDATE_DOCS=1` in the environment it
/// rewrites them instead; otherwise a difference fails, saying how to regenerate.
pub fn generated_section(root: &Path, file: &str, name: &str, content: &str) -> anyhow::Result<()> {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).with_context(|| file.to_owned())?;
    let (begin, end) = (format!("<!-- {name}:begin"), format!("<!-- {name}:end -->"));
    let start = text.find(&begin).with_context(|| format!("{file}: no `{begin}` marker"))?;
    let start =
        start + text[start..].find('\n').with_context(|| format!("{file}: `{begin}` ends the file"))? + 1;
    let stop =
        start + text[start..].find(&end).with_context(|| format!("{file}: no `{end}` after `{begin}`"))?;
    let content = format!("{}\n", content.trim_end_matches('\n'));
    if text[start..stop] == content {
        return Ok(());
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{content}{}", &text[..start], &text[stop..]))?;
        return Ok(());
    }
    anyhow::bail!(
        "{file}: the generated section `{name}` differs from its source: regenerate it with UPDATE_DOCS=1"
    )
}

/// Every broken link of [`markdown_files`], as `file:line: what`; empty when all hold.
pub fn broken_links(root: &Path) -> anyhow::Result<Vec<String>> {
    let files = markdown_files(root)?;
    let mut anchors: HashMap<PathBuf, Vec<String>> = HashMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(root.join(file)).with_context(|| file.display().to_string())?;
        for (line, target) in links(&text) {
            let at = format!("{}:{line}", file.display());
            if let Err(e) = check_target(root, file, &target, &mut anchors) {
                problems.push(format!("{at}: ({target}) {e}"));
            }
        }
    }
    Ok(problems)
}

fn check_target(
    root: &Path,
    file: &Path,
    target: &str,
    anchors: &mut HashMap<PathBuf, Vec<String>>,
) -> anyhow::Result<()> {
    if target.starts_with("http://") || target.starts_with("https://") {
        let uri: http::Uri = target.parse().context("not a well-formed URI")?;
        anyhow::ensure!(uri.host().is_some_and(|h| h.contains('.')), "no host name");
        return Ok(());
    }
    anyhow::ensure!(!target.contains("://"), "only http(s) links are allowed outside the repository");
    if target.starts_with("mailto:") {
        return Ok(());
    }
    let (path, anchor) = target.split_once('#').map_or((target, None), |(p, a)| (p, Some(a)));
    let linked = if path.is_empty() {
        file.to_path_buf()
    } else {
        anyhow::ensure!(
            !path.starts_with('/'),
            "absolute paths do not resolve on GitHub; use a relative one"
        );
        normalise(&file.parent().unwrap_or(Path::new("")).join(path))?
    };
    anyhow::ensure!(root.join(&linked).exists(), "{} does not exist", linked.display());
    let Some(anchor) = anchor else { return Ok(()) };
    anyhow::ensure!(
        linked.extension().is_some_and(|e| e == "md"),
        "an anchor into a file that is not Markdown"
    );
    if !anchors.contains_key(&linked) {
        let text = std::fs::read_to_string(root.join(&linked))?;
        anchors.insert(linked.clone(), heading_slugs(&text));
    }
    let known = &anchors[&linked];
    anyhow::ensure!(
        known.iter().any(|a| a == anchor),
        "no heading of {} has the anchor #{anchor}",
        linked.display()
    );
    Ok(())
}

/// `a/b/../c` as `a/c`, refusing a path that leaves the repository.
fn normalise(path: &Path) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => anyhow::ensure!(out.pop(), "leaves the repository"),
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The targets of the inline links and images of `text` outside code blocks and code spans, with their lines.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            // A title ("...") after the target is not part of it.
            let target = after[..end].split_whitespace().next().unwrap_or("");
            found.push((i + 1, target.to_owned()));
            rest = &after[end..];
        }
    }
    found
}

fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join("")
}

/// The anchors GitHub gives the headings of `text`: the heading's text lower-cased, code spans and link
/// targets dropped to their text, every character but letters, digits, `-`, `_` and spaces removed, spaces
/// turned into `-`; a repeated slug gets `-1`, `-2`, ….
pub fn heading_slugs(text: &str) -> Vec<String> {
    let mut slugs: Vec<String> = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let Some(heading) = (!in_fence).then(|| atx_heading(line)).flatten() else { continue };
        let base = slug(heading);
        let n = counts.entry(base.clone()).or_default();
        slugs.push(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    slugs
}

fn atx_heading(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    ((1..=6).contains(&hashes) && line[hashes..].starts_with(' ')).then(|| line[hashes..].trim())
}

fn slug(heading: &str) -> String {
    // [text](target) → text
    let mut text = String::new();
    let mut rest = heading;
    while let Some(at) = rest.find("](") {
        text.push_str(&rest[..at]);
        rest = rest[at + 2..].split_once(')').map_or("", |(_, r)| r);
    }
    text.push_str(rest);
    text.chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_githubs_rules() {
        let text =
            "# Security: who the broker sees\n## What the proxy does, and refuses\n## Feature → tests\n\
                    ```\n# not a heading\n```\n## `kaas-proxy` [docs](x.md)\n## Soak\n## Soak\n#no\n";
        assert_eq!(
            heading_slugs(text),
            [
                "security-who-the-broker-sees",
                "what-the-proxy-does-and-refuses",
                "feature--tests",
                "kaas-proxy-docs",
                "soak",
                "soak-1"
            ]
        );
    }

    #[test]
    fn the_readme_and_docs_have_no_broken_link() -> anyhow::Result<()> {
        let problems = broken_links(&crate::repo_root())?;
        anyhow::ensure!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
        Ok(())
    }

    #[test]
    fn broken_targets_anchors_and_urls_are_each_reported() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join("docs/use"))?;
        std::fs::write(root.path().join("docs/use/a.md"), "# A title\n[up](../../README.md#front-door)\n")?;
        let readme =
            "# Front door\n[ok](docs/use/a.md#a-title) [gone](docs/b.md) [anchor](docs/use/a.md#nope)\n\
                      [url](https://) [scheme](ftp://x.org/f) [abs](/docs/use/a.md) [out](../x.md)\n";
        std::fs::write(root.path().join("README.md"), readme)?;
        let problems = broken_links(root.path())?;
        let targets: Vec<&str> =
            problems.iter().filter_map(|p| p.split_once(" (")?.1.split_once(')')).map(|(t, _)| t).collect();
        assert_eq!(
            targets,
            ["docs/b.md", "docs/use/a.md#nope", "https://", "ftp://x.org/f", "/docs/use/a.md", "../x.md"],
            "{problems:#?}"
        );
        Ok(())
    }

    #[test]
    fn links_outside_code_with_their_lines() {
        let text =
            "see [a](a.md#x) and ![b](b.svg \"t\")\n`[c](c.md)`\n```\n[d](d.md)\n```\n[e](https://e.org)\n";
        assert_eq!(links(text), [(1, "a.md#x".into()), (1, "b.svg".into()), (6, "https://e.org".into())]);
    }
}
