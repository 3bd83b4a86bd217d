//! The upstream APIs the controller needs served beside its own `KafkaTenant`: Cluster API's `Cluster` (read
//! back for cluster-mode tenants), Flux's `HelmRelease` (read back for every tenant) and Flux's `Kustomization`
//! (what applies the GitOps repository; the controller does not read it, but nothing it commits lands
//! without it). What discovery says about each, checked at start-up ([`check`]) and whenever a read of one
//! fails as a path the API server does not know ([`unserved_path`]).
//!
//! Neighbours: `reconcile/live.rs` reads the `Cluster` and `HelmRelease` ([`crate::watched`]) and asks here
//! when a read fails; the binary reports [`check`] in its log and in [`crate::metrics`] at start-up and
//! watches only the kinds that are served.

use std::fmt;

use kube::Client;

/// One kind the controller needs, at the version it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeededApi {
    /// The API group, e.g. `cluster.x-k8s.io`.
    pub group: &'static str,
    /// The version the controller reads.
    pub version: &'static str,
    /// The kind.
    pub kind: &'static str,
    /// Which tenants need it, for the report.
    pub needed_by: NeededBy,
}

/// Which tenants cannot be served without a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeededBy {
    /// Tenants with `isolation: cluster` (their own Cluster API cluster).
    ClusterTenants,
    /// Every tenant.
    AllTenants,
}

/// Cluster API's `Cluster`, as [`crate::watched::Cluster`] reads it.
pub const CLUSTER: NeededApi = NeededApi {
    group: "cluster.x-k8s.io",
    version: "v1beta2",
    kind: "Cluster",
    needed_by: NeededBy::ClusterTenants,
};
/// Flux's `HelmRelease`, as [`crate::watched::HelmRelease`] reads it.
pub const HELM_RELEASE: NeededApi = NeededApi {
    group: "helm.toolkit.fluxcd.io",
    version: "v2",
    kind: "HelmRelease",
    needed_by: NeededBy::AllTenants,
};
/// Flux's `Kustomization`, which applies the tenants' folders.
pub const KUSTOMIZATION: NeededApi = NeededApi {
    group: "kustomize.toolkit.fluxcd.io",
    version: "v1",
    kind: "Kustomization",
    needed_by: NeededBy::AllTenants,
};
/// Every kind checked at start-up.
pub const NEEDED: [NeededApi; 3] = [CLUSTER, HELM_RELEASE, KUSTOMIZATION];

impl fmt::Display for NeededApi {
    /// `Cluster (cluster.x-k8s.io/v1beta2)`: the kind first, as a user looks for it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.kind, self.group, self.version)
    }
}

/// What discovery says about one [`NeededApi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Served at the version the controller reads.
    Yes,
    /// Not at that version, but at these: objects of the kind may exist (stored at another version).
    OtherVersions(Vec<String>),
    /// No version of the group serves the kind: no object of it can exist.
    No,
}

impl Served {
    /// Whether an object of the kind can exist on the server at all. A CRD is removed only after every
    /// object of it is (the API server finalizes its instances first), so a kind no version serves holds
    /// nothing a deletion could wait for; a kind served at another version may.
    pub fn may_hold_objects(&self) -> bool {
        !matches!(self, Served::No)
    }
}

/// What the group's discovery lists (each version with the kinds it serves) says about `api`.
pub fn served_in<'a>(api: &NeededApi, versions: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Served {
    let mut others = Vec::new();
    for (version, kinds) in versions {
        if kinds.contains(&api.kind) {
            if version == api.version {
                return Served::Yes;
            }
            others.push(version.to_owned());
        }
    }
    if others.is_empty() {
        Served::No
    } else {
        Served::OtherVersions(others)
    }
}

/// Whether `e` is the API server not knowing the request's path — a 404 whose body is no `Status`, which
/// kube reports as a reconstructed `Status` with the body ("404 page not found") as its message — rather
/// than a missing object (reason `NotFound`). Source: kube-client 5.0.0 `client/mod.rs`, `handle_api_errors`;
/// `Status::is_not_found` matches only the reason `NotFound` there (kube-core `response.rs`).
pub fn unserved_path(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 && !s.is_not_found())
}

/// Asks discovery whether `api` is served: the group's versions and their kinds.
pub async fn served(client: &Client, api: &NeededApi) -> Result<Served, kube::Error> {
    use kube::discovery::oneshot;
    use kube::error::DiscoveryError;
    let group = match oneshot::group(client, api.group).await {
        Ok(group) => group,
        Err(kube::Error::Discovery(DiscoveryError::MissingApiGroup(_))) => return Ok(Served::No),
        Err(e) => return Err(e),
    };
    let versions: Vec<(String, Vec<String>)> = group
        .versions()
        .map(|v| (v.to_owned(), group.versioned_resources(v).into_iter().map(|(r, _)| r.kind).collect()))
        .collect();
    Ok(served_in(
        api,
        versions.iter().map(|(v, kinds)| (v.as_str(), kinds.iter().map(String::as_str).collect())),
    ))
}

/// Every [`NEEDED`] kind with what discovery says about it.
pub async fn check(client: &Client) -> Result<Vec<(NeededApi, Served)>, kube::Error> {
    let mut out = Vec::with_capacity(NEEDED.len());
    for api in NEEDED {
        out.push((api, served(client, &api).await?));
    }
    Ok(out)
}

/// Why `api` stops a tenant, for its status and the log: the kind, its group/version, and what is served.
pub fn not_served_message(api: &NeededApi, served: &Served) -> String {
    let needs = match api.needed_by {
        NeededBy::ClusterTenants => "a cluster-mode tenant needs it",
        NeededBy::AllTenants => "every tenant needs it",
    };
    match served {
        Served::Yes => format!("{api} is served"),
        Served::OtherVersions(v) => {
            format!("the API server does not serve {api}, only {} ({needs}); upgrade its CRD", v.join(", "))
        }
        Served::No => format!("the API server does not serve {api} ({needs}); install its CRD"),
    }
}

/// The start-up report: one line naming each kind not served, or `None` when all are.
pub fn report(checked: &[(NeededApi, Served)]) -> Option<String> {
    let missing: Vec<String> = checked
        .iter()
        .filter(|(_, s)| *s != Served::Yes)
        .map(|(api, s)| not_served_message(api, s))
        .collect();
    (!missing.is_empty()).then(|| missing.join("; "))
}

#[cfg(test)]
mod tests;
