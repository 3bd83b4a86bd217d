//! Failover: the proxy keeps clients going while brokers and proxy replicas come and go. Every test here needs
//! a real multi-broker Apache Kafka cluster (leadership moves, controlled shutdowns, KIP-951 endpoints), so all
//! of them are in [`kafka`].

mod kafka;
