"""Shared helpers: render charts with the Helm v4 SDK (helm-python-sdk, no helm binary) and validate every
object: custom resources against the upstream CRD schemas in ../shared/crds/ (and prometheus-operator's
PrometheusRule, which scripts/install-prereqs.sh fetches), built-in kinds against Kubernetes' own schemas
(kubernetes-validate)."""
import os
import pathlib
import re
import shutil
import subprocess

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = ROOT.parent / "shared" / "crds"
KUBE_VERSION = "1.33"
# Made by scripts/install-prereqs.sh: the PrometheusRule CRD (and tools/promcheck, built).
CHART_TOOLS = pathlib.Path(os.environ.get("KAAS_CACHE", pathlib.Path.home() / ".cache" / "kaas")) / "chart-tools"
PROMETHEUS_RULE_CRD = CHART_TOOLS / "monitoring.coreos.com_prometheusrules.yaml"
# Where install-prereqs.sh takes it from: the Go module cache still has it when the copy above is missing.
PROMETHEUS_RULE_CRD_IN_MODULE = ("github.com/prometheus-operator/prometheus-operator@v0.93.0/example/"
                                 "prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml")


def prometheus_rule_crd():
    path = PROMETHEUS_RULE_CRD
    if not path.exists() and shutil.which("go"):
        modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
        path = pathlib.Path(modcache) / PROMETHEUS_RULE_CRD_IN_MODULE
    assert path.exists(), f"the PrometheusRule CRD is not at {PROMETHEUS_RULE_CRD}: run scripts/install-prereqs.sh"
    return path


def as_python_patterns(node):
    """CRD patterns are Go (RE2) expressions; Python's re refuses one form of them, an inline flag after the
    anchor (prometheus-operator's `^(?i)(abort|warn)?$`): the flag moves to the front, which means the same.
    Every pattern must then compile, so none is skipped."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                node[key] = re.sub(r"^\^\(\?([a-zA-Z]+)\)", r"(?\1)^", value)
                re.compile(node[key])
            else:
                as_python_patterns(value)
    elif isinstance(node, list):
        for item in node:
            as_python_patterns(item)


def load_crd_schemas():
    schemas = {}
    for path in [*sorted(CRDS.glob("*.yaml")), prometheus_rule_crd()]:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            as_python_patterns(doc)
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for v in doc["spec"]["versions"]:
                schemas[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return schemas


@pytest.fixture(scope="session")
def crd_schemas():
    schemas = load_crd_schemas()
    assert len(schemas) >= 20, f"upstream CRDs not found under {CRDS}"
    return schemas


# What a platform must set before a chart installs (kaas-controller refuses to without the owner of the tenant
# machines' images): the tests' platform, under every render's values.
PLATFORM_VALUES = {"kaas-controller": {"machines": {"imageLookupOrg": "123456789012"}}}


def with_platform(chart, values):
    """`values` over the tests' platform settings for `chart`."""
    def merge(base, over):
        out = dict(base)
        for k, v in (over or {}).items():
            out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
        return out
    return merge(PLATFORM_VALUES.get(chart, {}), values)


def render(chart, values=None, name="kaas", namespace="kafka"):
    """Every object the chart renders, in template order (over the tests' platform settings)."""
    out = helm.Chart.load(str(ROOT / "charts" / chart)).render(with_platform(chart, values), name=name,
                                                               namespace=namespace)
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



def pruned(obj, schema, path=""):
    """The paths in `obj` the API server would drop without a word: keys its structural schema does not declare
    (no `additionalProperties`, no `x-kubernetes-preserve-unknown-fields`). jsonschema accepts them, so a
    misspelt field passes `validate`; this names it."""
    if isinstance(obj, list):
        return [p for i, item in enumerate(obj) for p in pruned(item, schema.get("items", {}), f"{path}[{i}]")]
    if not isinstance(obj, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    props, extra = schema.get("properties", {}), schema.get("additionalProperties")
    out = []
    for key, value in obj.items():
        if not path and key in ("apiVersion", "kind", "metadata"):
            continue
        if key in props:
            out.extend(pruned(value, props[key], f"{path}.{key}"))
        elif isinstance(extra, dict):
            out.extend(pruned(value, extra, f"{path}.{key}"))
        elif extra is not True:
            out.append(f"{path}.{key}")
    return out
