"""charts/kaas-proxy's dashboard and alerts: both render and validate (the PrometheusRule against the upstream
CRD, see conftest), the rules pass promtool's checks, and every metric a panel or an alert reads is one the
real proxy binary exports on /metrics.

Needs what scripts/install-prereqs.sh puts in ${KAAS_CACHE:-~/.cache/kaas}/chart-tools/ (the PrometheusRule CRD
of prometheus-operator; promcheck, built from tools/promcheck) and target/debug/kaas-proxy (built by the test
suite's `cargo nextest run`; built here when absent)."""
import json
import os
import pathlib
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import jsonschema
import pytest
import yaml

from conftest import CHART_TOOLS, ROOT, render, validate

CHART = ROOT / "charts" / "kaas-proxy"
DASHBOARD = CHART / "dashboards" / "kaas-proxy.json"
PROMCHECK = CHART_TOOLS / "promcheck"

OFF = {"dashboard": {"enabled": False}, "prometheusRule": {"enabled": False}}
CUSTOM = {
    "dashboard": {"label": "dashboards.example.com/grafana", "labelValue": "kafka",
                  "annotations": {"grafana_folder": "Kafka"}},
    "prometheusRule": {"labels": {"release": "kube-prometheus-stack"},
                       "thresholds": {"certificateExpiryDays": 30, "upstreamUnreachableWindow": "10m",
                                      "handshakeFailureRatio": 0.25, "handshakeFailureMinRefusals": 3}},
}


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def dashboard_configmaps(objects):
    return [o for o in by_kind(objects, "ConfigMap") if "kaas-proxy.json" in o.get("data", {})]


# --- tools ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def promcheck():
    assert os.access(PROMCHECK, os.X_OK), f"promcheck is not at {PROMCHECK}: run scripts/install-prereqs.sh"
    return str(PROMCHECK)


def select(promcheck, exprs):
    """{expression: promcheck's {"metrics", "selectors"}}; fails naming every expression that does not parse."""
    run = subprocess.run([promcheck, "metrics"], input=json.dumps(exprs), capture_output=True, text=True,
                         timeout=60)
    results = json.loads(run.stdout)
    errors = [f"{r['expr']}: {r['error']}" for r in results if r.get("error")]
    assert not errors and run.returncode == 0, "\n".join(errors) or run.stderr
    return {r["expr"]: r for r in results}


def metric_names(promcheck, exprs):
    """{expression: [metric names its selectors select]}."""
    return {e: r["metrics"] for e, r in select(promcheck, exprs).items()}


# --- rendering --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [None, OFF, CUSTOM], ids=["defaults", "switched-off", "custom"])
def test_renders_valid_objects(values, crd_schemas):
    objects = render("kaas-proxy", values, name="kaas-proxy", namespace="kaas-system")
    judged = {(o["kind"], o["metadata"]["name"]): validate(o, crd_schemas) for o in objects}
    rules, dashboards = by_kind(objects, "PrometheusRule"), dashboard_configmaps(objects)
    if values is OFF:
        assert not rules and not dashboards
        assert by_kind(objects, "ServiceMonitor"), "the switches are independent"
        return
    [rule], [dashboard] = rules, dashboards
    assert judged[("PrometheusRule", "kaas-proxy")] == "crd", "validated against the upstream CRD"
    assert json.loads(dashboard["data"]["kaas-proxy.json"]) == json.loads(DASHBOARD.read_text())
    labels, annotations = dashboard["metadata"]["labels"], dashboard["metadata"].get("annotations", {})
    rule_labels = rule["metadata"]["labels"]
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    if values is None:
        assert labels["grafana_dashboard"] == "1" and not annotations
        assert "release" not in rule_labels
        assert "< 14 * 86400" in exprs and "[5m]" in exprs and "> 0.1\n" in exprs and ">= 10" in exprs
    else:
        assert labels["dashboards.example.com/grafana"] == "kafka" and "grafana_dashboard" not in labels
        assert annotations == {"grafana_folder": "Kafka"}
        assert rule_labels["release"] == "kube-prometheus-stack"
        assert "< 30 * 86400" in exprs and "[10m])) > 0" in exprs and "> 0.25\n" in exprs and ">= 3" in exprs
        assert "[5m]" not in exprs


def test_the_rule_schema_is_applied(crd_schemas):
    """The upstream schema really judges the rule: a duration it does not accept is refused."""
    [rule] = by_kind(render("kaas-proxy", name="kaas-proxy", namespace="kaas-system"), "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError, match="5 minutes"):
        validate(rule, crd_schemas)


def rule_groups(values=None):
    [rule] = by_kind(render("kaas-proxy", values, name="kaas-proxy", namespace="kaas-system"), "PrometheusRule")
    return rule["spec"]["groups"]


def test_alerts_are_complete():
    alerts = {r["alert"]: r for g in rule_groups() for r in g["rules"]}
    assert set(alerts) == {"KaasProxyUpstreamUnreachable", "KaasProxyHandshakeFailures",
                           "KaasProxyCertificateExpiring", "KaasProxyLeakedAddresses",
                           "KaasProxyRouteReloadRefused", "KaasProxyRoutesLeftOut"}
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert "for" in rule, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        if "tenant" in rule["expr"]:
            # Aggregated by tenant: the tenant is named where an operator reads first.
            assert "$labels.tenant" in rule["annotations"]["summary"], name
            assert "$labels.tenant" in rule["annotations"]["description"], name
    assert alerts["KaasProxyLeakedAddresses"]["labels"]["severity"] == "critical"
    assert alerts["KaasProxyUpstreamUnreachable"]["labels"]["severity"] == "critical"


# --- promtool's checks ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [None, CUSTOM], ids=["defaults", "custom"])
def test_rules_pass_promtool_checks(values, promcheck, tmp_path):
    rules = tmp_path / "kaas-proxy.rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups(values)}, sort_keys=False))
    run = subprocess.run([promcheck, "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 6 rules found" in run.stdout and "WARNING" not in run.stderr, run.stdout + run.stderr


def test_promcheck_reports_every_error(promcheck, tmp_path):
    """The checker is not a rubber stamp: a file with three kinds of mistakes fails, naming each."""
    bad = tmp_path / "bad.rules.yaml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": "sum(rate(x[5m])"},
        {"alert": "B", "expr": "up == 0", "annotations": {"summary": "{{ $labels.job "}},
        {"alert": "C", "expr": "up", "fore": "5m"},
    ]}]}))
    run = subprocess.run([promcheck, "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "field fore not found" in run.stderr, run.stderr
    bad.write_text(bad.read_text().replace("fore:", "for:"))
    run = subprocess.run([promcheck, "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert '"A"' in run.stderr and "unclosed left parenthesis" in run.stderr, run.stderr
    assert '"B"' in run.stderr and 'annotation "summary"' in run.stderr, run.stderr
    assert metric_names(promcheck, ['histogram_quantile(0.5, sum by (le) (rate(a_bucket{x="1"}[5m]))) / b']) == {
        'histogram_quantile(0.5, sum by (le) (rate(a_bucket{x="1"}[5m]))) / b': ["a_bucket", "b"]}


# --- the dashboard ----------------------------------------------------------------------------------------------

def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(board):
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])


def test_dashboard_is_well_formed():
    board = dashboard()
    assert board["uid"] == "kaas-proxy" and board.get("id") is None
    assert board["schemaVersion"] >= 39
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["tenant"]["query"].startswith("label_values(kaas_proxy_") and variables["tenant"]["multi"]
    graphs = [p for p in panels(board) if p["type"] != "row"]
    assert len(graphs) >= 12
    for p in graphs:
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert t["expr"] and t["datasource"]["uid"] == "${datasource}", p["title"]
    exprs = " ".join(t["expr"] for p in graphs for t in p["targets"])
    assert 'stage="proxy"' in exprs and 'stage="upstream"' in exprs and "histogram_quantile(0.99" in exprs
    # The layout: no two panels overlap on Grafana's 24-column grid.
    cells = set()
    for p in panels(board):
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine


# Grafana's variables, replaced by what Grafana would put there, so the text is PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$tenant": ".*"}


def as_promql(expr):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def queries():
    """(where, PromQL) of every dashboard query, the tenant variable's metric, and every alert expression."""
    board = dashboard()
    found = [(f"panel {p['title']!r}", as_promql(t["expr"]))
             for p in panels(board) if p["type"] != "row" for t in p["targets"]]
    variable = next(v for v in board["templating"]["list"] if v["name"] == "tenant")
    metric = re.fullmatch(r"label_values\((\w+), tenant\)", variable["query"])
    assert metric, variable["query"]
    found.append(("the tenant variable", metric[1]))
    found += [(f"alert {r['alert']}", r["expr"]) for g in rule_groups() for r in g["rules"]]
    return found


# --- what the proxy really exports ------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_binary():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "kaas-proxy"
    # Always through cargo: a binary left from an older build would judge the dashboard by stale metrics (in
    # the test command it is already built by nextest, and this returns at once).
    subprocess.run(["cargo", "build", "-p", "kaas-proxy", "--bin", "kaas-proxy", "--locked"], cwd=ROOT, check=True,
                   timeout=3600)
    return binary


@pytest.fixture(scope="session")
def exposition(tmp_path_factory):
    """The OpenMetrics text a real kaas-proxy serves on /metrics, with one tenant configured."""
    work = tmp_path_factory.mktemp("proxy")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "server.key", "-out", "server.pem", "-days", "2", "-subj", "/CN=kaas.localhost",
                    "-addext", "subjectAltName=DNS:kaas.localhost,DNS:*.kaas.localhost,DNS:*.acme.kaas.localhost"],
                   cwd=work, check=True, capture_output=True)
    admin = f"127.0.0.1:{free_port()}"
    (work / "kaas-proxy.yaml").write_text(yaml.safe_dump({
        "listen": "127.0.0.1:0", "domain": "kaas.localhost", "admin_listen": admin,
        "tls": {"cert": "server.pem", "key": "server.key"},
        # Port 9 (discard): nothing listens; the proxy never dials it here (no client connects).
        "tenants": [{"name": "acme", "bootstrap": ["127.0.0.1:9"], "upstream": {"plaintext": True}}],
    }))
    log = (work / "proxy.log").open("w+")
    proc = subprocess.Popen([str(proxy_binary()), "--config", str(work / "kaas-proxy.yaml")], cwd=work,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"kaas-proxy exited {proc.returncode}: {(work / 'proxy.log').read_text()}"
            try:
                with urllib.request.urlopen(f"http://{admin}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, f"not ready in 30 s: {(work / 'proxy.log').read_text()}"
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
            assert r.status == 200
            yield r.read().decode()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def exported_series_names(text):
    """Names a selector can use, from the `# TYPE` lines: a counter family x is exposed as x_total, a histogram
    as x_bucket, x_sum and x_count (OpenMetrics)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gaugehistogram":
                ["_bucket", "_gsum", "_gcount"], "summary": ["", "_sum", "_count"], "info": ["_info"]}
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M):
        names.update(family + s for s in suffixes.get(kind, [""]))
    return names


def test_exposition_is_read_as_openmetrics(exposition):
    names = exported_series_names(exposition)
    assert "kaas_proxy_listener_connections_total" in names and "kaas_proxy_routes_generation" in names
    assert exposition.rstrip().endswith("# EOF")


def exported_samples(text):
    """{series name: [{label: value}]} of the samples in the exposition."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            name = name.split(" ")[0]
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest.rpartition("}")[0]))
            samples.setdefault(name, []).append(labels)
    return samples


def test_every_metric_used_is_exported(promcheck, exposition):
    found = queries()
    selected = metric_names(promcheck, sorted({q for _, q in found}))
    exported = exported_series_names(exposition)
    used = {name for names in selected.values() for name in names}
    assert len(used) >= 20, sorted(used)
    missing = sorted({f"{where}: {name}" for where, q in found for name in selected[q] if name not in exported})
    assert not missing, "not exported by kaas-proxy:\n" + "\n".join(missing)


def test_every_label_matched_is_exported(promcheck, exposition):
    """A matcher on a label the metric does not carry, or on a value it never takes, selects nothing: checked
    for every metric that has samples with one tenant configured (a histogram has none before its first
    observation)."""
    found = queries()
    selected = select(promcheck, sorted({q for _, q in found}))
    samples = exported_samples(exposition)
    wrong, checked = set(), 0
    for where, q in found:
        for sel in selected[q]["selectors"]:
            series = samples.get(sel["metric"])
            if not series:
                continue
            for m in sel["matchers"]:
                checked += 1
                values = {labels[m["label"]] for labels in series if m["label"] in labels}
                if not values:
                    wrong.add(f"{where}: {sel['metric']} has no label {m['label']}")
                elif m["op"] == "=" and m["value"] not in values:
                    wrong.add(f"{where}: {sel['metric']}{{{m['label']}}} is never {m['value']!r}: {sorted(values)}")
                elif m["op"] == "=~" and not any(re.fullmatch(m["value"], v) for v in values):
                    wrong.add(f"{where}: {sel['metric']}{{{m['label']}}} never matches {m['value']!r}")
    assert checked >= 10
    assert not wrong, "\n".join(sorted(wrong))
