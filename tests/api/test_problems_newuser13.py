"""newuser13 #3 and #5: every 4xx problem carries errors[] (pointer, parameter, detail) as the README
promises; the points route refuses the steps the recorder refuses; a spec sent to the model route is
told where specs go."""

from __future__ import annotations

import pytest


def _run(api, name: str) -> str:
    r = api.post("/v1/runs", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize(("step", "shown"), [(2.5, "2.5"), (-5, "-5"), (-0.5, "-0.5"), ("1.5", '"1.5"')])
def test_a_step_that_is_not_a_whole_non_negative_number_is_refused(api, step, shown):
    run = _run(api, f"steps-{step}")
    ok = api.post(f"/v1/runs/{run}/points", json=[{"step": 1, "metric": "loss", "value": 2.3}])
    assert ok.status_code == 200, ok.text
    r = api.post(f"/v1/runs/{run}/points", json=[{"step": 2, "metric": "loss", "value": 2.2},
                                                 {"step": step, "metric": "loss", "value": 2.1}])
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"].startswith(f"record 2: 'step' is {shown}; a step is a non-negative integer")
    assert body["errors"] == [{"pointer": "/1/step", "parameter": None, "detail": body["detail"][len("record 2: "):]}]
    assert api.get(f"/v1/runs/{run}").json()["last_step"] == 1  # nothing of the batch stored
    lines = api.post(f"/v1/runs/{run}/points", content=f'{{"step": {step if isinstance(step, float | int) else 7.5}, '
                     '"metric": "loss", "value": 2}\n', headers={"Content-Type": "application/x-ndjson"})
    assert lines.status_code == 422 and lines.json()["detail"].startswith("line 1: 'step' is ")
    assert lines.json()["errors"][0]["parameter"] == "body"


def test_whole_steps_and_epoch_fractions_are_taken(api):
    run = _run(api, "steps-ok")
    r = api.post(f"/v1/runs/{run}/points", json=[{"step": 0, "metric": "loss", "value": 2.3},
                                                 {"step": 3.0, "metric": "loss", "value": 2.1},
                                                 {"epoch": 0.25, "val_loss": 2.0}])
    assert r.status_code == 200, r.text


def test_a_bad_point_value_names_its_record_and_field(api):
    run = _run(api, "bad-value")
    r = api.post(f"/v1/runs/{run}/points", json=[{"step": 1, "metric": "loss", "value": "abc"}])
    assert r.status_code == 422
    (item,) = r.json()["errors"]
    assert item["pointer"] == "/0/value" and item["parameter"] is None and "abc" in item["detail"]


def test_a_model_option_error_names_its_parameter(api):
    r = api.post("/v1/checks/model", files={"file": ("m.onnx", b"\x08\x07")}, data={"seeds": "abc"})
    assert r.status_code == 422
    body = r.json()
    assert body["detail"] == "seeds: expected an integer from 1 to 16, not 'abc'"
    assert body["errors"] == [{"pointer": None, "parameter": "seeds",
                               "detail": "expected an integer from 1 to 16, not 'abc'"}]


def test_a_limit_error_says_its_pointer_once(api):
    r = api.post("/v1/checks/architecture",
                 json={"input": {"shape": [100000]}, "layers": [{"type": "linear", "out_features": 100000}]})
    assert r.status_code == 422, r.text
    (item,) = r.json()["errors"]
    assert item["pointer"] == "/layers/0" and item["parameter"] is None
    assert item["detail"].startswith("too many parameters: ")
    assert r.json()["detail"].startswith("/layers/0: too many parameters: ")
    assert "/layers/0: /layers/0" not in r.json()["detail"]


@pytest.mark.parametrize("text", ["input:\n  shape: [10]\nlayers:\n  - type: linear\n    out_features: 5\n",
                                  '{"input": {"shape": [10]}, "layers": []}'])
def test_a_spec_sent_to_the_model_route_is_told_where_specs_go(api, text):
    r = api.post("/v1/checks/model", files={"file": ("spec.yaml", text.encode())})
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("not an ONNX model (nor a Keras file): the upload is text")
    assert "POST /v1/checks/architecture" in r.json()["detail"]
    assert r.json()["errors"][0]["detail"] == r.json()["detail"]


@pytest.mark.parametrize(("method", "url", "status"), [("GET", "/v1/jobs/nope", 404), ("PUT", "/v1/jobs", 405),
                                                       ("GET", "/v1/jobs/nope/report?format=bogus", 404)])
def test_every_client_error_carries_errors(api, method, url, status):
    r = api.request(method, url)
    assert r.status_code == status
    assert r.json()["errors"] and r.json()["errors"][0]["detail"]
