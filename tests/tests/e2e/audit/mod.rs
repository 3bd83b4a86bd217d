//! The audit trail (`audit:`): sessions authenticated and refused, and administrative requests with the broker's
//! answer for each, as CloudEvents lines: [`kafka`] (Apache Kafka with ACLs, Kafka's own command-line tools).

mod kafka;
