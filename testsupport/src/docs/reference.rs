//! A field reference rendered from a schema, as a Markdown table: the Kubernetes CRD's OpenAPI v3 schema (the
//! KafkaTenant) or a JSON Schema schemars derives from a type (the proxy's configuration), so the reference is
//! the types' own doc comments, defaults and bounds and cannot drift from them.

use serde_json::Value;

/// The table of every property below `node` (`root` holds the `$defs` its `$ref`s name), paths starting at
/// `path` (empty for top-level keys), and the messages of the CEL rules (`x-kubernetes-validations`) met on
/// the way, as a Markdown list after it.
pub fn table(root: &Value, node: &Value, path: &str) -> String {
    let mut out = Reference { root, rows: Vec::new(), rules: Vec::new() };
    out.rows.push("| key | type | required, default | bounds | what it is |".to_owned());
    out.rows.push("| --- | --- | --- | --- | --- |".to_owned());
    out.properties(node, path);
    let mut text = out.rows.join("\n");
    if !out.rules.is_empty() {
        text.push_str("\n\nRules across fields, checked by the API server (CEL) and by the controller:\n\n");
        text.push_str(&out.rules.join("\n"));
    }
    text
}

struct Reference<'a> {
    root: &'a Value,
    rows: Vec<String>,
    rules: Vec<String>,
}

impl<'a> Reference<'a> {
    fn properties(&mut self, node: &Value, path: &str) {
        let node = self.resolve(node).0;
        for rule in node["x-kubernetes-validations"].as_array().into_iter().flatten() {
            let message = rule["message"].as_str().or(rule["rule"].as_str()).unwrap_or_default();
            self.rules.push(format!("- `{path}`: {}", cell(message)));
        }
        let required: Vec<&str> =
            node["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (name, field) in node["properties"].as_object().into_iter().flatten() {
            let at = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            let (target, _) = self.resolve(field);
            let (items, _) = self.resolve(&target["items"]);
            let kind = match type_name(target) {
                "array" => format!("list of {}", self.kind(items)),
                _ => self.kind(target),
            };
            let need =
                match (required.contains(&name.as_str()), field.get("default").or(target.get("default"))) {
                    (true, _) => "required".to_owned(),
                    (false, Some(d)) if !d.is_null() => format!("default `{d}`"),
                    _ => "optional".to_owned(),
                };
            let description =
                field["description"].as_str().or(target["description"].as_str()).unwrap_or_default();
            self.rows.push(format!(
                "| `{at}` | {} | {need} | {} | {} |",
                cell(&kind),
                bounds(target),
                cell(description)
            ));
            if target["properties"].is_object() {
                self.properties(target, &at);
            } else if items["properties"].is_object() {
                self.properties(items, &format!("{at}[]"));
            }
        }
    }

    /// `node` with its `$ref` followed and an `anyOf`/`oneOf` with `null` (an `Option`) unwrapped; and whether
    /// it may be null.
    fn resolve<'v>(&self, node: &'v Value) -> (&'v Value, bool)
    where
        'a: 'v,
    {
        if let Some(name) = node["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
            return (&self.root["$defs"][name], false);
        }
        for key in ["anyOf", "oneOf"] {
            let Some(options) = node[key].as_array() else { continue };
            let real: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
            if real.len() == 1 && options.len() == 2 {
                return (self.resolve(real[0]).0, true);
            }
        }
        (node, node["nullable"] == true)
    }

    /// A property's type, with its values when it is an enumeration.
    fn kind(&self, node: &Value) -> String {
        let mut values: Vec<String> = node["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|v| format!("`{v}`"))
            .collect();
        for option in node["oneOf"].as_array().into_iter().flatten() {
            let option = self.resolve(option).0;
            let value = option["const"].as_str().or(option["enum"][0].as_str());
            values.extend(value.map(|v| format!("`{v}`")));
        }
        let name = match type_name(node) {
            "object" if node["additionalProperties"].is_object() => "map of string",
            "" if !values.is_empty() => "string",
            "" => "any",
            other => other,
        };
        if values.is_empty() {
            name.to_owned()
        } else {
            format!("{name}: {}", values.join(", "))
        }
    }
}

/// The `type` of a node, the non-null one of a list (`["string", "null"]`).
fn type_name(node: &Value) -> &str {
    match &node["type"] {
        Value::String(t) => t,
        Value::Array(types) => types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or(""),
        _ => "",
    }
}

/// A property's bounds: range (an unsigned type's 0 left out), lengths, item counts, pattern.
fn bounds(field: &Value) -> String {
    let n = |key: &str| field[key].as_f64().map(|v| v.to_string());
    let unsigned = field["format"].as_str().is_some_and(|f| f.starts_with("uint"));
    let min = n("minimum").filter(|m| !(unsigned && m == "0"));
    let mut out = Vec::new();
    match (min, n("maximum")) {
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

/// Text fit for one table cell; rustdoc's intra-doc links (`` [`name`] ``) become plain code.
fn cell(text: &str) -> String {
    let text = text.replace("[`", "`").replace("`]", "`");
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}
