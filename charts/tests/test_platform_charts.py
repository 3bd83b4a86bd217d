"""charts/kaas-proxy and charts/kaas-controller: render, every object valid, lint clean, the proxy's
availability and lockdown settings, the controller's least-privilege RBAC, bad values refused."""
import copy

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import KUBE_VERSION, ROOT, render, validate, with_platform

PROXY_SETS = {
    "defaults": None,
    "three-replicas-with-tenant-names": {"replicaCount": 3, "externalDns": {"hostnames": ["*.acme.kaas.example.com"]}},
    "no-monitoring-no-dns": {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}, "externalDns": {"enabled": False},
                             "service": {"type": "ClusterIP", "annotations": {}}},
    "acme-tls-alpn": {"acme": {"enabled": True, "contact": ["mailto:ops@example.com"]}},
    "acme-http01": {"acme": {"enabled": True, "challenge": "http-01", "http01Port": 8080}},
}
CONTROLLER_SETS = {
    "defaults": None,
    "secret-url": {"gitops": {"existingSecret": "gitops-credentials", "url": "unused", "branch": "tenants"}},
    "no-monitoring": {"serviceMonitor": {"enabled": False}},
    "network-path": {"network": {"vpcIpamPool": "ipam-pool-0a1b2c", "vpcNetmaskLength": 21,
                                 "proxyCidrs": ["10.0.0.0/16", "10.1.0.0/16"], "tenantVpcCidrs": ["10.64.0.0/12"]}},
    "chart-mirror": {"componentCharts": {"url": "https://charts.example.internal/kaas-components"}},
}


@pytest.mark.parametrize("chart, values", [("kaas-proxy", v) for v in PROXY_SETS.values()]
                         + [("kaas-controller", v) for v in CONTROLLER_SETS.values()])
def test_renders_valid_objects(chart, values, crd_schemas):
    for obj in render(chart, values, name=chart, namespace="kaas-system"):
        validate(obj, crd_schemas)


@pytest.mark.parametrize("chart", ["kaas-proxy", "kaas-controller"])
def test_lint_is_clean(chart):
    report = helm.lint(str(ROOT / "charts" / chart), with_platform(chart, None), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_proxy_availability_and_lockdown():
    objects = render("kaas-proxy", name="kaas-proxy", namespace="kaas-system")
    deploy = by_kind(objects, "Deployment")[0]
    spec = deploy["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    assert pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert pod["terminationGracePeriodSeconds"] > 30, "grace must cover the drain timeout"
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["allowPrivilegeEscalation"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "--drain-timeout-seconds=30" in container["args"]
    assert "--shutdown-delay-seconds=5" in container["args"]
    assert pod["terminationGracePeriodSeconds"] > 30 + 5, "grace must cover the shutdown delay and the drain"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/kaas-proxy/config", "/etc/kaas-proxy/tls", "/etc/kaas-proxy/routes"} <= mounts
    assert by_kind(objects, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1
    lb = [s for s in by_kind(objects, "Service") if s["spec"]["type"] == "LoadBalancer"][0]
    assert lb["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == "*.kaas.example.com"
    assert by_kind(objects, "ServiceMonitor")[0]["spec"]["endpoints"][0]["path"] == "/metrics"


def test_probes_have_their_own_port_that_no_pod_may_reach():
    objects = render("kaas-proxy", name="kaas-proxy", namespace="kaas-system")
    container = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = yaml.safe_load(by_kind(objects, "ConfigMap")[0]["data"]["kaas-proxy.yaml"])
    # The probes go to the probe endpoint, which the proxy serves with places of its own (admin.rs), not to the
    # admin port, whose places whatever scrapes metrics could hold.
    assert config["probe_listen"].endswith(f":{ports['probes']}") and config["admin_listen"].endswith(f":{ports['admin']}")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "probes", probe
    policy = by_kind(objects, "NetworkPolicy")[0]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    admitted = {p["port"]: rule.get("from") for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert admitted["kafka-tls"] is None, "Kafka clients come from anywhere"
    assert admitted["admin"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert "probes" not in admitted, "no pod may reach the probe port"
    off = render("kaas-proxy", {"networkPolicy": {"enabled": False, "metricsFrom": []}}, name="kaas-proxy",
                 namespace="kaas-system")
    assert not by_kind(off, "NetworkPolicy")


def test_the_proxy_dials_only_dns_its_tenants_brokers_and_with_acme_https():
    """Egress (issue 28 §3): whatever a broker advertises, the pod reaches only DNS, Strimzi's Kafka pods, the
    tenants' VPC ranges and, with ACME, HTTPS elsewhere than the instance metadata service."""
    def egress(values=None):
        objects = render("kaas-proxy", values, name="kaas-proxy", namespace="kaas-system")
        return by_kind(objects, "NetworkPolicy")[0]["spec"]["egress"]
    plain = egress()
    peers = [peer for rule in plain for peer in rule["to"]]
    assert not any("ipBlock" in p for p in peers), "no address range by default"
    dns = [r for r in plain if r["to"][0].get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"}]
    assert dns and {(p["port"], p["protocol"]) for p in dns[0]["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert any(r["to"][0].get("podSelector", {}).get("matchLabels") == {"strimzi.io/kind": "Kafka"} for r in plain)
    vpcs = egress({"networkPolicy": {"enabled": True, "metricsFrom": [], "upstreamCidrs": ["10.64.0.0/10"]}})
    assert {"ipBlock": {"cidr": "10.64.0.0/10"}} in [p for r in vpcs for p in r["to"]]
    acme = egress({"acme": {"enabled": True}})
    [https] = [r for r in acme if any("ipBlock" in p for p in r["to"])]
    assert https["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]
    assert {p["port"] for p in https["ports"]} == {443, 6443}


def test_upstream_material_reaches_the_proxy_where_the_controller_points():
    proxy = by_kind(render("kaas-proxy", name="kaas-proxy", namespace="kaas-system"), "Deployment")[0]
    pod = proxy["spec"]["template"]["spec"]
    volume = [v for v in pod["volumes"] if v["name"] == "upstream"][0]["secret"]
    assert volume["secretName"] == "kaas-proxy-upstream" and volume["optional"] is True
    mount = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "upstream"][0]["mountPath"]
    prefix = mount + "/{tenant}."
    # By default: upstream TLS, from the files the proxy chart mounts (the brokers of charts/kaas speak only TLS).
    controller = by_kind(render("kaas-controller", name="kaas-controller", namespace="kaas-system"), "Deployment")[0]
    assert f"--upstream-files-template={prefix}" in controller["spec"]["template"]["spec"]["containers"][0]["args"]
    # Plaintext only by its name.
    plain_objects = render("kaas-controller", {"routes": {"clientCaTemplate": "", "plaintextUpstream": True}},
                           name="kaas-controller", namespace="kaas-system")
    plain = by_kind(plain_objects, "Deployment")[0]
    plain_args = [a for a in plain["spec"]["template"]["spec"]["containers"][0]["args"] if "upstream" in a]
    assert plain_args == ["--plaintext-upstream"], plain_args
    with pytest.raises(Exception, match="upstreamFiles"):
        render("kaas-controller", {"routes": {"upstreamFiles": ""}}, name="kaas-controller", namespace="kaas-system")
    # Reading Strimzi's secrets and writing the proxy's is granted only with upstream TLS or client CAs on.
    secret_rules = lambda objs: [r for o in objs if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]
                                 if "secrets" in r["resources"]]
    assert not secret_rules(plain_objects)
    on = render("kaas-controller", {"routes": {"upstreamFiles": prefix}}, name="kaas-controller", namespace="kaas-system")
    rules = secret_rules(on)
    assert any(r.get("resourceNames") == ["kaas-proxy-upstream"] and r["verbs"] == ["get", "update"] for r in rules)
    assert not any("delete" in r["verbs"] or "list" in r["verbs"] for r in rules), rules


def test_proxy_configuration_is_what_the_binary_reads():
    cm = by_kind(render("kaas-proxy", name="kaas-proxy", namespace="kaas-system"), "ConfigMap")[0]
    config = yaml.safe_load(cm["data"]["kaas-proxy.yaml"])
    assert config["tenants_file"] == "/etc/kaas-proxy/routes/tenants.yaml"
    assert config["admin_listen"] == "0.0.0.0:9100"
    assert set(config) <= {"listen", "domain", "advertised_port", "max_frame_bytes", "connect_timeout_seconds",
                           "hello_timeout_seconds", "handshake_timeout_seconds", "idle_timeout_seconds",
                           "max_connections", "max_connections_per_tenant", "max_connections_per_ip",
                           "max_handshakes_per_ip", "max_handshakes_per_tenant",
                           "max_inflight_requests_per_connection", "reload_grace_seconds", "max_fetch_response_bytes", "admin_listen", "probe_listen", "tls", "tenants", "tenants_file"}
    assert "proxy_protocol_trusted_cidrs" not in config, "PROXY protocol is off unless the load balancer's CIDRs are given"
    assert "usage" not in config, "usage records are off unless enabled"
    metered = render("kaas-proxy", {"usage": {"enabled": True, "intervalSeconds": 30}}, name="kaas-proxy",
                     namespace="kaas-system")
    usage = yaml.safe_load(by_kind(metered, "ConfigMap")[0]["data"]["kaas-proxy.yaml"])["usage"]
    # The keys of the proxy's usage section (proxy/src/config/usage.rs), the replica left to the pod's name.
    assert usage == {"file": "/var/lib/kaas-proxy/usage/usage.jsonl", "interval_seconds": 30,
                     "max_keys_per_tenant": 10000, "file_max_bytes": 104857600, "file_keep": 5}
    pod = by_kind(metered, "Deployment")[0]["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["usage"]["mountPath"] == "/var/lib/kaas-proxy/usage" and not mounts["usage"].get("readOnly")
    # One folder per replica: a shared claim never has two replicas writing (and rotating) one file.
    assert mounts["usage"]["subPathExpr"] == "$(POD_NAME)"
    env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert [v for v in pod["volumes"] if v["name"] == "usage"] == [{"name": "usage", "emptyDir": {"sizeLimit": "1Gi"}}]
    audited = render("kaas-proxy", {"audit": {"enabled": True, "excludeTenants": ["quiet"]}}, name="kaas-proxy",
                     namespace="kaas-system")
    audit = yaml.safe_load(by_kind(audited, "ConfigMap")[0]["data"]["kaas-proxy.yaml"])["audit"]
    # The keys of the proxy's audit section (proxy/src/config/records.rs).
    assert audit == {"file": "/var/lib/kaas-proxy/audit/audit.jsonl", "file_max_bytes": 104857600, "file_keep": 5,
                     "exclude_tenants": ["quiet"]}
    pod = by_kind(audited, "Deployment")[0]["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["audit"]["mountPath"] == "/var/lib/kaas-proxy/audit" and mounts["audit"]["subPathExpr"] == "$(POD_NAME)"
    assert "usage" not in mounts, "each is mounted only when on"
    with pytest.raises(Exception, match="intervalSeconds"):
        render("kaas-proxy", {"usage": {"enabled": True, "intervalSeconds": 0}}, name="kaas-proxy",
               namespace="kaas-system")
    behind = by_kind(render("kaas-proxy", {"proxyProtocol": {"trustedCidrs": ["10.0.0.0/16", "10.1.0.0/16"]}},
                            name="kaas-proxy", namespace="kaas-system"), "ConfigMap")[0]
    assert yaml.safe_load(behind["data"]["kaas-proxy.yaml"])["proxy_protocol_trusted_cidrs"] == ["10.0.0.0/16",
                                                                                               "10.1.0.0/16"]
    assert (config["max_connections"], config["max_connections_per_tenant"], config["max_connections_per_ip"]) \
        == (20000, 5000, 1000)
    assert (config["hello_timeout_seconds"], config["max_handshakes_per_ip"], config["max_handshakes_per_tenant"]) \
        == (3, 32, 512)
    limits = {"limits": {"helloTimeoutSeconds": 2, "handshakeTimeoutSeconds": 3, "idleTimeoutSeconds": 60,
                         "maxConnections": 100, "maxConnectionsPerTenant": 10, "maxConnectionsPerIp": 7,
                         "maxHandshakesPerIp": 5, "maxHandshakesPerTenant": 6,
                         "maxInflightRequestsPerConnection": 8,
                         "reloadGraceSeconds": 0, "maxFetchResponseBytes": 1048576}}
    cm = by_kind(render("kaas-proxy", limits, name="kaas-proxy", namespace="kaas-system"), "ConfigMap")[0]
    config = yaml.safe_load(cm["data"]["kaas-proxy.yaml"])
    assert [config[k] for k in ("hello_timeout_seconds", "handshake_timeout_seconds", "idle_timeout_seconds",
                                "max_connections", "max_connections_per_tenant", "max_connections_per_ip",
                                "max_handshakes_per_ip", "max_handshakes_per_tenant",
                                "max_inflight_requests_per_connection", "reload_grace_seconds",
                                "max_fetch_response_bytes")] == [2, 3, 60, 100, 10, 7, 5, 6, 8, 0, 1048576]


def test_controller_rbac_is_exactly_what_it_uses():
    objects = render("kaas-controller", name="kaas-controller", namespace="kaas-system")
    cluster_rules = by_kind(objects, "ClusterRole")[0]["rules"]
    granted = {(g, r, v) for rule in cluster_rules for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {
        ("kaas.dev", "kafkatenants", "list"), ("kaas.dev", "kafkatenants", "watch"),
        ("kaas.dev", "kafkatenants", "patch"), ("kaas.dev", "kafkatenants/status", "patch"),
        ("events.k8s.io", "events", "create"), ("events.k8s.io", "events", "patch"),
        *{(g, r, v) for g, r in [("cluster.x-k8s.io", "clusters"), ("helm.toolkit.fluxcd.io", "helmreleases")]
          for v in ("get", "list", "watch")},
        # Strimzi's Kafka of a shared-cluster tenant, whose status says whether it serves.
        ("kafka.strimzi.io", "kafkas", "get"),
        # A new tenant's namespaces: one someone else made is not adopted.
        ("", "namespaces", "get"),
        # No Secrets: each tenant's folder grants the ones the controller reads for it, to --controller-user.
    }
    roles = {r["metadata"]["name"]: r for r in by_kind(objects, "Role")}
    role = roles["kaas-controller-routes"]
    assert role["metadata"]["namespace"] == "kaas-system"
    # The leader lease: only its own by name (create cannot be limited by name), in the release's namespace.
    lease_rules = roles["kaas-controller-leader"]["rules"]
    assert {(tuple(r.get("resourceNames", [])), tuple(sorted(r["verbs"]))) for r in lease_rules} == {
        (("kaas-controller",), ("get", "update")), ((), ("create",))}
    named = [r for r in role["rules"] if r.get("resourceNames")][0]
    assert named["resourceNames"] == ["kaas-proxy-routes"] and sorted(named["verbs"]) == ["get", "update"]
    assert not any("*" in str(rule) for rule in cluster_rules + role["rules"])
    deploy = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    assert deploy["serviceAccountName"] == "kaas-controller"
    assert "--controller-user=system:serviceaccount:kaas-system:kaas-controller" in deploy["containers"][0]["args"]
    assert {"--namespace-max-brokers=30", "--namespace-max-storage-gib=131072"} <= set(deploy["containers"][0]["args"])
    uncapped = by_kind(render("kaas-controller", {"namespaceQuota": {"maxBrokers": None, "maxStorageGiB": None}},
                              name="kaas-controller", namespace="kaas-system"), "Deployment")[0]
    assert not [a for a in uncapped["spec"]["template"]["spec"]["containers"][0]["args"] if "namespace-max" in a]
    assert not [a for a in deploy["containers"][0]["args"] if a.startswith("--tenant-")], "no pins offered"
    assert "--namespace-pod-security=restricted" in deploy["containers"][0]["args"]
    assert "--route-acme" not in deploy["containers"][0]["args"], "the proxy's ACME client is off by default"
    ordered = by_kind(render("kaas-controller", {"machines": {"imageLookupOrg": "123456789012"}, "routes": {"acme": True}},
                             name="kaas-controller", namespace="kaas-system"), "Deployment")[0]
    assert "--route-acme" in ordered["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in deploy["containers"][0]["args"] if a.startswith("--volume-kms")], "default EBS key"
    keyed = by_kind(render("kaas-controller", {"machines": {"imageLookupOrg": "123456789012", "volumeKmsKeyTemplate":
                                                            "arn:aws:kms:eu-west-1:123456789012:alias/kaas-{tenant}"}},
                           name="kaas-controller", namespace="kaas-system"), "Deployment")[0]
    assert "--volume-kms-key-template=arn:aws:kms:eu-west-1:123456789012:alias/kaas-{tenant}" in \
        keyed["spec"]["template"]["spec"]["containers"][0]["args"]
    offered = by_kind(render("kaas-controller", {"tenantVersions": {"kubernetes": ["v1.35.1"], "strimzi": ["1.1.0"]}},
                             name="kaas-controller", namespace="kaas-system"), "Deployment")[0]
    assert {"--tenant-kubernetes-version=v1.35.1", "--tenant-strimzi-version=1.1.0"} <= set(
        offered["spec"]["template"]["spec"]["containers"][0]["args"])
    assert by_kind(objects, "Deployment")[0]["spec"]["replicas"] == 2
    args = deploy["containers"][0]["args"]
    assert "--lease-name=kaas-controller" in args and "--lease-duration-seconds=15" in args
    assert deploy["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_network_path_settings_reach_the_controller():
    def args(values):
        deployment = by_kind(render("kaas-controller", values, name="kaas-controller", namespace="kaas-system"),
                             "Deployment")[0]
        return deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    set_ = args(CONTROLLER_SETS["network-path"])
    assert "--vpc-ipam-pool=ipam-pool-0a1b2c" in set_ and "--vpc-netmask-length=21" in set_
    assert [a for a in set_ if a.startswith("--proxy-cidr=")] == ["--proxy-cidr=10.0.0.0/16",
                                                                  "--proxy-cidr=10.1.0.0/16"]
    assert "--tenant-vpc-cidr=10.64.0.0/12" in set_
    assert "--client-address-template={tenant}.kaas.example.com:9092" in set_
    assert not [a for a in args(None) if a.startswith(("--vpc-", "--proxy-cidr"))], "nothing by default"


def test_controller_chart_refuses_to_install_without_the_images_owner_and_passes_the_machine_settings():
    chart = helm.Chart.load(str(ROOT / "charts" / "kaas-controller"))
    with pytest.raises(helm.HelmRenderError) as err:
        chart.render(None, name="kaas-controller", namespace="kaas-system")
    assert "machines.imageLookupOrg" in str(err.value), str(err.value)
    machines = {"imageLookupOrg": "210987654321", "sshKeyName": "ops",
                "zones": {"us-east-1": ["us-east-1a", "us-east-1b", "us-east-1d"]}}
    deploy = by_kind(render("kaas-controller", {"machines": machines}, name="kaas-controller",
                            namespace="kaas-system"), "Deployment")[0]
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith(("--image-lookup-", "--ssh-key-name", "--zones"))] == [
        "--image-lookup-org=210987654321",
        "--image-lookup-format=capa-ami-{{.BaseOS}}-*{{.K8sVersion}}-*",
        "--image-lookup-base-os=ubuntu-24.04",
        "--ssh-key-name=ops",
        "--zones=eu-west-1=eu-west-1a,eu-west-1b,eu-west-1c",
        "--zones=us-east-1=us-east-1a,us-east-1b,us-east-1d",
    ]
    plain = by_kind(render("kaas-controller", name="kaas-controller", namespace="kaas-system"), "Deployment")[0]
    assert not [a for a in plain["spec"]["template"]["spec"]["containers"][0]["args"] if "ssh" in a], "no key pair"


def test_the_component_chart_mirror_reaches_the_controller():
    def args(values):
        deployment = by_kind(render("kaas-controller", values, name="kaas-controller", namespace="kaas-system"),
                             "Deployment")[0]
        return deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--component-charts-url=https://charts.example.internal/kaas-components" in args(
        CONTROLLER_SETS["chart-mirror"])
    assert not [a for a in args(None) if a.startswith("--component-charts-url")], "upstream by default"


def test_controller_chart_ships_the_generated_crd():
    chart = helm.Chart.load(str(ROOT / "charts" / "kaas-controller"))
    [crd_file] = chart.crds
    crd = yaml.safe_load(crd_file["data"]) if "data" in crd_file else yaml.safe_load(
        (ROOT / "charts" / "kaas-controller" / crd_file["name"]).read_text())
    assert crd["spec"]["names"]["kind"] == "KafkaTenant"
    kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("chart, mutate, named", [
    ("kaas-proxy", lambda v: v.__setitem__("replicaCount", 1), "replicaCount"),
    ("kaas-proxy", lambda v: v.__setitem__("replicaCount", -3), "replicaCount"),
    ("kaas-proxy", lambda v: v.__setitem__("colour", "blue"), "colour"),
    ("kaas-proxy", lambda v: v["tls"].__setitem__("secretName", None), "secretName"),
    ("kaas-proxy", lambda v: v["acme"].__setitem__("challenge", "dns-01"), "challenge"),
    ("kaas-proxy", lambda v: v["acme"].__setitem__("directoryUrl", "http://ca"), "directoryUrl"),
    ("kaas-controller", lambda v: v["gitops"].__setitem__("url", None), "url"),
    ("kaas-controller", lambda v: v["routes"].__setitem__("nmespace", "x"), "nmespace"),
    ("kaas-controller", lambda v: v["routes"].__setitem__("clientCaTemplate", "ca.pem"), "clientCaTemplate"),
    ("kaas-controller", lambda v: v["routes"].__setitem__("clientAddressTemplate", "kafka:9092"), "clientAddressTemplate"),
    ("kaas-controller", lambda v: v["network"].__setitem__("proxyCidrs", ["everyone"]), "proxyCidrs"),
    ("kaas-controller", lambda v: v["network"].__setitem__("vpcNetmaskLength", 8), "vpcNetmaskLength"),
    # An IPAM pool without its ranges: the proxy would not know where the tenants' brokers are.
    ("kaas-controller", lambda v: v["network"].__setitem__("vpcIpamPool", "ipam-pool-0abc"), "tenantVpcCidrs"),
    ("kaas-controller", lambda v: v["machines"].__setitem__("imageLookupOrg", "amazon"), "imageLookupOrg"),
    ("kaas-controller", lambda v: v["machines"]["zones"].__setitem__("us-east-1", ["us-east-1a"]), "us-east-1"),
    ("kaas-controller", lambda v: v["componentCharts"].__setitem__("url", "oci://quay.io/strimzi-helm"), "url"),
])
def test_bad_values_are_refused_naming_the_value(chart, mutate, named):
    loaded = helm.Chart.load(str(ROOT / "charts" / chart))
    values = copy.deepcopy(loaded.values)
    mutate(values)
    with pytest.raises(helm.HelmValuesError) as err:
        loaded.validate_schema(values)
    assert named in str(err.value), str(err.value)


def test_the_proxy_starts_before_any_tenant_and_routes_require_client_certificates():
    proxy = by_kind(render("kaas-proxy", name="kaas-proxy", namespace="kaas-system"), "Deployment")[0]
    pod = proxy["spec"]["template"]["spec"]
    routes = [v for v in pod["volumes"] if v["name"] == "routes"][0]["configMap"]
    assert routes["optional"] is True, "the routes ConfigMap exists only once kaas-controller runs"
    mount = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "upstream"][0]["mountPath"]
    upstream = [v for v in pod["volumes"] if v["name"] == "upstream"][0]["secret"]["secretName"]
    objects = render("kaas-controller", name="kaas-controller", namespace="kaas-system")
    args = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    [template] = [a.split("=", 1)[1] for a in args if a.startswith("--client-ca-template=")]
    # Strimzi's clients CA as the controller copies it (key <tenant>.clients-ca.crt) into the Secret the proxy
    # mounts, so every published route names a CA file the proxy has.
    assert template == f"{mount}/{{tenant}}.clients-ca.crt"
    named = [r for o in objects if o["kind"] == "Role" for r in o["rules"] if r.get("resourceNames") == [upstream]]
    assert named and named[0]["verbs"] == ["get", "update"], "the controller may write that Secret"
    off = render("kaas-controller", {"routes": {"clientCaTemplate": ""}}, name="kaas-controller",
                 namespace="kaas-system")
    off_args = by_kind(off, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in off_args if "client-ca" in a]


def test_acme_gives_the_proxy_its_store_and_exactly_the_rbac_for_it():
    off = render("kaas-proxy", name="kaas-proxy", namespace="kaas-system")
    assert not [o for o in off if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")], "no API access without ACME"
    assert by_kind(off, "Deployment")[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert "acme" not in yaml.safe_load(by_kind(off, "ConfigMap")[0]["data"]["kaas-proxy.yaml"])

    on = render("kaas-proxy", {"acme": {"enabled": True, "challenge": "http-01"}}, name="kaas-proxy",
                namespace="kaas-system")
    acme = yaml.safe_load(by_kind(on, "ConfigMap")[0]["data"]["kaas-proxy.yaml"])["acme"]
    # The store's Secrets in a namespace of their own: the Role must list and watch Secrets by namespace, and in
    # the release's namespace that would be every Secret there.
    assert acme["store"] == {"kubernetes": {"namespace": "kaas-proxy-acme", "name": "kaas-proxy-acme"}}
    assert [o["metadata"]["name"] for o in by_kind(on, "Namespace")] == ["kaas-proxy-acme"]
    for kind in ("Role", "RoleBinding"):
        assert by_kind(on, kind)[0]["metadata"]["namespace"] == "kaas-proxy-acme", kind
    assert (acme["challenge"], acme["http01_listen"]) == ("http-01", "[::]:8080")
    pod = by_kind(on, "Deployment")[0]["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("kaas-proxy", True)
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "the Lease holder's name"
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert ports["acme-http"] == 8080
    service = [o for o in by_kind(on, "Service") if o["metadata"]["name"] == "kaas-proxy"][0]
    assert {"name": "acme-http", "port": 80, "targetPort": "acme-http", "protocol": "TCP"} in service["spec"]["ports"]
    role = by_kind(on, "Role")[0]
    rules = {(tuple(r["resources"]), tuple(r.get("resourceNames", []))): r["verbs"] for r in role["rules"]}
    assert rules == {
        (("secrets",), ()): ["get", "list", "watch", "create", "patch"],
        (("leases",), ()): ["create"],
        (("leases",), ("kaas-proxy-acme",)): ["get", "update"],
    }
    binding = by_kind(on, "RoleBinding")[0]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kaas-proxy", "namespace": "kaas-system"}]
    tls_alpn = render("kaas-proxy", {"acme": {"enabled": True}}, name="kaas-proxy", namespace="kaas-system")
    tls_pod = by_kind(tls_alpn, "Deployment")[0]["spec"]["template"]["spec"]
    assert "acme-http" not in {p["name"] for p in tls_pod["containers"][0]["ports"]}, "port 80 only for HTTP-01"
