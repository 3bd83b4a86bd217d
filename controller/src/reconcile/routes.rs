//! The proxy's route source: a ConfigMap whose `tenants.yaml` holds every ready tenant's route (as
//! `kaas_route::TenantRoute`s, the type the proxy reads), and how a tenant's route is built from the platform's
//! settings ([`RouteSource`]).
//!
//! Neighbours: the reconcile loop ([`super::reconcile`]) publishes a tenant's route when its cluster and release
//! are ready, and removes it when the tenant is deleted; [`crate::upstream`] names the files the routes point at;
//! the proxy reloads the ConfigMap as its tenants file.

use k8s_openapi::api::core::v1::ConfigMap;
use kaas_route::{CertificateFiles, Identity, TenantCertificate, TenantRoute, UpstreamRoute, UpstreamTls};
use kube::api::{Api, PostParams};
use kube::Client;

use super::{Context, Error};
use crate::names;
use crate::render::Plan;
use crate::upstream;

/// The route source ConfigMap's default namespace (the platform's, where the proxy runs).
pub const ROUTES_NAMESPACE: &str = "kaas-system";
/// The route source ConfigMap's default name (the `kaas-proxy` chart mounts it under this name).
pub const ROUTES_CONFIG_MAP: &str = "kaas-proxy-routes";
/// The default address a tenant's clients are given ([`RouteSource::client_address`]).
pub const CLIENT_ADDRESS: &str = "{tenant}.kaas.example.com:9092";
/// The default [`RouteSource::upstream_files`]: where the `kaas-proxy` chart mounts the `kaas-proxy-upstream`
/// Secret.
pub const UPSTREAM_FILES: &str = "/etc/kaas-proxy/upstream/{tenant}.";
/// Key of the route source ConfigMap holding the tenants list.
pub const ROUTES_KEY: &str = "tenants.yaml";

/// Where the proxy reads its routes from, and how tenants' clusters are reached.
#[derive(Debug, Clone)]
pub struct RouteSource {
    /// Namespace of the route ConfigMap (the proxy's).
    pub namespace: String,
    /// Name of the ConfigMap whose `tenants.yaml` key the proxy reads as its `tenants_file`.
    pub config_map: String,
    /// Where the proxy finds each tenant's client CA (`{tenant}` is replaced); unset: no client certificates
    /// are required (unless `upstream_files` provides the CA). Set, the tenant's Strimzi CAs are copied into
    /// `upstream_secret` as with `upstream_files`, so `<mount>/{tenant}.clients-ca.crt` (the chart's default)
    /// is Strimzi's clients CA, which signs the tenant users' certificates.
    pub client_ca: Option<String>,
    /// Path prefix, as the proxy sees it, of each tenant's upstream material (`{tenant}` is replaced; e.g.
    /// `/etc/kaas-proxy/upstream/{tenant}.`), files kept from the tenant's Strimzi secrets: `<prefix>cluster-ca.crt`
    /// (`<cluster>-cluster-ca-cert`, `ca.crt`), `<prefix>clients-ca.crt` (`<cluster>-clients-ca-cert`, `ca.crt`)
    /// and `<prefix>clients-ca-intermediate.{crt,key}` (an intermediate the controller issues from the clients
    /// CA, [`upstream::intermediate`]). A prefix rather than a folder so that
    /// one Secret (flat keys) can hold every tenant's files. Set: routes reach the brokers over TLS with each
    /// client's own identity ([`UPSTREAM_FILES`] unless the operator says otherwise). Unset: routes say
    /// `upstream: { plaintext: true }`, which only the named opt-in `--plaintext-upstream` gives.
    pub upstream_files: Option<String>,
    /// The Secret (in `namespace`) the proxy mounts its upstream files from; kept from Strimzi's secrets when
    /// `upstream_files` or `client_ca` is set.
    pub upstream_secret: String,
    /// The address a tenant's clients use, as the proxy serves it (`{tenant}` is replaced):
    /// `<tenant>.<proxy domain>:<proxy port>`; written to `status.bootstrap` once the route is published.
    pub client_address: String,
    /// Each route's certificate is ordered by the proxy's ACME client, for `<tenant>.<domain>` and the
    /// `b<id>` name of every broker: ids 0 to brokers − 1, as `charts/kaas` has Strimzi number them. Unset:
    /// the proxy's default certificate, which must then name every tenant.
    pub acme: bool,
}

impl Default for RouteSource {
    fn default() -> Self {
        RouteSource {
            namespace: ROUTES_NAMESPACE.into(),
            config_map: ROUTES_CONFIG_MAP.into(),
            client_ca: None,
            upstream_files: None,
            upstream_secret: "kaas-proxy-upstream".into(),
            client_address: CLIENT_ADDRESS.into(),
            acme: false,
        }
    }
}

impl RouteSource {
    /// Whether the tenant's Strimzi CAs are copied into the proxy's upstream Secret before its route is
    /// published: for upstream TLS, and for client certificates, which Strimzi's clients CA signs (the proxy
    /// checks them against that CA, mounted from the same Secret).
    pub fn copies_material(&self) -> bool {
        self.upstream_files.is_some() || self.client_ca.is_some()
    }

    /// The route published for `plan`'s tenant: its bootstrap address and quota from the plan and, with
    /// `upstream_files`, mutual TLS upstream with `identity: client` (every client keeps its own principal at
    /// the broker).
    pub fn route(&self, plan: &Plan) -> TenantRoute {
        let tenant = plan.tenant.as_str();
        let prefix = self.upstream_files.as_ref().map(|p| names::expand(p, tenant));
        let file = |name: &str| prefix.as_ref().map(|p| std::path::PathBuf::from(format!("{p}{name}")));
        let [cluster_ca, clients_ca, intermediate_cert, intermediate_key] = upstream::FILES;
        let client_ca = match &self.client_ca {
            Some(t) => Some(names::expand(t, tenant).into()),
            None => file(clients_ca),
        };
        let mut upstream = match file(cluster_ca) {
            Some(ca) => UpstreamRoute {
                tls: Some(UpstreamTls { ca, server_name: None }),
                identity: Some(Identity::Client),
                // The proxy signs with an intermediate of the clients CA, never with the CA's own key.
                clients_ca_intermediate: file(intermediate_cert)
                    .zip(file(intermediate_key))
                    .map(|(cert, key)| CertificateFiles { cert, key }),
                ..UpstreamRoute::default()
            },
            None => UpstreamRoute::plaintext(),
        };
        // Brokers advertise their load balancers' own names; the proxy dials them only inside the tenant's VPC.
        upstream.allowed_cidrs.clone_from(&plan.upstream_cidrs);
        TenantRoute {
            name: tenant.into(),
            bootstrap: vec![plan.bootstrap.clone()],
            tls: self.acme.then(|| TenantCertificate {
                acme: true,
                broker_ids: Some((0..plan.sizing.brokers).collect()),
                ..TenantCertificate::default()
            }),
            client_ca,
            client_crl: None,
            principal_mapping_rules: None,
            upstream: Some(upstream),
            quota: Some(plan.quota.clone()),
        }
    }
}

/// Sets `tenant`'s entry in the route source to `route` (removes it with `None`).
pub(super) async fn publish_route(
    tenant: &str,
    route: Option<TenantRoute>,
    ctx: &Context,
) -> Result<(), Error> {
    update_routes(&ctx.client, &ctx.routes, |routes| {
        routes.retain(|r| r.name != tenant);
        if let Some(route) = route {
            routes.push(route);
            routes.sort_by(|a, b| a.name.cmp(&b.name));
        }
    })
    .await
}

/// Creates the route source with no tenants when it does not exist, so the proxy (which mounts it) starts
/// before the first tenant is up. Run once at start-up; leaves an existing one as it is.
pub async fn ensure_route_source(client: &Client, source: &RouteSource) -> Result<(), Error> {
    update_routes(client, source, |_| {}).await
}

/// Applies `change` to the route source's tenants list, writing only when it changed or does not exist yet.
async fn update_routes(
    client: &Client,
    source: &RouteSource,
    change: impl FnOnce(&mut Vec<TenantRoute>),
) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let existing = api.get_opt(&source.config_map).await?;
    let mut routes: Vec<TenantRoute> = match existing.as_ref().and_then(|c| c.data.as_ref()?.get(ROUTES_KEY))
    {
        Some(text) => {
            serde_norway::from_str(text).map_err(|e| Error::Routes(format!("{ROUTES_KEY}: {e}")))?
        }
        None => Vec::new(),
    };
    let before = routes.clone();
    change(&mut routes);
    if routes == before && existing.is_some() {
        return Ok(());
    }
    let text = serde_norway::to_string(&routes).map_err(|e| Error::Routes(e.to_string()))?;
    let mut cm = existing.unwrap_or_else(|| ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(source.config_map.clone()),
            namespace: Some(source.namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    cm.data.get_or_insert_with(Default::default).insert(ROUTES_KEY.into(), text);
    // replace() carries the resourceVersion: a concurrent writer makes this fail and the reconcile retry.
    if cm.metadata.resource_version.is_some() {
        api.replace(&source.config_map, &PostParams::default(), &cm).await?;
    } else {
        api.create(&PostParams::default(), &cm).await?;
    }
    Ok(())
}
