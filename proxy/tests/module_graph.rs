//! The house's shape, checked: in every crate of the workspace (proxy, controller, route, lease) modules depend
//! one way, and no production file is over 500 lines.
//!
//! A module's dependencies are read from its source: every `crate::…`, `super::…` and `self::…` path outside
//! comments, brace groups included (`use super::{a, b::C}`), resolved to the deepest module it names. At every
//! level of the module tree the children of one parent must not form a circle (`acme/store.rs` naming
//! `acme/kube_store.rs` and back was one). A child naming its parent (`super::Error`) is not an arrow between
//! siblings. Tests (`tests.rs` files, the oracle test `differential.rs`, and what follows a file's
//! `#[cfg(test)]`) may reach anywhere; test support that production-shaped modules share (`kafka::testkit`)
//! counts like any module, so it must sit beside what it serves, not above it. For the proxy's top level the
//! floors are declared below, in the order a frame travels, and an arrow may only point down or across a floor.
//!
//! `cargo test -p kaas-proxy --test module_graph -- --nocapture` prints each crate's graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The proxy's top-level modules, from the top floor down: a module may use only modules on its own floor or
/// below (and its own floor only without a circle).
const PROXY_FLOORS: &[&[&str]] = &[
    &["reload"],
    &["server"],
    &["listener"],
    &["routes"],
    &["acme"],
    &["admin", "session", "upstream"],
    &["metrics", "usage", "audit"],
    &["tenants", "tls", "kafka", "error", "sink"],
    &["config"],
];

/// Production files may hold at most this many lines above their first `#[cfg(test)]`.
const MAX_PRODUCTION_LINES: usize = 500;

/// A module path below the crate root: `[]` is `lib.rs`/`main.rs`, `["acme", "store"]` is `acme/store/mod.rs`
/// or `acme/store.rs`.
type Module = Vec<String>;

#[derive(Debug)]
struct SourceFile {
    path: PathBuf,
    module: Module,
    text: String,
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<SourceFile>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under src");
        let mut module: Module =
            relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let file = module.pop().expect("a file name");
        match file.as_str() {
            "lib.rs" | "main.rs" if module.is_empty() => {}
            "mod.rs" => {}
            _ => module.push(file.trim_end_matches(".rs").to_owned()),
        }
        let text = std::fs::read_to_string(&path).expect("readable source");
        out.push(SourceFile { path, module, text });
    }
}

/// The paths a line names: `crate::a::b`, `super::x`, `self::y`, with brace groups expanded, each as its
/// segments with the leading keyword.
fn paths_in(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = line.as_bytes();
    let mut at = 0;
    while at < line.len() {
        let rest = &line[at..];
        let starts = ["crate::", "super::", "self::"].iter().find(|k| rest.starts_with(**k));
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        match starts {
            Some(keyword) if boundary => {
                let (mut paths, used) = parse_path(rest);
                for p in &mut paths {
                    p.insert(0, keyword.trim_end_matches("::").to_owned());
                }
                found.extend(paths);
                at += used.max(keyword.len());
            }
            _ => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// Parses `kw::a::b::{c, d::e}` from the start of `s` (the keyword is skipped): the expanded paths without the
/// keyword, and how many bytes were read.
fn parse_path(s: &str) -> (Vec<Vec<String>>, usize) {
    let mut i = s.find("::").map_or(s.len(), |p| p + 2);
    let mut prefix = Vec::new();
    let mut paths = Vec::new();
    loop {
        let rest = &s[i..];
        if let Some(inner) = rest.strip_prefix('{') {
            // A group: split at top-level commas up to the matching brace.
            let (mut depth, mut start, mut j) = (0usize, 0usize, 0usize);
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        j = k;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        paths.extend(group_item(&inner[start..k], &prefix));
                        start = k + 1;
                    }
                    _ => {}
                }
                j = k + c.len_utf8();
            }
            paths.extend(group_item(&inner[start..j.min(inner.len())], &prefix));
            return (paths, i + 1 + j + 1);
        }
        let ident: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if ident.is_empty() {
            break;
        }
        i += ident.len();
        prefix.push(ident);
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    paths.push(prefix);
    (paths, i)
}

fn group_item(item: &str, prefix: &[String]) -> Vec<Vec<String>> {
    let item = item.trim();
    if item.is_empty() {
        return Vec::new();
    }
    let (paths, _) = parse_path(&format!("x::{item}"));
    paths.into_iter().map(|p| prefix.iter().cloned().chain(p).collect()).collect()
}

/// The module a path resolves to from `from`: the deepest known module its segments name.
fn resolve(path: &[String], from: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut segments = path.iter().peekable();
    let mut base: Module = match segments.next()?.as_str() {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    while segments.peek().is_some_and(|s| *s == "super") {
        segments.next();
        base.pop();
    }
    for segment in segments {
        let mut next = base.clone();
        next.push(segment.clone());
        if !modules.contains(&next) {
            break;
        }
        base = next;
    }
    Some(base)
}

/// For each parent module, the arrows between its children: `parent → (child → children it uses)`.
type Graph = BTreeMap<Module, BTreeMap<String, BTreeSet<String>>>;

/// Files of tests only: they may use anything.
const TEST_FILES: &[&str] = &["tests.rs", "differential.rs"];

fn graph_of(files: &[SourceFile]) -> Graph {
    let modules: BTreeSet<Module> = files.iter().map(|f| f.module.clone()).collect();
    let mut graph = Graph::new();
    for file in files {
        let file_name = file.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if TEST_FILES.contains(&file_name) {
            continue;
        }
        // Lines after an inline `mod name {` are one module deeper (`super::` there is the file's module).
        let mut inline: Option<Module> = None;
        for line in file.text.lines() {
            let trimmed = line.trim_start();
            if trimmed == "#[cfg(test)]" {
                break;
            }
            if let Some(name) = trimmed.strip_prefix("mod ").and_then(|r| r.strip_suffix(" {")) {
                inline = Some(file.module.iter().cloned().chain([name.to_owned()]).collect());
                continue;
            }
            if trimmed.starts_with("//") {
                continue;
            }
            let from = inline.as_ref().unwrap_or(&file.module);
            for path in paths_in(line) {
                let Some(to) = resolve(&path, from, &modules) else { continue };
                let from = &file.module;
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                // Within one module, or between a module and its own ancestors or descendants: no sibling arrow.
                if common == from.len() || common == to.len() {
                    continue;
                }
                let parent = from[..common].to_vec();
                graph
                    .entry(parent)
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .insert(to[common].clone());
            }
        }
    }
    graph
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

fn crate_files(name: &str) -> Vec<SourceFile> {
    let src = workspace().join(name).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    files
}

const CRATES: &[&str] = &["proxy", "controller", "route", "lease"];

/// Every circle among siblings, named by crate and parent module.
fn circles(name: &str, graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (parent, children) in graph {
        println!("{name}::{}", parent.join("::"));
        for (child, uses) in children {
            println!("  {child} -> {}", uses.iter().cloned().collect::<Vec<_>>().join(", "));
        }
        if let Some(c) = cycle(children) {
            found.push(format!("{name}::{}: {}", parent.join("::"), c.join(" -> ")));
        }
    }
    found
}

#[test]
fn modules_depend_one_way_in_every_crate() {
    let mut found = Vec::new();
    for name in CRATES {
        let files = crate_files(name);
        assert!(!files.is_empty(), "{name} has sources");
        found.extend(circles(name, &graph_of(&files)));
    }
    assert!(found.is_empty(), "modules depend on each other in a loop:\n{}", found.join("\n"));
}

#[test]
fn the_proxy_depends_downwards_floor_by_floor() {
    let graph = graph_of(&crate_files("proxy"));
    let top = graph.get(&Vec::new()).cloned().unwrap_or_default();
    let floor_of = |m: &str| PROXY_FLOORS.iter().position(|f| f.contains(&m));
    let mut wrong = Vec::new();
    for (module, uses) in &top {
        let Some(from) = floor_of(module) else {
            wrong.push(format!("{module} is on no floor: add it to PROXY_FLOORS"));
            continue;
        };
        for used in uses {
            match floor_of(used) {
                None => {
                    wrong.push(format!("{used} (used by {module}) is on no floor: add it to PROXY_FLOORS"))
                }
                Some(to) if to < from => wrong.push(format!("{module} -> {used} points up")),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_production_file_is_over_500_lines() {
    let mut long = Vec::new();
    for name in CRATES {
        for file in crate_files(name) {
            let file_name = file.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if TEST_FILES.contains(&file_name) || file_name == "testkit.rs" {
                continue;
            }
            let lines = file.text.lines().take_while(|l| l.trim() != "#[cfg(test)]").count();
            if lines > MAX_PRODUCTION_LINES {
                long.push(format!("{}: {lines} lines", file.path.display()));
            }
        }
    }
    assert!(long.is_empty(), "production files over {MAX_PRODUCTION_LINES} lines:\n{}", long.join("\n"));
}

#[test]
fn the_checks_see_what_they_are_for() {
    // Brace groups, `super` chains and inline test modules resolve to modules.
    let modules: BTreeSet<Module> = [
        vec![],
        vec!["a".into()],
        vec!["a".into(), "b".into()],
        vec!["a".into(), "c".into()],
        vec!["d".into()],
    ]
    .into_iter()
    .collect();
    let from: Module = vec!["a".into(), "b".into()];
    let resolved: Vec<_> = paths_in("use super::{c::X, super::d::{Y, Z}}; let _ = crate::a::b::f();")
        .iter()
        .filter_map(|p| resolve(p, &from, &modules))
        .collect();
    let expect: Vec<Module> =
        vec![vec!["a".into(), "c".into()], vec!["d".into()], vec!["d".into()], vec!["a".into(), "b".into()]];
    assert_eq!(resolved, expect);
    // The circle this test was extended after: two sibling files naming each other through `super::`.
    let planted = [
        ("acme/store.rs", vec!["acme", "store"], "use super::kube_store::KubeStore;"),
        ("acme/kube_store.rs", vec!["acme", "kube_store"], "use super::store::StoreError;"),
        ("acme/mod.rs", vec!["acme"], "pub mod store;"),
    ]
    .map(|(path, module, text)| SourceFile {
        path: path.into(),
        module: module.into_iter().map(String::from).collect(),
        text: text.into(),
    });
    let found = circles("planted", &graph_of(&planted));
    assert_eq!(found, ["planted::acme: kube_store -> store -> kube_store"]);
    // A child naming its parent's items is no circle.
    let child = [
        ("acme/store/kube.rs", vec!["acme", "store", "kube"], "use super::StoreError;"),
        ("acme/store/mod.rs", vec!["acme", "store"], "pub use kube::KubeStore; use self::kube::X;"),
    ]
    .map(|(path, module, text)| SourceFile {
        path: path.into(),
        module: module.into_iter().map(String::from).collect(),
        text: text.into(),
    });
    assert!(circles("child", &graph_of(&child)).is_empty());
}
