"""logsweep88: launches of one TensorBoard folder split as appended runs are (problem 1), a training
loss of exactly 0 beside a non-zero gradient norm (problem 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log
from tests.logs.readers.test_tensorboard import file_version_event, scalar_event, write_records

# --- problem 1: one event file per launch in the same folder -------------------------------------

#: launch 1: the loss falls, then diverges to about 8 by step 300, where the job is killed
_DIVERGED = [(s, 2.0 * math.exp(-s / 200) + (0 if s < 150 else (s - 150) / 20)) for s in range(20, 320, 20)]
#: launch 2, relaunched into the same folder with a lower rate: 2.0 falling smoothly to 0.3
_GOOD = [(s, 0.3 + 1.7 * math.exp(-s / 300)) for s in range(20, 2020, 20)]


def _events(path: Path, points: list[tuple[int, float]], wall0: float, tag: str = "total_loss") -> Path:
    return write_records(path, [file_version_event()]
                         + [scalar_event(tag, v, s, wall=wall0 + i) for i, (s, v) in enumerate(points)])


def _two_launches(folder: Path) -> Path:
    folder.mkdir(parents=True)
    # the relaunch's file name sorts first: the files are ordered by their wall-clock start, not their names
    _events(folder / "events.out.tfevents.1700000000.zz.1.0", _DIVERGED, 1.7e9)
    _events(folder / "events.out.tfevents.1700000000.aa.2.0", _GOOD, 1.7e9 + 9000)
    return folder


def test_logsweep88_launches_of_one_folder_are_runs(tmp_path):
    run = read_log(_two_launches(tmp_path / "output"))
    assert run.runs == ["run1", "run2"]
    first = next(s for s in run.series if s.name == "run1/total_loss")
    second = next(s for s in run.series if s.name == "run2/total_loss")
    assert first.steps.tolist() == [s for s, _ in _DIVERGED]
    assert first.values.tolist() == pytest.approx([v for _, v in _DIVERGED], rel=1e-6)  # float32 on disk
    assert second.steps.tolist() == [s for s, _ in _GOOD]
    note = next(w.message for w in run.warnings if w.code == "several_runs")
    assert "2 launches" in note and "run1 (events.out.tfevents.1700000000.zz.1.0, steps 20-300)" in note
    assert "run2 (events.out.tfevents.1700000000.aa.2.0, steps 20-2000)" in note


def test_logsweep88_killed_diverged_launch_reads_as_a_divergence(tmp_path):
    doc = check_logs(_two_launches(tmp_path / "output"))
    codes = {(f.code, f.severity, f.evidence.metric) for f in doc.findings}
    assert ("loss_divergence", "error", "run1/total_loss") in codes
    assert not any(f.code == "loss_spike" for f in doc.findings)  # no "spikes, the run recovered"
    assert not any(f.evidence.metric == "run2/total_loss" and f.severity != "info" for f in doc.findings)


def test_logsweep88_folder_splits_as_the_same_points_in_metrics_json(tmp_path):
    # detectron2's output/ of a relaunched job: a launch 19-224, an aborted one with one point at 9
    # (fewer than 3 rising steps: no run of its own), then the last launch 19-299, resumed at 319
    launches = [[(s, 1.0) for s in range(19, 240, 15)], [(9, 1.5)], [(s, 1.0) for s in range(19, 300, 20)],
                [(s, 0.8) for s in range(319, 1000, 20)]]
    folder = tmp_path / "output"
    folder.mkdir()
    lines = []
    for k, points in enumerate(launches):
        _events(folder / f"events.out.tfevents.{1700000000 + 1000 * k}.host.{k}", points, 1.7e9 + 1000 * k)
        lines += [json.dumps({"iteration": s, "total_loss": v}) for s, v in points]
    (tmp_path / "metrics.json").write_text("\n".join(lines) + "\n")
    by_json = read_log(tmp_path / "metrics.json")
    by_folder = read_log(folder)
    assert by_json.runs == by_folder.runs == ["run1", "run2"]
    for name in ("run1/total_loss", "run2/total_loss"):
        a = next(s for s in by_json.series if s.name == name)
        b = next(s for s in by_folder.series if s.name == name)
        assert sorted(a.steps.tolist()) == sorted(b.steps.tolist())
    steps = next(s for s in by_folder.series if s.name == "run2/total_loss").steps.tolist()
    assert steps[0] == 9 and steps[-1] == 999


@pytest.mark.parametrize("resumed_from", [500, 1020])
def test_logsweep88_resumed_run_stays_one_run(tmp_path, resumed_from):
    # a run resumed from a checkpoint after its start (back to 500: less than its first step 0) or
    # going on past its last step is one run, its points joined
    folder = tmp_path / "run"
    folder.mkdir()
    _events(folder / "events.out.tfevents.1700000000.host.1.0", [(s, 1.0) for s in range(0, 1020, 20)], 1.7e9)
    later = [(s, 0.9) for s in range(resumed_from, 2020, 20)]
    _events(folder / "events.out.tfevents.1700005000.host.2.0", later, 1.7e9 + 5000)
    run = read_log(folder)
    assert run.runs == [] and not any(w.code == "several_runs" for w in run.warnings)
    (loss,) = run.by_role("loss")
    assert loss.name == "total_loss" and len(loss) == 51 + len(later)


def test_logsweep88_reused_keras_log_dir_pairs_validation_with_its_launch(tmp_path):
    # Keras TensorBoard(log_dir="logs") run twice: train/ and validation/ each get a second event file
    root = tmp_path / "logs"
    for split in ("train", "validation"):
        (root / split).mkdir(parents=True)
        for k in range(2):
            _events(root / split / f"events.out.tfevents.{1700000000 + 100 * k}.host.{k}.v2",
                    [(e, 1.0 / (e + 1) + k) for e in range(10)], 1.7e9 + 100 * k, tag="epoch_loss")
    run = read_log(root)
    assert run.runs == ["train/run1", "train/run2"]
    parts = run.split()
    for k in (1, 2):
        names = sorted(s.name for s in parts[f"train/run{k}"].series)
        assert names == [f"train/run{k}/epoch_loss", f"validation/run{k}/epoch_loss"]
        val = next(s for s in parts[f"train/run{k}"].series if s.role == "val_loss")
        assert val.values[0] == pytest.approx(1.0 + (k - 1))


# --- problem 2: a training loss of exactly 0 beside a non-zero gradient norm ---------------------


def _trainer_state(path: Path, logs: list[dict]) -> Path:
    last = logs[-1]["step"]
    path.write_text(json.dumps({"global_step": last, "max_steps": last, "log_history": logs}))
    return path


def _zero_gradient(doc):
    return [f for f in doc.findings if f.code == "zero_gradient"]


_NORMS = [0.5 + 0.02 * (k % 3) for k in range(20)]


def test_logsweep88_zero_loss_from_the_first_log_beside_a_gradient_warns(tmp_path):
    logs = [{"loss": 0.0, "grad_norm": g, "learning_rate": 2e-5, "step": 10 * (k + 1)} for k, g in enumerate(_NORMS)]
    (f,) = _zero_gradient(check_logs(_trainer_state(tmp_path / "trainer_state.json", logs)))
    assert f.severity == "warning"
    assert f.evidence.steps == [10, 200]
    assert f.evidence.model_extra["zero_points"] == 20
    assert f.evidence.model_extra["grad_norm_min"] == min(_NORMS)
    assert f.evidence.model_extra["grad_norm_max"] == max(_NORMS)
    assert [r.id for r in f.remedies] == ["check_loss_graph"]
    assert "not the one the updates came from" in f.summary


def test_logsweep88_one_zero_loss_log_beside_a_gradient_warns(tmp_path):
    doc = check_logs(_trainer_state(tmp_path / "trainer_state.json",
                                    [{"loss": 0.0, "grad_norm": 0.5695, "learning_rate": 2e-5, "step": 10}]))
    (f,) = _zero_gradient(doc)
    assert f.severity == "warning" and f.evidence.model_extra["grad_norm_max"] == 0.5695


def test_logsweep88_loss_jumping_to_zero_beside_a_gradient_warns(tmp_path):
    losses = [2.0 - 0.05 * k for k in range(10)] + [0.0] * 12
    logs = [{"loss": v, "grad_norm": 0.8, "step": 5 * (k + 1)} for k, v in enumerate(losses)]
    (f,) = _zero_gradient(check_logs(_trainer_state(tmp_path / "trainer_state.json", logs)))
    assert f.severity == "warning"
    assert f.evidence.steps == [55, 110]
    assert f.evidence.model_extra["before"] == pytest.approx(losses[9])


@pytest.mark.parametrize("floor", [0.0, 1e-6])
def test_logsweep88_a_loss_that_glided_to_its_floor_is_not_a_broken_loss(tmp_path, floor):
    # a converged loss printed at 4 decimals (0.0003, 0.0002, 0.0001, then 0.0) with a tiny gradient
    # norm, or a loss of 1e-6 that is not 0 at all, beside a norm of 0.57
    if floor == 0.0:
        losses = [round(2.0 * math.exp(-k / 2), 4) for k in range(40)]
        norms = [max(1e-4, 2.0 * math.exp(-k / 2)) for k in range(40)]
        assert losses[-10:] == [0.0] * 10 and losses.index(0.0) > 20
    else:
        losses, norms = [floor] * 20, [0.57] * 20
    logs = [{"loss": v, "grad_norm": g, "step": k + 1} for k, (v, g) in enumerate(zip(losses, norms, strict=True))]
    doc = check_logs(_trainer_state(tmp_path / "trainer_state.json", logs))
    assert not [f for f in _zero_gradient(doc) if f.severity != "info"]


def test_logsweep88_grpo_loss_at_zero_beside_a_gradient_is_left_alone(tmp_path):
    # TRL's GRPO loss is about 0 by construction (advantages of mean 0): its gradient is not
    logs = [{"loss": 0.0, "grad_norm": 0.57, "reward": 0.3 + 0.01 * k, "reward_std": 0.28, "kl": 0.002,
             "step": 10 * (k + 1)} for k in range(20)]
    assert not _zero_gradient(check_logs(_trainer_state(tmp_path / "trainer_state.json", logs)))


# --- problem 3: a plateau under an adaptive optimizer already at its usual rate ------------------


def _flat_trainer_state(path: Path, peak: float) -> Path:
    # 100 logs of a loss that never moves (2.2 +- 0.06, batch noise), cosine decay from ``peak`` to 0
    logs = [{"loss": round(2.2 + 0.06 * math.sin(1.7 * k), 4), "grad_norm": 0.9 + 0.1 * math.cos(k),
             "learning_rate": peak * 0.5 * (1 + math.cos(math.pi * k / 99)), "step": 10 * (k + 1)} for k in range(100)]
    return _trainer_state(path, logs)


def _plateau(doc):
    (f,) = [f for f in doc.findings if f.code == "loss_plateau"]
    return f


def test_logsweep88_plateau_at_adams_usual_rate_advises_no_higher_rate(tmp_path):
    f = _plateau(check_logs(_flat_trainer_state(tmp_path / "trainer_state.json", 2e-4)))
    assert f.severity == "warning"  # still a loss that never moved
    assert "raise_learning_rate" not in [r.id for r in f.remedies]
    assert f.evidence.model_extra["withheld_remedies"] == ["raise_learning_rate"]
    assert f.evidence.model_extra["learning_rate"] == pytest.approx(2e-4)
    assert "AdamW" in f.evidence.model_extra["optimizer"] and "base model" in f.explanation


@pytest.mark.parametrize("optim", [None, "sgd"])
def test_logsweep88_plateau_below_the_usual_rate_or_under_sgd_still_raises_it(tmp_path, optim):
    # Adam at 1e-6 (below its usual range), or SGD at 2e-4 (a small rate for SGD): 3x is still advised
    path = _flat_trainer_state(tmp_path / "trainer_state.json", 1e-6 if optim is None else 2e-4)
    if optim is not None:
        state = json.loads(path.read_text())
        path.write_text(json.dumps({**state, "optim": optim}))
    run = read_log(path)
    if optim is not None and "optim" not in run.params:
        pytest.skip("the Trainer state's optim is not read as a param")
    f = _plateau(check_logs(path))
    assert "raise_learning_rate" in [r.id for r in f.remedies]


# --- problem 4: wording ---------------------------------------------------------------------------


def test_logsweep88_last_checkpoint_beside_the_final_state_is_read_once_and_named(tmp_path):
    # a Trainer's output_dir: checkpoint-500/-1000/-1500 and the final trainer_state.json, whose history is
    # checkpoint-1500's plus the closing train_runtime entry
    history = [{"step": s, "loss": 2.3 * math.exp(-s / 400) + 0.3, "epoch": s / 1000} for s in range(10, 1510, 10)]
    out = tmp_path / "out"
    for last in (500, 1000, 1500):
        (out / f"checkpoint-{last}").mkdir(parents=True)
        (out / f"checkpoint-{last}" / "trainer_state.json").write_text(json.dumps(
            {"global_step": last, "log_history": [h for h in history if h["step"] <= last]}))
    (out / "trainer_state.json").write_text(json.dumps(
        {"global_step": 1500, "log_history": [*history, {"step": 1500, "train_runtime": 99.0, "train_loss": 0.9}]}))
    log = read_log(out)
    (loss,) = log.by_role("loss")
    assert len(loss) == len(history)  # once, not the same 150 points twice
    (note,) = [w.message for w in log.warnings if w.code == "skipped_runs"]
    assert "checkpoint-500, checkpoint-1000, checkpoint-1500 are earlier snapshots" in note
    assert note.endswith("read once, from trainer_state.json")


def test_logsweep88_keras1_loss_and_val_loss_per_epoch_are_epochs(tmp_path):
    # the TF1 Keras TensorBoard callback: loss/acc/val_loss/val_acc, one point per epoch at steps 0..N
    val = [0.6 + 0.01 * e ** 1.5 for e in range(30)]
    payloads = [file_version_event()]
    for e in range(30):
        payloads += [scalar_event("loss", 0.5 * 0.8 ** e, e), scalar_event("val_loss", val[e], e),
                     scalar_event("acc", 0.8 + 0.006 * e, e), scalar_event("val_acc", 0.8, e)]
    path = write_records(tmp_path / "events.out.tfevents.1508366199.brain", payloads)
    run = read_log(path)
    assert {s.name: s.step_unit for s in run.series} == {"loss": "epoch", "val_loss": "epoch", "acc": "epoch",
                                                          "val_acc": "epoch"}
    (f,) = [f for f in check_logs(path).findings if f.code == "validation_divergence"]
    assert "(epoch 0)" in f.summary
    (stop,) = [r for r in f.remedies if r.id == "early_stopping"]
    assert "keep the weights from epoch 0" in stop.change


def test_logsweep88_per_step_loss_without_a_validation_twin_keeps_steps(tmp_path):
    payloads = [file_version_event()] + [scalar_event("loss", 2.0 - 0.001 * k, k) for k in range(50)]
    path = write_records(tmp_path / "events.out.tfevents.1700000000.host", payloads)
    assert [s.step_unit for s in read_log(path).series] == ["step"]
