"""errsweep5: a data range over HTTP (a spec's ``input.range``, the model route's ``input_range`` and
``target_range``) is a 422 naming where, with the value, past |1e6| (``[-1e308, 1e308]`` was a 200
that blamed the NaN of the overflowing inputs on the first layer)."""

from __future__ import annotations


def test_spec_input_range_past_the_bound_is_a_422_at_its_pointer(api):
    r = api.post("/v1/checks/architecture", json={
        "input": {"shape": [4], "range": [-1e308, 1e308]}, "seeds": 1,
        "layers": [{"type": "linear", "out_features": 3}]})
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["pointer"] == "/input/range" and "[-1e+308, 1e+308]" in error["detail"]


def test_model_route_ranges_past_the_bound_are_a_422(api):
    for option, filename in (("input_range", "m.onnx"), ("target_range", "m.keras")):
        r = api.post(f"/v1/checks/model?{option}=-1e308,1e308&filename={filename}", content=b"xx",
                     headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(f"{option}: ") and "between -1000000 and 1000000" in r.text, r.text
