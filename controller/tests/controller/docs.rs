//! The documentation's `KafkaTenant` examples are tenants the controller takes: each is read into the CRD's own
//! type (which refuses unknown fields), validated against the CRD's generated OpenAPI schema (what the API
//! server checks, short of its CEL rules), and planned by `render::plan` (the schema's rules in Rust, the
//! version pair and the sizing), so an example cannot drift from the CRD.
//!
//! A block is marked ```` ```yaml kafkatenant ````; a YAML block of `kind: KafkaTenant` without the marker fails,
//! so an example cannot escape the check by being left unmarked.

use anyhow::Context;
use kaas_controller::crd::KafkaTenant;
use kaas_controller::render::{plan, Platform};
use kaas_testsupport::docs::{check_examples, every_lookalike_is_marked, Block};
use kube::CustomResourceExt;

const MARKER: &str = "kafkatenant";

#[test]
fn every_kafkatenant_example_is_a_tenant_the_crd_and_the_controller_accept() -> anyhow::Result<()> {
    let crd = serde_json::to_value(KafkaTenant::crd())?;
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let validator = jsonschema::validator_for(schema).context("the CRD's schema compiles")?;
    check_examples(&kaas_testsupport::repo_root(), MARKER, |block| check(block, &validator))
}

fn check(block: &Block, validator: &jsonschema::Validator) -> anyhow::Result<()> {
    let tenant: KafkaTenant = serde_norway::from_str(&block.text).context("the KafkaTenant type")?;
    let json: serde_json::Value = serde_norway::from_str(&block.text)?;
    let errors: Vec<String> =
        validator.iter_errors(&json).map(|e| format!("{}: {e}", e.instance_path())).collect();
    anyhow::ensure!(errors.is_empty(), "the CRD's schema: {}", errors.join("; "));
    plan(&tenant, &Platform::default()).map_err(|e| anyhow::anyhow!("render::plan: {e}"))?;
    Ok(())
}

#[test]
fn every_yaml_block_of_a_kafkatenant_is_marked() -> anyhow::Result<()> {
    every_lookalike_is_marked(&kaas_testsupport::repo_root(), MARKER, |block| {
        block.text.lines().any(|l| l.trim() == "kind: KafkaTenant")
    })
}

/// The field reference in docs/controller/tenant.md is rendered from the CRD the controller generates (its
/// types' doc comments, bounds, defaults and CEL rules), so it cannot drift: `UPDATE_DOCS=1` rewrites it.
#[test]
fn the_kafkatenant_reference_is_the_crds() -> anyhow::Result<()> {
    let crd = serde_json::to_value(KafkaTenant::crd())?;
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    anyhow::ensure!(spec.is_object(), "the CRD has no spec schema");
    let mut rows = vec![
        "| field | type | required, default | bounds | what it is |".to_owned(),
        "| --- | --- | --- | --- | --- |".to_owned(),
    ];
    let mut rules = Vec::new();
    reference(spec, "spec", &mut rows, &mut rules);
    let mut text = rows.join("\n");
    text.push_str("\n\nRules across fields, checked by the API server (CEL) and by the controller:\n\n");
    text.push_str(&rules.join("\n"));
    kaas_testsupport::docs::generated_section(
        &kaas_testsupport::repo_root(),
        "docs/controller/tenant.md",
        "crd-reference",
        &text,
    )
}

/// Appends a row for every property below `node` (at `path`), and each CEL rule's message to `rules`.
fn reference(node: &serde_json::Value, path: &str, rows: &mut Vec<String>, rules: &mut Vec<String>) {
    for rule in node["x-kubernetes-validations"].as_array().into_iter().flatten() {
        let message = rule["message"].as_str().or(rule["rule"].as_str()).unwrap_or_default();
        rules.push(format!("- `{path}`: {}", cell(message)));
    }
    let required: Vec<&str> =
        node["required"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
    for (name, field) in node["properties"].as_object().into_iter().flatten() {
        let at = format!("{path}.{name}");
        let items = &field["items"];
        let kind = match field["type"].as_str().unwrap_or("any") {
            "array" => format!("list of {}", items["type"].as_str().unwrap_or("any")),
            "object" if field["additionalProperties"].is_object() => "map of string".to_owned(),
            other => other.to_owned(),
        };
        let enums = field["enum"].as_array().or(items["enum"].as_array());
        let kind = match enums {
            Some(values) => {
                let values: Vec<String> =
                    values.iter().map(|v| format!("`{}`", v.as_str().unwrap_or("?"))).collect();
                format!("{kind}: {}", values.join(", "))
            }
            None => kind,
        };
        let need = match (required.contains(&name.as_str()), field.get("default")) {
            (true, _) => "required".to_owned(),
            (false, Some(d)) => format!("default `{d}`"),
            (false, None) => "optional".to_owned(),
        };
        let description = field["description"].as_str().unwrap_or_default();
        rows.push(format!(
            "| `{at}` | {} | {need} | {} | {} |",
            cell(&kind),
            bounds(field),
            cell(description)
        ));
        if field["properties"].is_object() {
            reference(field, &at, rows, rules);
        } else if items["properties"].is_object() {
            reference(items, &format!("{at}[]"), rows, rules);
        }
    }
}

/// A property's bounds: range, lengths, item counts, pattern.
fn bounds(field: &serde_json::Value) -> String {
    let n = |key: &str| field[key].as_f64().map(|v| v.to_string());
    let mut out = Vec::new();
    match (n("minimum"), n("maximum")) {
        (Some(lo), Some(hi)) => out.push(format!("{lo}..={hi}")),
        (Some(lo), None) => out.push(format!("≥ {lo}")),
        (None, Some(hi)) => out.push(format!("≤ {hi}")),
        (None, None) => {}
    }
    for (key, what) in [
        ("minLength", "≥ {} chars"),
        ("maxLength", "≤ {} chars"),
        ("minItems", "≥ {} items"),
        ("maxItems", "≤ {} items"),
        ("maxProperties", "≤ {} keys"),
    ] {
        if let Some(v) = n(key) {
            out.push(what.replace("{}", &v));
        }
    }
    if let Some(p) = field["pattern"].as_str() {
        out.push(format!("`{}`", p.replace('|', "\\|")));
    }
    out.join(", ")
}

/// Text fit for one table cell.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}
