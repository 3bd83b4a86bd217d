"""charts/kaas: what kaas-proxy reaches on a tenant's own cluster. The `proxy` listener's bootstrap load balancer
is internal and published by external-dns under the host of the route kaas-controller gives the proxy, on the
route's port, and that host is on every broker's certificate (bootstrap.alternativeNames: Strimzi names only the
load balancers' own addresses otherwise); the per-broker load balancers are internal too but carry no such name
(the proxy learns brokers' addresses from Metadata, and Strimzi puts each one on its broker's certificate). The
load balancers admit only the proxy's addresses. On the shared cluster there is no such listener."""
import copy

from conftest import pruned, render, validate
from test_kaas_chart import controller_values

# What the AWS cloud controller manager's service controller reads (cloud-provider-aws v1.34.0
# pkg/providers/v1/aws.go l.101, 2253-2258); `aws-load-balancer-scheme` is the AWS Load Balancer Controller's,
# which no tenant cluster runs.
INTERNAL = "service.beta.kubernetes.io/aws-load-balancer-internal"


def proxy_listener(objects):
    kafka = next(o for o in objects if o["kind"] == "Kafka")
    listener = next(l for l in kafka["spec"]["kafka"]["listeners"] if l["name"] == "proxy")
    return kafka, listener


def test_the_route_host_is_the_bootstrap_load_balancers_published_name():
    values = controller_values("acme")
    expected = values["kafka"]["proxyListener"]
    kafka, listener = proxy_listener(render("kaas", values))
    assert listener["port"] == expected["port"] == 9094
    bootstrap = listener["configuration"]["bootstrap"]
    assert bootstrap["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == expected["bootstrapHostname"]
    assert bootstrap["alternativeNames"] == [expected["bootstrapHostname"]], "the proxy verifies this name"
    assert bootstrap["annotations"][INTERNAL] == "true"
    assert "service.beta.kubernetes.io/aws-load-balancer-scheme" not in bootstrap["annotations"]
    per_broker = kafka["spec"]["kafka"]["template"]["perPodService"]["metadata"]["annotations"]
    assert "external-dns.alpha.kubernetes.io/hostname" not in per_broker, "one name, the bootstrap's"
    assert per_broker[INTERNAL] == "true"


def test_the_load_balancers_admit_only_the_proxys_addresses(crd_schemas):
    values = copy.deepcopy(controller_values("acme"))
    values["kafka"]["proxyListener"]["sourceRanges"] = ["10.100.0.0/16"]
    values["kafka"]["proxyListener"]["scram"] = {"enabled": True, "port": 9095}
    kafka = next(o for o in render("kaas", values) if o["kind"] == "Kafka")
    balanced = [l for l in kafka["spec"]["kafka"]["listeners"] if l["type"] == "loadbalancer"]
    assert [l["name"] for l in balanced] == ["proxy", "scram"]
    assert all(l["configuration"]["loadBalancerSourceRanges"] == ["10.100.0.0/16"] for l in balanced)
    assert validate(kafka, crd_schemas) == "crd"
    assert pruned(kafka, crd_schemas[(kafka["apiVersion"], "Kafka")]) == [], "Strimzi's schema has the field there"


def test_without_a_hostname_or_ranges_nothing_is_published_or_restricted():
    _, listener = proxy_listener(render("kaas", None))
    bootstrap = listener["configuration"]["bootstrap"]
    assert "external-dns.alpha.kubernetes.io/hostname" not in bootstrap["annotations"]
    assert "alternativeNames" not in bootstrap
    assert "loadBalancerSourceRanges" not in listener["configuration"]


def test_on_the_shared_cluster_no_load_balancer_at_all():
    kafka = next(o for o in render("kaas", controller_values("beta")) if o["kind"] == "Kafka")
    assert [l["type"] for l in kafka["spec"]["kafka"]["listeners"]] == ["internal"]
    assert "template" not in kafka["spec"]["kafka"], "no per-broker load-balancer annotations either"
