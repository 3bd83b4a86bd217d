"""charts/kaas: what kaas-proxy reaches on a tenant's own cluster. The `proxy` listener's bootstrap load balancer
is internal and published by external-dns under the host of the route kaas-controller gives the proxy, on the
route's port; the per-broker load balancers are internal too but carry no such name (the proxy learns brokers'
addresses from Metadata)."""
from conftest import render
from test_kaas_chart import controller_values


def proxy_listener(objects):
    kafka = next(o for o in objects if o["kind"] == "Kafka")
    listener = next(l for l in kafka["spec"]["kafka"]["listeners"] if l["name"] == "proxy")
    return kafka, listener


def test_the_route_host_is_the_bootstrap_load_balancers_published_name():
    values = controller_values("acme")
    expected = values["kafka"]["proxyListener"]
    kafka, listener = proxy_listener(render("kaas", values))
    assert listener["port"] == expected["port"] == 9094
    annotations = listener["configuration"]["bootstrap"]["annotations"]
    assert annotations["external-dns.alpha.kubernetes.io/hostname"] == expected["bootstrapHostname"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    per_broker = kafka["spec"]["kafka"]["template"]["perPodService"]["metadata"]["annotations"]
    assert "external-dns.alpha.kubernetes.io/hostname" not in per_broker, "one name, the bootstrap's"
    assert per_broker["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"


def test_without_a_hostname_nothing_is_published():
    _, listener = proxy_listener(render("kaas", None))
    annotations = listener["configuration"]["bootstrap"]["annotations"]
    assert "external-dns.alpha.kubernetes.io/hostname" not in annotations
