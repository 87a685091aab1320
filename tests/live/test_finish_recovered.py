"""newuser8 #2: an error a live run raised as a ``finding`` event, which the full check of every point
at ``finish`` does not make, is named in the final document's ``log.warnings``; the findings stay the
full check's."""

from __future__ import annotations

import math

from tests.live.test_runs_api import _create, _events


def _loss(i: int) -> float:
    """Falls to 0.2 by step 60, climbs tenfold to step 100 (a divergence), then falls back to 0.05."""
    if i < 60:
        return 2.0 * math.exp(-i / 26)
    if i < 100:
        return 0.2 * 10 ** ((i - 60) / 40)
    return max(0.05, 2.0 * math.exp(-(i - 100) / 10))


def test_an_error_raised_live_and_not_borne_out_at_finish_is_named(api):
    run = _create(api, "recovers")
    for start in range(0, 400, 20):
        rows = [{"step": i, "metric": "loss", "value": _loss(i)} for i in range(start, start + 20)]
        assert api.post(f"/v1/runs/{run['id']}/points", json=rows).status_code == 200
    done = api.post(f"/v1/runs/{run['id']}/finish").json()
    # (the event stream of a finished run ends: read it after the finish)
    raised = [e for e in _events(api, run["id"])[1] if e["event"] == "finding"
              and e["data"]["finding"]["severity"] == "error"]
    assert raised, "the climb to step 100 should raise an error while it happens"
    code = raised[0]["data"]["finding"]["code"]
    doc = done["diagnosis"]
    final_errors = {f["code"] for f in doc["findings"] if f["severity"] == "error"}
    notes = [w for w in doc["log"]["warnings"] if w.startswith("raised and recovered")]
    assert code not in final_errors, "the run recovered: the whole run does not bear the error out"
    assert len(notes) == 1 and code in notes[0] and "400 points" in notes[0], notes
