"""deploy/grafana and deploy/prometheus against the service they watch.

The metric names the dashboard and the alert rules query are collected from their PromQL and
compared with what a real app exports at /metrics (scraped through httpx's ASGI transport), label
matchers included where the scrape has samples; every expression is parsed by promtool, the rules
pass `promtool check rules` and their unit tests (`promtool test rules`); the compose profile
mounts what the provisioning files and prometheus.yml expect. Without promtool those parts skip,
unless CI is set: then they fail (.ci/run installs Debian's `prometheus` package).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gradhealth.jobs import store
from tests.api.helpers import TINY, running_app, settings_for

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "gradhealth.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "gradhealth.yml"
# Series Prometheus makes itself for every target, not the service.
PROMETHEUS_OWN = {"up"}

PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "bool", "offset", "inf", "nan"}


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if _ci():
            pytest.fail("CI is set and the alert rules must be checked: promtool not found "
                        "(.ci/run installs the prometheus package)", pytrace=False)
        pytest.skip("promtool not found (Debian package `prometheus`)")
    return path


# --- what the service exports ----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str] | None]:
    """Sample name -> label names seen (None: the family has no sample yet in this app)."""
    with running_app(settings_for(tmp_path_factory.mktemp("metrics"), workers=0)) as api:
        assert api.post("/v1/checks/architecture", json=TINY).status_code == 202  # stays queued
        # One cancelled and one finished with a finding, so that the job counters have samples
        # and the label names the dashboard matches on are checked too.
        cancelled = api.post("/v1/checks/architecture", json={**TINY, "seeds": 2}).json()["id"]
        assert api.delete(f"/v1/jobs/{cancelled}").status_code in (200, 202, 204)
        api.post("/v1/checks/architecture", json={**TINY, "seeds": 3})
        with api.app.state.sessions() as session:
            job = store.claim(session, worker_id="w", lease_s=60)
            assert job is not None
            assert store.finish(session, job_id=job.id, worker_id="w", status="succeeded",
                                result={"findings": [{"code": "vanishing_gradient"}]})
        # A live run still active, with findings (the per-run gauges), and one finished (the run
        # counters), so that every live-run panel's metric has samples and its labels are checked.
        rows = [{"step": s, "metric": "grad_norm", "value": 1.0} for s in range(20)]
        rows += [{"step": s, "metric": "loss", "value": 1.0 / (s + 1)} for s in range(20)]
        rows.append({"step": 20, "metric": "grad_norm", "value": "nan"})
        for name in ("watched", "done"):
            run = api.post("/v1/runs", json={"name": name}).json()["id"]
            assert api.post(f"/v1/runs/{run}/points", json=rows).status_code == 200
        assert api.post(f"/v1/runs/{run}/finish").status_code == 200
        api.get("/livez")
        text = api.get("/metrics").text
    out: dict[str, set[str] | None] = {}
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                                                                 "_created"),
                "summary": ("_sum", "_count", "_created"), "gauge": ("",)}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, ("",)):
            out.setdefault(family.name + suffix, None)
        for sample in family.samples:
            seen = out.get(sample.name) or set()
            out[sample.name] = seen | (set(sample.labels) - {"le"})
    assert "gradhealth_queue_depth" in out  # the scrape worked
    return out


# --- PromQL reading --------------------------------------------------------------------------


def selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """(metric name, label names matched) of every vector selector in ``expr``."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals cannot hide a name
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, matchers, call = m.group(1), m.group(2), m.group(3)
        if call or name.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", name):
            continue
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))
        yield name, labels


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = []
    for panel in dash["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            exprs += [t["expr"] for t in p.get("targets", []) if t.get("expr")]
    return exprs


def rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def test_selector_reader():
    found = dict(selectors('sum by (le, kind) (rate(a_b_bucket{kind="x", status=~"5.."}[5m])) '
                           "/ on() (b or vector(0)) > bool 1"))
    assert found == {"a_b_bucket": {"kind", "status"}, "b": set()}


#: Metrics read from the database at scrape time (JobCollector, the live-run collector): every API
#: replica reports the same value, so a query must take max (or min) across instances before any
#: sum; `sum(gradhealth_jobs{...})` showed N times the jobs with N replicas (newuser6 #7).
DATABASE_WIDE = re.compile(r"gradhealth_(jobs|queue_depth|jobs_finished_total|job_duration_seconds_(bucket|sum|count)"
                           r"|findings_total|runs?_\w+)")
AGGREGATIONS = {"sum", "max", "min", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                "group", "count_values"}


def first_aggregations(expr: str) -> Iterator[tuple[str, str | None]]:
    """(metric, the aggregation that first takes it across series, or None) for each selector."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]|\{[^}]*\}", "", text)  # durations and label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[m.end():].lstrip().startswith("(") or m.group().lower() in PROMQL_WORDS:
            continue
        depth, i, found = 0, m.start() - 1, None
        while i >= 0 and found is None:
            if text[i] == ")":
                depth += 1
            elif text[i] == "(":
                if depth:
                    depth -= 1
                else:
                    word = re.search(r"([A-Za-z_]\w*)\s*$", text[:i])
                    if word and word.group(1) in AGGREGATIONS:
                        found = word.group(1)
            i -= 1
        yield m.group(), found


def test_first_aggregation_reader():
    assert dict(first_aggregations('sum(max by (kind) (rate(a{s="x"}[5m]))) + sum(b) or vector(0)')) == {
        "a": "max", "b": "sum"}


def test_database_wide_metrics_are_taken_with_max_across_replicas():
    exprs = dashboard_exprs() + list(rule_exprs().values())
    summed = [(metric, agg, expr) for expr in exprs for metric, agg in first_aggregations(expr)
              if DATABASE_WIDE.fullmatch(metric) and agg not in ("max", "min")]
    assert not summed, summed


def check_names(exprs: list[str], exported: dict[str, set[str] | None]) -> set[str]:
    used = set()
    for expr in exprs:
        for name, labels in selectors(expr):
            used.add(name)
            assert name in exported or name in PROMETHEUS_OWN, (
                f"{name!r} in {expr!r} is not a metric the service exports: "
                f"{sorted(n for n in exported if n.startswith('gradhealth'))}")
            known = exported.get(name)
            if known is not None:
                assert labels <= known | {"job", "instance"}, (name, labels, known)
    return used


# --- the dashboard ---------------------------------------------------------------------------


def test_dashboard_queries_only_metrics_the_service_exports(exported):
    exprs = dashboard_exprs()
    used = check_names(exprs, exported)
    # What the dashboard is for: throughput and latency, queue depth, worker health, findings.
    assert {"gradhealth_jobs_finished_total", "gradhealth_job_duration_seconds_bucket",
            "gradhealth_queue_depth", "gradhealth_jobs", "gradhealth_findings_total",
            "gradhealth_http_requests_total", "gradhealth_run_health", "gradhealth_runs_finished_total",
            "gradhealth_run_findings_raised_total"} <= used


def test_dashboard_is_well_formed_and_uses_the_provisioned_datasource():
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] and dash["title"]
    # newuser4 P9: the data source is a variable (a dashboard imported into another Grafana picks
    # its own Prometheus), whose default is the provisioned one.
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    chooser = variables["datasource"]
    assert chooser["type"] == "datasource" and chooser["query"] == source["type"] == "prometheus"
    assert chooser["current"]["value"] == source["uid"]
    for panel in dash["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["w"] <= 24
        for target in [*panel.get("targets", []), *([panel] if "datasource" in panel else [])]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert source["url"] == "http://prometheus:9090"
    del variables["datasource"]  # the default is the one place the provisioned uid is named
    assert source["uid"] not in json.dumps([dash["panels"], list(variables.values())])


#: Grafana's per-second rate units (a rate() plotted as it is) and per-minute ones (a rate() * 60).
PER_SECOND_UNITS = {"reqps", "ops", "rps", "wps", "iops", "hertz"}
PER_MINUTE_UNITS = {"opm", "rpm", "wpm", "reqpm"}


def test_every_panel_has_a_unit_and_a_rate_its_time_base():
    # newuser11 #9: "Job throughput" (unit short) and "Jobs finished by status" (none) plotted
    # rate(...) * 60 with no visible "/min" anywhere on the panel
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, f"panel {panel['title']!r} has no unit"
        for target in panel.get("targets", []):
            expr = target["expr"]
            if "rate(" not in expr or expr.startswith("histogram_quantile"):
                continue
            if re.search(r"\*\s*60\s*$", expr):
                assert unit in PER_MINUTE_UNITS or (unit.startswith("suffix:") and unit.endswith("/min")), \
                    (panel["title"], unit)
                label = panel["fieldConfig"]["defaults"].get("custom", {}).get("axisLabel", "")
                assert "per minute" in label, panel["title"]
            else:
                assert unit in PER_SECOND_UNITS or unit.endswith("/s"), (panel["title"], unit)


def test_live_run_panels_link_to_the_run_report_and_name_the_run():
    # newuser4 P9: from a run's series to its report, and a legend that tells two runs of one name apart
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["gradhealth_url"]["type"] in ("textbox", "constant")
    per_run = [p for p in dash["panels"] for t in p.get("targets", [])
               if any(name.startswith("gradhealth_run_") and not name.endswith("_total")
                      for name, _ in selectors(t["expr"]))]
    queried = {name for p in per_run for t in p["targets"] for name, _ in selectors(t["expr"])}
    assert {"gradhealth_run_grad_norm", "gradhealth_run_findings", "gradhealth_run_health",
            "gradhealth_run_last_step", "gradhealth_run_last_point_timestamp_seconds"} <= queried
    for panel in per_run:
        (link,) = panel["fieldConfig"]["defaults"]["links"]
        run = "${__data.fields.run}" if panel["type"] == "table" else "${__field.labels.run}"
        assert link["url"] == "${gradhealth_url}/v1/runs/" + run + "/report?format=html", panel["title"]
        for target in panel["targets"]:
            assert "by (run, name" in target["expr"]  # the labels the link and legend read
            assert target["legendFormat"].startswith("{{name}} ({{run}})"), panel["title"]
    exprs = " ".join(dashboard_exprs())
    assert "gradhealth_runs_finished_total" in exprs and "gradhealth_run_findings_raised_total" in exprs


def test_every_queried_metric_has_samples_after_a_job_and_a_live_run(exported):
    # A family declared without samples passes the name check above but leaves a panel empty: after
    # one job and one live run (one active, one finished), every metric a panel or an alert
    # queries has samples (the counters from 0: newuser4 P6; the run metrics: P4).
    for expr in dashboard_exprs() + list(rule_exprs().values()):
        for name, _labels in selectors(expr):
            if name not in PROMETHEUS_OWN:
                assert exported.get(name) is not None, f"{name!r} ({expr!r}) has no sample"


def test_every_dashboard_query_parses(tmp_path):
    tool = promtool()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]}]}
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump(rules))
    run = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# --- the alert rules -------------------------------------------------------------------------


def test_alert_rules_query_only_metrics_the_service_exports(exported):
    alerts = rule_exprs()
    assert {"GradientHealthApiDown", "GradientHealthWorkersDown",
            "GradientHealthQueueGrowing"} <= set(alerts)
    check_names(list(alerts.values()), exported)


def test_promtool_checks_the_rules():
    run = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(rule_exprs())} rules found" in run.stdout + run.stderr


def test_the_alerts_fire_on_trouble_and_not_on_a_healthy_service():
    run = subprocess.run([promtool(), "test", "rules", "rules.test.yml"], cwd=PROMETHEUS,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "rules.test.yml").read_text()))
    assert tested == set(rule_exprs())  # every alert has a unit test


# --- docker compose --profile dashboards -----------------------------------------------------


def test_compose_dashboards_profile_mounts_the_provisioned_files():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    started = {n for n, s in services.items() if "dashboards" in s.get("profiles", []) or
               not s.get("profiles")}
    assert {"api", "prometheus", "grafana"} <= started

    def mounts(service: str) -> dict[str, Path]:
        out = {}
        for entry in services[service]["volumes"]:
            source, target = entry.split(":")[:2]
            if source.startswith("./"):
                out[target] = ROOT / source
        return out

    prom = mounts("prometheus")
    config_path = next(t for t in prom if t.endswith("prometheus.yml"))
    assert prom[config_path] == PROMETHEUS / "prometheus.yml"
    assert f"--config.file={config_path}" in services["prometheus"]["command"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (rule_glob,) = config["rule_files"]
    rules_dir = str(Path(rule_glob).parent)
    assert prom[rules_dir] == RULES.parent
    mounted = sorted(p.name for p in RULES.parent.glob(Path(rule_glob).name))
    assert mounted == [RULES.name]  # the unit tests are not loaded as rules
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services and any(str(p).endswith(f":{port}") for p in services[host]["ports"])

    graf = mounts("grafana")
    assert graf["/etc/grafana/provisioning"] == PROVISIONING
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "gradhealth.yml").read_text())[
        "providers"]
    assert graf[provider["options"]["path"]] == DASHBOARD.parent
    for name in ("prometheus", "grafana"):
        for entry in services[name]["ports"]:
            assert str(entry).startswith("127.0.0.1:"), f"{name} publishes {entry} beyond loopback"


def _matchers(expr: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(metric name, {label: value} of its `=` matchers) of every vector selector in ``expr``."""
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
        yield m.group(1), dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"', m.group(2)))


def test_an_alert_sees_an_error_finding_of_a_run_that_finished_at_once(tmp_path):
    """newuser6 P1: a run that blows up and finishes within the same second loses its per-run gauges
    before any scrape, so GradientHealthLiveRunError (on the gauge, `for: 1m`) can never fire for it.
    Some alert must select, by severity="error", a live-run series that still has a non-zero sample
    in the /metrics scrape after `finish`."""
    rows = [{"step": s, "metric": "grad_norm", "value": 1.0} for s in range(20)]
    rows += [{"step": s, "metric": "loss", "value": 1.0 / (s + 1)} for s in range(20)]
    rows.append({"step": 20, "metric": "grad_norm", "value": "nan"})
    with running_app(settings_for(tmp_path, workers=0)) as api:
        run = api.post("/v1/runs", json={"name": "blew-up"}).json()["id"]
        assert api.post(f"/v1/runs/{run}/points", json=rows).status_code == 200
        assert api.post(f"/v1/runs/{run}/finish").status_code == 200
        assert api.get(f"/v1/runs/{run}").json()["health"] == "unhealthy"
        text = api.get("/metrics").text
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    assert not [s for s in samples if s.name == "gradhealth_run_findings"]  # the gauges went with finish
    seen_by = []
    for alert, expr in rule_exprs().items():
        for name, want in _matchers(expr):
            if not name.startswith("gradhealth_run") or want.get("severity") != "error":
                continue
            if any(s.name == name and s.value > 0 and all(s.labels.get(k) == v for k, v in want.items())
                   for s in samples):
                seen_by.append(alert)
    assert seen_by, "no alert rule selects a live-run error series that outlives the run"
