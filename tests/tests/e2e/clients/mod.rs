//! Real client libraries through kaas-proxy, given only a tenant's bootstrap name and CA: librdkafka (the
//! `rdkafka` crate, [`librdkafka`]) and the Python clients confluent-kafka and kafka-python ([`python`]) against
//! Tansu; librdkafka's records, groups and transactions against a 3-broker Apache Kafka cluster, and every client
//! against every broker version (the matrix) in [`kafka`].

mod kafka;
mod librdkafka;
mod python;
