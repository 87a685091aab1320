"""Logs holding several runs appended one after another are judged run by run (logsweep48 item 13,
and items 03 and 09): a Keras ``CSVLogger(append=True)`` file whose last run is a short healthy
restart must not hide an overfitting first run, nor a restarted detectron2 ``metrics.json`` its
first run. Each run is read as a folder's runs are (series ``run<k>/<name>``), and the note says
how many runs the file holds and where each one is."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import write


def _rows(epochs: range, loss, val) -> list[str]:  # noqa: ANN001 - small lambdas
    return [f"{e},{0.5 + e / 1000:.4f},{loss(e):.6f},{0.5:.4f},{val(e):.6f}" for e in epochs]


def _overfit_then_restart() -> str:
    """A 60-epoch run that overfits (val_loss bottoms at epoch 5, then climbs to ~3x), resumed once
    with ``initial_epoch`` (its epochs go on: the same run), then a 6-epoch healthy restart."""
    overfit = _rows(range(0, 60), lambda e: 0.7 * 0.93 ** e + 0.001,
                    lambda e: 0.6 + 0.02 * (e - 5) ** 2 / 10 if e > 5 else 0.6 + 0.02 * (5 - e))
    healthy = _rows(range(0, 6), lambda e: 0.6 * 0.9 ** e, lambda e: 0.65 * 0.92 ** e)
    return "\r\n".join(["epoch,acc,loss,val_acc,val_loss", *overfit, *healthy]) + "\r\n"


def test_keras_file_with_an_overfitting_first_run_and_a_short_restart_judges_both(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "training.log", _overfit_then_restart()))
    [f] = [f for f in doc.findings if f.code == "validation_divergence"]
    assert f.evidence.metric == "run1/val_loss" and f.severity == "warning"
    [note] = [w for w in doc.log.warnings if "runs appended" in w]
    assert note == ("training.log: 2 runs appended one after another (the epoch starts again), each judged "
                    "on its own: run1 (lines 2-61, epoch 0-59), run2 (lines 62-67, epoch 0-5)")
    assert doc.log.points == (60 + 6) * 4          # every row is read, none left out
    assert doc.status == "warning"


def test_keras_resume_continuing_its_epochs_stays_one_run(tmp_path: Path) -> None:
    # a crash after epoch 29, resumed with initial_epoch=30 (a repeated header, as pandas' mode="a"
    # writes), then a fresh run: two runs, not three
    lines = _overfit_then_restart().split("\r\n")
    text = "\r\n".join([*lines[:31], lines[0], *lines[31:]])
    log = read_log(write(tmp_path, "training.log", text))
    assert log.runs == ["run1", "run2"]
    loss = next(s for s in log.series if s.name == "run1/loss")
    assert loss.steps.tolist() == list(range(60))


def test_keras_earlier_run_that_cannot_be_read_is_named_with_its_file_line(tmp_path: Path) -> None:
    lines = _overfit_then_restart().split("\r\n")
    lines[10] = "9,0.509,oops,0.5,0.61"           # file line 11, in the first run
    second = _rows(range(0, 8), lambda e: 0.5 * 0.9 ** e, lambda e: 0.6 * 0.95 ** e)
    text = "\r\n".join([*lines[:-1], *second]) + "\r\n"
    log = read_log(write(tmp_path, "training.log", text))
    notes = {w.code: w for w in log.warnings}
    assert notes["skipped_runs"].message == (
        "training.log: run1 (lines 2-61) is not read: training.log line 11, column 'loss': not a number: 'oops'")
    assert log.runs == ["run2", "run3"] and "3 runs appended" in notes["several_runs"].message


def test_keras_earlier_runs_notes_give_the_files_lines(tmp_path: Path) -> None:
    # a text column read past in each run (fastai's "00:10" time): its note once, at the file's line
    text = "epoch,loss,val_loss,time\n" + "".join(
        f"{e},{1 / (e + 1):.3f},{1 / (e + 2):.3f},00:1{e}\n" for _ in range(2) for e in range(4))
    log = read_log(write(tmp_path, "fastai.csv", text))
    assert log.runs == ["run1", "run2"]
    assert [w.code for w in log.warnings] == ["several_runs", "skipped_values"]


def test_keras_runs_over_the_limit_say_how_many_are_not_read(tmp_path: Path) -> None:
    text = "epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1):.3f},{1 / (e + 2):.3f}\n"
                                             for _ in range(53) for e in range(3))
    log = read_log(write(tmp_path, "many.log", text))
    assert len(log.runs) == 50 and log.runs[0] == "run4" and log.runs[-1] == "run53"
    [note] = [w for w in log.warnings if w.code == "several_runs"]
    assert note.message.startswith("many.log: 53 runs appended") and note.message.endswith(
        "; the first 3 are not read")
    assert "run4 (lines 11-13, epoch 0-2)" in note.message


def _d2(first_diverges: bool) -> str:
    """detectron2's metrics.json of a job restarted from iteration 19: the first run's loss blows up
    when ``first_diverges``, the second run is healthy."""
    def run(n: int, blow: bool) -> list[dict[str, float]]:
        return [{"iteration": 19 + 20 * i, "total_loss": (2.0 * 0.97 ** i if not (blow and i > n // 2)
                                                           else 2.0 * 0.97 ** (n // 2) * 1.25 ** (i - n // 2)),
                 "lr": 0.0025, "data_time": 0.01} for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in run(40, first_diverges) + run(30, False))


def test_native_restarted_metrics_json_judges_the_first_run_too(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "metrics.json", _d2(True)))
    diverged = [f for f in doc.findings if f.code == "loss_divergence"]
    assert diverged and {f.evidence.metric for f in diverged} == {"run1/total_loss"}
    [note] = [w for w in doc.log.warnings if "runs appended" in w]
    assert note == ("metrics.json: 2 runs appended one after another (the steps start again), each judged on "
                    "its own: run1 (lines 1-40), run2 (lines 41-70)")
    healthy = run_log_check(write(tmp_path, "ok.json", _d2(False)))
    assert not [f for f in healthy.findings if f.severity != "info"]


def test_appended_file_in_a_folder_with_another_log_is_still_judged_run_by_run(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    for sub in ("keras", "d2"):
        (root / sub).mkdir(parents=True)
    write(root / "keras", "training.log", _overfit_then_restart())
    write(root / "d2", "metrics.json", _d2(False))
    log = read_log(root)
    assert log.runs == ["d2/run1", "d2/run2", "keras/run1", "keras/run2"]
    z = tmp_path / "exp.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in root.rglob("*"):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    doc = run_log_check(z)
    [f] = [f for f in doc.findings if f.code == "validation_divergence"]
    assert f.evidence.metric == "keras/run1/val_loss"
