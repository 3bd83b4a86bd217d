//! The files a configuration file names ([`watched_files`]): what the reloader watches, and what a tenant's
//! fingerprint hashes ([`route_files`]).

use std::path::{Path, PathBuf};

use kaas_route::TenantRoute;
use serde_norway::Value;

use super::{parse_keys, read_tenants_file, Collector, Missing};

/// Every file a configuration file refers to, itself first, resolved against its folder: the tenants_file and
/// every certificate, key, CA and CRL, inline tenants and those of the tenants_file alike. What the reloader
/// watches, so a rotated certificate (a Secret updated in place) is picked up like a changed route. Read
/// leniently: what does not parse is left out (the reload reports it).
pub fn watched_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_owned()];
    let base = path.parent().unwrap_or(Path::new("."));
    let Some(text) = std::fs::read_to_string(path).ok() else { return files };
    let Some(value) = serde_norway::from_str::<Value>(&text).ok() else { return files };
    let Some(map) = value.as_mapping() else { return files };
    let mut ignored = Collector::default();
    let mut parsed = parse_keys(map, &mut ignored);
    read_tenants_file(&mut parsed, base, Missing::Empty, &mut ignored);
    let mut named: Vec<&Path> = Vec::new();
    named.extend(parsed.tenants_file.as_deref());
    if let Some(tls) = &parsed.tls {
        named.extend([tls.cert.as_path(), tls.key.as_path()]);
    }
    for (_, route) in &parsed.tenants {
        named.extend(route_files(route));
    }
    files.extend(named.into_iter().map(|f| base.join(f)));
    files
}

/// The files one route names.
pub(super) fn route_files(route: &TenantRoute) -> Vec<&Path> {
    let mut files: Vec<&Path> = Vec::new();
    if let Some(tls) = &route.tls {
        files.extend(tls.cert.as_deref());
        files.extend(tls.key.as_deref());
    }
    files.extend(route.client_ca.as_deref());
    files.extend(route.client_crl.as_deref());
    if let Some(up) = &route.upstream {
        files.extend(up.tls.as_ref().map(|t| t.ca.as_path()));
        files.extend([&up.clients_ca_key, &up.cert, &up.key].into_iter().filter_map(|f| f.as_deref()));
        files.extend(up.clients_ca_intermediate.iter().flat_map(|f| [f.cert.as_path(), f.key.as_path()]));
    }
    files
}
