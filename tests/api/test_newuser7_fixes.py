"""newuser7: a YAML body sent as JSON gets a hint (#10); an expired link's problem has a title of its
own (#11); the jobs gauge has a sample per kind and status when idle (#8); a resent point with
another value is counted as a conflict (#6)."""

from __future__ import annotations

import time

from gradhealth.api import links
from gradhealth.api.security import ANONYMOUS
from tests.api.helpers import running_app, settings_for

YAML_SPEC = """name: deep sigmoid MLP
input: {shape: [16]}
batch_size: 8
seeds: 1
loss: {type: cross_entropy, classes: 4}
layers:
  - {type: linear, out_features: 16, activation: sigmoid, repeat: 4}
  - {type: linear, out_features: 4}
"""


def test_a_yaml_spec_sent_as_json_is_told_to_send_yaml(idle_api):
    r = idle_api.post("/v1/checks/architecture", content=YAML_SPEC, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("invalid JSON at line 1, column 1") and "application/yaml" in detail
    # broken JSON that is no YAML mapping keeps the bare JSON error
    r = idle_api.post("/v1/checks/architecture", content='{"input": oops', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "YAML" not in r.json()["detail"]
    # the same YAML as application/yaml is accepted
    r = idle_api.post("/v1/checks/architecture", content=YAML_SPEC, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 202


def test_yaml_sent_to_a_json_only_route_is_told_so(idle_api):
    r = idle_api.post("/v1/runs", content="name: my-run\nconfig: {num_classes: 3}\n",
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "reads as YAML" in r.json()["detail"] and "JSON only" in r.json()["detail"]
    r = idle_api.post("/v1/runs", content='{"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "YAML" not in r.json()["detail"]


def test_an_expired_link_has_a_title_of_its_own(idle_api):
    run = idle_api.post("/v1/runs", json={"name": "linked"}).json()["id"]
    expired = links.sign(idle_api.app.state.link_secret, links.Link("run", run, ANONYMOUS, "html", int(time.time()) - 1))
    r = idle_api.get(f"/v1/shared/{expired}")
    assert r.status_code == 410
    assert r.json()["title"] == "Gone" and r.json()["type"].endswith("link-expired")


def test_the_jobs_gauge_reads_0_for_every_kind_and_status_when_idle(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        def gauge() -> dict[str, float]:
            text = api.get("/metrics").text
            return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                    if line.startswith("gradhealth_jobs{")}

        want = {f'gradhealth_jobs{{kind="{k}",status="{s}"}}': 0.0
                for k in ("architecture", "logs", "model") for s in ("queued", "running")}
        assert gauge() == want
        api.post("/v1/checks/architecture", content=YAML_SPEC, headers={"Content-Type": "application/yaml"})
        assert gauge() == {**want, 'gradhealth_jobs{kind="architecture",status="queued"}': 1.0}


def test_a_point_resent_with_another_value_is_a_conflict_not_a_silent_duplicate(idle_api):
    run = idle_api.post("/v1/runs", json={"name": "restarted"}).json()["id"]
    first = [{"step": 1, "metric": "loss", "value": 2.0}, {"step": 2, "metric": "loss", "value": "NaN"},
             {"step": 3, "metric": "loss", "value": 1.5}]
    r = idle_api.post(f"/v1/runs/{run}/points", json=first).json()
    assert (r["accepted"], r["duplicates"], r["conflicts"], r["conflicting"]) == (3, 0, 0, [])
    # a retried batch (same values, NaN as NaN) is the idempotent no-op it always was
    r = idle_api.post(f"/v1/runs/{run}/points", json=first).json()
    assert (r["accepted"], r["duplicates"], r["conflicts"], r["conflicting"]) == (0, 3, 0, [])
    # a script restarted from step 0: two known points with other values, one repeated in the batch
    again = [{"step": 1, "metric": "loss", "value": 9.0}, {"step": 2, "metric": "loss", "value": "NaN"},
             {"step": 3, "metric": "loss", "value": "Infinity"}, {"step": 4, "metric": "loss", "value": 1.0},
             {"step": 4, "metric": "loss", "value": 7.0}]
    r = idle_api.post(f"/v1/runs/{run}/points", json=again).json()
    assert (r["accepted"], r["duplicates"], r["conflicts"]) == (1, 4, 3)
    assert r["conflicting"] == [{"step": 1, "metric": "loss", "kept": 2.0, "sent": 9.0},
                                {"step": 3, "metric": "loss", "kept": 1.5, "sent": "Infinity"},
                                {"step": 4, "metric": "loss", "kept": 1.0, "sent": 7.0}]
    stored = {p["step"]: p["value"] for p in idle_api.get(f"/v1/runs/{run}/points").json()["items"]}
    assert stored == {1: 2.0, 2: "NaN", 3: 1.5, 4: 1.0}  # the first value of each stays
