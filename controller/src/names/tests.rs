//! Naming tests, by tables: tenant ids and topic object names stay Kubernetes names, distinct and stable.

use super::*;

/// A DNS-1123 subdomain: what Kubernetes takes as an object's name.
pub(crate) fn is_kubernetes_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        })
}

#[test]
fn tenant_ids_keep_namespaces_apart_and_stay_dns_labels() {
    let long = "n".repeat(63);
    let table = [
        ("a", "acme", "a-acme"),
        ("tenants", "acme", "tenants-acme"),
        // Exactly the limit: kept as it is.
        (&long[..24], &long[..24], &format!("{}-{}", &long[..24], &long[..24])[..]),
    ];
    for (ns, name, want) in table {
        assert_eq!(tenant_id(ns, name), want, "{ns}/{name}");
    }
    let ids: Vec<String> =
        [(&long[..], "acme"), (&long[..], "acmf"), ("acme", &long[..]), (&long[..], &long[..])]
            .iter()
            .map(|(ns, name)| tenant_id(ns, name))
            .collect();
    for id in &ids {
        assert!(id.len() <= MAX_TENANT_ID, "{id}");
        kaas_route::check_dns_label(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        kaas_route::check_dns_label(&format!("{id}-control-plane")).expect("longest derived name");
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    assert_eq!(tenant_id(&long, "acme"), tenant_id(&long, "acme"), "stable");
    // A namespace ending where the cut falls leaves no double hyphen behind.
    let cut = format!("{}-", "n".repeat(MAX_TENANT_ID - 12));
    assert!(!tenant_id(&cut, &long).contains("--"), "{}", tenant_id(&cut, &long));
}

#[test]
fn topic_object_names_are_kubernetes_names_and_never_shared() {
    let long = "x".repeat(249);
    let long_upper = "X".repeat(249);
    let names = [
        "orders",
        "orders.audit",
        "Orders",
        "orders_",
        "orders-",
        "a_b",
        "a-b",
        "_",
        "-",
        ".hidden",
        "a..b",
        &long[..],
        &long_upper[..],
    ];
    let objects: Vec<String> = names.iter().map(|n| topic_resource_name(n)).collect();
    for (name, object) in names.iter().zip(&objects) {
        assert!(is_kubernetes_name(object), "{name:?} → {object:?}");
        if is_kubernetes_name(name) {
            assert_eq!(object, name, "a Kubernetes name is kept");
        }
        assert_eq!(&topic_resource_name(name), object, "stable");
    }
    let distinct: std::collections::BTreeSet<_> = objects.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{objects:?}");
}
