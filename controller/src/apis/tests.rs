//! What discovery's answers mean for each needed kind, and which failed reads are an unserved path, by tables.

use kube::core::Status;
use kube::Resource;

use super::*;
use crate::watched::{Cluster, HelmRelease};

#[test]
fn the_needed_kinds_are_the_ones_the_controller_reads() {
    for (api, group, version, kind) in [
        (CLUSTER, Cluster::group(&()), Cluster::version(&()), Cluster::kind(&())),
        (HELM_RELEASE, HelmRelease::group(&()), HelmRelease::version(&()), HelmRelease::kind(&())),
    ] {
        assert_eq!((api.group, api.version, api.kind), (&*group, &*version, &*kind));
    }
    assert_eq!(CLUSTER.to_string(), "Cluster (cluster.x-k8s.io/v1beta2)");
}

#[test]
fn discovery_says_served_at_another_version_or_not_at_all() {
    let other = |v: &[&str]| Served::OtherVersions(v.iter().map(|s| s.to_string()).collect());
    for (versions, expected) in [
        (vec![("v1beta2", vec!["Cluster", "Machine"]), ("v1beta1", vec!["Cluster"])], Served::Yes),
        (vec![("v1beta1", vec!["Cluster", "Machine"])], other(&["v1beta1"])),
        (vec![("v1alpha4", vec!["Cluster"]), ("v1beta1", vec!["Cluster"])], other(&["v1alpha4", "v1beta1"])),
        // The group is there (ClusterClass alone) but not the kind.
        (vec![("v1beta2", vec!["ClusterClass"])], Served::No),
        (vec![], Served::No),
    ] {
        let got = served_in(&CLUSTER, versions.clone());
        assert_eq!(got, expected, "{versions:?}");
        assert_eq!(got.may_hold_objects(), expected != Served::No, "{versions:?}");
    }
}

#[test]
fn only_a_404_without_not_found_is_an_unserved_path() {
    let api =
        |code: u16, reason: &str| kube::Error::Api(Status::failure("x", reason).with_code(code).boxed());
    for (error, unserved) in [
        // What kube-client makes of the API server's plain-text "404 page not found".
        (api(404, "Failed to parse error data"), true),
        (api(404, "NotFound"), false),
        (api(403, "Forbidden"), false),
        (api(500, "Failed to parse error data"), false),
        (kube::Error::LinesCodecMaxLineLengthExceeded, false),
    ] {
        assert_eq!(unserved_path(&error), unserved, "{error:?}");
    }
}

#[test]
fn the_report_names_each_kind_not_served_and_who_needs_it() {
    let checked = [
        (CLUSTER, Served::No),
        (HELM_RELEASE, Served::Yes),
        (KUSTOMIZATION, Served::OtherVersions(vec!["v1beta2".into()])),
    ];
    let line = report(&checked).expect("two are missing");
    assert_eq!(
        line,
        "the API server does not serve Cluster (cluster.x-k8s.io/v1beta2) (a cluster-mode tenant needs it); \
         install its CRD; the API server does not serve Kustomization (kustomize.toolkit.fluxcd.io/v1), only \
         v1beta2 (every tenant needs it); upgrade its CRD"
    );
    assert_eq!(report(&NEEDED.map(|a| (a, Served::Yes))), None);
}
