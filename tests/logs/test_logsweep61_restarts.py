"""A plain-text console holding several runs appended one after another that are not complete
trials (logsweep61 u08: an MXNet SSD console restarted and resumed ten times): only one run is
judged for trends, but the NaN/Inf of every run not read is still reported (``skipped_nonfinite``
notes, a ``nonfinite`` warning), and a last run too short to judge (an aborted start) gives way to
the last run long enough to judge. The consoles are synthetic, in MXNet's Speedometer format
(``Epoch[0] Batch [20]\tSpeed: ...\tTrain-SmoothL1=...``, one metric a line)."""

from __future__ import annotations

from pathlib import Path

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write


def _mxnet(epochs: range, batches: int, loss, acc=lambda e, b: 0.8) -> list[str]:  # noqa: ANN001
    """What one MXNet ``Module.fit`` prints: per batch, one line per metric; per epoch, its summary."""
    lines = ["Start training with (gpu(0)) from pretrained model model/ssd_300"]
    for e in epochs:
        for b in range(1, batches + 1):
            head = f"Epoch[{e}] Batch [{20 * b}]\tSpeed: 30.00 samples/sec\t"
            lines += [head + f"Train-Acc={acc(e, b):.6f}", head + f"Train-SmoothL1={loss(e, b)}"]
        lines += [f"Epoch[{e}] Train-SmoothL1={loss(e, batches)}", f"Epoch[{e}] Time cost=100.000"]
    return lines


def _healthy(e: int, b: int) -> str:
    return f"{10.0 * 0.9 ** (3 * e + b):.6f}"


def _nan(e: int, b: int) -> str:
    return "nan"


def _console(tmp_path: Path, fragment: range, batches: int) -> tuple[Path, int, list[str], list[str]]:
    """A healthy run, a restart whose SmoothL1 is NaN from its first batch (aborted after 2 epochs),
    a healthy 10-epoch run, and a last start of ``fragment`` epochs of ``batches`` batches: (the
    file, the NaN line, the 10-epoch run's lines, the last run's lines)."""
    first = _mxnet(range(0, 4), 3, _healthy)
    broken = _mxnet(range(0, 2), 3, _nan)
    long_run = _mxnet(range(0, 10), 3, _healthy)
    last = _mxnet(fragment, batches, lambda e, b: f"{38.6 - e - b / 10:.6f}")
    nan_line = len(first) + 1 + 2            # the broken run's header, batch 20's Train-Acc, then its SmoothL1
    return (write(tmp_path, "train.log", "\n".join([*first, *broken, *long_run, *last]) + "\n"), nan_line,
            long_run, last)


def _alone(tmp_path: Path, name: str, lines: list[str]) -> list[float]:
    """The SmoothL1 values of ``lines`` read as a file of their own."""
    tmp_path.mkdir(exist_ok=True)
    return by_name(read_log(write(tmp_path, name, "\n".join(lines) + "\n")))["Train-SmoothL1"].values.tolist()


def test_a_nan_in_a_skipped_run_is_reported_with_its_line_and_run(tmp_path: Path) -> None:
    # the last run (3 epochs x 3 batches: 9 batch points, at least the 8 a trend needs) is read
    path, nan_line, _, last = _console(tmp_path, range(0, 3), 3)
    log = read_log(path)
    [note] = [w for w in log.warnings if w.code == "skipped_nonfinite"]
    assert note.where == f"line {nan_line}"
    assert f"line {nan_line}: Train-SmoothL1 = nan at epoch 0, step 20, in run 2 of 4" in note.message
    doc = run_log_check(path)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.severity == "warning" and f.evidence.model_extra["where"] == f"line {nan_line}"
    assert f.evidence.model_extra["earlier_run"] is True and f.evidence.model_extra["runs"] == 1
    assert "not the one judged" in f.summary and f"line {nan_line}" in f.summary
    # the trend checks still judge the last run only: the same values as the run read alone
    assert by_name(log)["Train-SmoothL1"].values.tolist() == _alone(tmp_path / "alone", "last.log", last)
    [skipped] = [w for w in log.warnings if w.code == "skipped_runs"]
    # (a run starts at its first epoch line: the "Start training" line above it ends the run before)
    assert skipped.message.endswith(f"the last one, from line {len(path.read_text().splitlines()) - len(last) + 2}, "
                                    "is read")


def test_an_aborted_last_run_gives_way_to_the_last_run_long_enough(tmp_path: Path) -> None:
    # an aborted start: 2 batches of epoch 0 (2 points of SmoothL1, fewer than 8)
    path, nan_line, long_run, last = _console(tmp_path, range(0, 1), 2)
    lines = len(path.read_text().splitlines())
    # (a run starts at its first epoch line: the "Start training" line above it ends the run before)
    start, end = lines - len(last) - len(long_run) + 2, lines - len(last) + 1
    log = read_log(path)
    assert by_name(log)["Train-SmoothL1"].values.tolist() == _alone(tmp_path / "alone", "long.log", long_run)
    [note] = [w for w in log.warnings if w.code == "skipped_runs"]
    assert note.message.endswith(
        f"the last one, from line {end + 1}, has only 2 point(s) of Train-SmoothL1, fewer than the 8 a trend "
        f"needs: lines {start}-{end}, run 3, the last run long enough to judge, are read")
    assert note.where == f"line {start}"
    # the NaN run before the one read is still reported
    [nan_note] = [w for w in log.warnings if w.code == "skipped_nonfinite"]
    assert nan_note.where == f"line {nan_line}" and "a run appended before the one read" in nan_note.message
    doc = run_log_check(path)
    assert [f.severity for f in doc.findings if f.code == "nonfinite"] == ["warning"]
    assert not [f for f in doc.findings if f.code == "insufficient_data"]


def test_a_nan_in_the_run_judged_stays_the_error_it_was(tmp_path: Path) -> None:
    # the last run is the broken one (long enough to judge): its own NaN is the finding, an error
    lines = [*_mxnet(range(0, 4), 3, _healthy), *_mxnet(range(0, 4), 3, lambda e, b: "nan" if e >= 2 else _healthy(e, b))]
    doc = run_log_check(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.severity == "error" and "earlier_run" not in (f.evidence.model_extra or {})


def test_a_nan_accuracy_in_a_skipped_run_is_no_failure(tmp_path: Path) -> None:
    # an accuracy (no quantity training computes) NaN in an earlier run: nothing to report
    # (4 epochs, then 6: the first cut short, so not a search's complete trials, each judged)
    lines = [*_mxnet(range(0, 4), 3, _healthy, acc=lambda e, b: float("nan")), *_mxnet(range(0, 6), 3, _healthy)]
    path = write(tmp_path, "train.log", "\n".join(lines) + "\n")
    assert not [w for w in read_log(path).warnings if w.code == "skipped_nonfinite"]
    assert not [f for f in run_log_check(path).findings if f.code == "nonfinite"]
