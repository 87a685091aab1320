"""newuser19 #7, #9, #10: a live run's clipping finding names the config field its threshold came
from; the job event ids the docs describe are the ids the service sends; the 410 of an expired
report link writes the time as the link's `expires_at` does (`Z`)."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from types import SimpleNamespace

from gradhealth.api import links
from gradhealth.api.routers.jobs import event_id
from tests.api.helpers import running_app, settings_for

ROOT = Path(__file__).resolve().parents[2]


def _clipped_run(api, name: str, config: dict) -> str:  # noqa: ANN001
    made = api.post("/v1/runs", json={"name": name, "config": config})
    assert made.status_code == 201, made.text
    run = made.json()["id"]
    rows = [p for s in range(200) for p in ({"step": s, "metric": "loss", "value": 2.5 * math.exp(-s / 80)},
                                            {"step": s, "metric": "grad_norm", "value": 1.0 if s < 150 else 1e4})]
    assert api.post(f"/v1/runs/{run}/points", json=rows).status_code == 200
    return run


def test_a_live_runs_clip_threshold_is_named_where_it_was_given(tmp_path) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        run = _clipped_run(api, "by-config", {"clip_threshold": 1.0})
        text = api.get(f"/v1/runs/{run}/report?format=text").text
        line = next(ln for ln in text.splitlines() if "max_norm 1 " in ln)
        assert "(from the run's config.clip_threshold)" in line and "params" not in line
        # a threshold given as a param is still the params'
        run = _clipped_run(api, "by-params", {"params": {"max_grad_norm": "1.0"}})
        text = api.get(f"/v1/runs/{run}/report?format=text").text
        assert "(from the run's params)" in text


def test_an_expired_links_time_is_written_as_its_expires_at(tmp_path) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        run = api.post("/v1/runs", json={"name": "r"}).json()["id"]
        expires = int(time.time()) - 5
        token = links.sign(api.app.state.link_secret, links.Link("run", run, "anonymous", "html", expires))
        r = api.get(f"/v1/shared/{token}")
        assert r.status_code == 410
        assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)) in r.json()["detail"]
        issued = api.post(f"/v1/runs/{run}/report/link?ttl_s=60").json()
        assert issued["expires_at"].endswith("Z")


def _row(status: str, attempts: int, progress: float) -> SimpleNamespace:
    return SimpleNamespace(status=status, attempts=attempts, progress=progress)


def test_the_job_event_ids_are_what_the_docs_say() -> None:
    row = next(ln for ln in (ROOT / "docs" / "http-api.md").read_text(encoding="utf-8").splitlines()
               if ln.startswith("| `GET /v1/jobs/{id}/events`"))
    stride, done = (int(x) for x in re.search(r"phase times (\d+) plus its progress in thousandths.*?"
                                              r"phase times \1 plus (\d+)", row).groups())
    example = [int(x) for x in re.search(r"`(\d+(?:, \d+)+)`", row).group(1).split(", ")]
    # queued, running at 0%, at 71.4%, finished after one attempt at 100% (phase 2 x 1 + 2), done
    rows = [(_row("queued", 0, 0.0), False), (_row("running", 1, 0.0), False), (_row("running", 1, 0.714), False),
            (_row("succeeded", 1, 1.0), False), (_row("succeeded", 1, 1.0), True)]
    assert [event_id(r, done=d) for r, d in rows] == example
    assert example == [0, stride, stride + 714, 4 * stride + 1000, 4 * stride + done]
    assert event_id(_row("queued", 1, 0.0)) == 2 * stride  # requeued: phase 2
    assert event_id(_row("running", 2, 0.5)) == 3 * stride + 500
