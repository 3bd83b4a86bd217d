//! The exposition, series by series.

use std::time::Duration;

use super::*;

use super::value;

#[test]
fn counts_and_renders() {
    let m = Metrics::new(["acme", "beta"]);
    let open = m.admit("acme", 10).expect("under the limit");
    assert!(m.admit("nobody", 10).expect("not counted").is_none());
    m.session_started("acme");
    m.session_started("nobody");
    m.session_ended("acme", true);
    m.malformed_response("acme", ApiKey::Metadata);
    m.malformed_response("nobody", ApiKey::Metadata);
    m.malformed_response("acme", ApiKey::JoinGroup);
    m.upstream_tls_failed("beta", "broker_certificate");
    m.upstream_tls_failed("beta", "no_such_reason");
    let text = m.encode();
    for line in [
        "kaas_proxy_session_active{tenant=\"acme\"} 1",
        "kaas_proxy_session_active{tenant=\"beta\"} 0",
        "kaas_proxy_session_opened_total{tenant=\"acme\"} 1",
        "kaas_proxy_session_errors_total{tenant=\"acme\"} 1",
        "kaas_proxy_session_errors_total{tenant=\"beta\"} 0",
        "kaas_proxy_upstream_malformed_responses_total{tenant=\"acme\",api=\"Metadata\"} 1",
        "kaas_proxy_upstream_malformed_responses_total{tenant=\"acme\",api=\"Fetch\"} 0",
        "kaas_proxy_upstream_tls_failures_total{tenant=\"beta\",reason=\"broker_certificate\"} 1",
        "kaas_proxy_upstream_tls_failures_total{tenant=\"acme\",reason=\"broker_alert\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("nobody"), "unknown tenants add no label values");
    assert!(!text.contains("JoinGroup\"} 1"), "malformed counts only the APIs whose responses are read");
    assert!(text.ends_with("# EOF\n"), "a complete OpenMetrics exposition");
    drop(open);
    let text = m.encode();
    assert_eq!(value(&text, "kaas_proxy_session_active{tenant=\"acme\"}"), Some(0), "closed");
}

/// Every series a configured tenant has, as exposed.
fn tenant_series(tenant: &str) -> Vec<String> {
    let mut all = vec![
        format!("kaas_proxy_session_active{{tenant=\"{tenant}\"}}"),
        format!("kaas_proxy_session_opened_total{{tenant=\"{tenant}\"}}"),
        format!("kaas_proxy_session_errors_total{{tenant=\"{tenant}\"}}"),
        format!("kaas_proxy_upstream_connect_duration_seconds_sum{{tenant=\"{tenant}\"}}"),
        format!("kaas_proxy_upstream_connect_duration_seconds_count{{tenant=\"{tenant}\"}}"),
        format!("kaas_proxy_upstream_metadata_refreshes_total{{tenant=\"{tenant}\",outcome=\"ok\"}}"),
        format!("kaas_proxy_upstream_metadata_refreshes_total{{tenant=\"{tenant}\",outcome=\"failed\"}}"),
        format!("kaas_proxy_tls_certificate_not_after_timestamp_seconds{{tenant=\"{tenant}\"}}"),
        format!("kaas_proxy_rewrite_leaked_addresses_total{{tenant=\"{tenant}\"}}"),
    ];
    let le = histogram::BOUNDS_NANOS.iter().map(|n| format!("{:?}", *n as f64 / 1e9)).chain(["+Inf".into()]);
    for le in le {
        all.push(format!(
            "kaas_proxy_upstream_connect_duration_seconds_bucket{{le=\"{le}\",tenant=\"{tenant}\"}}"
        ));
    }
    for kind in tenant::QUOTA_KINDS {
        all.push(format!(
            "kaas_proxy_quota_throttled_responses_total{{tenant=\"{tenant}\",kind=\"{kind}\"}}"
        ));
        all.push(format!("kaas_proxy_quota_throttle_seconds_total{{tenant=\"{tenant}\",kind=\"{kind}\"}}"));
    }
    for reason in FRAME_REFUSALS {
        all.push(format!(
            "kaas_proxy_session_frames_refused_total{{tenant=\"{tenant}\",reason=\"{reason}\"}}"
        ));
    }
    for reason in CONNECT_FAILURES {
        all.push(format!(
            "kaas_proxy_upstream_connect_failures_total{{tenant=\"{tenant}\",reason=\"{}\"}}",
            reason.label()
        ));
    }
    for api in READ_APIS {
        all.push(format!(
            "kaas_proxy_upstream_malformed_responses_total{{tenant=\"{tenant}\",api=\"{api:?}\"}}"
        ));
    }
    for reason in UPSTREAM_TLS_REASONS {
        all.push(format!(
            "kaas_proxy_upstream_tls_failures_total{{tenant=\"{tenant}\",reason=\"{reason}\"}}"
        ));
    }
    for outcome in tenant::ACME_OUTCOMES {
        all.push(format!("kaas_proxy_acme_orders_total{{tenant=\"{tenant}\",outcome=\"{outcome}\"}}"));
    }
    for direction in ["client_to_upstream", "upstream_to_client"] {
        all.push(format!("kaas_proxy_session_bytes_total{{tenant=\"{tenant}\",direction=\"{direction}\"}}"));
    }
    for api in request_apis().map(|a| format!("{a:?}")).chain(["unknown".to_owned()]) {
        all.push(format!("kaas_proxy_requests_total{{tenant=\"{tenant}\",api=\"{api}\"}}"));
    }
    all
}

#[test]
fn every_series_starts_at_zero() {
    let mut m = Metrics::new(["acme"]);
    crate::routes::RouteMetrics::register(m.registry());
    crate::acme::AcmeMetrics::register(m.registry());
    crate::listener::ListenerMetrics::register(m.registry());
    let text = m.encode();
    let mut expected = vec![
        "kaas_proxy_listener_connections_total".to_owned(),
        "kaas_proxy_listener_connections_open".to_owned(),
    ];
    expected.extend(
        crate::listener::metrics::REASONS
            .map(|r| format!("kaas_proxy_listener_refused_total{{reason=\"{}\"}}", r.label())),
    );
    expected.extend(tenant_series("acme"));
    expected.extend(
        [
            "kaas_proxy_runtime_tasks",
            "kaas_proxy_routes_generation",
            "kaas_proxy_routes_reloads_total{outcome=\"applied\"}",
            "kaas_proxy_routes_reloads_total{outcome=\"refused\"}",
            "kaas_proxy_routes_last_applied_timestamp_seconds",
            "kaas_proxy_routes_tenants",
            "kaas_proxy_routes_left_out",
        ]
        .map(str::to_owned),
    );
    expected.extend(
        crate::acme::metrics::ACME_CHALLENGES
            .map(|c| format!("kaas_proxy_acme_challenge_failures_total{{challenge=\"{c}\"}}")),
    );
    expected.extend(
        crate::acme::metrics::ACME_RENEWAL_TRIGGERS
            .map(|t| format!("kaas_proxy_acme_renewals_total{{trigger=\"{t}\"}}")),
    );
    for series in &expected {
        assert_eq!(value(&text, series), Some(0), "{series} missing or not zero in\n{text}");
    }
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(samples, expected.len(), "no series beyond the expected ones in\n{text}");
    assert!(
        text.contains("api=\"Metadata\"") && !text.contains("api=\"Vote\""),
        "blocked APIs have no series"
    );
}

#[test]
fn counters_move_by_what_was_counted() {
    let m = Metrics::new(["acme", "beta"]);
    let acme = m.tenant("acme").expect("configured");
    acme.forwarded(Direction::ClientToUpstream, 100);
    acme.forwarded(Direction::ClientToUpstream, 23);
    acme.forwarded(Direction::UpstreamToClient, 7);
    acme.request(ApiKey::Metadata as i16);
    acme.request(ApiKey::Metadata as i16);
    acme.request(ApiKey::Produce as i16);
    acme.request(-1);
    acme.request(i16::MAX);
    acme.request(ApiKey::Vote as i16);
    let text = m.encode();
    let acme_series = |s: &str| format!("kaas_proxy_{s}");
    for (series, want) in [
        ("session_bytes_total{tenant=\"acme\",direction=\"client_to_upstream\"}", 123),
        ("session_bytes_total{tenant=\"acme\",direction=\"upstream_to_client\"}", 7),
        ("requests_total{tenant=\"acme\",api=\"Metadata\"}", 2),
        ("requests_total{tenant=\"acme\",api=\"Produce\"}", 1),
        ("requests_total{tenant=\"acme\",api=\"unknown\"}", 3),
        ("requests_total{tenant=\"acme\",api=\"Fetch\"}", 0),
        ("session_bytes_total{tenant=\"beta\",direction=\"client_to_upstream\"}", 0),
        ("requests_total{tenant=\"beta\",api=\"Metadata\"}", 0),
    ] {
        assert_eq!(value(&text, &acme_series(series)), Some(want), "{series} in\n{text}");
    }
    // Exactly those: the sum of every sample is what was counted.
    let total: u64 = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 123 + 7 + 2 + 1 + 3);
}

#[test]
fn unknown_tenants_add_nothing_and_reload_adds_zeros() {
    let m = Metrics::new(["acme"]);
    let before = m.encode();
    assert!(m.tenant("nobody").is_none());
    m.session_started("nobody");
    m.session_ended("nobody", true);
    m.malformed_response("nobody", ApiKey::Fetch);
    m.upstream_tls_failed("nobody", "timeout");
    m.certificates([("nobody", 5)]);
    let after = m.encode();
    assert_eq!(before, after, "nothing moved");
    let acme = m.tenant("acme").expect("configured");
    acme.request(ApiKey::Fetch as i16);
    m.add_tenants(["acme", "beta"]);
    let text = m.encode();
    assert_eq!(value(&text, "kaas_proxy_requests_total{tenant=\"acme\",api=\"Fetch\"}"), Some(1), "kept");
    for series in tenant_series("beta") {
        assert_eq!(value(&text, &series), Some(0), "{series} after reload in\n{text}");
    }
    let same = m.tenant("acme").expect("configured");
    assert!(Arc::ptr_eq(&acme, &same), "re-adding a tenant keeps its counters");
}

#[test]
fn latency_appears_per_api_once_used() {
    let m = Metrics::new(["acme"]);
    let acme = m.tenant("acme").expect("configured");
    assert!(!m.encode().contains("kaas_proxy_request_duration_seconds_count"), "no API used yet");
    acme.latency(ApiKey::Produce as i16, Duration::from_micros(150), Duration::from_millis(4));
    acme.latency(ApiKey::Produce as i16, Duration::from_micros(90), Duration::from_millis(30));
    acme.latency(i16::MAX, Duration::from_micros(90), Duration::from_millis(1));
    acme.latency(ApiKey::Vote as i16, Duration::from_micros(90), Duration::from_millis(1));
    let text = m.encode();
    let labels = |api: &str, stage: &str| format!("tenant=\"acme\",api=\"{api}\",stage=\"{stage}\"");
    let count = |api, stage| format!("kaas_proxy_request_duration_seconds_count{{{}}}", labels(api, stage));
    let bucket = |api, stage, le: &str| {
        format!("kaas_proxy_request_duration_seconds_bucket{{le=\"{le}\",{}}}", labels(api, stage))
    };
    for (line, want) in [
        (count("Produce", "proxy"), 2),
        (count("Produce", "upstream"), 2),
        (bucket("Produce", "proxy", "0.0001"), 1),
        (bucket("Produce", "proxy", "0.00025"), 2),
        (bucket("Produce", "upstream", "0.005"), 1),
        (bucket("Produce", "upstream", "0.05"), 2),
        (count("unknown", "upstream"), 2),
    ] {
        assert_eq!(value(&text, &line), Some(want), "{line} in\n{text}");
    }
    assert!(!text.contains("api=\"Fetch\",stage"), "unused APIs have no histogram");
    assert!(!text.contains("api=\"Vote\",stage"), "blocked APIs count as unknown");
}

#[test]
fn upstream_connects_refreshes_leaks_and_certificates() {
    let m = Metrics::new(["acme", "beta"]);
    let acme = m.tenant("acme").expect("configured");
    acme.connected(Duration::from_millis(2));
    acme.connect_failed(ConnectFailure::Refused);
    acme.connect_failed(ConnectFailure::Refused);
    acme.connect_failed(ConnectFailure::Unresolved);
    acme.metadata_refreshed(true);
    acme.metadata_refreshed(false);
    acme.leaked(3);
    acme.frame_refused("client_frame_size");
    acme.frame_refused("no_such_reason");
    acme.throttled("fetch", Duration::from_millis(1500));
    acme.throttled("fetch", Duration::from_millis(500));
    m.certificates([("acme", 1_900_000_000), ("beta", 1_800_000_000)]);
    let text = m.encode();
    for (series, want) in [
        ("upstream_connect_duration_seconds_count{tenant=\"acme\"}", 1),
        ("upstream_connect_duration_seconds_bucket{le=\"0.001\",tenant=\"acme\"}", 0),
        ("upstream_connect_duration_seconds_bucket{le=\"0.0025\",tenant=\"acme\"}", 1),
        ("upstream_connect_failures_total{tenant=\"acme\",reason=\"refused\"}", 2),
        ("upstream_connect_failures_total{tenant=\"acme\",reason=\"unresolved\"}", 1),
        ("upstream_connect_failures_total{tenant=\"acme\",reason=\"timeout\"}", 0),
        ("upstream_metadata_refreshes_total{tenant=\"acme\",outcome=\"ok\"}", 1),
        ("upstream_metadata_refreshes_total{tenant=\"acme\",outcome=\"failed\"}", 1),
        ("rewrite_leaked_addresses_total{tenant=\"acme\"}", 3),
        ("quota_throttled_responses_total{tenant=\"acme\",kind=\"fetch\"}", 2),
        ("quota_throttle_seconds_total{tenant=\"acme\",kind=\"fetch\"}", 2),
        ("quota_throttled_responses_total{tenant=\"acme\",kind=\"produce\"}", 0),
        ("rewrite_leaked_addresses_total{tenant=\"beta\"}", 0),
        ("session_frames_refused_total{tenant=\"acme\",reason=\"client_frame_size\"}", 1),
        ("tls_certificate_not_after_timestamp_seconds{tenant=\"acme\"}", 1_900_000_000),
        ("tls_certificate_not_after_timestamp_seconds{tenant=\"beta\"}", 1_800_000_000),
    ] {
        let series = format!("kaas_proxy_{series}");
        assert_eq!(value(&text, &series), Some(want), "{series} in\n{text}");
    }
}

#[test]
fn a_tenant_at_its_connection_limit_is_refused_and_frees_slots_on_close() {
    let m = Metrics::new(["acme", "beta"]);
    let first = m.admit("acme", 2).expect("1 of 2");
    let second = m.admit("acme", 2).expect("2 of 2");
    assert_eq!(m.admit("acme", 2).err(), Some(2), "a third is refused");
    let other = m.admit("beta", 2).expect("another tenant is unaffected");
    assert_eq!(m.tenant("acme").map(|t| t.connections()), Some(2), "the refused one is not counted");
    drop(first);
    let third = m.admit("acme", 2).expect("a slot freed");
    drop((second, third, other));
    assert_eq!(m.tenant("acme").map(|t| t.connections()), Some(0));
}

#[tokio::test]
async fn runtime_tasks_are_counted_at_each_scrape() {
    let m = Metrics::new(["acme"]);
    let before = value(&m.encode(), "kaas_proxy_runtime_tasks").expect("series");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = stopped.await;
    });
    assert_eq!(value(&m.encode(), "kaas_proxy_runtime_tasks"), Some(before + 1), "a new task is counted");
    let _ = stop.send(());
    let _ = task.await;
    assert_eq!(value(&m.encode(), "kaas_proxy_runtime_tasks"), Some(before), "an ended one is not");
}
