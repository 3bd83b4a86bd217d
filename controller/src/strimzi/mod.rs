//! What the Strimzi operator does with the `Kafka` and `KafkaNodePool` objects `charts/kaas` renders, as data
//! with its upstream source: the Kafka versions each Strimzi release runs ([`versions`]), the names it puts on
//! the brokers' certificates ([`certificates`]), the `spec.kafka.config` keys it drops ([`config`]), when its
//! status says a cluster serves ([`status`]) and the principals it makes super users (here). The operator is
//! not published to any registry this project builds from (only `io.strimzi:api`), so its rules are tables;
//! each names the file and tag it was read from (github.com/strimzi/strimzi-kafka-operator). Pure.
//!
//! Neighbours: [`crate::crd`] refuses version pins these tables refuse; [`crate::render`] defaults to a pair
//! they accept; the controller's `strimzi` integration tests check the chart's output against all of them.

pub mod certificates;
pub mod config;
pub mod status;
pub mod versions;

pub use versions::{check_versions, kafka_versions, VersionError};

/// The organisation of Strimzi's own components (one definition, shared with the proxy, which never mints it).
pub use kaas_route::OPERATOR_ORGANIZATION;

/// The principals Strimzi 1.2.0 makes Kafka super users of a cluster named `cluster` whenever authorization is
/// on (`KafkaBrokerConfigurationBuilder.java` `withAuthorization`, l.475-484 at 1.2.0): the brokers, the entity
/// operators, Kafka Exporter, Cruise Control and the cluster operator, each `CN=…,O=io.strimzi`. A client
/// certificate with such a subject that a listener accepts is a super user, so none of ours may carry one.
pub fn super_users(cluster: &str) -> Vec<String> {
    let own = |component: &str| format!("User:CN={cluster}-{component},O={OPERATOR_ORGANIZATION}");
    vec![
        own("kafka"),
        own("entity-topic-operator"),
        own("entity-user-operator"),
        own("kafka-exporter"),
        own("cruise-control"),
        format!("User:CN=cluster-operator,O={OPERATOR_ORGANIZATION}"),
    ]
}

/// The principal the brokers see for a `KafkaUser` named `user` that authenticates by TLS certificate: Strimzi's
/// user operator issues it with subject `CN=<user>` and nothing else (`KafkaUserModel.java` `getTlsUserName`,
/// l.452-454 at 1.2.0).
pub fn tls_user_principal(user: &str) -> String {
    format!("User:CN={user}")
}

#[cfg(test)]
mod tests;
