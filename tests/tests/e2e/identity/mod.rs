//! Identity: which clients a tenant admits, and who they are at the broker. Client certificates checked
//! against each tenant's CA at the proxy, on Tansu ([`client_certs`]); identity carried through the proxy to
//! Apache Kafka's authorizer, with librdkafka and with every client program, and the CAs rotated under a
//! running producer ([`kafka`]).

mod client_certs;
mod kafka;
