//! Usage records (`usage:`): what each principal moved through the proxy, per topic and direction, summed from
//! the records against what the clients themselves counted: [`kafka`] (Apache Kafka, client certificates).

mod kafka;
