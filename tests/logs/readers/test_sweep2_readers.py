"""Reader gaps found by the second sweep of public logs: step keys other than ``step`` (detectron2's
``metrics.json``, nanoGPT-style ``iter`` CSVs), Keras ``History`` saved as JSON, W&B UI exports of
several runs or against a custom x-axis, and the W&B runs table (refused)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError
from gradhealth.logs import sniff
from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write

DATA = Path(__file__).resolve().parents[2] / "data" / "logs" / "sweep2"
D2 = DATA / "d2-medwaste-excerpt" / "metrics.json"
SEIS = DATA / "nanogpt-seis" / "log.csv"
FER = DATA / "keras-history-fer" / "training_history.json"
DRUID = DATA / "wandb-export-druid-excerpt" / "wandb_export.csv"
LUCAS = DATA / "wandb-runs-table-lucas-excerpt" / "wandb_export.csv"


def _reader(path: Path) -> str:
    return sniff.detect(path).name


# --- 1. JSON Lines keyed by iteration (detectron2 metrics.json) ------------------------------------

def test_detectron2_metrics_json_excerpt():
    records = [json.loads(line) for line in D2.read_text().splitlines()]
    assert _reader(D2) == "native"
    log = read_log(D2)
    s = by_name(log)
    assert log.format == "native" and log.warnings == []
    assert s["total_loss"].role == "loss"
    assert s["lr"].role == "learning_rate"
    assert s["total_loss"].steps.tolist() == [19, 39, 59, 79, 99] == [r["iteration"] for r in records]
    assert s["total_loss"].values.tolist() == [r["total_loss"] for r in records]
    assert s["total_loss"].values[0] == 2.725107299629599          # the file's first total_loss
    assert s["loss_cls"].role == "metric" and "iteration" not in s
    # detectron2's `time` is seconds per iteration, not a Unix time: a metric, and no wall time
    assert s["time"].values[0] == 2.235912486999979
    assert s["total_loss"].wall_time is None


D2_EVAL = """\
{"data_time": 0.01, "iteration": 19, "loss_cls": 0.72, "lr": 1.6e-05, "time": 18.09, "total_loss": 2.03}
{"data_time": 0.01, "iteration": 39, "loss_cls": 0.59, "lr": 3.2e-05, "time": 19.54, "total_loss": 1.83}
{"bbox/AP": 12.5, "bbox/AP50": 30.1, "bbox/APs": NaN, "iteration": 39}
{"data_time": 0.01, "iteration": 59, "loss_cls": 0.51, "lr": 4.8e-05, "time": 19.61, "total_loss": 1.62}
{"bbox/AP": 14.0, "bbox/AP50": 31.7, "bbox/APs": NaN, "iteration": 59}
"""


def test_detectron2_eval_records_share_the_iteration_axis(tmp_path):
    log = read_log(write(tmp_path, "metrics.json", D2_EVAL))
    s = by_name(log)
    assert s["total_loss"].steps.tolist() == [19, 39, 59]
    assert s["total_loss"].values.tolist() == [2.03, 1.83, 1.62]
    assert s["bbox/AP"].steps.tolist() == [39, 59] and s["bbox/AP"].values.tolist() == [12.5, 14.0]
    assert np.isnan(s["bbox/APs"].values).all()


@pytest.mark.parametrize("key", ["iteration", "iter", "global_step", "train/global_step", "steps"])
def test_jsonl_step_keys(tmp_path, key):
    text = "".join(json.dumps({key: i * 10, "loss": 3.0 - i, "grad_norm": 1.0}) + "\n" for i in range(3))
    path = write(tmp_path, "log.jsonl", text)
    assert _reader(path) == "native"
    s = by_name(read_log(path))
    assert s["loss"].steps.tolist() == [0, 10, 20] and s["loss"].step_unit == "step"
    assert key not in s and set(s) == {"loss", "grad_norm"}


def test_jsonl_epoch_only_is_per_epoch_and_step_wins_over_epoch(tmp_path):
    only = write(tmp_path, "a.jsonl", '{"epoch": 0, "loss": 2.0}\n{"epoch": 1, "loss": 1.5}\n')
    s = by_name(read_log(only))
    assert s["loss"].steps.tolist() == [0, 1] and s["loss"].step_unit == "epoch" and "epoch" not in s
    both = write(tmp_path, "b.jsonl", '{"step": 5, "epoch": 0.5, "loss": 2.0}\n'
                                      '{"step": 10, "epoch": 1.0, "loss": 1.5}\n')
    s = by_name(read_log(both))
    assert s["loss"].steps.tolist() == [5, 10] and s["epoch"].values.tolist() == [0.5, 1.0]


def test_jsonl_unix_time_is_still_the_wall_time(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"iteration": 1, "loss": 2.0, "time": 1718000000.5}\n'
                                      '{"iteration": 2, "loss": 1.5, "time": 1718000001.5}\n')
    s = by_name(read_log(path))
    assert set(s) == {"loss"} and s["loss"].wall_time.tolist() == [1718000000.5, 1718000001.5]


def test_jsonl_without_a_step_key_is_still_refused(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"step": 1, "loss": 2.0}\n{"loss": 1.5}\n')
    with pytest.raises(LogError, match=r"a.jsonl line 2: no 'step' \(nor 'global_step'.*'iteration'"):
        read_log(path)


def test_a_step_key_holding_no_number_is_not_sniffed_as_native(tmp_path):
    path = write(tmp_path, "a.json", '{"epoch": [0, 1], "loss": [2.0, 1.5]}\n')
    assert _reader(path) == "keras"          # a history dump with an epoch list, not JSON Lines


# --- 2. Keras History as JSON --------------------------------------------------------------------

HISTORY = {"loss": [1.2, 0.9, float("nan"), 0.6], "val_loss": [1.3, 1.1, 1.0, 1.05],
           "accuracy": [0.5, 0.6, 0.65, 0.7], "learning_rate": [0.01, 0.01, 0.005, 0.005]}


@pytest.mark.parametrize("wrap", [False, True, "report"])
def test_keras_history_json(tmp_path, wrap):
    # "report": a custom training report that keeps the history beside model and dataset info
    obj = ({"model_info": {"architecture": "ResNet101", "input_shape": [227, 227, 3], "num_classes": 2},
            "training_config": {"batch_size": 64, "learning_rate": 0.0001},
            "training_history": HISTORY} if wrap == "report" else {"history": HISTORY} if wrap else HISTORY)
    path = write(tmp_path, "training_history.json", json.dumps(obj))   # json.dump writes NaN bare
    assert _reader(path) == "keras"
    log = read_log(path)
    s = by_name(log)
    assert log.format == "keras" and log.warnings == [] and set(s) == set(HISTORY)
    assert s["loss"].role == "loss" and s["val_loss"].role == "val_loss"
    assert s["learning_rate"].role == "learning_rate" and s["accuracy"].role == "metric"
    assert s["loss"].steps.tolist() == [0, 1, 2, 3] and s["loss"].step_unit == "epoch"
    assert math.isnan(s["loss"].values[2]) and s["val_loss"].values.tolist() == HISTORY["val_loss"]


def test_keras_history_json_pretty_printed_past_the_sniffed_head(tmp_path):
    n = 3000
    obj = {"loss": [1.0 / (i + 1) for i in range(n)], "val_loss": [1.1 / (i + 1) for i in range(n)]}
    path = write(tmp_path, "history.json", json.dumps(obj, indent=4))
    assert path.stat().st_size > sniff.HEAD_BYTES
    assert _reader(path) == "keras"
    s = by_name(read_log(path))
    assert len(s["loss"].steps) == n and s["loss"].steps[-1] == n - 1


def test_keras_history_json_unequal_lists_name_the_key(tmp_path):
    # each list is read over its own epochs (logsweep64 u04), the note naming the lengths
    path = write(tmp_path, "h.json", '{"loss": [1.0, 0.9, 0.8], "val_loss": [1.1, 1.0]}')
    log = read_log(path)
    assert {s.name: len(s) for s in log.series} == {"loss": 3, "val_loss": 2}
    note = next(w for w in log.warnings if w.code == "uneven_lengths")
    assert "3 in loss" in note.message and "2 in val_loss" in note.message


def test_keras_history_json_non_numbers_name_the_key(tmp_path):
    path = write(tmp_path, "h.json", '{"loss": [1.0, 0.9], "accuracy": [0.5, "high"]}')
    with pytest.raises(LogError, match=r"h.json: 'accuracy' value 1 \(epoch 1\) is \"high\", not a number"):
        read_log(path)


def test_keras_history_json_with_metadata_real_file():
    """A hand-written history (train_loss/val_loss lists of 90 epochs plus a timestamp, class names,
    phase starts and a final test_acc): the per-epoch lists are read, the rest named in a warning."""
    obj = json.loads(FER.read_text())
    assert _reader(FER) == "keras"
    log = read_log(FER)
    s = by_name(log)
    assert set(s) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert s["train_loss"].role == "loss" and s["val_loss"].role == "val_loss"
    assert s["train_loss"].steps.tolist() == list(range(90)) and s["train_loss"].step_unit == "epoch"
    assert s["train_loss"].values.tolist() == obj["train_loss"]
    assert s["train_loss"].values[0] == 0.5373139245360191          # the file's first train_loss
    [w] = log.warnings
    assert w.code == "skipped_values"
    for key in ("timestamp", "classes", "phase_starts", "test_acc"):
        assert key in w.message


def test_keras_csv_sniffing_is_unchanged(tmp_path):
    path = write(tmp_path, "training.log", "epoch,loss,val_loss\n0,1.0,1.1\n1,0.9,1.0\n")
    assert _reader(path) == "keras"


# --- 3. Wide CSV with an iter / iteration / global_step / Step column ------------------------------

def test_nanogpt_iter_csv_real_file():
    with SEIS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert _reader(SEIS) == "native"
    log = read_log(SEIS)
    s = by_name(log)
    assert set(s) == {"train_loss", "val_loss", "lr", "ms_per_iter"} and log.warnings == []
    assert s["train_loss"].role == "loss" and s["val_loss"].role == "val_loss"
    assert s["lr"].role == "learning_rate"
    assert s["train_loss"].steps.tolist() == [int(r["iter"]) for r in rows] == list(range(0, 8001, 500))
    assert s["train_loss"].values.tolist() == [float(r["train_loss"]) for r in rows]
    assert s["val_loss"].values[-1] == 2.6645                           # the file's last row


@pytest.mark.parametrize("column", ["iteration", "global_step", "Step", "Iteration"])
def test_wide_csv_step_columns(tmp_path, column):
    path = write(tmp_path, "log.csv", f"{column},loss,grad_norm\n0,2.0,1.0\n10,1.5,0.9\n")
    assert _reader(path) == "native"
    s = by_name(read_log(path))
    assert set(s) == {"loss", "grad_norm"} and s["loss"].steps.tolist() == [0, 10]


def test_lightning_csv_is_still_lightning(tmp_path):
    path = write(tmp_path, "metrics.csv", "epoch,step,train_loss,val_loss\n0,9,1.0,\n0,9,,1.1\n")
    assert _reader(path) == "lightning"


# --- 4. W&B UI exports: several runs, custom x-axis -----------------------------------------------

def test_wandb_export_of_several_runs_reads_each_as_a_run_of_its_own():
    # (it was refused: "export one run"; logsweep40 found a real export of 8 runs, 3 diverging)
    log = read_log(DRUID)
    assert len(log.runs) == 8 and log.runs[0] == "gpt2_last_char_to_char1729642919.4054031"
    assert all(s.name.split("/")[0] in log.runs and s.name.endswith("train/loss") for s in log.series)
    assert all(s.role == "loss" for s in log.series)
    [w] = [w for w in log.warnings if w.code == "several_runs"]
    assert "8 runs, each judged on its own" in w.message


def _ui(first: str, runs: list[str], xs: list[str]) -> str:
    cols = [first]
    for r in runs:
        cols += [f"{r} - _step", f"{r} - train/loss", f"{r} - train/loss__MIN", f"{r} - train/loss__MAX"]
    lines = [",".join(f'"{c}"' for c in cols)]
    for i, x in enumerate(xs):
        cells = [x]
        for _ in runs:
            loss = f"{2.0 - 0.1 * i}"
            cells += [str(i), loss, loss, loss]
        lines.append(",".join(f'"{c}"' for c in cells))
    return "\n".join(lines) + "\n"


def test_wandb_export_custom_x_axis_one_run(tmp_path):
    path = write(tmp_path, "wandb_export.csv", _ui("epoch_id", ["breezy-cloud-41"], ["0", "10", "20"]))
    assert _reader(path) == "wandb"
    s = by_name(read_log(path))
    assert set(s) == {"train/loss"}
    assert s["train/loss"].role == "loss" and s["train/loss"].steps.tolist() == [0, 10, 20]
    assert s["train/loss"].values.tolist() == [2.0, 1.9, 1.8]


def test_wandb_export_custom_x_axis_that_goes_back_is_not_the_axis(tmp_path):
    path = write(tmp_path, "chart.csv", _ui("epoch_id", ["run-a"], ["0", "20", "10"]))
    s = by_name(read_log(path))
    assert s["train/loss"].steps.tolist() == [0, 1, 2]                   # the row index
    assert s["epoch_id"].values.tolist() == [0, 20, 10]


def test_wandb_export_custom_x_axis_several_runs_are_judged_each(tmp_path):
    # run-b diverges, run-a is fine: the export's verdict is run-b's, named by its run
    cols = ['"epoch_id"', '"run-a - train/loss"', '"run-b - train/loss"']
    rows = [f"{10 * i},{2.0 * 0.9 ** i},{2.0 * 0.9 ** min(i, 10) * 1.3 ** max(0, i - 10)}" for i in range(30)]
    path = write(tmp_path, "wandb_export.csv", ",".join(cols) + "\n" + "\n".join(rows) + "\n")
    log = read_log(path)
    assert log.runs == ["run-a", "run-b"] and sorted(s.name for s in log.series) == ["run-a/train/loss",
                                                                                     "run-b/train/loss"]
    assert by_name(log)["run-a/train/loss"].steps.tolist() == list(range(0, 300, 10))
    doc = diagnose(log)
    [f] = [f for f in doc.findings if f.code == "loss_divergence"]
    assert f.evidence.metric == "run-b/train/loss" and f.severity == "error"


def test_wandb_export_one_run_with_step_still_reads(tmp_path):
    path = write(tmp_path, "wandb_export.csv", _ui("Step", ["run-a"], ["0", "1", "2"]))
    s = by_name(read_log(path))
    assert set(s) == {"train/loss"} and s["train/loss"].steps.tolist() == [0, 1, 2]


# --- 5. The W&B runs table is not a history --------------------------------------------------------

@pytest.mark.parametrize("name", ["wandb_export.csv", "runs.csv"])
def test_wandb_runs_table_is_refused(tmp_path, name):
    path = write(tmp_path, name, LUCAS.read_bytes())
    assert _reader(path) == "wandb"
    with pytest.raises(LogError, match=rf"{name} is a W&B runs table \(one row per run: Name, State, "
                                       r".*export a run's history instead"):
        read_log(path)


def test_a_tensorboard_scalar_downloaded_as_csv_is_named_by_its_file(tmp_path: Path) -> None:
    # TensorBoard's "download CSV": Wall time,Step,Value; the run and tag are in the file's name
    rows = [(1700000000.0 + 10 * i, i, 2.0 / (1 + i)) for i in range(12)]
    text = "Wall time,Step,Value\n" + "".join(f"{w},{s},{v!r}\n" for w, s, v in rows)
    for filename, name, role in (("run-validation-tag-epoch_loss.csv", "validation/epoch_loss", "val_loss"),
                                 ("run-.-tag-loss.csv", "loss", "loss"),
                                 ("scalars.csv", "scalars", "metric")):
        (tmp_path / filename).write_text(text)
        [s] = read_log(tmp_path / filename).series
        assert (s.name, s.role) == (name, role)
        assert s.steps.tolist() == [r[1] for r in rows] and s.values.tolist() == [r[2] for r in rows]
        assert s.wall_time is not None and s.wall_time.tolist() == [r[0] for r in rows]
