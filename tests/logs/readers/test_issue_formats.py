"""Logs as users paste them into bug reports and as more frameworks write them, each read wrongly
or refused before (a sweep of GitHub issue threads and of mmengine, LLaMA-Factory, DETR, OpenNMT
logs). The lines are written out here in each tool's format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log as load_run


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _series(run, name: str):
    return next(s for s in run.series if s.name == name)


def test_the_trainers_console_dicts_are_read(tmp_path: Path) -> None:
    # the Trainer prints a Python dict per logging step (single quotes, bare nan)
    lines = [f"{{'loss': {0.9 - 0.05 * i:.4f}, 'grad_norm': {'nan' if i >= 6 else 1.5}, "
             f"'learning_rate': 5e-05, 'epoch': {0.1 * (i + 1):.2f}}}" for i in range(10)]
    path = _write(tmp_path, "train.log", "\n".join(lines) + "\n")
    run = load_run(path)
    assert _series(run, "loss").role == "loss" and len(_series(run, "loss")) == 10
    assert math.isnan(_series(run, "grad_norm").values[6])
    doc = check_logs(path)
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings)


@pytest.mark.parametrize("esc", ["\x1b", ""])  # the escape byte itself is often lost in a copy
def test_terminal_colours_are_not_part_of_the_values(tmp_path: Path, esc: str) -> None:
    lines = [f"[{esc}[36m05-07 13:05:{i:02d}{esc}[0m][{esc}[1mTrain Summary{esc}[0m] | Epoch {i + 1} | "
             f"lr=6.88E-02 | grad_norm={'INF' if i == 7 else 2.5} | loss={3.0 - 0.1 * i:.3f}" for i in range(10)]
    run = load_run(_write(tmp_path, "solver.log", "\n".join(lines) + "\n"))
    g = _series(run, "grad_norm")
    assert g.role == "grad_norm" and len(g) == 10 and math.isinf(g.values[7])
    assert not [s for s in run.series if s.name in ("36m05-07", "0m", "1mTrain")]


def test_a_split_word_before_loss_tells_validation_from_training(tmp_path: Path) -> None:
    lines = [f"Epoch: {i + 1} \tTraining Loss: {0.5 - 0.03 * i:.6f} \tValidation Loss: {0.07 + 0.001 * i:.6f}"
             for i in range(10)]
    run = load_run(_write(tmp_path, "out.log", "\n".join(lines) + "\n"))
    train, val = _series(run, "Training_Loss"), _series(run, "Validation_Loss")
    assert train.role == "loss" and val.role == "val_loss"
    assert train.values[0] == pytest.approx(0.5) and val.values[0] == pytest.approx(0.07)


def test_a_space_before_the_colon_and_dashes_between_pairs(tmp_path: Path) -> None:
    lines = [f"Epoch: {i + 1} Train loss: {212 - 20 * i:.3f} Val loss : {10288.5 - i:.2f} WER: 0.9" for i in range(9)]
    lines += [f"epoch: {i + 1}, lr: 2.09e-05, steps: {653 * (i + 1)}, optimizer: AdamW - train loss: {309 - i:.2e} "
              f"- valid loss: {1.14 + i / 100:.2f}, valid CER: 1.00e+02, valid WER: 1.00e+02" for i in range(9)]
    run = load_run(_write(tmp_path, "asr.log", "\n".join(lines[:9]) + "\n"))
    assert _series(run, "Val_loss").role == "val_loss" and _series(run, "Val_loss").values[0] == pytest.approx(10288.5)
    run = load_run(_write(tmp_path, "sb.log", "\n".join(lines[9:]) + "\n"))
    assert _series(run, "valid_loss").role == "val_loss" and _series(run, "train_loss").role == "loss"


def test_bare_split_names_beside_an_epoch_are_the_losses(tmp_path: Path) -> None:
    lines = [f"Epoch {i:03d}: train={0.18 - 0.01 * i:.8f} valid={0.23 + 0.001 * i:.8f} best=0.2343 duration=12.1"
             for i in range(12)]
    run = load_run(_write(tmp_path, "demucs.log", "\n".join(lines) + "\n"))
    assert _series(run, "train_loss").role == "loss" and _series(run, "valid_loss").role == "val_loss"


def test_opennmt_xent_is_the_training_loss(tmp_path: Path) -> None:
    lines = [f"[2023-01-01 10:00:{i:02d},000 INFO] Step {100 * (i + 1)}/500000; acc: {3.9 + i:.2f}; "
             f"ppl: {541.4 / (i + 1):.2f}; xent: {6.29 - 0.4 * i:.2f}; lr: 0.00001; 386/784 tok/s; 55 sec"
             for i in range(10)]
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    xent = _series(run, "xent")
    assert xent.role == "loss" and list(xent.steps[:2]) == [100, 200]


def test_json_lines_whose_only_step_is_a_fractional_epoch(tmp_path: Path) -> None:
    # once a crash: evidence steps were whole numbers only
    rows = [{"loss": 0.5 - 0.01 * i, "grad_norm": None if i else 1.0, "epoch": round(0.54 * (i + 1), 2)}
            for i in range(12)]
    rows[5]["grad_norm"] = float("nan")
    path = _write(tmp_path, "log.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    doc = check_logs(path)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.evidence.steps and f.evidence.steps[0] == pytest.approx(3.24)


def test_text_and_list_fields_in_json_lines_are_left_out_with_a_note(tmp_path: Path) -> None:
    # LLaMA-Factory's trainer_log.jsonl (time strings) and DETR's log.txt (a list of COCO APs)
    rows = [{"current_steps": 5 * (i + 1), "total_steps": 8712, "loss": 1.75 - 0.01 * i, "eval_loss": None,
             "learning_rate": 5e-05, "epoch": 0.0, "elapsed_time": f"0:0{i}:29", "remaining_time": "4 days, 5:06:09",
             "coco_eval_bbox": [0.0, 0.1]} for i in range(10)]
    path = _write(tmp_path, "trainer_log.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    run = load_run(path)
    loss = _series(run, "loss")
    assert list(loss.steps[:3]) == [5, 10, 15]  # current_steps is the step
    notes = [w.message for w in run.warnings if w.code == "skipped_values"]
    assert len(notes) == 3 and any("'elapsed_time' is \"0:00:29\"" in m for m in notes)
    assert not [s for s in run.series if s.name in ("elapsed_time", "remaining_time", "coco_eval_bbox")]


def test_runs_appended_to_one_json_lines_file_keep_the_last(tmp_path: Path) -> None:
    first = [{"epoch": e, "train_loss": 40.0 - e, "test_loss": 50.0 - e} for e in range(10)]
    second = [{"epoch": e, "train_loss": 26.5 - 0.3 * e, "test_loss": 22.4 - 0.2 * e} for e in range(51)]
    path = _write(tmp_path, "log.txt", "\n".join(json.dumps(r) for r in first + second) + "\n")
    run = load_run(path)
    loss = _series(run, "train_loss")
    assert len(loss) == 51 and loss.values[0] == pytest.approx(26.5)
    [w] = [w for w in run.warnings if w.code == "skipped_runs"]
    assert "2 runs" in w.message and "line 11" in w.message


def test_validation_records_with_steps_of_their_own_are_not_a_new_run(tmp_path: Path) -> None:
    # mmengine's scalars.json: training rows by iteration, validation rows by epoch
    rows = []
    for epoch in range(1, 8):
        rows += [{"step": 69 * (epoch - 1) + k, "loss": 2.0 / epoch, "lr": 0.1} for k in (10, 40, 69)]
        rows.append({"step": epoch, "accuracy/top1": 50.0 + epoch})
    run = load_run(_write(tmp_path, "scalars.json", "\n".join(json.dumps(r) for r in rows) + "\n"))
    assert len(_series(run, "loss")) == 21 and len(_series(run, "accuracy/top1")) == 7
    assert not [w for w in run.warnings if w.code == "skipped_runs"]
