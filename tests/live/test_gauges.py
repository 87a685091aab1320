"""Per-run gauges on /metrics: the latest total gradient norm and the findings by code of active
runs, only the GRADHEALTH_RUN_GAUGE_LIMIT most recently updated ones."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import running_app, settings_for


def _samples(api) -> dict[str, list]:  # noqa: ANN001
    text = api.get("/metrics").text
    return {f.name: f.samples for f in text_string_to_metric_families(text)
            if f.name.startswith("gradhealth_run_")}


def test_gauges_show_the_latest_norm_and_findings_of_the_most_recent_active_runs(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_gauge_limit=2)) as api:
        ids = []
        for i, norm in enumerate([1.0, 2.0, 4.0]):
            run = api.post("/v1/runs", json={"name": f"run{i}"}).json()
            ids.append(run["id"])
            rows = [{"step": s, "metric": "grad_norm", "value": norm * (1 + 0.01 * (s % 3))} for s in range(20)]
            rows.append({"step": 20, "metric": "grad_norm", "value": norm})
            rows += [{"step": s, "metric": "loss", "value": 1.0 / (s + 1)} for s in range(21)]
            assert api.post(f"/v1/runs/{run['id']}/points", json=rows).status_code == 200
        # run0 is the least recently updated: out of the 2 shown.
        got = _samples(api)
        norms = {s.labels["run"]: s.value for s in got["gradhealth_run_grad_norm"]}
        assert norms == {ids[1]: 2.0, ids[2]: 4.0}
        # A NaN makes run2 unhealthy: its findings gauge says so by code and severity.
        api.post(f"/v1/runs/{ids[2]}/points", json=[{"step": 21, "metric": "grad_norm", "value": "nan"}])
        got = _samples(api)
        findings = {(s.labels["run"], s.labels["code"], s.labels["severity"]): s.value
                    for s in got["gradhealth_run_findings"]}
        assert findings[(ids[2], "nonfinite", "error")] == 1
        assert {s.labels["name"] for s in got["gradhealth_run_grad_norm"]} <= {"run1", "run2"}
        # Finished runs leave the gauges.
        api.post(f"/v1/runs/{ids[2]}/finish")
        api.post(f"/v1/runs/{ids[1]}/finish")
        got = _samples(api)
        assert {s.labels["run"] for s in got["gradhealth_run_grad_norm"]} == {ids[0]}
        assert all(s.labels["run"] == ids[0] for s in got.get("gradhealth_run_findings", []))


def test_with_keys_on_a_callers_gauges_name_only_its_own_runs(tmp_path):
    # a run's id and name are its owner's (apisweep3: bob's scrape listed alice's run "shared")
    from gradhealth.api.security import hash_key

    keys = f"alice={hash_key('a-key')},bob={hash_key('b-key')}"
    alice, bob = {"X-API-Key": "a-key"}, {"X-API-Key": "b-key"}
    rows = [{"step": s, "metric": "grad_norm", "value": 1.0} for s in range(5)]

    def runs_seen(api, headers) -> set[str]:  # noqa: ANN001
        text = api.get("/metrics", headers=headers).text
        return {s.labels["run"] for f in text_string_to_metric_families(text)
                if f.name == "gradhealth_run_grad_norm" for s in f.samples}

    with running_app(settings_for(tmp_path / "private", workers=0, api_keys=keys)) as api:
        run = api.post("/v1/runs", json={"name": "shared"}, headers=alice).json()["id"]
        assert api.post(f"/v1/runs/{run}/points", json=rows, headers=alice).status_code == 200
        assert runs_seen(api, alice) == {run}
        assert runs_seen(api, bob) == set()
        assert api.get("/metrics").status_code == 401
    # metrics opened to everyone by the operator: every run to a scrape without a key, as the job
    # counters are; a scrape that names its key still gets its own runs only (apisweep4 D5)
    with running_app(settings_for(tmp_path / "public", workers=0, api_keys=keys, metrics_public=True)) as api:
        run = api.post("/v1/runs", json={"name": "shared"}, headers=alice).json()["id"]
        assert api.post(f"/v1/runs/{run}/points", json=rows, headers=alice).status_code == 200
        assert runs_seen(api, {}) == {run} == runs_seen(api, alice)
        assert runs_seen(api, bob) == set()
