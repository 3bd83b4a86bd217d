"""charts/kaas: the brokers' gp3 volumes get the throughput and IOPS kaas-controller sized them for, through a
VolumeAttributesClass (storage.k8s.io/v1, Kubernetes 1.34+) that only the broker pool uses; without those values
nothing is rendered and the volumes keep gp3's baseline."""
import copy

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest

from conftest import ROOT, render

TUNED = {"kafka": {"storage": {"size": "2000Gi", "class": "kaas-encrypted-gp3", "throughputMiBps": 500,
                               "iops": 3000}}}


def pools(objects):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "KafkaNodePool"}


def test_sized_throughput_reaches_the_broker_volumes(crd_schemas):
    objects = render("kaas", TUNED)
    [vac] = [o for o in objects if o["kind"] == "VolumeAttributesClass"]
    assert vac["metadata"]["name"] == "kaas-encrypted-gp3-500mibps-3000iops"
    assert vac["driverName"] == "ebs.csi.aws.com"
    assert vac["parameters"] == {"throughput": "500", "iops": "3000"}
    kubernetes_validate.validate(vac, "1.34", strict=True)
    by_name = pools(objects)
    [brokers] = by_name["brokers"]["spec"]["storage"]["volumes"]
    assert brokers["volumeAttributesClass"] == vac["metadata"]["name"]
    [metadata] = by_name["controllers"]["spec"]["storage"]["volumes"]
    assert "volumeAttributesClass" not in metadata, "KRaft metadata volumes stay at the baseline"
    for pool in by_name.values():
        jsonschema.validate(pool, crd_schemas[("kafka.strimzi.io/v1", "KafkaNodePool")])


def test_a_new_sizing_is_a_new_class():
    retuned = copy.deepcopy(TUNED)
    retuned["kafka"]["storage"].update(throughputMiBps=954, iops=3816)
    [vac] = [o for o in render("kaas", retuned) if o["kind"] == "VolumeAttributesClass"]
    assert vac["metadata"]["name"] == "kaas-encrypted-gp3-954mibps-3816iops"


def test_the_baseline_renders_no_class():
    objects = render("kaas", None)
    assert not [o for o in objects if o["kind"] == "VolumeAttributesClass"]
    [brokers] = pools(objects)["brokers"]["spec"]["storage"]["volumes"]
    assert "volumeAttributesClass" not in brokers


@pytest.mark.parametrize("storage, named", [
    ({"throughputMiBps": 500}, "iops"),
    ({"iops": 4000}, "throughputMiBps"),
    ({"throughputMiBps": 2000, "iops": 8000}, "throughputMiBps"),
    ({"throughputMiBps": 100, "iops": 3000}, "throughputMiBps"),
])
def test_bad_volume_figures_are_refused_naming_them(storage, named):
    chart = helm.Chart.load(str(ROOT / "charts" / "kaas"))
    values = copy.deepcopy(chart.values)
    values["kafka"]["storage"].update(storage)
    with pytest.raises(helm.HelmValuesError) as err:
        chart.validate_schema(values)
    assert named in str(err.value), str(err.value)
