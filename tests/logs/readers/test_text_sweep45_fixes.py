"""logsweep45 item 14 (two runs of one epoch counter pasted one after another, the first lost
silently) and logsweep46 item 07 (ComboGAN's one-letter ``D``/``G`` losses dropped)."""

from __future__ import annotations

from pathlib import Path

from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import pairs
from gradhealth.logs.series import RunLog, Series


def by_name(log: RunLog) -> dict[str, Series]:
    return {s.name: s for s in log.series}


def codes(log: RunLog) -> list[str]:
    return [w.code for w in log.warnings]


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _eattf2_run(first: float, val: float) -> list[str]:
    return [f"Epoch={e},Loss:{first * 0.7 ** e:.6f},Accuracy:{0.7 + e / 50:.4f},"
            f"Valid Loss:{val + 0.08 * e:.6f},Valid Accuracy:0.85" for e in range(1, 7)]


def test_an_epoch_counter_starting_again_splits_the_runs_each_judged_on_its_own(tmp_path: Path) -> None:
    # logsweep45/14: Epoch=1..6, a blank line, Epoch=1..6 again; the second run overwrote the first
    first, second = _eattf2_run(0.6, 0.30), _eattf2_run(0.9, 0.55)
    log = read_log(write(tmp_path, "eattf2.txt", [*first, "", *second]))
    s = by_name(log)
    assert log.runs == ["run1", "run2"]
    assert codes(log) == ["several_runs"] and "run1 (line 1), run2 (line 8)" in log.warnings[0].message
    for run, lines, top in (("run1", first, 0.6), ("run2", second, 0.9)):
        # each run's six points, counted on their own, are its own lines' values
        assert s[f"{run}/Loss"].steps.tolist() == [1, 2, 3, 4, 5, 6]
        assert s[f"{run}/Loss"].values.tolist() == [round(top * 0.7 ** e, 6) for e in range(1, 7)]
        assert len(s[f"{run}/Valid_Loss"]) == len(lines) == 6
    assert sum(len(x) for x in log.series) == 4 * 12  # no point of either run lost


def test_other_epoch_forms_starting_again(tmp_path: Path) -> None:
    # "epoch: 3", a run cut short at epoch 3 and started afresh: the last run is read, and said so
    lines = [f"epoch: {e}, loss: {1.0 / e:.4f}" for e in (1, 2, 3)]
    lines += [f"epoch: {e}, loss: {2.0 / e:.4f}" for e in range(1, 9)]
    log = read_log(write(tmp_path, "cut.log", lines))
    assert codes(log) == ["skipped_runs"] and "from line 4" in log.warnings[0].message
    assert by_name(log)["loss"].steps.tolist() == list(range(1, 9))
    assert by_name(log)["loss"].values.tolist() == [round(2.0 / e, 4) for e in range(1, 9)]
    # a position within the epoch (mmdet's "Epoch [3][10/20]"), two complete trials
    lines = [f"Epoch [{e}][{b}/20] loss: {2.0 / e - b / 1000:.4f}" for e in range(1, 5) for b in (10, 20)]
    lines += [f"Epoch [{e}][{b}/20] loss: {3.0 / e - b / 1000:.4f}" for e in range(1, 5) for b in (10, 20)]
    log = read_log(write(tmp_path, "pos.log", lines))
    s = by_name(log)
    assert log.runs == ["run1", "run2"] and len(s["run1/loss"]) == len(s["run2/loss"]) == 8
    assert s["run1/loss"].values[0] == 1.99 and s["run2/loss"].values[0] == 2.99


def test_an_epoch_repeated_on_several_lines_is_no_restart(tmp_path: Path) -> None:
    # a batch's line and the epoch's summary both say epoch e: one run, nothing noted
    lines = []
    for e in range(1, 7):
        lines += [f"epoch: {e}, seen: 50, loss: {1.0 / e:.4f}", f"epoch: {e}, seen: 100, loss: {0.9 / e:.4f}",
                  f"Epoch={e} done, loss: {0.8 / e:.4f}, val_loss: {0.9 / e:.4f}"]
    log = read_log(write(tmp_path, "one.log", lines))
    assert log.runs == [] or len(log.runs) <= 1
    assert codes(log) == []
    assert by_name(log)["val_loss"].steps.tolist() == list(range(1, 7))


def test_an_epoch_going_back_part_way_is_noted_not_silently_overwritten(tmp_path: Path) -> None:
    # resumed from a checkpoint at epoch 2 after reaching epoch 4: one run, the replaced values said
    lines = [f"Epoch={e},Loss:{1.0 - e / 10:.2f}" for e in (1, 2, 3, 4)]
    lines += [f"Epoch={e},Loss:{0.95 - e / 10:.2f}" for e in (2, 3, 4, 5, 6)]
    log = read_log(write(tmp_path, "resumed.log", lines))
    s = by_name(log)
    assert codes(log) == ["overwritten_values"]
    assert "line 5: the epoch goes back from 4 to 2" in log.warnings[0].message
    assert s["Loss"].steps.tolist() == [1, 2, 3, 4, 5, 6]
    assert s["Loss"].values.tolist() == [0.9, 0.75, 0.65, 0.55, 0.45, 0.35]


def _combogan(epochs: range, d: float) -> list[str]:
    return [f"(epoch: {e}, iters: {i}, time: 0.291) D: {d / e:.3f}, 0.105, 0.111, 0.130 | "
            f"G: {0.15 + e / 100:.3f}, 0.150, 0.159, 0.144 | Cyc: 0.092, 0.037, 0.054, 0.042 | "
            for e in epochs for i in (100, 200)]


def test_combogan_one_letter_losses_are_read(tmp_path: Path) -> None:
    # logsweep46/07: "D: 0.111, ... | G: 0.146, ..." lost both keys (one-letter names were skipped)
    lines = ["================ Training Loss (Fri Jun 21 05:19:51 2024) ================", *_combogan(range(1, 6), 0.1)]
    log = read_log(write(tmp_path, "loss_log.txt", lines))
    s = by_name(log)
    assert {"D", "G", "Cyc"} <= set(s)
    # iters counts within the epoch (100, 200, then 100 again): each line is a point at its place
    # in the epoch, e + iters / 300 (the largest count plus the usual gap), none merged away
    assert s["D"].steps.tolist() == [round(e + i / 300, 6) for e in range(1, 6) for i in (100, 200)]
    assert s["D"].step_unit == "epoch"
    assert s["D"].values.tolist() == [round(0.1 / e, 3) for e in range(1, 6) for _ in (100, 200)]
    assert s["G"].values.tolist() == [round(0.15 + e / 100, 3) for e in range(1, 6) for _ in (100, 200)]


def test_combogan_restarted_keeps_the_last_run_with_its_gan_losses(tmp_path: Path) -> None:
    # the real file's shape: epochs 1-3, three headers, then a fresh run from epoch 1
    header = "================ Training Loss (Fri Jun 21 05:26:55 2024) ================"
    lines = [header, *_combogan(range(1, 4), 0.1), header, header, *_combogan(range(1, 9), 0.2)]
    log = read_log(write(tmp_path, "loss_log.txt", lines))
    s = by_name(log)
    assert codes(log) == ["skipped_runs"] and "from line 10" in log.warnings[0].message
    assert s["D"].steps.tolist() == [round(e + i / 300, 6) for e in range(1, 9) for i in (100, 200)]
    assert s["D"].values.tolist() == [round(0.2 / e, 3) for e in range(1, 9) for _ in (100, 200)]  # the second run's


def test_a_one_letter_name_seen_once_or_twice_is_still_no_value(tmp_path: Path) -> None:
    # a config's "B=32 T=1024" once, a line cut inside "lr" ("r: 0.1") twice: not series
    lines = ["batch_size B=32 * seq_len T=1024"]
    lines += [f"step {i} | loss {3.0 - i / 10:.2f} | lr 0.001" for i in range(1, 8)]
    lines[3] = "step 3 | loss 2.70 | r: 0.001"
    lines[5] = "step 5 | loss 2.50 | r: 0.001"
    log = read_log(write(tmp_path, "train.log", lines))
    s = by_name(log)
    assert set(s) == {"loss", "lr"} and len(s["loss"]) == 7
    assert pairs("batch_size B=32 * seq_len T=1024") == []
    assert pairs("(epoch: 1, iters: 100) D: 0.1 | G: 0.2") == [("epoch", "1"), ("iters", "100")]
