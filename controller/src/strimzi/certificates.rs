//! The names Strimzi 1.2.0 puts on a broker's certificate, and the names it advertises, for the listener types
//! `charts/kaas` uses (`internal`, `cluster-ip`, `loadbalancer`). Read at tag 1.2.0 from
//! `cluster-operator/src/main/java/io/strimzi/operator/cluster/`:
//! - `model/KafkaCluster.java` `buildKafkaNodeCertsSubject` (l.1347-1383): every node's certificate names the
//!   bootstrap and brokers Services (`ModelUtils.generateAllServiceDnsNames`, l.298-309: `svc`, `svc.ns`,
//!   `svc.ns.svc`, `svc.ns.svc.cluster.local`) and its own pod; a broker's adds every bootstrap name collected
//!   below and its own broker names;
//! - `operator/assembly/KafkaListenersReconciler.java`: bootstrap names are every listener's
//!   `configuration.bootstrap.alternativeNames` (l.116, `ListenersUtils.alternativeNames`), each TLS
//!   `cluster-ip` listener's bootstrap Service names (l.347) and each `loadbalancer` listener's bootstrap load
//!   balancer address (l.409-417); broker names are a `loadbalancer` listener's per-broker load balancer
//!   address (l.450) and any advertised host (l.454), a TLS `cluster-ip` listener's per-broker Service (l.366),
//!   a TLS `internal` listener's configured advertised host (l.318-321). Nothing else: a DNS name published for
//!   a load balancer (external-dns) is on no certificate unless `alternativeNames` lists it.
//! - Advertised hosts (`registerAdvertisedHostname`, l.224-228): the configured one
//!   (`ListenersUtils.brokerAdvertisedHost`, l.544-578: `brokers[].advertisedHost`, else
//!   `advertisedHostTemplate` with `{nodeId}` and `{nodePodName}`), else the broker's own address on that
//!   listener.
//!
//! Load balancer addresses exist only once the cloud assigns them, so the model takes them as a function of the
//! Service name.
//!
//! Neighbours: the controller's `strimzi` integration tests check that every name kaas-proxy dials is here.

use std::collections::BTreeSet;

use serde::Deserialize;

/// The cluster domain Strimzi appends (`DnsNameGenerator.java` l.19-20: `KUBERNETES_SERVICE_DNS_DOMAIN`, default
/// `cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// A listener of `spec.kafka.listeners`, the fields the names depend on. Read from rendered objects whose
/// schema is Strimzi's, so the other fields are ignored, not refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// The listener's name.
    pub name: String,
    /// Its port.
    pub port: u16,
    /// `internal`, `cluster-ip`, `loadbalancer`, …
    #[serde(rename = "type")]
    pub kind: ListenerType,
    /// Whether it speaks TLS.
    #[serde(default)]
    pub tls: bool,
    /// `configuration`, if any.
    #[serde(default)]
    pub configuration: Configuration,
}

/// The listener types; the model covers the first three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerType {
    /// Headless per-pod names inside the cluster.
    Internal,
    /// A ClusterIP Service per broker.
    ClusterIp,
    /// A load balancer per broker and one for bootstrap.
    Loadbalancer,
    /// `nodeport`, `route`, `ingress`, `cluster-ip`'s relatives: not modelled.
    #[serde(other)]
    Other,
}

/// A listener's `configuration`, the fields that change names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    /// `bootstrap`.
    #[serde(default)]
    pub bootstrap: Bootstrap,
    /// `brokers`: per-broker overrides.
    #[serde(default)]
    pub brokers: Vec<BrokerOverride>,
    /// `advertisedHostTemplate`.
    #[serde(default)]
    pub advertised_host_template: Option<String>,
    /// `useServiceDnsDomain`.
    #[serde(default)]
    pub use_service_dns_domain: Option<bool>,
    /// `createBootstrapService` (`loadbalancer` only); `false` is not modelled.
    #[serde(default)]
    pub create_bootstrap_service: Option<bool>,
}

/// `configuration.bootstrap`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// `alternativeNames`: extra names for every broker's certificate.
    #[serde(default)]
    pub alternative_names: Vec<String>,
}

/// One entry of `configuration.brokers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerOverride {
    /// The node id it applies to.
    pub broker: u32,
    /// `advertisedHost`.
    #[serde(default)]
    pub advertised_host: Option<String>,
}

/// A broker node: its id and the KafkaNodePool it belongs to (its pod is `<cluster>-<pool>-<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node id.
    pub id: u32,
    /// The KafkaNodePool's name.
    pub pool: String,
}

/// Why the model cannot say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A listener type or setting outside the model.
    #[error("listener {0:?}: its type or createBootstrapService: false is not modelled")]
    NotModelled(String),
}

/// A Kafka cluster as the names depend on it.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `metadata.name` of the Kafka.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `spec.kafka.listeners`.
    pub listeners: Vec<Listener>,
}

impl Cluster {
    /// The model of `kafka` (a `Kafka` object) in `namespace`.
    pub fn of(kafka: &serde_json::Value, namespace: &str) -> Result<Cluster, serde_json::Error> {
        Ok(Cluster {
            name: kafka["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            namespace: namespace.to_owned(),
            listeners: serde_json::from_value(kafka["spec"]["kafka"]["listeners"].clone())?,
        })
    }

    fn pod(&self, node: &Node) -> String {
        format!("{}-{}-{}", self.name, node.pool, node.id)
    }

    /// `ListenersUtils.backwardsCompatibleBootstrapServiceName` (l.236-242).
    pub fn bootstrap_service(&self, l: &Listener) -> String {
        match l.kind {
            ListenerType::Internal => format!("{}-kafka-bootstrap", self.name),
            _ => format!("{}-kafka-{}-bootstrap", self.name, l.name),
        }
    }

    /// `ListenersUtils.backwardsCompatiblePerBrokerServiceName` (l.273-281), the base being the pool's
    /// controller name `<cluster>-<pool>`.
    pub fn broker_service(&self, l: &Listener, node: &Node) -> String {
        let base = format!("{}-{}", self.name, node.pool);
        if l.port == 9094 && l.name == "external" {
            format!("{base}-{}", node.id)
        } else {
            format!("{base}-{}-{}", l.name, node.id)
        }
    }

    fn service_names(&self, service: &str) -> [String; 4] {
        let ns = &self.namespace;
        [
            service.to_owned(),
            format!("{service}.{ns}"),
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}.svc.{CLUSTER_DOMAIN}"),
        ]
    }

    fn configured_host(l: &Listener, node: &Node, pod: &str) -> Option<String> {
        let c = &l.configuration;
        c.brokers
            .iter()
            .find(|b| b.broker == node.id && b.advertised_host.is_some())
            .and_then(|b| b.advertised_host.clone())
            .or_else(|| {
                c.advertised_host_template
                    .as_ref()
                    .map(|t| t.replace("{nodeId}", &node.id.to_string()).replace("{nodePodName}", pod))
            })
    }

    fn modelled(l: &Listener) -> Result<(), ModelError> {
        let skips_bootstrap = l.configuration.create_bootstrap_service == Some(false);
        if l.kind == ListenerType::Other || skips_bootstrap {
            return Err(ModelError::NotModelled(l.name.clone()));
        }
        Ok(())
    }

    /// The broker's own address on listener `l`, before any configured advertised host.
    fn own_address(
        &self,
        l: &Listener,
        node: &Node,
        load_balancer: &dyn Fn(&str) -> String,
    ) -> Result<String, ModelError> {
        Self::modelled(l)?;
        let in_cluster = |host: String| match l.configuration.use_service_dns_domain {
            Some(true) => format!("{host}.{CLUSTER_DOMAIN}"),
            _ => host,
        };
        Ok(match l.kind {
            ListenerType::Internal => {
                in_cluster(format!("{}.{}-kafka-brokers.{}.svc", self.pod(node), self.name, self.namespace))
            }
            ListenerType::ClusterIp => {
                in_cluster(format!("{}.{}.svc", self.broker_service(l, node), self.namespace))
            }
            ListenerType::Loadbalancer => load_balancer(&self.broker_service(l, node)),
            ListenerType::Other => return Err(ModelError::NotModelled(l.name.clone())),
        })
    }

    /// The host `node` advertises on listener `l` (what clients, kaas-proxy among them, dial after Metadata).
    pub fn advertised_host(
        &self,
        l: &Listener,
        node: &Node,
        load_balancer: &dyn Fn(&str) -> String,
    ) -> Result<String, ModelError> {
        let own = self.own_address(l, node, load_balancer)?;
        Ok(Self::configured_host(l, node, &self.pod(node)).unwrap_or(own))
    }

    /// The host clients bootstrap from on listener `l`: its bootstrap Service's name in the cluster, or its load
    /// balancer's address.
    pub fn bootstrap_host(
        &self,
        l: &Listener,
        load_balancer: &dyn Fn(&str) -> String,
    ) -> Result<String, ModelError> {
        Self::modelled(l)?;
        Ok(match l.kind {
            ListenerType::Loadbalancer => load_balancer(&self.bootstrap_service(l)),
            _ => format!("{}.{}.svc", self.bootstrap_service(l), self.namespace),
        })
    }

    /// Every DNS name (and IP address) on `node`'s certificate, a broker.
    pub fn broker_certificate_names(
        &self,
        node: &Node,
        load_balancer: &dyn Fn(&str) -> String,
    ) -> Result<BTreeSet<String>, ModelError> {
        let mut names = BTreeSet::new();
        names.extend(self.service_names(&format!("{}-kafka-bootstrap", self.name)));
        let brokers = format!("{}-kafka-brokers", self.name);
        names.extend(self.service_names(&brokers));
        let pod = self.pod(node);
        names.insert(format!("{pod}.{brokers}.{}.svc.{CLUSTER_DOMAIN}", self.namespace));
        names.insert(format!("{pod}.{brokers}.{}.svc", self.namespace));
        for l in &self.listeners {
            Self::modelled(l)?;
            names.extend(l.configuration.bootstrap.alternative_names.iter().cloned());
            let configured = Self::configured_host(l, node, &pod);
            match l.kind {
                ListenerType::Internal if l.tls => names.extend(configured),
                ListenerType::ClusterIp if l.tls => {
                    names.extend(self.service_names(&self.bootstrap_service(l)));
                    names.insert(self.own_address(l, node, load_balancer)?);
                    names.extend(configured);
                }
                ListenerType::Loadbalancer => {
                    names.insert(load_balancer(&self.bootstrap_service(l)));
                    names.insert(load_balancer(&self.broker_service(l, node)));
                    names.extend(configured);
                }
                _ => {}
            }
        }
        Ok(names)
    }
}
