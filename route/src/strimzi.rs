//! What the proxy and the controller both need to know of Strimzi: the organisation of its own components.
//! A leaf of this crate, beside the route ([`crate`]).

/// The organisation Strimzi puts in the subject of every certificate it issues to its own components, each of
/// which it makes a Kafka super user by subject (`User:CN=<cluster>-kafka,O=io.strimzi`, the entity operators,
/// Kafka Exporter, Cruise Control, the cluster operator: `KafkaBrokerConfigurationBuilder.java`
/// `withAuthorization` at strimzi-kafka-operator 1.2.0). So no certificate the platform issues or the proxy
/// mints may name it.
pub const OPERATOR_ORGANIZATION: &str = "io.strimzi";
