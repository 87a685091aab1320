"""newuser4 (a dashboards/monitoring walkthrough): the Prometheus side of jobs and live runs.

- P6: counters exist at 0 from start-up for every label value known up front, so that
  ``increase()`` counts the first job or finding of each kind.
- P4: per active run ``gradhealth_run_health`` / ``_last_step`` / ``_last_point_timestamp_seconds``
  (capped as the other per-run gauges are); of every run ``gradhealth_runs_finished_total{health}``
  and ``gradhealth_run_findings_raised_total{code,severity}``, a finding counted once per run and severity.
- P11: SSE streams and ``?wait`` long polls are not in the request latency histogram.
- P15: a point whose ``value`` is null is a 422 naming its line, not dropped.
"""

from __future__ import annotations

import json
import time
from typing import Any, get_args

from prometheus_client.parser import text_string_to_metric_families

from gradhealth.core.catalog import FINDINGS
from gradhealth.core.document import Severity
from gradhealth.jobs import store as job_store
from gradhealth.jobs.kinds import KINDS
from tests.api.helpers import TINY, running_app, settings_for

NDJSON = {"content-type": "application/x-ndjson"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: Any) -> Samples:  # noqa: ANN401
    text = api.get("/metrics").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def points(losses: list[float], start: int) -> list[dict[str, Any]]:
    """A loss and a steady total gradient norm per step, from ``start``."""
    rows: list[dict[str, Any]] = []
    for i, loss in enumerate(losses):
        rows += [{"step": start + i, "metric": "loss", "value": loss},
                 {"step": start + i, "metric": "grad_norm", "value": 1.0 + 0.01 * ((start + i) % 5)}]
    return rows


def events(api: Any, run_id: str) -> list[tuple[str, dict[str, Any]]]:  # noqa: ANN401
    """A finished run's SSE events (the stream replays them and closes)."""
    out = []
    for block in api.get(f"/v1/runs/{run_id}/events").text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


# --- P6 ------------------------------------------------------------------------------------------


def test_counters_start_at_zero_for_every_known_label_value(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        before = scrape(api)
        terminal = ("cancelled", "failed", "succeeded")
        assert named(before, "gradhealth_jobs_finished_total") == {
            key(kind=k, status=s): 0.0 for k in KINDS for s in terminal}
        assert named(before, "gradhealth_findings_total") == {  # by severity too (newuser13 #4)
            key(code=c, severity=s): 0.0 for c in FINDINGS for s in get_args(Severity)}
        assert named(before, "gradhealth_job_duration_seconds_count") == {key(kind=k): 0.0 for k in KINDS}
        assert named(before, "gradhealth_runs_finished_total") == {
            key(health=h): 0.0 for h in ("healthy", "warning", "unhealthy")}
        assert named(before, "gradhealth_run_findings_raised_total") == {
            key(code=c, severity=s): 0.0 for c in FINDINGS for s in get_args(Severity)}

        # The first job of its kind: the series it lands in was there at 0, so increase() sees 0 -> 1.
        api.post("/v1/checks/architecture", json=TINY)
        with api.app.state.sessions() as session:
            job = job_store.claim(session, worker_id="w", lease_s=60)
            assert job is not None
            assert job_store.finish(session, job_id=job.id, worker_id="w", status="failed",
                                    result={"findings": [{"code": "dead_units", "severity": "warning"}]})
        after = scrape(api)
        finished = named(after, "gradhealth_jobs_finished_total")
        assert finished.pop(key(kind="architecture", status="failed")) == 1.0
        assert set(finished.values()) == {0.0}
        found = named(after, "gradhealth_findings_total")
        assert found.pop(key(code="dead_units", severity="warning")) == 1.0 and set(found.values()) == {0.0}


# --- P4 ------------------------------------------------------------------------------------------


def test_health_step_and_last_point_gauges_of_active_runs_capped_as_the_others(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_gauge_limit=2)) as api:
        ids = []
        sent_at = {}
        for i in range(3):
            run = api.post("/v1/runs", json={"name": f"r{i}"}).json()["id"]
            ids.append(run)
            t0 = time.time()
            assert api.post(f"/v1/runs/{run}/points", json=points([2.0 - 0.01 * s for s in range(30)], 0)
                            ).status_code == 200
            sent_at[run] = (t0, time.time())
        # r2 blows up: NaN gradient norm at step 30 (a nonfinite error, unhealthy)
        api.post(f"/v1/runs/{ids[2]}/points", json=[{"step": 30, "metric": "grad_norm", "value": "nan"}])
        got = scrape(api)
        health = {dict(k)["run"]: v for k, v in named(got, "gradhealth_run_health").items()}
        assert set(health) == {ids[1], ids[2]}  # r0 is the least recently updated: past the cap of 2
        want = {"healthy": 0, "warning": 1, "unhealthy": 2}
        for run, value in health.items():
            assert value == want[api.get(f"/v1/runs/{run}").json()["health"]]
        assert health[ids[2]] == 2
        steps = {dict(k)["run"]: v for k, v in named(got, "gradhealth_run_last_step").items()}
        assert steps == {ids[1]: 29.0, ids[2]: 30.0}
        stamps = {dict(k)["run"]: v for k, v in named(got, "gradhealth_run_last_point_timestamp_seconds").items()}
        assert set(stamps) == {ids[1], ids[2]}
        assert sent_at[ids[1]][0] - 1 <= stamps[ids[1]] <= sent_at[ids[1]][1] + 1
        assert stamps[ids[2]] >= stamps[ids[1]]
        assert {dict(k)["name"] for k in named(got, "gradhealth_run_health")} == {"r1", "r2"}

        # Finishing leaves the gauges, and the counter keeps the run's final health.
        assert api.post(f"/v1/runs/{ids[2]}/finish").json()["health"] == "unhealthy"
        got = scrape(api)
        assert ids[2] not in {dict(k)["run"] for k in named(got, "gradhealth_run_health")}
        finished = named(got, "gradhealth_runs_finished_total")
        assert finished == {key(health="healthy"): 0.0, key(health="warning"): 0.0, key(health="unhealthy"): 1.0}
        found = named(got, "gradhealth_run_findings_raised_total")
        assert found[key(code="nonfinite", severity="error")] == 1.0


def test_a_finding_is_counted_once_per_run_and_severity_however_often_it_comes_back(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        run = api.post("/v1/runs", json={"name": "flapping"}).json()["id"]
        # A loss that falls, diverges (x1.15 a step), recovers, diverges again: loss_divergence
        # appears, goes and comes back across the batches; each batch re-diagnoses the run.
        step = 0
        for losses in ([2.0 - 0.01 * i for i in range(60)], [1.4 * 1.15 ** i for i in range(15)],
                       [0.5 - 0.001 * i for i in range(150)], [0.35 * 1.15 ** i for i in range(15)],
                       [0.3 - 0.0005 * i for i in range(200)]):
            assert api.post(f"/v1/runs/{run}/points", json=points(losses, step)).status_code == 200
            step += len(losses)
            # a re-sent batch (all duplicates) and a scrape between batches change nothing
            api.post(f"/v1/runs/{run}/points", json=points(losses[:5], step - len(losses)))
            scrape(api)
        api.post(f"/v1/runs/{run}/finish")
        got = named(scrape(api), "gradhealth_run_findings_raised_total")
        seen = [e for e in events(api, run) if e[0] == "finding"]
        assert any(e[1]["finding"]["code"] == "loss_divergence" for e in seen)
        # Independently: each distinct (finding, severity) the run's events ever announced, once.
        distinct = {(e["finding"]["code"], e["finding"]["evidence"].get("metric"), e["finding"]["severity"])
                    for _, e in seen}
        want: dict[frozenset[tuple[str, str]], float] = {}
        for code, _metric, severity in distinct:
            want[key(code=code, severity=severity)] = want.get(key(code=code, severity=severity), 0.0) + 1.0
        assert {k: v for k, v in got.items() if v} == want
        assert got[key(code="loss_divergence", severity="error")] == 1.0  # however many times it returned


# --- P11 -----------------------------------------------------------------------------------------


def test_streams_and_long_polls_are_not_in_the_request_latency_histogram(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        run = api.post("/v1/runs", json={"name": "streamed"}).json()["id"]
        api.post(f"/v1/runs/{run}/points", json=points([1.0, 0.9], 0))
        api.post(f"/v1/runs/{run}/finish")
        assert api.get(f"/v1/runs/{run}/events").headers["content-type"].startswith("text/event-stream")
        started = time.perf_counter()
        assert api.post("/v1/checks/architecture", params={"wait": 0.3}, json=TINY).status_code == 202
        assert time.perf_counter() - started >= 0.3  # (it did wait: no worker)
        got = scrape(api)
        plain = named(got, "gradhealth_http_request_duration_seconds_count")
        streams = named(got, "gradhealth_http_stream_duration_seconds_count")
        events_route = key(method="GET", route="/v1/runs/{run_id}/events")
        check_route = key(method="POST", route="/v1/checks/architecture")
        assert events_route not in plain and check_route not in plain
        assert streams == {events_route: 1.0, check_route: 1.0}
        assert plain[key(method="POST", route="/v1/runs/{run_id}/points")] == 1.0
        # the stream histogram reaches past the request histogram's 10 s
        bounds = {float(dict(k)["le"]) for k in named(got, "gradhealth_http_stream_duration_seconds_bucket")}
        assert max(bounds - {float("inf")}) >= 3600


# --- P15 -----------------------------------------------------------------------------------------


def test_a_point_whose_value_is_null_is_refused_naming_its_line(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        run = api.post("/v1/runs", json={"name": "nulls"}).json()["id"]
        lines = ['{"step": 6000, "metric": "loss", "value": NaN}',
                 '{"step": 6000, "metric": "grad_norm", "value": Infinity}',
                 '{"step": 6001, "metric": "loss", "value": "NaN"}',
                 '{"step": 6001, "metric": "grad_norm", "value": "-Infinity"}',
                 '{"step": 6002, "metric": "grad_norm", "value": null}']
        r = api.post(f"/v1/runs/{run}/points", content="\n".join(lines).encode(), headers=NDJSON)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("line 5: 'value' is null")
        assert api.get(f"/v1/runs/{run}").json()["points"] == 0  # the batch is refused whole
        # a recorder-style layer row and a JSON array: the same, naming the record
        r = api.post(f"/v1/runs/{run}/points", json=[{"step": 1, "metric": "loss", "value": 1.0},
                                                     {"step": 1, "layer": "fc", "kind": "grad_norm", "value": None}])
        assert r.status_code == 422 and r.json()["detail"].startswith("record 2: 'value' is null")
        # the four good lines alone are stored
        r = api.post(f"/v1/runs/{run}/points", content="\n".join(lines[:4]).encode(), headers=NDJSON)
        assert r.status_code == 200 and r.json()["accepted"] == 4
        # a wide record's missing column stays what it is in a log: that series has no point there
        r = api.post(f"/v1/runs/{run}/points", json=[{"step": 7000, "loss": 0.5, "val_loss": None}])
        assert r.status_code == 200 and r.json()["accepted"] == 1
