//! The proxy's modules depend one way: this test reads every `crate::<module>` reference in `src/` (test-only
//! files and the `testkit` feature aside) and fails on a cycle, naming it. `cargo test -p kaas-proxy --test
//! module_graph -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Files compiled only for tests, and test support: they may reach anywhere.
const TEST_ONLY: &[&str] = &["tests.rs", "differential.rs", "testkit.rs"];

fn collect(dir: &Path, root: &Path, graph: &mut BTreeMap<String, BTreeSet<String>>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, root, graph);
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !name.ends_with(".rs") || TEST_ONLY.contains(&name) {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under src");
        let first = relative.components().next().expect("a component").as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable source");
        let uses = graph.entry(module.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for part in line.split("crate::").skip(1) {
                let target: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !target.is_empty() && target != module {
                    uses.insert(target);
                }
            }
        }
    }
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

#[test]
fn modules_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    collect(&src, &src, &mut graph);
    for (module, uses) in &graph {
        println!("{module} -> {}", uses.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    assert!(graph.len() > 8, "found only {} modules", graph.len());
    assert_eq!(cycle(&graph), None, "modules depend on each other in a loop");
    // The loop this test was written after: config → tls → router → config.
    let mut looped = graph.clone();
    looped.entry("tls".into()).or_default().insert("router".into());
    looped.entry("router".into()).or_default().insert("config".into());
    assert!(cycle(&looped).is_some(), "the cycle check finds a planted loop");
}
