"""Shared helpers: render charts with the Helm v4 SDK (helm-python-sdk, no helm binary) and validate every
object: custom resources against the upstream CRD schemas in ../shared/crds/, built-in kinds against
Kubernetes' own schemas (kubernetes-validate)."""
import pathlib

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = ROOT.parent / "shared" / "crds"
KUBE_VERSION = "1.33"


def load_crd_schemas():
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for v in doc["spec"]["versions"]:
                schemas[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return schemas


@pytest.fixture(scope="session")
def crd_schemas():
    schemas = load_crd_schemas()
    assert len(schemas) >= 20, f"upstream CRDs not found under {CRDS}"
    return schemas


def render(chart, values=None, name="kaas", namespace="kafka"):
    """Every object the chart renders, in template order."""
    out = helm.Chart.load(str(ROOT / "charts" / chart)).render(values, name=name, namespace=namespace)
    objects = []
    for template, text in sorted(out.items()):
        if template.endswith("NOTES.txt"):
            continue
        objects.extend(o for o in yaml.safe_load_all(text) if o)
    return objects


def validate(obj, crd_schemas):
    """Raises if `obj` is invalid for its kind; returns which schema judged it."""
    key = (obj["apiVersion"], obj["kind"])
    if key in crd_schemas:
        jsonschema.validate(obj, crd_schemas[key])
        return "crd"
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    return "kubernetes"
