"""charts/kaas: renders for the defaults and for the values kaas-controller produces, every object valid for
its upstream schema, lint clean, bad values refused naming the value."""
import copy

import helm_python as helm
import pytest
import yaml

from conftest import ROOT, pruned, render, validate

CHART = str(ROOT / "charts" / "kaas")


def controller_values(example):
    """The values kaas-controller rendered for an example tenant (its golden file): the contract in use."""
    docs = yaml.safe_load_all((ROOT / "controller" / "testdata" / f"{example}.yaml").read_text())
    release = [d for d in docs if d and d["kind"] == "HelmRelease" and d["metadata"]["name"] == f"tenants-{example}-kafka"][0]
    return release["spec"]["values"]


VALUE_SETS = {
    "defaults": None,
    "controller-acme": controller_values("acme"),
    "controller-beta": controller_values("beta"),
    "no-components-no-monitoring": {
        "tenant": "lean", "users": [],
        "kafka": {"brokers": 6, "controllers": 5, "storage": {"size": "2Ti", "class": "fast"}, "retentionHours": 1,
                  "replicationFactor": 3, "minInsyncReplicas": 2, "partitions": 12},
        "components": {"strimzi": {"enabled": False}, "certManager": {"enabled": False},
                       "externalDns": {"enabled": False}},
        "monitoring": {"podMonitor": False}, "storageClass": {"create": False},
    },
    "remote-components": {"components": {"kubeConfigSecret": "acme-kubeconfig"}},
}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_renders_valid_objects(name, crd_schemas):
    objects = render("kaas", VALUE_SETS[name])
    kinds = [o["kind"] for o in objects]
    assert kinds.count("Kafka") == 1 and kinds.count("KafkaNodePool") == 2
    judged = [validate(o, crd_schemas) for o in objects]
    assert "crd" in judged and "kubernetes" in judged
    dropped = {o["kind"]: pruned(o, crd_schemas[(o["apiVersion"], o["kind"])]) for o, j in zip(objects, judged)
               if j == "crd"}
    assert not any(dropped.values()), f"fields the API server would drop: {dropped}"


def test_controller_values_size_the_cluster():
    values = controller_values("acme")
    objects = render("kaas", values)
    brokers = [o for o in objects if o["kind"] == "KafkaNodePool" and o["metadata"]["name"] == "brokers"][0]
    assert brokers["spec"]["replicas"] == values["kafka"]["brokers"]
    assert brokers["spec"]["storage"]["volumes"][0]["size"] == values["kafka"]["storage"]["size"]
    users = {o["metadata"]["name"]: o for o in objects if o["kind"] == "KafkaUser"}
    assert set(users) == {"orders-service", "auditor", "kaas-proxy"}
    acl = users["orders-service"]["spec"]["authorization"]["acls"][0]
    assert acl == {"resource": {"type": "topic", "name": "orders", "patternType": "prefix"},
                   "operations": ["Read", "Write", "Describe"]}
    kafka = [o for o in objects if o["kind"] == "Kafka"][0]
    assert kafka["spec"]["kafka"]["config"]["log.retention.hours"] == values["kafka"]["retentionHours"]
    assert all(l["authentication"]["type"] == "tls" for l in kafka["spec"]["kafka"]["listeners"])
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"


def test_components_switch_and_target_the_tenant_cluster():
    on = render("kaas", VALUE_SETS["remote-components"])
    releases = [o for o in on if o["kind"] == "HelmRelease"]
    assert sorted(r["metadata"]["name"] for r in releases) == ["cert-manager", "external-dns", "strimzi-kafka-operator"]
    assert all(r["spec"]["kubeConfig"]["secretRef"]["name"] == "acme-kubeconfig" for r in releases)
    assert len([o for o in on if o["kind"] == "HelmRepository"]) == 3
    off = render("kaas", VALUE_SETS["no-components-no-monitoring"])
    assert not [o for o in off if o["kind"] in ("HelmRelease", "HelmRepository", "PodMonitor", "StorageClass")]


def test_acls_are_enforced_for_every_user(crd_schemas):
    """No super user: the proxy carries each client's identity, so the brokers enforce each user's own ACLs; the
    proxy's KafkaUser holds only what proxy.acls grants. Optional scram-sha-512 listener and users."""
    kafka = [o for o in render("kaas") if o["kind"] == "Kafka"][0]
    assert "superUsers" not in kafka["spec"]["kafka"]["authorization"]
    values = {"users": [{"name": "alice", "authentication": "scram-sha-512",
                         "acls": [{"resource": {"type": "topic", "name": "orders"}, "operations": ["Read"]}]}],
              "kafka": {"proxyListener": {"scram": {"enabled": True}}}}
    objects = render("kaas", values)
    assert all(validate(o, crd_schemas) for o in objects)
    listeners = {l["name"]: l for l in [o for o in objects if o["kind"] == "Kafka"][0]["spec"]["kafka"]["listeners"]}
    assert listeners["scram"]["authentication"]["type"] == "scram-sha-512" and listeners["scram"]["port"] == 9095
    assert listeners["scram"]["tls"] is True and listeners["proxy"]["authentication"]["type"] == "tls"
    users = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "KafkaUser"}
    assert users["alice"]["authentication"]["type"] == "scram-sha-512"
    assert users["kaas-proxy"]["authentication"]["type"] == "tls"
    assert users["kaas-proxy"]["authorization"] == {"type": "simple", "acls": []}


def test_storage_class_is_encrypted():
    sc = [o for o in render("kaas") if o["kind"] == "StorageClass"][0]
    assert sc["parameters"]["encrypted"] == "true"
    # Tagged with the tenant: retained volumes are found (and billed) by tenant, never by a name all share.
    assert sc["parameters"]["tagSpecification_1"] == "kaas.dev/tenant=demo"


def test_lint_is_clean():
    for values in (None, controller_values("acme")):
        report = helm.lint(CHART, values, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, problems


def defaults():
    return copy.deepcopy(helm.Chart.load(CHART).values)


@pytest.mark.parametrize("mutate, named", [
    (lambda v: v["kafka"].__setitem__("brokers", -1), "brokers"),
    # null is how a Helm user removes a default: the schema then finds it missing.
    (lambda v: v["kafka"]["storage"].__setitem__("size", None), "size"),
    (lambda v: v.__setitem__("colour", "blue"), "colour"),
    (lambda v: v["kafka"].__setitem__("replicas", 3), "replicas"),
    (lambda v: v["users"].append({"name": "Bad_Name"}), "Bad_Name"),
    (lambda v: v["users"].append({"name": "eve", "authentication": "plain"}), "authentication"),
    (lambda v: v["proxy"].__setitem__("acls", [{"resource": {"type": "topic"}, "operations": ["Fly"]}]), "/proxy/acls/0/operations"),
    (lambda v: v["topics"].append({"name": "orders", "partitions": 0}), "/topics/0/partitions"),
    (lambda v: v["topics"].append({"name": "orders!"}), "/topics/0/name"),
    (lambda v: v["topics"].append({"name": "t" * 250, "resourceName": "t"}), "/topics/0/name"),
    # A topic name Kubernetes does not take needs its object's name.
    (lambda v: v["topics"].append({"name": "Orders_DLQ"}), "/topics/0/name"),
    (lambda v: v["topics"].append({"name": "orders", "config": {"Cleanup Policy": "compact"}}), "/topics/0/config"),
    (lambda v: v["topics"].append({"name": "orders", "retentionHours": 5}), "retentionHours"),
    (lambda v: v["users"].append({"name": "eve", "quotas": {"producerByteRate": 0}}), "/users/0/quotas/producerByteRate"),
    (lambda v: v["users"].append({"name": "eve", "quotas": {"requestPercentage": 10}}), "requestPercentage"),
])
def test_bad_values_are_refused_naming_the_value(mutate, named):
    values = defaults()
    mutate(values)
    with pytest.raises(helm.HelmValuesError) as err:
        helm.Chart.load(CHART).validate_schema(values)
    assert named in str(err.value), str(err.value)


def test_each_shared_cluster_release_creates_only_its_own_storage_class():
    """StorageClasses are cluster-wide: two tenants' releases on the shared cluster must not both create one
    name (Helm refuses the second). The controller names one per tenant; the chart creates exactly that one."""
    values = controller_values("beta")
    classes = [o["metadata"]["name"] for o in render("kaas", values, namespace="tenant-tenants-beta")
               if o["kind"] == "StorageClass"]
    assert classes == [values["kafka"]["storage"]["class"]] == ["kaas-tenants-beta-gp3"]


def test_topics_are_strimzi_kafka_topics_and_brokers_create_none(crd_schemas):
    """The controller's topic values become KafkaTopics of the tenant's Kafka, each valid for Strimzi's CRD; the
    brokers never create a topic themselves, so topics exist only as declared or where an ACL grants Create."""
    values = controller_values("acme")
    objects = render("kaas", values)
    kafka = [o for o in objects if o["kind"] == "Kafka"][0]
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    assert kafka["spec"]["entityOperator"]["topicOperator"] == {}, "the topic operator keeps the KafkaTopics"
    topics = {o["spec"]["topicName"]: o for o in objects if o["kind"] == "KafkaTopic"}
    assert sorted(topics) == sorted(t["name"] for t in values["topics"])
    for want in values["topics"]:
        topic = topics[want["name"]]
        assert validate(topic, crd_schemas) == "crd"
        assert topic["apiVersion"] == kafka["apiVersion"], "the same Strimzi API as the chart's Kafka"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["metadata"]["name"] == want.get("resourceName", want["name"])
        assert topic["spec"]["partitions"] == want["partitions"] and topic["spec"]["replicas"] == want["replicas"]
        assert topic["spec"].get("config", {}) == want["config"]
    # Numbers stay numbers, strings stay strings (Strimzi passes both on to Kafka).
    config = topics["orders.audit"]["spec"]["config"]
    assert config["retention.ms"] == 12 * 3600 * 1000 and config["max.message.bytes"] == "2097152"
    assert not [o for o in render("kaas") if o["kind"] == "KafkaTopic"], "no topics unless declared"


def test_create_is_rendered_only_where_the_values_grant_it(crd_schemas):
    values = controller_values("acme")
    users = {o["metadata"]["name"]: o for o in render("kaas", values) if o["kind"] == "KafkaUser"}
    creators = sorted((name, acl["resource"].get("name")) for name, u in users.items()
                      for acl in u["spec"]["authorization"]["acls"]
                      if {"Create", "All"} & set(acl["operations"]))
    assert creators == [("orders-service", "scratch-")]


def test_each_user_is_held_to_its_quotas(crd_schemas):
    values = controller_values("acme")
    users = {o["metadata"]["name"]: o for o in render("kaas", values) if o["kind"] == "KafkaUser"}
    for want in values["users"]:
        user = users[want["name"]]
        assert validate(user, crd_schemas) == "crd"
        assert user["spec"]["quotas"] == want["quotas"]
        assert set(want["quotas"]) == {"producerByteRate", "consumerByteRate"}
    # Per broker, over every broker no user gets more than the tenant states (MB = 10^6 bytes).
    brokers = values["kafka"]["brokers"]
    ingress = max(u["quotas"]["producerByteRate"] for u in values["users"]) * brokers
    assert ingress < 100_000_000 + brokers, "acme states 100 MB/s"
    assert "quotas" not in users["kaas-proxy"]["spec"], "the proxy's own metadata requests are not throttled"


def test_brokers_have_resources_a_fixed_heap_and_a_node_each():
    """Without them the brokers are BestEffort (first evicted) with the JVM's default heap, and two may share a
    node whose network and EBS throughput the sizing gave one broker; controllers get their own figures."""
    pools = {o["metadata"]["name"]: o["spec"] for o in render("kaas") if o["kind"] == "KafkaNodePool"}
    brokers, controllers = pools["brokers"], pools["controllers"]
    assert brokers["resources"] == {"requests": {"cpu": "1500m", "memory": "6144Mi"}, "limits": {"memory": "6144Mi"}}
    assert brokers["jvmOptions"] == {"-Xms": "2048m", "-Xmx": "2048m"}
    assert controllers["jvmOptions"] == {"-Xms": "1024m", "-Xmx": "1024m"}
    terms = brokers["template"]["pod"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert {t["topologyKey"] for t in terms} == {"kubernetes.io/hostname"}
    assert [sorted(t["labelSelector"]["matchLabels"].items()) for t in terms] == [
        [("strimzi.io/broker-role", "true"), ("strimzi.io/cluster", "kaas")],
        [("strimzi.io/cluster", "kaas"), ("strimzi.io/controller-role", "true")],
    ]
    sized = render("kaas", {"kafka": {"brokerResources": {"cpuMillis": 3500, "memoryMiB": 12288, "heapMiB": 4096}}})
    brokers = next(o for o in sized if o["kind"] == "KafkaNodePool" and o["metadata"]["name"] == "brokers")["spec"]
    assert brokers["resources"]["limits"]["memory"] == "12288Mi" and brokers["jvmOptions"]["-Xmx"] == "4096m"


def test_on_its_own_cluster_brokers_and_controllers_run_on_their_pools():
    """kaas-controller taints a tenant cluster's broker nodes (node.cluster.x-k8s.io/pool=brokers:NoSchedule):
    without the toleration the brokers stay Pending; without the affinities they land beside the platform's pods
    and the controllers on broker nodes. On the shared cluster there are no such pools."""
    def pools(values):
        return {o["metadata"]["name"]: o["spec"] for o in render("kaas", values) if o["kind"] == "KafkaNodePool"}

    own = pools(controller_values("acme"))
    label = "node.cluster.x-k8s.io/pool"
    broker_pod = own["brokers"]["template"]["pod"]
    assert broker_pod["tolerations"] == [{"key": label, "operator": "Equal", "value": "brokers", "effect": "NoSchedule"}]
    for pool, want in [("brokers", "brokers"), ("controllers", "system")]:
        terms = own[pool]["template"]["pod"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"] == [{"matchExpressions": [{"key": label, "operator": "In", "values": [want]}]}], pool
    shared = pools(controller_values("beta"))
    assert "tolerations" not in shared["brokers"]["template"]["pod"]
    assert "nodeAffinity" not in shared["brokers"]["template"]["pod"]["affinity"]
    assert "template" not in shared["controllers"]


def test_on_the_shared_cluster_the_namespace_is_a_wall():
    """isolation: namespace (beta): nothing reaches the tenant's pods but what Strimzi's own policy admits, its
    `tls` listener only from kaas-proxy's pods (Strimzi opens a listener to every namespace unless it names
    peers), and the namespace holds no more than the sizing: before, none of these existed."""
    objects = render("kaas", controller_values("beta"))
    kinds = {o["kind"]: o for o in objects}
    deny = kinds["NetworkPolicy"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}, "default deny: no ingress rule of its own"
    tls = next(l for l in kinds["Kafka"]["spec"]["kafka"]["listeners"] if l["name"] == "tls")
    assert tls["networkPolicyPeers"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kaas-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kaas-proxy"}},
    }]
    values = controller_values("beta")["kafka"]
    quota = kinds["ResourceQuota"]["spec"]["hard"]
    brokers, size = values["brokers"], int(values["storage"]["size"].removesuffix("Gi"))
    assert quota["requests.storage"] == f"{brokers * size + 3 * 20}Gi"
    assert quota["persistentvolumeclaims"] == str(brokers + 3)
    assert (quota["services.loadbalancers"], quota["services.nodeports"]) == ("0", "0")
    broker_cpu = values["brokerResources"]["cpuMillis"]
    # Brokers, three KRaft controllers, the entity operator's two containers and Cruise Control.
    assert quota["requests.cpu"] == f"{brokers * broker_cpu + 3 * 250 + 2 * 200 + 500}m"
    assert kinds["LimitRange"]["spec"]["limits"][0]["defaultRequest"] == {"cpu": "200m", "memory": "512Mi"}
    own = {o["kind"] for o in render("kaas", controller_values("acme"))}
    assert not own & {"ResourceQuota", "LimitRange", "NetworkPolicy"}, "its own cluster is its wall"


def test_brokers_are_numbered_from_zero_and_controllers_apart():
    """The b<id> names kaas-proxy serves and orders certificates for follow from the broker count: Strimzi
    numbers nodes in creation order unless a pool names its ids (KafkaNodePool annotation
    strimzi.io/next-node-ids); before, the controllers, made first, could take 0-2 and the brokers 3-5."""
    pools = {o["metadata"]["name"]: o for o in render("kaas", controller_values("acme")) if o["kind"] == "KafkaNodePool"}
    assert pools["brokers"]["metadata"]["annotations"]["strimzi.io/next-node-ids"] == "[0-99]"
    assert pools["controllers"]["metadata"]["annotations"]["strimzi.io/next-node-ids"] == "[100-199]"


def test_partitions_follow_a_resize_through_cruise_control():
    """Strimzi rebalances when brokers are added or removed only when the Kafka names a rebalance template for
    each mode and that KafkaRebalance exists, annotated as a template (Strimzi 1.2.0, Kafka CRD
    spec.cruiseControl.autoRebalance): before, a scale-out added brokers holding nothing."""
    for example in ("acme", "beta"):
        objects = render("kaas", controller_values(example))
        kafka = next(o for o in objects if o["kind"] == "Kafka")
        cc = kafka["spec"]["cruiseControl"]
        modes = {m["mode"]: m["template"]["name"] for m in cc["autoRebalance"]}
        assert set(modes) == {"add-brokers", "remove-brokers"}, example
        templates = {o["metadata"]["name"]: o for o in objects if o["kind"] == "KafkaRebalance"}
        for name in modes.values():
            assert templates[name]["metadata"]["annotations"] == {"strimzi.io/rebalance-template": "true"}
        assert cc["resources"]["limits"]["memory"] == "1024Mi" and cc["jvmOptions"]["-Xmx"] == "512m"
    # On its own cluster Cruise Control runs on the system pool, with the controllers.
    acme = next(o for o in render("kaas", controller_values("acme")) if o["kind"] == "Kafka")
    terms = acme["spec"]["cruiseControl"]["template"]["pod"]["affinity"]["nodeAffinity"]
    assert "system" in str(terms), terms
    off = render("kaas", {**controller_values("beta"), "kafka": {**controller_values("beta")["kafka"],
                                                                "cruiseControl": {"enabled": False, "resources": {
                                                                    "cpuMillis": 500, "memoryMiB": 1024, "heapMiB": 512}}}})
    assert not [o for o in off if o["kind"] == "KafkaRebalance"]
    assert "cruiseControl" not in next(o for o in off if o["kind"] == "Kafka")["spec"]
