"""The recorder's defects found by the newuser4 walkthrough (an MLOps engineer), against a real
`gradhealth serve` (a subprocess on a free port, see tests/test_recorder_service.py) and a real
torch training loop:

P1  a monitoring-side action (the run deleted, or finished elsewhere) stopped training with
    RunRefused; now one warning, streaming stops, training and the file go on
    (``on_refused="raise"`` keeps the old behaviour);
P2  a service batch limit below the recorder's batch size (422) stopped training; now the batch
    is split and every point arrives;
P16 an outage was silent until close; now one warning when sends start failing, one more (a
    warning since newuser7 #9) when they succeed again;
P7  two processes with one run name: the second's close() raised on the 409, and both wrote one
    local file (interleaved, broken lines); now close() logs it and the second file is its own.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from gradhealth.recorder import GradientRecorder, RunRefused
from tests.test_recorder_service import ROWS_PER_STEP, Service, small_model, train_recorded


def _lines(path: Path) -> list[dict]:
    """Every line of a recorder's file, parsed (a broken line fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def _points(path: Path) -> dict[tuple[int, str], float]:
    """A recorder's file (or its unsent file) as {(step, series): value}."""
    out: dict[tuple[int, str], float] = {}
    for row in _lines(path):
        if "gradhealth_recorder" in row:
            continue
        out[(row["step"], row.get("metric") or "grad_norm/" + row["layer"])] = row["value"]
    return out


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "gradhealth.recorder" and r.levelno == logging.WARNING]


# --- P1: a refusal no retry fixes does not stop training ------------------------------------------


@pytest.mark.parametrize(("action", "status", "reason"), [
    ("delete", 404, "no longer exists"),
    ("finish", 409, "is finished on the service"),
])
def test_a_run_deleted_or_finished_under_the_recorder_does_not_stop_training(
        service, tmp_path, caplog, action, status, reason):
    caplog.set_level(logging.INFO, logger="gradhealth.recorder")
    model = small_model()
    path = tmp_path / "r.jsonl"
    rec = GradientRecorder(model, path, server=service.url, run=f"monitored-{action}",
                           flush_interval=0)
    train_recorded(model, rec, range(5))
    assert rec.live is not None and rec.live.wait_sent(4, timeout=60), service.log()
    with httpx.Client(base_url=service.url, timeout=30) as client:
        if action == "delete":  # what the web UI's Delete does
            assert client.delete(f"/v1/runs/{rec.live.run_id}").status_code == 204
        else:
            client.post(f"/v1/runs/{rec.live.run_id}/finish").raise_for_status()
    train_recorded(model, rec, range(5, 60))  # raised RunRefused here before (newuser4 P1)
    rec.close()  # and here
    assert isinstance(rec.live.refused, RunRefused) and rec.live.refused.status == status
    said = _warnings(caplog)
    assert len(said) == 1, said  # once, not once a step
    assert reason in said[0] and "Training goes on" in said[0] and str(rec.live.spill_path) in said[0]
    assert not any("left active" in r.getMessage() for r in caplog.records)
    # The file is whole: 60 steps of 7 rows, between the start and the (clean) end record.
    rows = _lines(path)
    assert rows[-1] == {"gradhealth_recorder": "end", "logged_steps": 60}
    assert len(rows) == 2 + 60 * ROWS_PER_STEP
    # Nothing lost: the unsent file holds, with the file's values, every step not acknowledged.
    unsent = _points(rec.live.unsent_path)
    assert unsent
    assert {step for step, _ in unsent} == set(range(rec.live.sent, 60))
    file_points = _points(path)
    assert all(file_points[key] == value for key, value in unsent.items())


def test_on_refused_raise_still_stops_the_loop(service, tmp_path):
    model = small_model()
    rec = GradientRecorder(model, tmp_path / "r.jsonl", server=service.url, run="opt-in",
                           flush_interval=0, on_refused="raise")
    train_recorded(model, rec, range(3))
    assert rec.live is not None and rec.live.wait_sent(2, timeout=60), service.log()
    with httpx.Client(base_url=service.url, timeout=30) as client:
        assert client.delete(f"/v1/runs/{rec.live.run_id}").status_code == 204
    with pytest.raises(RunRefused, match="404"):  # noqa: PT012
        # until the sender has met the 404 (bounded in time, not in steps: on a loaded machine 400
        # steps ran before the sender's next batch did, and the test failed without raising)
        deadline, start = time.monotonic() + 60, 3
        while time.monotonic() < deadline:
            train_recorded(model, rec, range(start, start + 1))
            start += 1
            time.sleep(0.005)
    with pytest.raises(RunRefused, match="404"):
        rec.close()


def test_on_refused_takes_warn_or_raise_only(tmp_path):
    with pytest.raises(ValueError, match="on_refused"):
        GradientRecorder(small_model(), tmp_path / "r.jsonl", server="http://127.0.0.1:9", run="x",
                         on_refused="ignore")


# --- P2: a batch over the service's limit is split ------------------------------------------------


def test_a_service_batch_limit_below_the_recorders_splits_batches_and_loses_nothing(
        tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gradhealth.recorder")
    # 5 points a batch: below one step's 7 rows, so steps are split too; the recorder's own
    # batches hold up to 5000.
    svc = Service(tmp_path, GRADHEALTH_RUN_MAX_BATCH_POINTS="5")
    svc.start()
    try:
        model = small_model()
        path = tmp_path / "r.jsonl"
        rec = GradientRecorder(model, path, server=svc.url, run="small-batches", flush_interval=0.5)
        train_recorded(model, rec, range(40))
        rec.close()  # RunRefused (422) before: training exited (newuser4 P2)
        assert rec.live is not None and rec.live.refused is None and rec.live.finished
        assert rec.live.batch_points == 5  # the limit the service's answer named
        assert rec.live.unsent_path is None and not _warnings(caplog)
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            run = client.get(f"/v1/runs/{rec.live.run_id}").json()
            stored = client.get(f"/v1/runs/{rec.live.run_id}/points",
                                params={"limit": 10000}).json()["items"]
        assert run["status"] == "finished" and run["points"] == 40 * ROWS_PER_STEP
        # The service keeps metrics and layers as series; compare the run-level ones by value.
        file_points = _points(path)
        got = {(p["step"], p["metric"]): p["value"] for p in stored
               if p["metric"] in ("loss", "grad_norm", "lr")}
        assert got == {k: v for k, v in file_points.items() if k[1] in ("loss", "grad_norm", "lr")}
    finally:
        svc.stop()


# --- P16: an outage is logged when it starts and when it ends -------------------------------------


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gradhealth.recorder")
    svc = Service(tmp_path)
    svc.start()
    try:
        model = small_model()
        rec = GradientRecorder(model, tmp_path / "r.jsonl", server=svc.url, run="outage",
                               flush_interval=0)
        rec.live.backoff = (0.05, 0.2)  # type: ignore[union-attr]  # quick retries for the test
        train_recorded(model, rec, range(5))
        assert rec.live is not None and rec.live.wait_sent(4, timeout=60)
        svc.stop()
        train_recorded(model, rec, range(5, 30))
        assert not rec.live.wait_sent(29, timeout=2)  # it is down: these wait
        said = _warnings(caplog)
        assert len(said) == 1, said  # one warning for many failed tries
        assert rec.live.retries > 1
        assert "retrying" in said[0] and str(rec.live.spill_path) in said[0]
        assert "logged steps wait to be sent" in said[0]
        svc.start()
        assert rec.live.wait_sent(29, timeout=60), svc.log()
        rec.close()
        # the recovery at the failure's level (newuser7 #9: at INFO a normal script never saw it)
        said = _warnings(caplog)
        assert sum("answers again" in m for m in said) == 1, said
        assert len(said) == 2 and rec.live.finished
    finally:
        svc.stop()


# --- P7: two processes, one run name, one path ----------------------------------------------------

_OTHER = textwrap.dedent("""
    import logging, sys, torch
    from torch import nn
    from gradhealth.recorder import GradientRecorder
    logging.basicConfig(level=logging.INFO)
    url, path = sys.argv[1:3]
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 6), torch.randn(16, 1)
    rec = GradientRecorder(model, path, server=url, run="two-writers", flush_interval=0, close_timeout=3)
    for step in range(10):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(); loss.backward()
        rec.step(loss=loss, optimizer=opt, step=step)
        opt.step()
    rec.close()  # the run is the other process's: nothing sent, kept in the unsent file
    print(rec.live.unsent_path)
    print(rec.path)
""")


def test_a_second_process_on_the_same_run_and_path_gets_its_own_file_and_closes_quietly(
        service, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gradhealth.recorder")
    path = tmp_path / "shared.jsonl"
    model = small_model()
    rec = GradientRecorder(model, path, server=service.url, run="two-writers", flush_interval=0)
    train_recorded(model, rec, range(5))
    assert rec.live is not None and rec.live.wait_sent(4, timeout=60)
    script = tmp_path / "other.py"
    script.write_text(_OTHER)
    done = subprocess.run([sys.executable, str(script), service.url, str(path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    unsent, other = (Path(line) for line in done.stdout.strip().splitlines()[-2:])
    assert other != path and other.parent == path.parent  # its own file, named in a warning
    assert str(path) in done.stderr and str(other) in done.stderr
    # The service told the second process that another one writes the run (409 run_in_use): it
    # waited, sent nothing into the first process's run, and kept its points for later.
    assert "is being written by another process" in done.stderr, done.stderr
    assert "stopped streaming" not in done.stderr  # waited, not refused
    assert {step for step, _ in _points(unsent)} == set(range(10))
    train_recorded(model, rec, range(100, 130))
    rec.close()
    assert rec.live.refused is None and rec.live.finished
    with httpx.Client(base_url=service.url, timeout=30) as client:
        run = client.get(f"/v1/runs/{rec.live.run_id}").json()
        stored = client.get(f"/v1/runs/{rec.live.run_id}/points?metric=loss").json()["items"]
    assert run["status"] == "finished"
    assert {p["step"] for p in stored} == set(range(5)) | set(range(100, 130))  # no step of the other
    # Each file whole and its own: every line JSON, the steps of its own process only.
    mine, theirs = _lines(path), _lines(other)
    assert mine[-1] == {"gradhealth_recorder": "end", "logged_steps": 35}
    assert theirs[-1] == {"gradhealth_recorder": "end", "logged_steps": 10}
    assert {r["step"] for r in mine if "step" in r} == set(range(5)) | set(range(100, 130))
    assert {r["step"] for r in theirs if "step" in r} == set(range(10))


def test_two_recorders_of_one_process_on_one_path_write_two_whole_files(tmp_path):
    path = tmp_path / "same.jsonl"
    a_model, b_model = small_model(), small_model()
    a = GradientRecorder(a_model, path, flush_interval=0)
    b = GradientRecorder(b_model, path, flush_interval=0)
    assert a.path == path and b.path != path
    train_recorded(a_model, a, range(20))
    train_recorded(b_model, b, range(50, 70))
    a.close()
    b.close()
    for rec, steps in ((a, range(20)), (b, range(50, 70))):
        rows = _lines(rec.path)
        assert rows[-1] == {"gradhealth_recorder": "end", "logged_steps": 20}
        assert len(rows) == 2 + 20 * ROWS_PER_STEP
        assert {r["step"] for r in rows if "step" in r} == set(steps)
    # Closed, the path is free again: a third recorder writes it, appending after the first's
    # log (newuser8 P4: emptying it lost a crashed run's steps).
    c = GradientRecorder(small_model(), path)
    c.close()
    assert c.path == path and len(_lines(path)) == 2 + 20 * ROWS_PER_STEP + 2
    assert c.appended is not None and c.appended.ended and c.appended.last_step == 19
