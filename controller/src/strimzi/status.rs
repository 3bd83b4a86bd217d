//! When Strimzi says a `Kafka` serves: its status `Ready` condition `True` for the generation it observed
//! (`StatusUtils.java` l.173 in operator-common at 1.2.0 sets `Ready` or `NotReady` with `observedGeneration`),
//! and the listener kaas-proxy dials listed with an address (`KafkaStatus.listeners`, each `ListenerStatus`
//! `name`, `addresses[]` of `host` and `port`: `api/.../kafka/KafkaStatus.java` l.28-33,
//! `listener/ListenerStatus.java` l.29-36 at 1.2.0). The CA Secrets a route also needs exist long before this.
//!
//! Neighbours: meant for the controller's readiness gate (`reconcile/live.rs`), which reads the `Kafka` through
//! the tenant's cluster client; not wired there yet (see the module's tests for the rule).

use serde_json::Value;

/// `Ok(host:port)` of listener `listener` when `kafka` (a `Kafka` object as the API server returns it) is Ready
/// for its current spec; otherwise what it still waits for.
pub fn serving(kafka: &Value, listener: &str) -> Result<String, String> {
    let status = kafka.get("status").filter(|s| s.is_object()).ok_or("Strimzi has written no status yet")?;
    let generation = kafka["metadata"]["generation"].as_i64();
    let observed = status["observedGeneration"].as_i64();
    if generation.is_some() && observed != generation {
        return Err(format!(
            "Strimzi has not reconciled generation {} yet (observed: {})",
            generation.unwrap_or_default(),
            observed.map_or("none".into(), |o| o.to_string())
        ));
    }
    let conditions = status["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let ready = conditions.iter().find(|c| c["type"] == "Ready");
    match ready {
        Some(c) if c["status"] == "True" => {}
        Some(c) => {
            let why = [&c["reason"], &c["message"]].iter().filter_map(|v| v.as_str()).collect::<Vec<_>>();
            return Err(format!("not Ready: {}", why.join(": ")));
        }
        None => {
            let not_ready = conditions.iter().find(|c| c["type"] == "NotReady" && c["status"] == "True");
            let why = not_ready.and_then(|c| c["message"].as_str()).unwrap_or("no Ready condition");
            return Err(format!("not Ready: {why}"));
        }
    }
    let listeners = status["listeners"].as_array().map(Vec::as_slice).unwrap_or_default();
    let address = listeners
        .iter()
        .find(|l| l["name"] == listener)
        .and_then(|l| l["addresses"].as_array()?.first().cloned())
        .and_then(|a| Some(format!("{}:{}", a["host"].as_str()?, a["port"].as_u64()?)));
    address.ok_or_else(|| format!("Ready, but listener {listener} has no address yet"))
}
