//! Soak: the real `kaas-proxy` binary under a steady mixed load for minutes, sampled; on a 3-broker Apache
//! Kafka cluster ([`kafka`]). `scripts/soak.sh MINUTES` runs it long.

mod kafka;
