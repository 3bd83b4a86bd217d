//! The documentation's kaas-proxy configurations load through the proxy's own loader (`config::from_yaml`, what
//! `kaas-proxy --check` runs), so an example cannot drift from the schema: an unknown or misspelt key, a wrong
//! type, a bad address or a missing required key fails here.
//!
//! A block is marked ```` ```yaml kaas-proxy-config ```` (a whole file) or ```` ```yaml kaas-proxy-config
//! partial ```` (a fragment: parsed as YAML, then skipped by name). The files an example names (certificates,
//! keys, CAs, CRLs, the tenants file) are made for it in a temporary folder, each of the kind its key needs, so
//! the loader checks them as it would an operator's. A YAML block that looks like a configuration but carries no
//! marker fails, so an example cannot escape the check by being left unmarked.

use std::path::Path;

use anyhow::Context;
use kaas_testsupport::certs::{crl, new_ca, new_clients_ca, server_certificate};
use kaas_testsupport::docs::{check_examples, every_lookalike_is_marked, Block};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, GeneralSubtree, IsCa, Issuer, KeyPair,
    NameConstraints,
};
use serde_norway::Value;

const MARKER: &str = "kaas-proxy-config";

#[test]
fn every_configuration_example_loads_through_the_configuration_loader() -> anyhow::Result<()> {
    check_examples(&kaas_testsupport::repo_root(), MARKER, load)
}

#[test]
fn every_yaml_block_that_looks_like_a_configuration_is_marked() -> anyhow::Result<()> {
    every_lookalike_is_marked(&kaas_testsupport::repo_root(), MARKER, |block| {
        // A kaas-proxy file is a mapping with one of its top-level keys and no `kind`.
        let Ok(Value::Mapping(doc)) = serde_norway::from_str::<Value>(&block.text) else { return false };
        let keys = ["listen", "domain", "tenants_file", "acme", "tenants"];
        !doc.contains_key("kind") && keys.iter().any(|k| doc.contains_key(*k))
    })
}

/// Loads one example in a folder holding the files it names.
fn load(block: &Block) -> anyhow::Result<()> {
    let doc: Value = serde_norway::from_str(&block.text).context("not YAML")?;
    let dir = tempfile::tempdir()?;
    write_material(&doc, dir.path()).context("making the files it names")?;
    kaas_proxy::config::from_yaml(&block.text, dir.path()).map(drop).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.key, e.message)).collect();
        anyhow::anyhow!("{}", lines.join("; "))
    })
}

/// Writes every file `doc` names under `dir`, each as the key naming it needs: certificate and key pairs for
/// the names they serve, a clients CA per tenant (its certificate, key, CRL and a name-constrained intermediate),
/// the brokers' CA, an empty tenants file, the ACME trust root, EAB key and store folder.
fn write_material(doc: &Value, dir: &Path) -> anyhow::Result<()> {
    let domain = doc.get("domain").and_then(Value::as_str).unwrap_or("kaas.localhost");
    let (_, server_ca) = new_ca("docs server CA")?;
    if let Some(tls) = doc.get("tls") {
        write_pair(dir, tls, &[format!("*.{domain}")], &server_ca)?;
    }
    for tenant in doc.get("tenants").and_then(Value::as_sequence).into_iter().flatten() {
        let name = tenant.get("name").and_then(Value::as_str).context("a tenant without a name")?;
        if let Some(tls) = tenant.get("tls").filter(|t| t.get("cert").is_some()) {
            write_pair(dir, tls, &[format!("{name}.{domain}"), format!("*.{name}.{domain}")], &server_ca)?;
        }
        let clients = ClientsCa::new(name)?;
        write(dir, tenant, "client_ca", &clients.cert)?;
        write(dir, tenant, "client_crl", &clients.crl()?)?;
        let Some(upstream) = tenant.get("upstream") else { continue };
        if let Some(tls) = upstream.get("tls") {
            write(dir, tls, "ca", &new_ca("docs cluster CA")?.0)?;
        }
        write(dir, upstream, "clients_ca_key", &clients.key)?;
        if let Some(intermediate) = upstream.get("clients_ca_intermediate") {
            let (cert, key) = clients.intermediate()?;
            write(dir, intermediate, "cert", &cert)?;
            write(dir, intermediate, "key", &key)?;
        }
        if upstream.get("cert").is_some() {
            write_pair(dir, upstream, &[format!("proxy.{name}")], &server_ca)?;
        }
    }
    write(dir, doc, "tenants_file", "[]\n")?;
    if let Some(acme) = doc.get("acme") {
        write(dir, acme, "trust_roots", &new_ca("docs ACME root")?.0)?;
        if let Some(eab) = acme.get("eab") {
            write(dir, eab, "hmac_key_file", "ZG9jcy1lYWIta2V5\n")?;
        }
        if let Some(store) = acme.get("store").and_then(|s| s.get("dir")).and_then(Value::as_str) {
            std::fs::create_dir_all(dir.join(store))?;
        }
    }
    Ok(())
}

/// A certificate for `names` and its key, at the paths `at.cert` and `at.key`.
fn write_pair(dir: &Path, at: &Value, names: &[String], ca: &Issuer<'static, KeyPair>) -> anyhow::Result<()> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (cert, key) = server_certificate(ca, &names)?;
    write(dir, at, "cert", &cert)?;
    write(dir, at, "key", &key)
}

/// Writes `text` at the path `at.key` names, when it names one.
fn write(dir: &Path, at: &Value, key: &str, text: &str) -> anyhow::Result<()> {
    let Some(path) = at.get(key).and_then(Value::as_str) else { return Ok(()) };
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().context("a file in a folder")?)?;
    std::fs::write(&path, text).with_context(|| path.display().to_string())
}

/// A tenant's clients CA, shaped as Strimzi's (`pathlen:0`, signs certificates and CRLs).
struct ClientsCa {
    cert: String,
    key: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClientsCa {
    fn new(tenant: &str) -> anyhow::Result<ClientsCa> {
        let (cert, issuer) = new_clients_ca(&format!("{tenant} clients CA"))?;
        Ok(ClientsCa { cert, key: issuer.key().serialize_pem(), issuer })
    }

    /// An empty CRL of this CA, PEM.
    fn crl(&self) -> anyhow::Result<String> {
        crl(&self.issuer, 1, &[])
    }

    /// The intermediate the proxy accepts: signed by this CA, `pathlen:0`, `O=io.strimzi` excluded, two days.
    fn intermediate(&self) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name = dn(DnType::CommonName, "kaas-proxy intermediate");
        let strimzi = GeneralSubtree::DirectoryName(dn(DnType::OrganizationName, "io.strimzi"));
        params.name_constraints =
            Some(NameConstraints { permitted_subtrees: vec![], excluded_subtrees: vec![strimzi] });
        (params.not_before, params.not_after) =
            (now - time::Duration::minutes(5), now + time::Duration::days(2));
        Ok((params.signed_by(&key, &self.issuer)?.pem(), key.serialize_pem()))
    }
}

fn dn(kind: DnType, value: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(kind, value);
    dn
}

/// The key reference in docs/operate/configuration.md is rendered from the configuration's types (`Config`,
/// the route type shared with kaas-controller, the ACME section): their doc comments, defaults and types, so it
/// cannot drift from them. `UPDATE_DOCS=1` rewrites it.
#[test]
fn the_configuration_reference_is_the_types() -> anyhow::Result<()> {
    let mut schema = serde_json::to_value(schemars::schema_for!(kaas_proxy::config::Config))?;
    // The limits are optional in the file; their defaults and ranges are the loader's table.
    for (key, default, range) in kaas_proxy::config::limits() {
        let field = schema["properties"][key].as_object_mut().with_context(|| format!("no key {key}"))?;
        field.insert("default".into(), default.into());
        field.insert("minimum".into(), (*range.start()).into());
        field.insert("maximum".into(), (*range.end()).into());
    }
    let text = kaas_testsupport::docs::reference::table(&schema, &schema, "");
    let root = kaas_testsupport::repo_root();
    kaas_testsupport::docs::generated_section(
        &root,
        "docs/operate/configuration.md",
        "config-reference",
        &text,
    )
}
