//! What a new plan keeps of the one committed before it: a topic's partition count. A topic whose spec names no
//! partitions gets the sizing's count when it is first committed, and that count must then stay, whatever later
//! sizings say: more partitions move keys to other partitions (a keyed producer's order and a compacted topic's
//! latest value per key are lost across the change), and Kafka cannot take partitions away (Strimzi's topic
//! operator refuses a decrease and the topic stops being reconciled). A count the spec names is the tenant's
//! own decision, taken when it raises the count; one below what the topic has is not (Kafka cannot remove
//! partitions), so the committed count stays.
//!
//! Neighbours: [`super::plan`] renders the sized counts; the reconciler hands [`keep_topic_partitions`] the
//! folder's committed manifests as it writes the folder (`gitops::Repo::write_tenant_from`), so the count kept
//! is the one in Git, where Flux applied it from.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::crd::KafkaTenant;
use crate::names::KAFKA_RELEASE;

/// Sets, in `manifests`' Kafka release, each topic's partitions that the spec leaves to the sizing, or names
/// below it, to the count `committed` (the folder's manifests, YAML documents) gave it, where `committed` has
/// the topic.
pub fn keep_topic_partitions(t: &KafkaTenant, manifests: &mut [Value], committed: &str) {
    let before = committed_partitions(committed);
    let Some(release) = manifests.iter_mut().find(|o| is_kafka_release(o)) else { return };
    let Some(topics) = release["spec"]["values"]["topics"].as_array_mut() else { return };
    for topic in topics {
        let Some(name) = topic["name"].as_str() else { continue };
        let named = t.spec.topics.iter().find(|s| s.name == name).and_then(|s| s.partitions).map(u64::from);
        match (named, before.get(name)) {
            (Some(n), Some(&count)) if n < count => topic["partitions"] = Value::from(count),
            (None, Some(&count)) => topic["partitions"] = Value::from(count),
            _ => {}
        }
    }
}

/// The YAML to commit over `committed` (the folder's manifests; `None` for a new folder): `yaml`, the plan's
/// `manifests` as already serialized, unless the plan keeps something of the committed folder, and then the
/// manifests with it kept. Only numbers change from `yaml`, which serialized, so that cannot fail; were it to,
/// `yaml` is committed rather than nothing.
pub fn yaml_over(t: &KafkaTenant, manifests: &[Value], yaml: &str, committed: Option<&str>) -> String {
    let Some(committed) = committed else { return yaml.to_owned() };
    let mut kept = manifests.to_vec();
    keep_topic_partitions(t, &mut kept, committed);
    if kept == manifests {
        return yaml.to_owned();
    }
    super::to_yaml(&kept).unwrap_or_else(|_| yaml.to_owned())
}

/// Each topic's partitions in the committed Kafka release; none of a document that is not YAML or not the
/// release (a folder edited by hand is read for what it holds, never trusted to parse). Each document is parsed
/// on its own (the folder is written as `---` and one document, [`super::to_yaml`]), so a broken one hides
/// nothing after it: a stream deserializer stops at the first error (and would yield it forever).
fn committed_partitions(committed: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut documents = vec![String::new()];
    for line in committed.lines() {
        match (line.trim_end() == "---", documents.last_mut()) {
            (false, Some(doc)) => {
                doc.push_str(line);
                doc.push('\n');
            }
            _ => documents.push(String::new()),
        }
    }
    for doc in documents {
        let Ok(object) = serde_norway::from_str::<Value>(&doc) else { continue };
        if !is_kafka_release(&object) {
            continue;
        }
        for topic in object["spec"]["values"]["topics"].as_array().into_iter().flatten() {
            if let (Some(name), Some(count)) = (topic["name"].as_str(), topic["partitions"].as_u64()) {
                out.insert(name.to_owned(), count);
            }
        }
    }
    out
}

fn is_kafka_release(o: &Value) -> bool {
    o["kind"] == "HelmRelease" && o["spec"]["releaseName"] == KAFKA_RELEASE
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::Topic;
    use crate::render::tests::example;
    use crate::render::{plan, to_yaml, Platform};

    fn partitions(manifests: &[Value]) -> BTreeMap<String, u64> {
        let release = manifests.iter().find(|o| is_kafka_release(o)).expect("release");
        let topics = release["spec"]["values"]["topics"].as_array().expect("topics");
        topics
            .iter()
            .map(|t| (t["name"].as_str().unwrap_or("").to_owned(), t["partitions"].as_u64().unwrap_or(0)))
            .collect()
    }

    #[test]
    fn a_resize_keeps_each_committed_topics_partitions_and_sizes_new_ones() {
        let mut t = example("acme");
        t.spec.topics = vec![
            Topic { name: "orders".into(), ..Default::default() },
            Topic { name: "audit".into(), partitions: Some(3), ..Default::default() },
        ];
        let first = plan(&t, &Platform::default()).expect("plans");
        let committed = to_yaml(&first.manifests).expect("yaml");
        let sized = first.sizing.partitions;
        // Ten times the throughput: more brokers, more partitions for what is new.
        t.spec.throughput.ingress_mbps *= 10;
        t.spec.throughput.egress_mbps *= 10;
        t.spec.topics.push(Topic { name: "payments".into(), ..Default::default() });
        t.spec.topics[1].partitions = Some(6);
        let raised = plan(&t, &Platform::default()).expect("plans");
        let raised_yaml = to_yaml(&raised.manifests).expect("yaml");
        let mut second = plan(&t, &Platform::default()).expect("plans");
        let resized = second.sizing.partitions;
        assert!(resized > sized, "{resized} > {sized}");
        keep_topic_partitions(&t, &mut second.manifests, &committed);
        let want: BTreeMap<String, u64> = [
            ("orders".to_owned(), u64::from(sized)),
            ("audit".to_owned(), 6),
            ("payments".to_owned(), u64::from(resized)),
        ]
        .into();
        assert_eq!(partitions(&second.manifests), want, "kept, the spec's own, and sized");
        // A named count below what the topic has is not applied: Kafka cannot remove partitions.
        t.spec.topics[1].partitions = Some(2);
        let mut lowered = plan(&t, &Platform::default()).expect("plans");
        keep_topic_partitions(&t, &mut lowered.manifests, &raised_yaml);
        assert_eq!(partitions(&lowered.manifests)["audit"], 6, "six stay");
    }

    #[test]
    fn a_committed_folder_that_is_not_what_was_written_keeps_nothing() {
        let t = example("acme");
        let mut fresh = plan(&t, &Platform::default()).expect("plans").manifests;
        let before = partitions(&fresh);
        for committed in ["", "not: [yaml", "---\nkind: HelmRelease\nspec: 7\n", "---\n[1, 2]\n---\n{}\n"] {
            keep_topic_partitions(&t, &mut fresh, committed);
            assert_eq!(partitions(&fresh), before, "{committed:?}");
        }
        let other = json!({ "kind": "HelmRelease", "spec": { "releaseName": "other", "values": { "topics": [{ "name": "orders", "partitions": 1 }] } } });
        keep_topic_partitions(&t, &mut fresh, &to_yaml(&[other]).expect("yaml"));
        assert_eq!(partitions(&fresh), before, "another release's topics");
        // A broken document before the release (a hand edit) hides nothing: the release's counts are kept.
        let mut t = example("acme");
        t.spec.throughput.ingress_mbps *= 10;
        t.spec.throughput.egress_mbps *= 10;
        let committed = format!("---\nnot: [yaml\n{}", to_yaml(&fresh).expect("yaml"));
        let mut resized = plan(&t, &Platform::default()).expect("plans").manifests;
        keep_topic_partitions(&t, &mut resized, &committed);
        assert_eq!(partitions(&resized), before, "kept past the broken document");
    }
}
