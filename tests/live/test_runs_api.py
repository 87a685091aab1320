"""/v1/runs through HTTP: create and re-attach, idempotent appends, bad points named by line, limits,
ownership, SSE findings, finish, list and delete, and the pin that a run streamed live gets the same
findings as the same run uploaded as a log."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gradhealth.live import diagnose
from gradhealth.logs.check import run_log_check
from gradhealth.settings import hash_key
from tests.api.helpers import running_app, settings_for
from tests.helpers import parse_sse
from tests.live.helpers import record_exploding_run

NDJSON = {"content-type": "application/x-ndjson"}


def _create(api, name: str, **config) -> dict:  # noqa: ANN001 - the test client
    r = api.post("/v1/runs", json={"name": name, "config": config})
    assert r.status_code == 201, r.text
    return r.json()


def _rows(steps: range, metric: str = "loss", f=lambda i: 1.0 / (i + 1)) -> list[dict]:  # noqa: ANN001
    return [{"step": i, "metric": metric, "value": f(i)} for i in steps]


def _events(api, run_id: str, **headers: str) -> tuple[int, list[dict]]:  # noqa: ANN001
    async def read() -> tuple[int, str]:
        async with api.client.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as r:
            return r.status_code, "".join([chunk async for chunk in r.aiter_text()])

    status, body = api.portal.call(read)
    return status, parse_sse(body) if status == 200 else []


def test_create_reattaches_to_the_active_run_of_that_name(api):
    first = _create(api, "reattach", clip_threshold=1.0, num_classes=10)
    again = api.post("/v1/runs", json={"name": "reattach"})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert first["config"]["clip_threshold"] == 1.0 and first["status"] == "active"
    api.post(f"/v1/runs/{first['id']}/finish")
    # Once finished, the name starts a new run.
    third = api.post("/v1/runs", json={"name": "reattach"})
    assert third.status_code == 201 and third.json()["id"] != first["id"]


#: A batch whose repeats carry the values stored: no conflict (newuser7 #6).
SAME = {"conflicts": 0, "conflicting": []}


def test_a_retried_batch_adds_nothing_twice(api):
    run = _create(api, "retry")
    batch = _rows(range(10)) + _rows(range(10), "grad_norm", lambda i: 1.0)
    r1 = api.post(f"/v1/runs/{run['id']}/points", json=batch).json()
    assert r1 == {"accepted": 20, "duplicates": 0, "points": 20, "last_step": 9.0, **SAME}
    version = api.get(f"/v1/runs/{run['id']}").json()["version"]
    r2 = api.post(f"/v1/runs/{run['id']}/points", json=batch).json()
    assert r2 == {"accepted": 0, "duplicates": 20, "points": 20, "last_step": 9.0, **SAME}
    assert api.get(f"/v1/runs/{run['id']}").json()["version"] == version  # nothing changed
    # A batch overlapping the last: only the new steps count, and a repeat inside one batch once.
    lines = "\n".join(json.dumps(r) for r in _rows(range(8, 12)) + _rows(range(11, 12)))
    r3 = api.post(f"/v1/runs/{run['id']}/points", content=lines.encode(), headers=NDJSON).json()
    assert r3 == {"accepted": 2, "duplicates": 3, "points": 22, "last_step": 11.0, **SAME}
    assert api.get(f"/v1/runs/{run['id']}").json()["points"] == 22


def test_non_finite_values_stay_distinct_through_the_database(api):
    run = _create(api, "nonfinite")
    rows = [{"step": 1, "metric": "a", "value": "nan"}, {"step": 1, "metric": "b", "value": "inf"},
            {"step": 1, "metric": "c", "value": "-Infinity"}, {"step": 1, "metric": "d", "value": 0.0}]
    assert api.post(f"/v1/runs/{run['id']}/points", json=rows).json()["accepted"] == 4
    from gradhealth.live import store

    with api.app.state.sessions() as session:
        got = {p.metric: p.value for p in store.iter_points(session, run["id"])}
    assert math.isnan(got["a"]) and got["b"] == math.inf and got["c"] == -math.inf and got["d"] == 0.0
    doc = api.get(f"/v1/runs/{run['id']}").json()["diagnosis"]
    nonfinite = next(f for f in doc["findings"] if f["code"] == "nonfinite")
    assert nonfinite["evidence"]["counts"] == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize(("body", "headers", "status", "detail"), [
    (b'{"step": 1, "metric": "loss", "value": 1}\n{"step": 2, "metric": "loss", "value": 0.5}\n'
     b'{"step": 3, "metric": "loss", "value": "x"}\n', NDJSON, 422, "line 3: 'value' is \"x\", not a number"),
    # a null value is refused naming its line, not dropped (newuser4)
    (b'{"step": 1, "metric": "loss", "value": 1}\n{"step": 2, "metric": "loss", "value": null}\n', NDJSON, 422,
     "line 2: 'value' is null"),
    # a point whose value is missing or misnamed is refused, not dropped (apisweep2)
    (b'{"step": 1, "metric": "loss", "value": 1}\n{"step": 2, "metric": "loss", "valu": 2.0}\n', NDJSON, 422,
     "line 2: it names a 'metric' (or 'layer' and 'kind') but has no 'value'"),
    (b'[{"step": 1}]', {"content-type": "application/json"}, 422, "record 1: it holds no value"),
    (b'[{"step": 1, "value": 2.0}]', {"content-type": "application/json"}, 422,
     "record 1: its 'value' needs a 'metric'"),
    (json.dumps([{"step": 1, "metric": "loss", "value": 1}, {"metric": "loss", "value": 2}]).encode(),
     {"content-type": "application/json"}, 422, "record 2: no 'step'"),
    (b'{"step": 1, "metric": "loss", "value": 1}\n{"step": 2, "metric": \n', NDJSON, 422, "line 2: not JSON"),
    (b'[{"step": 1, "layer": "fc", "kind": "speed", "value": 1}]', {"content-type": "application/json"}, 422,
     "record 1: 'kind' is \"speed\""),
    (b"step,loss\n1,2\n", {"content-type": "text/csv"}, 415, "application/x-ndjson"),
    # past 2^53 two steps are one float (apisweep3: 1e20 was a 500, 2^53 + 1 a silent duplicate)
    (b'[{"step": 1e20, "metric": "loss", "value": 1}]', {"content-type": "application/json"}, 422,
     "record 1: 'step' is 1e+20: from 2^53 on"),
    (b'[{"step": 9007199254740993, "metric": "loss", "value": 1}]', {"content-type": "application/json"}, 422,
     "from 2^53 on"),
])
def test_a_bad_point_is_refused_naming_its_line(api, body, headers, status, detail):
    run = _create(api, f"bad-{status}-{len(body)}")
    r = api.post(f"/v1/runs/{run['id']}/points", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert detail in r.json()["detail"]
    assert api.get(f"/v1/runs/{run['id']}").json()["points"] == 0  # nothing of a bad batch is kept


def test_limits_on_a_batch_and_on_a_run(api):
    run = _create(api, "limits")
    r = api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(501)))
    assert r.status_code == 422 and "500" in r.json()["detail"]
    for start in range(0, 3000, 500):
        assert api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(start, start + 500))).status_code == 200
    r = api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(3000, 3001)))
    assert r.status_code == 413 and "3,000" in r.json()["detail"]
    assert api.get(f"/v1/runs/{run['id']}").json()["points"] == 3000


def test_finished_runs_take_no_points_and_list_and_delete(api):
    runs = [_create(api, f"list-{i}") for i in range(3)]
    page = api.get("/v1/runs", params={"limit": 2}).json()
    assert [r["id"] for r in page["items"]] == [runs[2]["id"], runs[1]["id"]]
    rest = api.get("/v1/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] == runs[0]["id"]
    assert api.get("/v1/runs", params={"cursor": "bogus"}).status_code == 422
    done = api.post(f"/v1/runs/{runs[0]['id']}/finish").json()
    assert done["status"] == "finished" and done["finished_at"]
    assert api.post(f"/v1/runs/{runs[0]['id']}/points", json=_rows(range(3))).status_code == 409
    assert {r["id"] for r in api.get("/v1/runs", params={"status": "finished"}).json()["items"]} >= {runs[0]["id"]}
    assert api.delete(f"/v1/runs/{runs[1]['id']}").status_code == 204
    assert api.get(f"/v1/runs/{runs[1]['id']}").status_code == 404
    assert api.post(f"/v1/runs/{runs[1]['id']}/points", json=_rows(range(3))).status_code == 404


def test_runs_belong_to_the_callers_key(tmp_path):
    keys = {"alice": "a" * 40, "bob": "b" * 40}
    entries = ",".join(f"{name}={hash_key(key)}" for name, key in keys.items())
    with running_app(settings_for(tmp_path, workers=0, api_keys=entries)) as api:
        alice, bob = ({"X-API-Key": keys[n]} for n in ("alice", "bob"))
        run = api.post("/v1/runs", json={"name": "mine"}, headers=alice).json()
        assert api.post("/v1/runs", json={"name": "mine"}, headers=bob).status_code == 201  # bob's own
        for method, path, body in [("GET", "", None), ("POST", "/points", []), ("POST", "/finish", None),
                                   ("GET", "/events", None), ("DELETE", "", None)]:
            r = api.request(method, f"/v1/runs/{run['id']}{path}", headers=bob, json=body)
            assert r.status_code == 404, (method, path, r.status_code)
        assert [r["id"] for r in api.get("/v1/runs", headers=bob).json()["items"]] != [run["id"]]
        assert api.get(f"/v1/runs/{run['id']}", headers=alice).status_code == 200
        assert api.get("/v1/runs").status_code == 401


def _stream_live(api, path: Path, name: str, batch_lines: int) -> dict:  # noqa: ANN001
    """Send a recorded log to a new run in batches of JSON Lines, as the recorder would."""
    run = _create(api, name)
    lines = path.read_text().splitlines()
    for start in range(0, len(lines), batch_lines):
        body = "\n".join(lines[start:start + batch_lines]).encode()
        r = api.post(f"/v1/runs/{run['id']}/points", content=body, headers=NDJSON)
        assert r.status_code == 200, r.text
    return run


def _pin(doc: dict) -> list[tuple]:
    return sorted((f["code"], f["severity"], json.dumps(f["evidence"]["steps"]), f["evidence"]["metric"])
                  for f in doc["findings"])


def test_a_run_streamed_live_gets_the_findings_of_the_same_log_uploaded(api, tmp_path):
    log = record_exploding_run(tmp_path / "run.jsonl")
    uploaded = run_log_check(log).model_dump(mode="json")
    assert {"exploding_gradient", "nonfinite"} <= {f["code"] for f in uploaded["findings"]}  # a real instability
    run = _stream_live(api, log, "pin", batch_lines=97)
    live = api.get(f"/v1/runs/{run['id']}").json()
    assert _pin(live["diagnosis"]) == _pin(uploaded)
    assert live["diagnosis"]["status"] == uploaded["status"] == "unhealthy"
    assert [s["name"] for s in live["diagnosis"]["series"]] == [s["name"] for s in uploaded["series"]]
    # The SSE stream told of each finding as it appeared, and the finish re-checks every point.
    finished = api.post(f"/v1/runs/{run['id']}/finish").json()
    assert _pin(finished["diagnosis"]) == _pin(uploaded)
    status, events = _events(api, run["id"])
    assert status == 200 and events[-1]["event"] == "finished"
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    announced = {e["data"]["finding"]["code"] for e in events if e["event"] == "finding"}
    assert {f["code"] for f in uploaded["findings"]} <= announced
    # Resuming after event 2 repeats nothing; after `finished`, 204: nothing more will come.
    _, resumed = _events(api, run["id"], **{"Last-Event-ID": "2"})
    assert resumed == events[2:]
    assert _events(api, run["id"], **{"Last-Event-ID": str(events[-1]["id"])})[0] == 204


def test_a_new_error_finding_is_queued_for_webhooks_once(api, monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(diagnose.outbox, "enqueue", lambda session, **kw: sent.append(kw))
    run = _create(api, "hooked")
    healthy = _rows(range(30)) + _rows(range(30), "grad_norm", lambda i: 1.0 + 0.01 * (i % 3))
    api.post(f"/v1/runs/{run['id']}/points", json=healthy)
    assert sent == []
    bad = [{"step": 30, "metric": "grad_norm", "value": "nan"}, {"step": 30, "metric": "loss", "value": 0.03}]
    api.post(f"/v1/runs/{run['id']}/points", json=bad)
    api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(31, 33)))
    assert [(s["event"], s["payload"]["finding"]["code"]) for s in sent] == [("run.error_finding", "nonfinite")]
    assert sent[0]["payload"]["run_id"] == run["id"] and sent[0]["payload"]["name"] == "hooked"


def test_a_state_rebuilt_from_the_database_gives_the_same_diagnosis(api, tmp_path):
    log = record_exploding_run(tmp_path / "run.jsonl", steps=90)
    lines = log.read_text().splitlines()
    cached = _stream_live(api, log, "cached", batch_lines=50)
    run = _create(api, "rebuilt")
    for start in range(0, len(lines), 50):
        diagnose.forget(run["id"])  # as if another process had appended the last batch
        body = "\n".join(lines[start:start + 50]).encode()
        assert api.post(f"/v1/runs/{run['id']}/points", content=body, headers=NDJSON).status_code == 200
    a = api.get(f"/v1/runs/{cached['id']}").json()["diagnosis"]
    b = api.get(f"/v1/runs/{run['id']}").json()["diagnosis"]
    assert _pin(a) == _pin(b) and a["series"] == b["series"]


def test_a_diagnosis_that_fails_leaves_the_run_usable(api, monkeypatch):
    # apisweep3: one batch whose diagnosis raised left its points in the cached state, and every
    # batch after it failed the same way until a restart
    run = _create(api, "poisoned")
    assert api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(10))).status_code == 200
    real = diagnose._document
    monkeypatch.setattr(diagnose, "_document", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a NaN loss in the batch whose diagnosis fails
        api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(10, 12), f=lambda i: "nan"))
    monkeypatch.setattr(diagnose, "_document", real)
    r = api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(12, 14)))
    assert r.status_code == 200, r.text
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert r.json()["accepted"] == 2 and got["points"] == 12
    # the diagnosis is of the points stored: the NaN batch was never stored
    assert "nonfinite" not in {f["code"] for f in got["diagnosis"]["findings"]}, got["diagnosis"]["summary"]


@pytest.mark.parametrize(("config", "pointer"), [
    ({"clip_treshold": 1.0}, "/config/clip_treshold"),
    ({"clip_threshold": 1e999}, "/config/clip_threshold"),
    ({"thresholds": {"spike_factr": 3}}, "/config/thresholds"),
])
def test_a_run_config_with_a_field_it_does_not_have_is_refused_where_it_is(api, config, pointer):
    r = api.post("/v1/runs", content=json.dumps({"name": "typo", "config": config}).replace("Infinity", "1e999"),
                 headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert pointer in [e["pointer"] for e in r.json()["errors"]]


def test_a_run_configs_params_may_be_numbers(api):
    # newuser sweep: {"params": {"lr": 0.1}} was a 422 ("Input should be a valid string")
    run = _create(api, "numbers", params={"lr": 0.1, "epochs": 3, "amp": True, "opt": "adamw"})
    assert run["config"]["params"] == {"lr": "0.1", "epochs": "3", "amp": "true", "opt": "adamw"}


def test_whole_steps_are_written_without_a_decimal_point(api):
    # newuser3: dashboards showed `"last_step": 1.0` for a run counted in whole steps
    run = _create(api, "whole-steps")
    r = api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(3)))
    assert '"last_step":2,' in r.text.replace(" ", "")
    summary = api.get(f"/v1/runs/{run['id']}").text.replace(" ", "")
    assert '"last_step":2,' in summary
    page = api.get(f"/v1/runs/{run['id']}/points").json()
    assert [p["step"] for p in page["items"]] == [0, 1, 2]
    assert '"step":0,' in api.get(f"/v1/runs/{run['id']}/points").text.replace(" ", "")
    # a fractional step (an epoch fraction) keeps its digits; a fractional `step` is refused (newuser13 #5)
    r = api.post(f"/v1/runs/{run['id']}/points", json=[{"epoch": 2.5, "val_loss": 0.1}])
    assert '"last_step":2.5,' in r.text.replace(" ", "")


def test_an_error_that_resolves_and_comes_back_is_sent_once(tmp_path):
    # newuser4: a diverging run's loss_divergence went error -> resolved -> error and each return
    # sent another run.error_finding webhook (three for one divergence)
    from types import SimpleNamespace

    from gradhealth.core.document import Diagnosis
    from gradhealth.logs.detectors.common import finding

    bad = finding("loss_divergence", "error", "loss climbed", "why", {"metric": "loss", "value": 3.0}, [])
    other = finding("nonfinite", "error", "NaN", "why", {"metric": "grad_norm", "value": 1.0}, [])

    def doc(*findings):
        return Diagnosis(kind="logs", status="unhealthy" if findings else "healthy", summary="s",
                         findings=list(findings))

    run = SimpleNamespace(id="r1")
    first = diagnose.compare({}, doc(bad), run)
    assert [f.code for f in first.new_errors] == ["loss_divergence"]
    gone = first
    for _ in range(diagnose.RESOLVE_AFTER):  # (newuser7: resolved once missing from that many diagnoses)
        gone = diagnose.compare(gone.state, doc(), run)
    assert [e for e, _ in gone.events] == ["resolved"]
    back = diagnose.compare(gone.state, doc(bad, other), run)
    assert [f.code for f in back.new_errors] == ["nonfinite"]  # the divergence was sent already
    assert [e["finding"]["code"] for k, e in back.events if k == "finding"] == ["loss_divergence", "nonfinite"]
