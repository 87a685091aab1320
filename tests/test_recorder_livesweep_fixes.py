"""The recorder's live-run defects found by the live sweep, against a real `gradhealth serve`:

1. a refusal (a finished run's 409) reaches the training loop as ``RunRefused``;
2. two recorders of one process writing one run: the run finishes when the last one closes;
3. a training script that dies on an exception leaves its run active (not finished) and its file
   without the end record, which the log check reports as ``truncated_log``;
4. the run's config (the clip threshold) is in the file, so the log check sees clipping.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import torch
from torch import nn

from gradhealth.logs.readers.native import READER
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.recorder import GradientRecorder, RunRefused
from tests.test_recorder_service import ROWS_PER_STEP, Service, small_model, train_recorded


def _run(service: Service, run_id: str) -> dict:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        response = client.get(f"/v1/runs/{run_id}")
        response.raise_for_status()
        return response.json()


def _check(path: Path) -> dict:
    """`gradhealth check` of a recorder's file, as JSON."""
    done = subprocess.run([str(Path(sys.executable).with_name("gradhealth")), "check", str(path),
                           "--format", "json", "--fail-on", "never"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _codes(doc: dict) -> set[str]:
    return {f["code"] for f in doc["findings"]}


# --- 1. RunRefused -----------------------------------------------------------------------------


def test_a_run_finished_under_the_recorder_stops_the_loop_with_run_refused(service, tmp_path):
    model = small_model()
    rec = GradientRecorder(model, tmp_path / "r.jsonl", server=service.url, run="refused",
                           flush_interval=0, on_refused="raise")
    train_recorded(model, rec, range(3))
    assert rec.live.wait_sent(2, timeout=60), service.log()
    with httpx.Client(base_url=service.url, timeout=30) as client:
        client.post(f"/v1/runs/{rec.live.run_id}/finish").raise_for_status()
    caught = None
    try:  # what the README tells a training loop to write
        for start in range(3, 400):
            train_recorded(model, rec, range(start, start + 1))
    except RunRefused as error:
        caught = error
    assert caught is not None, "the service's 409 did not reach the loop as RunRefused"
    assert "409" in str(caught) and isinstance(caught.__cause__, RunRefused)
    with pytest.raises(RunRefused, match="409"):  # and close() says it again
        rec.close()
    assert rec.live.unsent_path is not None


# --- 2. two recorders, one run -----------------------------------------------------------------


def test_two_recorders_of_one_process_on_one_run_finish_it_when_the_last_closes(service, tmp_path):
    a_model, b_model = small_model(), small_model()
    a = GradientRecorder(a_model, tmp_path / "a.jsonl", server=service.url, run="shared",
                         flush_interval=0.01)
    b = GradientRecorder(b_model, tmp_path / "b.jsonl", server=service.url, run="shared",
                         flush_interval=0.01)
    train_recorded(a_model, a, range(0, 10))
    train_recorded(b_model, b, range(100, 110))
    a.close()  # the first to leave: the run stays active for b
    assert not a.live.finished
    train_recorded(b_model, b, range(110, 130))  # no 409: the run is still active
    b.close()  # raises nothing
    assert a.live.run_id == b.live.run_id and b.live.finished
    assert a.live.unsent_path is None and b.live.unsent_path is None
    assert not (tmp_path / "b.unsent.jsonl").exists()
    run = _run(service, b.live.run_id)
    assert run["status"] == "finished"
    assert run["points"] == (10 + 30) * ROWS_PER_STEP and run["last_step"] == 129


# --- 3. a crashed script is not a finished run ------------------------------------------------

_SCRIPT = textwrap.dedent("""
    import sys, torch
    from torch import nn
    from gradhealth.recorder import GradientRecorder
    url, mode, path = sys.argv[1:4]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 6), torch.randn(16, 1)
    rec = GradientRecorder(model, path, server=url, run="script-" + mode, flush_interval=0.01)

    def train():
        for step in range(20):
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            rec.step(loss=loss, optimizer=optimizer)
            optimizer.step()
        if mode in ("crash", "with_crash"):
            raise RuntimeError("the training script crashed")

    if mode == "with_crash":
        try:
            with rec:
                train()
        except RuntimeError:
            pass  # the script goes on, and ends well: the with block saw the crash
    else:
        train()  # "crash": the exception ends the interpreter; "no_close": never closed, ends well
""")


@pytest.mark.parametrize("mode", ["crash", "with_crash", "no_close"])
def test_a_script_stopped_by_an_exception_leaves_an_unfinished_run_and_a_cut_off_file(
        service, tmp_path, mode):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    path = tmp_path / "g.jsonl"
    done = subprocess.run([sys.executable, str(script), service.url, mode, str(path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == (1 if mode == "crash" else 0), done.stderr
    run = _run(service, _only_run(service, mode))
    assert run["points"] == 20 * ROWS_PER_STEP  # everything sent, whatever the end
    last = json.loads(path.read_text().splitlines()[-1])
    read = READER.read(path, ReadLimits())
    truncated = [w for w in read.warnings if w.code == "truncated_log"]
    if mode == "no_close":  # the finalizer at a clean exit: a clean close
        assert run["status"] == "finished"
        assert last == {"gradhealth_recorder": "end", "logged_steps": 20}
        assert not truncated
    else:
        assert run["status"] == "active", "a crashed run was marked finished"
        assert "gradhealth_recorder" not in last
        assert truncated and "no end record" in truncated[0].message
        assert "left active" in done.stderr
    if mode == "crash":
        assert "truncated_log" in _codes(_check(path))


def _only_run(service: Service, mode: str) -> str:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        runs = [r for r in client.get("/v1/runs", params={"limit": 100}).json()["items"]
                if r["name"] == "script-" + mode]
    assert len(runs) == 1, runs
    return str(runs[0]["id"])


# --- 4. the config in the file ------------------------------------------------------------------


def test_the_clip_threshold_given_as_config_reaches_the_files_log_check(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(64, 8) * 10, torch.randn(64, 1) * 100
    path = tmp_path / "clipped.jsonl"
    with GradientRecorder(model, path, config={"clip_threshold": 0.5, "num_classes": 10}) as rec:
        for _ in range(60):
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            rec.step(loss=loss, optimizer=optimizer)  # before clipping, as the README says
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)  # acts on every step
            optimizer.step()
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"gradhealth_recorder": "start",
                     "params": {"max_grad_norm": "0.5", "num_classes": "10"}}
    read = READER.read(path, ReadLimits())
    assert read.params == {"max_grad_norm": "0.5", "num_classes": "10"}
    assert not [w for w in read.warnings if w.code in ("skipped_header", "truncated_log")]
    doc = _check(path)
    assert doc["log"]["params"]["max_grad_norm"] == "0.5"
    saturated = [f for f in doc["findings"] if f["code"] == "clipping_saturated"]
    assert saturated and "the run's params" in saturated[0]["summary"]


def test_the_recorders_file_posted_as_points_skips_its_own_start_and_end_records(tmp_path):
    from gradhealth.live.points import parse

    model = small_model()
    path = tmp_path / "posted.jsonl"
    with GradientRecorder(model, path, config={"clip_threshold": 1.0}) as rec:
        train_recorded(model, rec, range(3))
    lines = path.read_text().splitlines()
    assert "gradhealth_recorder" in lines[0] and "gradhealth_recorder" in lines[-1]
    points = parse(path.read_bytes(), "application/x-ndjson", max_points=10_000)
    assert len(points) == 3 * ROWS_PER_STEP == len(lines) - 2


@pytest.mark.parametrize("config", [{}, {"clip_threshold": 1.0}, {"num_classes": 10, "params": {"lr": 3e-4}},
                                    {"clip_threshold": 0.5, "num_classes": 2, "params": {"max_grad_norm": 9}}])
def test_the_recorders_file_and_a_live_run_map_a_config_to_the_same_params(config: dict) -> None:
    from gradhealth.live.diagnose import params_of
    from gradhealth.recorder import config_params

    assert config_params(config) == params_of(config)


def test_trained_parameters_that_never_get_a_gradient_are_named_once(tmp_path: Path) -> None:
    # livesweep p10: an encoder cut off by .detach() got no gradient and was simply not recorded
    torch.manual_seed(0)
    enc, head = nn.Linear(6, 8), nn.Linear(8, 1)
    model = nn.ModuleDict({"enc": enc, "head": head})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 6), torch.randn(16, 1)
    with pytest.warns(RuntimeWarning, match=r"2 trained parameter\(s\) got no gradient .*enc\.bias, enc\.weight") as seen, \
            GradientRecorder(model, tmp_path / "g.jsonl") as rec:
        for step in range(8):
            loss = nn.functional.mse_loss(head(enc(x).detach()), y)
            optimizer.zero_grad()
            loss.backward()
            rec.step(loss=loss, step=step)
            optimizer.step()
    assert len([w for w in seen if "no gradient" in str(w.message)]) == 1  # said once
