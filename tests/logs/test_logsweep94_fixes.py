"""logsweep94: a loss that fell a little and then froze described as "stalled from the start"
(pl_node_stuck85), and a TensorBoard events file holding only its header record told to call
writer.add_scalar (tb_yolov5_empty13). Every file is synthetic, built here in the real format."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import write
from tests.logs.test_detectors_real_runs import found

# --- 3. a loss that fell a little, then froze: when it stalled, after how much fall ----------------


def _epochs(values) -> str:  # noqa: ANN001 - an old Lightning/test-tube style table, one row per epoch
    return "epoch,train_loss\n" + "".join(f"{e},{v!r}\n" for e, v in enumerate(values))


def test_a_loss_that_fell_then_froze_is_not_said_to_stall_from_the_start(tmp_path) -> None:
    # 10 -> 9.95 as 10 - 0.05 (1 - exp(-t / 3)), then the same level for 200 epochs: 90 % of the fall is
    # made at t = 3 ln 10 = 6.9, so by epoch 7; the fall to there is 0.05 (1 - e^(-7/3)) / 10
    tau = 3.0
    values = [10.0 - 0.05 * (1 - math.exp(-t / tau)) for t in range(210)]
    report = diagnose(read_log(write(tmp_path, "metrics.csv", _epochs(values))))
    (f,) = found(report, "loss_plateau")
    k = math.ceil(tau * math.log(10))
    fall = 0.05 * (1 - math.exp(-k / tau)) / 10
    assert f"by epoch {k}, then stalled" in f.summary
    assert f"fell {fall * 100:.2g}% from its first point 10 " in f.summary
    assert "from the start" not in f.explanation
    assert f"fell only {fall * 100:.2g}%, by epoch {k}, and then stalled" in f.explanation


def test_a_loss_flat_from_its_first_point_still_stalled_from_the_start(tmp_path) -> None:
    # no fall beyond its own scatter: nothing to place a stall at
    rng = np.random.default_rng(0)
    values = (10.0 + 0.002 * rng.standard_normal(200)).tolist()
    report = diagnose(read_log(write(tmp_path, "metrics.csv", _epochs(values))))
    (f,) = found(report, "loss_plateau")
    assert f.explanation.startswith("The loss stalled from the start")
    assert "then stalled" not in f.summary


# --- 4. a TensorBoard events file with only its header: nothing was written ----------------------


def test_a_header_only_events_file_says_nothing_was_written(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    # what a SummaryWriter leaves when the run dies before its first add_scalar: the file-version record
    writer = EventFileWriter(str(tmp_path))
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    report = diagnose(read_log(path))
    (f,) = found(report, "insufficient_data")
    assert f.severity == "warning"
    assert "no logged scalar or histogram at all" in f.summary
    assert "stopped (crashed or been killed) before its first write" in f.explanation
    assert "another file" in f.explanation
    assert f.evidence.not_run  # still reported as checks not run, never passed


# --- 2. a rare recovered loss spike (a note) carries no learning-rate cut --------------------------


def _d2(values, lr: float = 0.004) -> str:  # noqa: ANN001 - detectron2's metrics.json, one object a line
    import json

    return "".join(json.dumps({"iteration": 19 + 20 * i, "total_loss": v, "lr": lr, "loss_cls": v / 3}) + "\n"
                   for i, v in enumerate(values))


def _spiky(n: int, at: list[int], seed: int = 0) -> list[float]:
    # a 20-iteration median at 0.30 with 3 % noise; each spike 1.4x for two points, then back
    rng = np.random.default_rng(seed)
    v = 0.30 * (1 + 0.03 * rng.standard_normal(n))
    for i in at:
        v[i:i + 2] = 0.42
    return v.tolist()


def test_a_rare_recovered_loss_spike_is_a_note_without_a_learning_rate_cut(tmp_path) -> None:
    report = diagnose(read_log(write(tmp_path, "metrics.json", _d2(_spiky(1000, [500])))))
    (f,) = [f for f in found(report, "loss_spike") if f.evidence.metric == "total_loss"]
    assert f.severity == "info"
    # 0.42 / 0.30 = 1.4, about 13 of the series' own 0.009 noise: a real event, so a note, but one the
    # run got over at the rate it kept
    assert f.evidence.max_ratio == pytest.approx(1.4, rel=0.05)
    assert "lower_learning_rate" not in {r.id for r in f.remedies}
    assert "no sign of a rate too large" in f.explanation


def test_frequent_loss_spikes_still_advise_a_lower_learning_rate(tmp_path) -> None:
    # 20 events in 1000 points (2 %, over spike_warning_fraction): spikes that recur are a warning and keep
    # the cut
    report = diagnose(read_log(write(tmp_path, "metrics.json", _d2(_spiky(1000, list(range(100, 1000, 45)))))))
    (f,) = [f for f in found(report, "loss_spike") if f.evidence.metric == "total_loss"]
    assert f.severity == "warning"
    assert "lower_learning_rate" in {r.id for r in f.remedies}


# --- 1. a short fine-tune: a rise held at its last evaluations against one noisy last evaluation ---


def _keras(train, val) -> str:  # noqa: ANN001 - a Keras CSVLogger file, one row per epoch
    return "epoch,loss,val_loss\n" + "".join(f"{e},{a},{b}\n" for e, (a, b) in enumerate(zip(train, val, strict=True)))


def test_a_short_run_whose_rise_held_at_its_last_two_evaluations_is_a_warning(tmp_path) -> None:
    # 7 epochs: val_loss falls smoothly to 0.40 at epoch 4, then 0.48 and 0.50 (+20 %, +25 %, both past 1.5x
    # the rule's 10 %) while the training loss keeps falling
    val = [0.50, 0.46, 0.43, 0.41, 0.40, 0.48, 0.50]
    train = [0.60, 0.45, 0.35, 0.27, 0.20, 0.14, 0.10]
    # the evaluations' own noise from their second differences (1.4826 MAD / sqrt 6): 0.01 is the median
    # |second difference| (0.01, 0.01, 0.01, 0.09, 0.06), so the rise 0.10 is 0.10 / (noise sqrt 2) noises
    noise = 1.4826 * float(np.median(np.abs(np.diff(val, 2)))) / math.sqrt(6)
    margin = (0.50 - 0.40) / (noise * math.sqrt(2))
    assert margin > 3
    report = diagnose(read_log(write(tmp_path, "training_log.csv", _keras(train, val))))
    (f,) = found(report, "validation_divergence")
    assert f.severity == "warning"
    assert "at each of its last 2 evaluations" in f.summary and f"{margin:.2g} times the noise" in f.summary
    assert {r.id for r in f.remedies} >= {"early_stopping", "weight_decay"}


def test_three_evaluations_with_one_rise_at_the_last_stay_a_note(tmp_path) -> None:
    # one evaluation up (+39 %) after a flat one: three evaluations give no noise apart from the rise itself
    val = [0.318, 0.320, 0.443]
    report = diagnose(read_log(write(tmp_path, "training_log.csv", _keras([0.386, 0.227, 0.113], val))))
    (f,) = found(report, "validation_divergence")
    assert f.severity == "info"


def test_a_short_run_with_only_its_last_evaluation_up_gives_no_warning(tmp_path) -> None:
    # the second-last evaluation is back at the best: the rise is one evaluation's, however large
    val = [0.50, 0.46, 0.43, 0.41, 0.40, 0.41, 0.52]
    train = [0.60, 0.45, 0.35, 0.27, 0.20, 0.14, 0.10]
    report = diagnose(read_log(write(tmp_path, "training_log.csv", _keras(train, val))))
    assert all(f.severity == "info" for f in found(report, "validation_divergence"))
