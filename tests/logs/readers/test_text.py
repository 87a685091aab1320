"""Plain-text key:value training logs."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.text import READER, pairs
from tests.logs.helpers import by_name, write

REAL = Path(__file__).resolve().parents[2] / "data" / "logs" / "llmc-gpt2-124m" / "main.log"

PIPES = """\
Loading model...
step 1 | loss 3.41 | grad_norm 0.27 | lr 6e-4 | tok/s 12000
step 2 | loss nan | grad_norm inf | lr 6e-4 | tok/s 12100
step 3 | loss 3.39 | grad_norm -inf | lr 6e-4 | tok/s 12050
"""

NANOGPT = """\
step 0: train loss 10.9876, val loss 10.9912
iter 0: loss 10.9843, time 5123.45ms, mfu -100.00%
iter 10: loss 9.1234, time 54.32ms, mfu 45.21%
step 10: train loss 9.0001, val loss 9.1002
"""

KEY_EQ = """\
2024-05-01 12:00:00 INFO epoch=0 step=100 loss=2.5 grad_norm=NaN lr=0.001
2024-05-01 12:00:05 INFO epoch=0 step=200 loss=2.25 grad_norm=Infinity lr=0.001
"""

TRACEBACK = """\
step:1 train_loss:3.41 norm:0.27 lr:6e-4
step:2 train_loss:3.40 norm:0.28 lr:6e-4
Traceback (most recent call last):
  File "train.py", line 10, in <module>
    x = step(lr=1)
  File "train.py", line 5, in step
    raise RuntimeError("CUDA out of memory")
RuntimeError: CUDA out of memory
"""


def test_real_llmc_log():
    trl, tel, ev = [], [], []
    for line in REAL.read_text().splitlines():
        d = dict(kv.split(":") for kv in line.split())
        if "trl" in d:
            trl.append((int(d["s"]), float(d["trl"]), float(d["norm"])))
        if "tel" in d:
            tel.append((int(d["s"]), float(d["tel"])))
        if "eval" in d:
            ev.append((int(d["s"]), float(d["eval"])))
    log = read_log(REAL)
    assert log.format == "text" and log.warnings == [] and log.traceback is None
    s = by_name(log)
    assert s["trl"].role == "loss" and s["tel"].role == "val_loss" and s["norm"].role == "grad_norm"
    assert s["lr"].role == "learning_rate" and s["eval"].role == "metric"
    assert len(s["trl"]) == len(trl) == 19552 and len(s["tel"]) == len(tel) == 80 and len(s["eval"]) == len(ev) == 79
    assert (s["trl"].steps[0], s["trl"].values[0]) == (0, 11.0116)
    assert (s["trl"].steps[-1], s["trl"].values[-1]) == (19551, 3.2813)
    assert (s["tel"].steps[-1], s["tel"].values[-1]) == (19552, 3.2731)
    norm = s["norm"]
    late = norm.steps > 100
    i = int(norm.values[late].argmax())
    top = max((n, st) for st, _, n in trl if st > 100)
    assert (norm.values[late][i], norm.steps[late][i]) == top == (4.29, 8715)
    assert sniff.detect(REAL).name == "text"


def test_pairs():
    assert pairs("s:120 trl:3.41 norm:0.27 lr:6e-4") == [("s", "120"), ("trl", "3.41"), ("norm", "0.27"),
                                                         ("lr", "6e-4")]
    assert pairs("iter 10: loss 9.1234, time 54.32ms, mfu 45.21%") == [("iter", "10"), ("loss", "9.1234")]
    assert pairs("step 5: train loss 1.5, val loss 1.6") == [("step", "5"), ("train_loss", "1.5"), ("val_loss", "1.6")]
    assert pairs("2024-05-01T12:30:45 starting") == []
    assert pairs("Using 8 GPUs, batch size 32") == []


def test_pipes_and_nonfinite(tmp_path):
    log = read_log(write(tmp_path, "train.log", PIPES))
    s = by_name(log)
    assert s["loss"].steps.tolist() == [1, 2, 3] and math.isnan(s["loss"].values[1])
    assert s["grad_norm"].values.tolist()[1:] == [math.inf, -math.inf]
    assert s["tok/s"].role == "metric" and s["lr"].values[0] == 6e-4


def test_nanogpt_and_key_equals(tmp_path):
    s = by_name(read_log(write(tmp_path, "out.txt", NANOGPT)))
    assert s["train_loss"].steps.tolist() == [0, 10] and s["train_loss"].role == "loss"
    assert s["val_loss"].values.tolist() == [10.9912, 9.1002]
    assert s["loss"].steps.tolist() == [0, 10] and "time" not in s and "mfu" not in s
    s = by_name(read_log(write(tmp_path, "run.log", KEY_EQ)))
    assert s["loss"].steps.tolist() == [100, 200] and math.isnan(s["grad_norm"].values[0])
    assert s["grad_norm"].values[1] == math.inf and s["epoch"].values.tolist() == [0, 0]


def test_lines_without_step_use_a_running_index(tmp_path):
    s = by_name(read_log(write(tmp_path, "a.log", "loss: 3.0\nnoise line\nloss: 2.0 acc: 0.5\nloss: 1.0\n")))
    assert s["loss"].steps.tolist() == [0, 1, 2] and s["acc"].steps.tolist() == [1]


def test_traceback_at_the_end(tmp_path):
    log = read_log(write(tmp_path, "train.log", TRACEBACK))
    assert log.traceback.startswith("Traceback (most recent call last):")
    assert log.traceback.endswith("RuntimeError: CUDA out of memory")
    assert [w.code for w in log.warnings] == ["truncated_log"]
    assert "line 3" in log.warnings[0].message
    s = by_name(log)
    assert s["train_loss"].steps.tolist() == [1, 2] and "x" not in s   # no values read from the traceback


def test_traceback_with_a_rank_prefix(tmp_path):
    text = "step:1 loss:3.0\nstep:2 loss:2.9\n" + "".join(f"[rank0]: {ln}\n" for ln in TRACEBACK.splitlines()[2:])
    log = read_log(write(tmp_path, "train.log", text))
    assert log.traceback.endswith("[rank0]: RuntimeError: CUDA out of memory")
    assert set(by_name(log)) == {"loss"}                # 'x = step(lr=1)' inside it is not a value


def test_config_files_are_not_text_logs(tmp_path):
    cfg = "lr: 0.001\nbatch_size: 32\nweight_decay: 0.1\nwarmup: 100\n"
    assert READER.sniff("config.txt", cfg.encode()) == 0
    assert READER.sniff("config.yaml", PIPES.encode()) == 0


def test_traceback_in_the_middle_is_not_the_end(tmp_path):
    log = read_log(write(tmp_path, "train.log", TRACEBACK + "step:3 train_loss:3.3 norm:0.2 lr:6e-4\n"))
    assert log.traceback is None and log.warnings == []
    assert len(by_name(log)["train_loss"]) == 3


def test_truncated_last_line(tmp_path):
    log = read_log(write(tmp_path, "train.log", "s:0 trl:3.0 lr:0.1 norm:1.0\ns:1 trl:2.9 lr:0.1 norm:1.1\ns:2 trl:2.8"))
    assert [w.code for w in log.warnings] == ["truncated_log"] and "line 3" in log.warnings[0].message
    assert len(by_name(log)["trl"]) == 2


def test_empty_garbage_encoding_wrong_hint(tmp_path):
    empty = write(tmp_path, "train.log", b"")
    with pytest.raises(UnknownLogFormat):
        read_log(empty)
    with pytest.raises(LogError):
        READER.read(empty, ReadLimits())
    garbage = write(tmp_path, "g.log", random.Random(7).randbytes(4000))
    with pytest.raises(UnknownLogFormat):
        read_log(garbage)
    with pytest.raises(LogError, match="not a text training log"):
        READER.read(garbage, ReadLimits())
    latin = write(tmp_path, "l.log", "step 1 | loss 2.0 | note caf\xe9\nstep 2 | loss 1.5\n".encode("latin-1"))
    log = read_log(latin)
    assert len(log.series[0]) == 2 and [w.code for w in log.warnings] == ["replaced_bytes"]
    with pytest.raises(UnknownLogFormat, match="not in the native format; it looks like text") as e:
        read_log(REAL, format="native")
    assert e.value.status == 415
    only_tb = write(tmp_path, "tb.log", TRACEBACK.split("\n", 2)[2])
    with pytest.raises(LogError):
        READER.read(only_tb, ReadLimits())


@pytest.mark.parametrize("text", [PIPES, NANOGPT, KEY_EQ, TRACEBACK])
def test_detected_without_hint(tmp_path, text):
    assert sniff.detect(write(tmp_path, "stdout.txt", text)).name == "text"


@pytest.mark.parametrize("line", ["Training time for one epoch: 42.798 seconds", "epoch: 12.5s", "step=3 min",
                                  "Iteration 7 ms"])
def test_a_position_followed_by_a_time_unit_is_a_duration(line: str) -> None:
    assert not [k for k, _ in pairs(line) if k.lower() in ("epoch", "step", "iteration")]


def test_epoch_durations_do_not_move_the_nan_off_its_epoch(tmp_path: Path) -> None:
    lines = []
    for e in range(1, 11):
        lines += [f"Epoch {e} loss: {1.0 / e if e < 8 else float('nan')}",
                  f"Training time for one epoch: {40 + e / 7:.4f} seconds"]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    run = read_log(path)
    [loss] = [s for s in run.series if s.role == "loss"]
    assert list(loss.steps) == list(range(1, 11))
    assert [s for s in run.series if s.name.lower() == "epoch"] == []


def _paddle(iters: range, total: int, loss: object, epoch0: int = 1) -> list[str]:
    return [f"2021-10-08 23:18:55 [INFO]\t[TRAIN] epoch: {epoch0 + i // 100}, iter: {i}/{total}, "
            f"loss: {loss(i) if callable(loss) else loss:.4f}, lr: 0.01" for i in iters]


def test_runs_appended_to_one_console_are_split_and_the_last_read(tmp_path: Path) -> None:
    # PaddleSeg's workerlog: a 1000-iteration trial stopped at 600 falling to 0.1, a 50-iteration one
    # stopped at 30 at 3.0, then the real run resumed at iteration 10,000 at about 0.9: one axis made
    # that a divergence; the trials, each cut short, are superseded (had they counted to their totals
    # each would be judged on its own: logsweep96 #1, tests/logs/test_logsweep96_complete_runs.py)
    lines = (["2021-10-08 23:18:49 [INFO]\t", "---- environment ----"]
             + _paddle(range(10, 601, 10), 1000, lambda i: 2.0 * (0.05 ** (i / 600)))
             + ["---- environment ----"] + _paddle(range(10, 31, 10), 50, 3.0)
             + ["---- environment ----"] + _paddle(range(10010, 12001, 10), 50000, lambda i: 0.95 - i * 1e-6, 28))
    path = tmp_path / "workerlog.0"
    path.write_text("\n".join(lines) + "\n")
    run = read_log(path)
    [w] = [w for w in run.warnings if w.code == "skipped_runs"]
    assert "3 runs" in w.message and w.where == f"line {len(lines) - 200 + 1}"
    [loss] = [s for s in run.series if s.role == "loss"]
    assert len(loss) == 200 and float(loss.values[0]) < 1.0


def test_training_and_evaluation_counters_of_one_run_are_not_runs(tmp_path: Path) -> None:
    # PaddleClas: "[Train][Epoch 1/400][Iter: 0/98]" lines, then "[Eval][Epoch 1][Iter: 0/25]": the
    # totals alternate; a final test of its own total, with no loss, is no run either
    lines = []
    for e in range(1, 6):
        lines += [f"[Train][Epoch {e}/400][Iter: {i}/98] loss: {2.0 / e:.3f}" for i in range(0, 98, 10)]
        lines += [f"[Eval][Epoch {e}][Iter: {i}/25] acc: 0.5" for i in range(0, 25, 10)]
    lines += [f"[Test][Iter: {i}/30] acc: 0.6" for i in range(0, 30, 5)]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    assert not [w for w in read_log(path).warnings if w.code == "skipped_runs"]
