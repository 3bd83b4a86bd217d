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
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    anyhow::ensure!(schema["properties"]["spec"].is_object(), "the CRD has no spec schema");
    let text = kaas_testsupport::docs::reference::table(schema, &schema["properties"]["spec"], "spec");
    let root = kaas_testsupport::repo_root();
    kaas_testsupport::docs::generated_section(&root, "docs/controller/tenant.md", "crd-reference", &text)
}

/// The topic settings a tenant may change, in docs/controller/tenant.md, are the controller's table
/// (`crd/topic_config.rs`): `UPDATE_DOCS=1` rewrites them.
#[test]
fn the_topic_settings_reference_is_the_controllers_table() -> anyhow::Result<()> {
    use kaas_controller::crd::topic_config::{REFUSED, SETTINGS};
    let mut text = String::from("| setting | values |\n|---|---|\n");
    for s in SETTINGS {
        text.push_str(&format!("| `{}` | {} |\n", s.key, s.values.describe()));
    }
    text.push_str("\nRefused with their reason (any other key is refused too):\n\n");
    for (key, why) in REFUSED {
        text.push_str(&format!("- `{key}`: {why}\n"));
    }
    let root = kaas_testsupport::repo_root();
    kaas_testsupport::docs::generated_section(&root, "docs/controller/tenant.md", "topic-settings", &text)
}
