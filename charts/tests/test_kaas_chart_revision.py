"""charts/kaas as Flux packages it from Git with `reconcileStrategy: Revision`: the chart's version gains the
commit as build metadata (`0.1.0+e3279c1ee99a`), and every label built from it must still be a valid label
value (a `+` is not; Helm's own scaffold replaces it), or the API server refuses the release's objects."""

import re
import shutil

import helm_python as helm
import yaml

from conftest import ROOT

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def test_labels_stay_valid_when_flux_adds_the_git_revision_to_the_chart_version(tmp_path):
    chart = tmp_path / "kaas"
    shutil.copytree(ROOT / "charts" / "kaas", chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = f"{meta['version']}+e3279c1ee99a"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    out = helm.Chart.load(str(chart)).render(None, name="kaas", namespace="kafka")
    objects = [o for t, text in out.items() if not t.endswith("NOTES.txt") for o in yaml.safe_load_all(text) if o]
    assert objects
    for obj in objects:
        for key, value in (obj["metadata"].get("labels") or {}).items():
            assert LABEL_VALUE.match(str(value)), f"{obj['kind']}/{obj['metadata']['name']}: {key}={value}"
