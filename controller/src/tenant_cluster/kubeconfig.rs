//! Which kubeconfigs of a tenant's cluster the controller uses: those that only name a server and carry their
//! credentials inline, as Cluster API writes them (`<cluster>-kubeconfig`: the server's `https` URL, its CA
//! inline, the admin's client certificate and key inline).
//!
//! The kubeconfig Secret lives in the tenant's namespace, where more hands than Cluster API's can write. What
//! a kubeconfig can make its reader do is more than connect: run a command (`exec`), call an auth provider,
//! read files of the reader's own file system (`tokenFile`, `client-key`, `certificate-authority`: the
//! controller's own service-account token sent to a server of the writer's choosing), or skip verifying the
//! server. Flux's controllers drop these unless started with `--insecure-kubeconfig-exec` or
//! `--insecure-kubeconfig-tls` (fluxcd/pkg `runtime/client/kubeconfig.go`, `KubeConfig`); here they are
//! refused and named, so the tenant's status says why its cluster is not read rather than the controller
//! doing it.
//!
//! Neighbours: [`super::client`] checks a kubeconfig with [`admit`] before it builds a client from it.

use kube::config::{AuthInfo, Cluster, Kubeconfig};

/// `Ok` when every cluster and user of `config` is one the controller may use; otherwise every reason it may
/// not, each naming its entry and field.
pub fn admit(config: &Kubeconfig) -> Result<(), String> {
    let mut refused = Vec::new();
    for named in &config.clusters {
        match &named.cluster {
            Some(cluster) => {
                cluster_problems(cluster, &mut |p| refused.push(format!("clusters[{}]: {p}", named.name)))
            }
            None => refused.push(format!("clusters[{}]: no cluster", named.name)),
        }
    }
    for named in &config.auth_infos {
        if let Some(user) = &named.auth_info {
            user_problems(user, &mut |p| refused.push(format!("users[{}]: {p}", named.name)));
        }
    }
    if config.clusters.is_empty() {
        refused.push("no cluster".into());
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!("refused: {}", refused.join("; ")))
    }
}

fn cluster_problems(cluster: &Cluster, problem: &mut impl FnMut(&str)) {
    match cluster.server.as_deref() {
        Some(server) if server.starts_with("https://") => {}
        Some(_) => problem("server is not an https:// URL"),
        None => problem("no server"),
    }
    if cluster.insecure_skip_tls_verify == Some(true) {
        problem("insecure-skip-tls-verify (the server must be verified)");
    }
    if cluster.certificate_authority.is_some() {
        problem("certificate-authority (a file of the controller's; give certificate-authority-data)");
    }
    if cluster.certificate_authority_data.is_none() {
        problem("no certificate-authority-data (the cluster's own CA, inline)");
    }
}

fn user_problems(user: &AuthInfo, problem: &mut impl FnMut(&str)) {
    if user.exec.is_some() {
        problem("exec (a command the controller would run)");
    }
    if user.auth_provider.is_some() {
        problem("auth-provider (a plugin the controller would call)");
    }
    if user.token_file.is_some() {
        problem("tokenFile (a file of the controller's; give token)");
    }
    if user.client_certificate.is_some() {
        problem("client-certificate (a file of the controller's; give client-certificate-data)");
    }
    if user.client_key.is_some() {
        problem("client-key (a file of the controller's; give client-key-data)");
    }
}

#[cfg(test)]
mod tests {
    use super::admit;
    use kube::config::Kubeconfig;

    /// The kubeconfig Cluster API writes (`util/kubeconfig/kubeconfig.go` `New`): one cluster with its server
    /// and CA inline, one user with its client certificate and key inline.
    const CLUSTER_API: &str = "
apiVersion: v1
kind: Config
clusters:
- name: acme
  cluster:
    server: https://acme-apiserver.example:6443
    certificate-authority-data: Q0E=
contexts:
- name: acme-admin@acme
  context: {cluster: acme, user: acme-admin}
current-context: acme-admin@acme
users:
- name: acme-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
";

    fn with(replace: &str, by: &str) -> Kubeconfig {
        assert!(CLUSTER_API.contains(replace), "{replace}");
        Kubeconfig::from_yaml(&CLUSTER_API.replacen(replace, by, 1)).expect("parses")
    }

    #[test]
    fn the_kubeconfig_cluster_api_writes_is_admitted() {
        admit(&Kubeconfig::from_yaml(CLUSTER_API).expect("parses")).expect("admitted");
        // An inline bearer token reads nothing of the controller's.
        admit(&with("client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ", "token: abc"))
            .expect("token");
    }

    /// Each way a kubeconfig makes its reader do more than connect, refused by the name of its field.
    #[test]
    fn what_would_run_read_or_skip_on_the_controller_is_refused_by_name() {
        let user = "client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ";
        let table = [
            (
                with(user, "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}"),
                "users[acme-admin]: exec",
            ),
            (with(user, "auth-provider: {name: oidc, config: {}}"), "users[acme-admin]: auth-provider"),
            (
                with(user, "tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token"),
                "users[acme-admin]: tokenFile",
            ),
            (
                with("client-certificate-data: Q0VSVA==", "client-certificate: /etc/x.crt"),
                "users[acme-admin]: client-certificate",
            ),
            (with("client-key-data: S0VZ", "client-key: /etc/x.key"), "users[acme-admin]: client-key"),
            (
                with("certificate-authority-data: Q0E=", "insecure-skip-tls-verify: true"),
                "clusters[acme]: insecure-skip-tls-verify",
            ),
            (
                with("certificate-authority-data: Q0E=", "certificate-authority: /etc/ca.crt"),
                "clusters[acme]: certificate-authority",
            ),
            (
                with("certificate-authority-data: Q0E=", "tls-server-name: x"),
                "clusters[acme]: no certificate-authority-data",
            ),
            (with("https://acme", "http://acme"), "clusters[acme]: server is not an https:// URL"),
        ];
        for (config, named) in table {
            let refused = admit(&config).expect_err(named);
            assert!(refused.starts_with("refused: ") && refused.contains(named), "{named}: {refused}");
        }
    }

    /// Every reason at once, so one edit can fix them all.
    #[test]
    fn every_reason_is_named_at_once() {
        let config = with(
            "client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ",
            "exec: {apiVersion: client.authentication.k8s.io/v1, command: x}\n    tokenFile: /t",
        );
        let refused = admit(&config).expect_err("refused");
        assert!(refused.contains("exec") && refused.contains("tokenFile"), "{refused}");
    }
}
