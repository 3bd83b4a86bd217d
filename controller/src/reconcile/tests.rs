//! The reconcile loop's pure parts, by tables: retry back-off, id claims, failure counts, condition
//! transitions, deletion protection, the published route.

use std::path::PathBuf;

use kaas_route::{Identity, UpstreamRoute};

use crate::tenant_cluster::TenantClusterError;

use super::status::{now, state_of};
use super::*;
use crate::render::tests::example;

#[test]
fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
    let s = Duration::from_secs;
    for (failures, jitter, expected) in [
        (1, 0.0, s(5) / 2),
        (1, 1.0, s(5)),
        (2, 0.0, s(5)),
        (2, 0.5, s(15) / 2),
        (3, 1.0, s(20)),
        (6, 1.0, s(160)),
        (7, 0.0, s(150)),
        (7, 1.0, s(300)),
        (u32::MAX, 1.0, s(300)),
        (0, 1.0, s(5)),
        (3, 7.0, s(20)),
    ] {
        assert_eq!(retry_delay(failures, jitter), expected, "failure {failures}, jitter {jitter}");
    }
}

#[test]
fn an_id_belongs_to_the_tenant_that_claimed_it_first() {
    let claim = |key: &str, id: &str, created: Option<&str>| Claim {
        key: key.into(),
        id: id.into(),
        created: created.map(Into::into),
    };
    let older = claim("a-b/c", "a-b-c", Some("2026-01-01T00:00:00Z"));
    let newer = claim("a/b-c", "a-b-c", Some("2026-02-01T00:00:00Z"));
    let other = claim("x/y", "x-y", Some("2025-01-01T00:00:00Z"));
    let all = [older.clone(), newer.clone(), other.clone()];
    assert_eq!(id_owner(&newer, &all), Some("a-b/c".into()), "the later one is refused");
    assert_eq!(id_owner(&older, &all), None, "the first keeps it");
    assert_eq!(id_owner(&other, &all), None, "another id is nobody else's");
    // Created in the same second: the smaller key wins, the same answer for both.
    let twin = claim("a/b-c", "a-b-c", Some("2026-01-01T00:00:00Z"));
    assert_eq!(id_owner(&twin, &[older.clone(), twin.clone()]), Some("a-b/c".into()));
    assert_eq!(id_owner(&older, &[older.clone(), twin.clone()]), None);
    // Not stored yet (the CLI): anything stored owns the id first; gone from the list, the id is free.
    let unsaved = claim("a/b-c", "a-b-c", None);
    assert_eq!(id_owner(&unsaved, std::slice::from_ref(&older)), Some("a-b/c".into()));
    assert_eq!(id_owner(&newer, &[newer.clone(), other]), None);
}

#[test]
fn failures_count_per_tenant_until_a_success_clears_them() {
    let f = Failures::default();
    assert_eq!(f.record("a/x".into()), 1);
    assert_eq!(f.record("a/x".into()), 2);
    assert_eq!(f.record("b/x".into()), 1, "another namespace's tenant counts alone");
    f.clear("a/x");
    assert_eq!(f.record("a/x".into()), 1);
}

#[test]
fn transition_times_move_only_when_the_status_does() {
    let at = |c: &mut Condition, time: &str| c.last_transition_time = Some(time.into());
    let mut previous = conditions("Provisioning", "Waiting", "cluster", Some(1));
    for c in &mut previous {
        at(c, "2020-01-01T00:00:00Z");
    }
    // Still provisioning, another message: every time kept.
    let mut same = conditions("Provisioning", "Waiting", "release", Some(2));
    stamp_transitions(&mut same, &previous, "2026-01-01T00:00:00Z");
    assert!(same.iter().all(|c| c.last_transition_time.as_deref() == Some("2020-01-01T00:00:00Z")));
    // Ready: Ready and Provisioning changed, Degraded stayed False.
    let mut ready = conditions("Ready", "Published", "", Some(2));
    stamp_transitions(&mut ready, &previous, "2026-01-01T00:00:00Z");
    let times: Vec<_> = ready.iter().map(|c| (c.type_.as_str(), c.last_transition_time.as_deref())).collect();
    assert_eq!(
        times,
        [
            ("Ready", Some("2026-01-01T00:00:00Z")),
            ("Provisioning", Some("2026-01-01T00:00:00Z")),
            ("Degraded", Some("2020-01-01T00:00:00Z")),
        ]
    );
    // First status: every condition stamped.
    let mut first = conditions("Degraded", "InvalidSpec", "x", None);
    stamp_transitions(&mut first, &[], "2026-01-01T00:00:00Z");
    assert!(first.iter().all(|c| c.last_transition_time.as_deref() == Some("2026-01-01T00:00:00Z")));
    assert_eq!(now().len(), "2026-01-01T00:00:00Z".len(), "{}", now());
}

fn tenant(deleting: bool, finalizer: bool, annotation: Option<&str>) -> KafkaTenant {
    let mut t = KafkaTenant::new("acme", Default::default());
    if deleting {
        t.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    }
    if finalizer {
        t.metadata.finalizers = Some(vec!["other.io/keep".into(), FINALIZER.into()]);
    }
    if let Some(v) = annotation {
        t.metadata.annotations = Some([(DELETION_PROTECTION.to_owned(), v.to_owned())].into());
    }
    t
}

#[test]
fn deletion_protection_holds_only_a_deletion_the_finalizer_still_guards() {
    // (being deleted, our finalizer on, annotation) → step
    let table = [
        (false, true, Some("true"), Step::Apply),
        (false, false, None, Step::Apply),
        (true, true, None, Step::Cleanup),
        (true, true, Some("true"), Step::Hold),
        (true, true, Some("True"), Step::Hold),
        (true, true, Some(" true "), Step::Hold),
        (true, true, Some("false"), Step::Cleanup),
        (true, true, Some("yes"), Step::Cleanup),
        (true, true, Some(""), Step::Cleanup),
        // Our finalizer gone already: nothing of ours left to hold.
        (true, false, Some("true"), Step::Cleanup),
    ];
    for (deleting, finalizer, annotation, want) in table {
        assert_eq!(
            step(&tenant(deleting, finalizer, annotation)),
            want,
            "{deleting} {finalizer} {annotation:?}"
        );
    }
}

#[test]
fn a_held_deletion_keeps_the_state_and_says_why() {
    let ready = conditions("Ready", "Published", "route published to the proxy", Some(3));
    let held = held_conditions(&ready, Some(3));
    assert_eq!(&held[..3], &ready[..], "the tenant still runs: its conditions stay");
    let deleting = &held[3];
    assert_eq!(
        (deleting.type_.as_str(), deleting.status.as_str(), deleting.reason.as_str()),
        ("Deleting", "False", "DeletionProtected")
    );
    assert!(deleting.message.contains(DELETION_PROTECTION), "{}", deleting.message);
    assert_eq!(held_conditions(&held, Some(3)), held, "held again: the same, one Deleting");
    assert_eq!(state_of(&held), Some(("Ready", "Published")));

    // A failed cleanup: Deleting is the state, exactly one condition True.
    let failed = conditions("Deleting", "CleanupFailed", "git: push refused", Some(3));
    let types: Vec<&str> = failed.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Ready", "Provisioning", "Degraded", "Deleting"]);
    assert_eq!(failed.iter().filter(|c| c.status == "True").count(), 1);
    assert_eq!(state_of(&failed), Some(("Deleting", "CleanupFailed")));
    assert_eq!(conditions("Ready", "Published", "", None).len(), 3, "no Deleting while alive");
}

#[test]
fn published_routes_validate_and_carry_identity() {
    let plan = |name: &str| render::plan(&example(name), &Platform::default()).expect("plans");
    let (acme, beta) = (plan("acme"), plan("beta"));
    let plain = RouteSource::default().route(&acme);
    assert_eq!(
        plain.bootstrap,
        ["kafka-bootstrap.tenants-acme.internal.kaas.dev:9094"],
        "the proxy listener's port"
    );
    // Plaintext is said in the route, by name: a route with no upstream at all is one the proxy refuses. The
    // own-cluster tenant's brokers (their load balancers' names) are dialled only inside its VPC's range.
    let admitted = UpstreamRoute { allowed_cidrs: vec!["10.0.0.0/16".into()], ..UpstreamRoute::plaintext() };
    assert_eq!((plain.upstream.clone(), plain.client_ca.as_ref()), (Some(admitted), None));
    assert!(plain.validate().is_empty(), "{:?}", plain.validate());

    let source =
        RouteSource { upstream_files: Some("/etc/kaas/upstream/{tenant}.".into()), ..Default::default() };
    let route = source.route(&beta);
    assert!(route.validate().is_empty(), "{:?}", route.validate());
    assert_eq!(route.bootstrap, ["kaas-kafka-bootstrap.tenant-tenants-beta.svc:9093"]);
    assert_eq!(route.client_ca, Some("/etc/kaas/upstream/tenants-beta.clients-ca.crt".into()));
    let upstream = route.upstream.expect("upstream published");
    assert_eq!(upstream.identity(), Some(Identity::Client));
    assert_eq!(upstream.tls.map(|t| t.ca), Some("/etc/kaas/upstream/tenants-beta.cluster-ca.crt".into()));
    assert_eq!(upstream.clients_ca_key, None, "the proxy never gets the clients CA's key");
    let intermediate = upstream.clients_ca_intermediate.expect("an intermediate signs instead");
    assert_eq!(
        intermediate.cert,
        PathBuf::from("/etc/kaas/upstream/tenants-beta.clients-ca-intermediate.crt")
    );
    assert_eq!(
        intermediate.key,
        PathBuf::from("/etc/kaas/upstream/tenants-beta.clients-ca-intermediate.key")
    );
    assert!(
        upstream.allowed_cidrs.is_empty(),
        "the shared cluster's brokers are under the bootstrap's domain"
    );

    // With ACME the proxy orders each tenant's certificate: its name and every broker's, numbered from 0 as
    // charts/kaas has Strimzi number them (acme: 3 brokers).
    let ordered = RouteSource { acme: true, ..source.clone() }.route(&acme);
    let tls = ordered.tls.clone().expect("a certificate by ACME");
    assert!(tls.acme && tls.cert.is_none() && tls.key.is_none(), "{tls:?}");
    assert_eq!(tls.broker_ids, Some(vec![0, 1, 2]));
    assert!(ordered.validate().is_empty(), "{:?}", ordered.validate());
    assert_eq!(source.route(&acme).tls, None, "without it, the proxy's default certificate");

    let own_ca = RouteSource { client_ca: Some("/ca/{tenant}.pem".into()), ..source };
    assert_eq!(own_ca.route(&acme).client_ca, Some("/ca/tenants-acme.pem".into()));
}

/// Status and route read the one plan of a reconcile: what they report is the plan's, never a second
/// computation from the spec.
#[test]
fn status_and_route_report_the_plan() {
    let t = example("acme");
    let mut plan = render::plan(&t, &Platform::default()).expect("plans");
    // Figures the spec would never give: a status or route that sized or named the tenant again would differ.
    plan.tenant = "planned".into();
    plan.sizing.brokers = 42;
    plan.quota = kaas_route::Quota { produce_bytes_per_second: Some(7), fetch_bytes_per_second: Some(9) };
    plan.bootstrap = "kafka.planned:9094".into();
    plan.users.truncate(1);
    let routes = RouteSource::default();
    let route = routes.route(&plan);
    assert_eq!(
        (route.name.as_str(), route.bootstrap.as_slice(), route.quota.as_ref()),
        ("planned", ["kafka.planned:9094".to_owned()].as_slice(), Some(&plan.quota))
    );
    let ready = applied_status(&t, &plan, &Standing::Up, &routes);
    assert_eq!(state_of(&ready.conditions), Some(("Ready", "Published")));
    assert_eq!(ready.sizing.as_ref(), Some(&plan.sizing));
    assert_eq!(ready.users, plan.users);
    assert_eq!(ready.bootstrap.as_deref(), Some("planned.kaas.example.com:9092"), "the clients' address");
    let waiting = applied_status(&t, &plan, &Standing::Waiting("HelmRelease not ready".into()), &routes);
    assert_eq!(state_of(&waiting.conditions), Some(("Provisioning", "Waiting")));
    assert_eq!((waiting.sizing.as_ref(), waiting.bootstrap), (Some(&plan.sizing), None));
    let unserved = applied_status(&t, &plan, &Standing::NotServed("Cluster (x/v1)".into()), &routes);
    assert_eq!(state_of(&unserved.conditions), Some(("Degraded", "ApiNotServed")));
    assert_eq!((unserved.sizing.as_ref(), unserved.bootstrap), (Some(&plan.sizing), None));
}

/// Every failure's metric label, bounded and its own: a git task that failed or manifests that would not
/// serialize are not the route source's failures; the finalizer's wrapper is labelled by what it wraps.
#[tokio::test]
async fn each_failure_has_its_own_label() {
    let kube = || kube::Error::LinesCodecMaxLineLengthExceeded;
    let task = tokio::spawn(std::future::pending::<()>());
    task.abort();
    let cancelled = task.await.expect_err("cancelled");
    let yaml = serde_norway::from_str::<u32>("[").expect_err("not yaml");
    let git = gitops::GitError::PushContention { remote: "origin".into() };
    let unreadable =
        || TenantClusterError::Unreadable(serde_json::from_str::<u32>("[").expect_err("not json"));
    let upstream = upstream::UpstreamError::Kube(kube());
    let wrapped = |e: FinalizerError<Error>| Error::Finalizer(Box::new(e));
    let table: Vec<(Error, &str)> = vec![
        (Error::Kube(kube()), "kube"),
        (Error::Git(git), "git"),
        (Error::GitTask(cancelled), "git_task"),
        (Error::Manifests(yaml), "manifests"),
        (Error::Upstream(upstream), "upstream"),
        (Error::TenantCluster(unreadable()), "tenant_cluster"),
        (Error::Routes("tenants.yaml: bad".into()), "routes"),
        (
            wrapped(FinalizerError::ApplyFailed(Error::Manifests(
                serde_norway::from_str::<u32>("[").expect_err(""),
            ))),
            "manifests",
        ),
        (wrapped(FinalizerError::CleanupFailed(Error::Routes(String::new()))), "routes"),
        (wrapped(FinalizerError::AddFinalizer(kube())), "kube"),
        (wrapped(FinalizerError::RemoveFinalizer(kube())), "kube"),
        (wrapped(FinalizerError::UnnamedObject), "finalizer"),
    ];
    for (error, label) in table {
        assert_eq!(error.reason(), label, "{error}");
    }
}
