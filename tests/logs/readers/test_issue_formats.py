"""Logs as users paste them into bug reports and as more frameworks write them, each read wrongly
or refused before (a sweep of GitHub issue threads and of mmengine, LLaMA-Factory, DETR, OpenNMT
logs). The lines are written out here in each tool's format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError
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


_OPENNMT = [f"[2023-01-01 10:00:{i:02d},000 INFO] Step {100 * (i + 1)}/500000; acc: {3.9 + i:.2f}; "
            f"ppl: {541.4 / (i + 1):.2f}; xent: {6.29 - 0.4 * i:.2f}; lr: 0.00001; 386/784 tok/s; 55 sec"
            for i in range(10)]
# fairseq --log-format json: the record is JSON inside a console line, its numbers quoted
_FAIRSEQ_JSON = [f'2022-10-18 04:{39 + i}:17 | INFO | train_inner | {{"epoch": 1, "update": {0.027 * (i + 1):.3f}, '
                 f'"loss": "{21.229 - i:.3f}", "num_updates": "{10 * (i + 1)}", "lr": "7.33333e-06", "gnorm": "27.355"}}'
                 for i in range(10)]


@pytest.mark.parametrize("lines,name,steps,first", [
    (_OPENNMT, "xent", [100, 200], 6.29),          # OpenNMT-py's training cross-entropy
    (_FAIRSEQ_JSON, "loss", [10, 20], 21.229),     # fairseq's num_updates is the step
])
def test_console_formats_loss_and_step(tmp_path: Path, lines: list[str], name: str, steps: list[int],
                                       first: float) -> None:
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    loss = _series(run, name)
    assert loss.role == "loss" and loss.steps.tolist()[:2] == steps and loss.values[0] == pytest.approx(first)


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


def test_runs_appended_to_one_json_lines_file_are_each_read(tmp_path: Path) -> None:
    # once only the last run was kept; every appended run is judged on its own now (logsweep48)
    first = [{"epoch": e, "train_loss": 40.0 - e, "test_loss": 50.0 - e} for e in range(10)]
    second = [{"epoch": e, "train_loss": 26.5 - 0.3 * e, "test_loss": 22.4 - 0.2 * e} for e in range(51)]
    path = _write(tmp_path, "log.txt", "\n".join(json.dumps(r) for r in first + second) + "\n")
    run = load_run(path)
    loss = _series(run, "run2/train_loss")
    assert len(loss) == 51 and loss.values[0] == pytest.approx(26.5)
    assert len(_series(run, "run1/train_loss")) == 10 and run.runs == ["run1", "run2"]
    [w] = [w for w in run.warnings if w.code == "several_runs"]
    assert "2 runs" in w.message and "run1 (lines 1-10), run2 (lines 11-61)" in w.message


def test_validation_records_with_steps_of_their_own_are_not_a_new_run(tmp_path: Path) -> None:
    # mmengine's scalars.json: training rows by iteration, validation rows by epoch
    rows = []
    for epoch in range(1, 8):
        rows += [{"step": 69 * (epoch - 1) + k, "loss": 2.0 / epoch, "lr": 0.1} for k in (10, 40, 69)]
        rows.append({"step": epoch, "accuracy/top1": 50.0 + epoch})
    run = load_run(_write(tmp_path, "scalars.json", "\n".join(json.dumps(r) for r in rows) + "\n"))
    assert len(_series(run, "loss")) == 21 and len(_series(run, "accuracy/top1")) == 7
    assert not [w for w in run.warnings if w.code == "skipped_runs"]


def test_keras_console_output_is_read_by_epoch(tmp_path: Path) -> None:
    # "Epoch 2/10" heads each epoch; progress lines (ETA) come before the epoch's last line
    lines = []
    for e in range(1, 11):
        lines.append(f"Epoch {e}/10")
        lines.append(f"100/215 [====>.....] - ETA: 1s - loss: {9.9:.4f} - accuracy: 0.1000")
        loss = "nan" if e >= 4 else f"{0.6 - 0.05 * e:.4f}"
        lines.append(f"215/215 [==========] - 1s 3ms/step - loss: {loss} - accuracy: 0.6 - val_loss: {loss} - "
                     f"val_accuracy: 0.7")
    run = load_run(_write(tmp_path, "fit.log", "\n".join(lines) + "\n"))
    loss = _series(run, "loss")
    assert loss.step_unit == "epoch" and loss.steps.tolist() == list(range(1, 11))  # one point per epoch
    assert loss.values[0] == pytest.approx(0.55)  # the epoch's last line, not its progress line
    assert not [s for s in run.series if s.name.lower() == "epoch"]
    [f] = [f for f in check_logs(tmp_path / "fit.log").findings if f.code == "nonfinite"]
    assert f.evidence.steps[0] == 4 and "at epoch 4" in f.summary  # the series counts epochs


def test_trainer_dicts_sharing_a_rounded_epoch_each_keep_their_place(tmp_path: Path) -> None:
    # the Trainer prints its epoch to 2 decimals: with logging_steps small against an epoch, lines
    # share one (five at 0.17, three at 0.18); read by epoch, only each one's last line was left
    epochs = [0.0, 0.11, 0.17, 0.17, 0.17, 0.17, 0.17, 0.18, 0.18, 0.18]
    losses = [1.3587, 0.4827, 0.5813, 0.7004, 0.6607, 1.0354, 0.6606, 0.6845, 0.8643, 0.8247]
    norms = [0.24, 0.27, 1.36, 1.28, 17.2, 7.12, 21.8, 23.0, 3.77, 14.4]
    lines = [f"{{'loss': {v}, 'grad_norm': {g}, 'learning_rate': 5e-05, 'epoch': {e}}}"
             for v, g, e in zip(losses, norms, epochs, strict=True)]
    lines.insert(5, "{'eval_loss': 0.9, 'eval_runtime': 3.1, 'epoch': 0.17}")
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    loss, norm = _series(run, "loss"), _series(run, "grad_norm")
    assert loss.values.tolist() == losses and norm.values.tolist() == norms  # every line, in order
    steps = loss.steps.tolist()
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False))
    # the k-th of n lines at a printed epoch e sits at e + k (next - e) / n
    assert steps[2:4] == pytest.approx([0.17, 0.17 + 0.01 / 6]) and steps[7] == 0.18
    assert 0.17 < _series(run, "eval_loss").steps[0] < 0.18


def test_whole_epochs_printed_on_every_line_keep_each_epochs_last(tmp_path: Path) -> None:
    # a script printing a loss several times an epoch, as whole epochs: each print is a point, the
    # k-th of an epoch's 3 at e + k/3 (logsweep80: a spike or NaN inside an epoch is seen), so the
    # epoch's last sits at its end
    lines = [f"epoch: {e}, loss: {v}" for e in (1, 2, 3) for v in (9.0, 8.0, 1.0 / e)]
    loss = _series(load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n")), "loss")
    assert loss.steps.tolist() == pytest.approx([e + k / 3 for e in (1, 2, 3) for k in range(3)])
    assert loss.values.tolist()[2::3] == [1.0, 0.5, 1.0 / 3]


def _keras_fit(epochs: int, loss) -> list[str]:
    """What one ``model.fit(epochs=...)`` prints: each epoch's header, a progress line, its last line."""
    lines = []
    for e in range(1, epochs + 1):
        lines += [f"Epoch {e}/{epochs}",
                  "100/215 [====>.....] - ETA: 1s - loss: 9.9000 - accuracy: 0.1000",
                  f"215/215 [==========] - 1s 3ms/step - loss: {loss(e):.4f} - accuracy: 0.6"]
    return lines


def test_keras_fits_appended_to_one_console_keep_the_last(tmp_path: Path) -> None:
    # training for 10 epochs, then a fine-tune for 5 printed after it: by epoch the two would
    # overwrite each other's epochs 1-5; the epoch total (10, then 5) says where the second starts,
    # and since the first counted to its own total (logsweep96 #1) it is judged too, not superseded
    first = _keras_fit(10, lambda e: 2.0 - 0.1 * e)
    second = _keras_fit(5, lambda e: 0.5 * 1.9 ** e)
    run = load_run(_write(tmp_path, "fit.log", "\n".join(["Model: sequential"] + first + second) + "\n"))
    assert run.runs == ["run1", "run2"]
    loss = _series(run, "run2/loss")
    assert loss.steps.tolist() == [1, 2, 3, 4, 5]
    assert loss.values.tolist() == pytest.approx([0.5 * 1.9 ** e for e in range(1, 6)], abs=5e-5)
    assert _series(run, "run1/loss").values.tolist() == pytest.approx([2.0 - 0.1 * e for e in range(1, 11)])
    [w] = [w for w in run.warnings if w.code == "several_runs"]
    assert "2 runs" in w.message and f"run2 (line {len(first) + 2})" in w.message
    # the same total again with the epochs starting over after the first reached its last (fit
    # called twice for 10 epochs, a search's next trial): two runs, each read and judged on its own
    third = _keras_fit(10, lambda e: 3.0 - 0.2 * e)
    again = load_run(_write(tmp_path, "again.log", "\n".join(first + third) + "\n"))
    assert again.runs == ["run1", "run2"]
    assert _series(again, "run1/loss").values.tolist() == pytest.approx([2.0 - 0.1 * e for e in range(1, 11)])
    assert _series(again, "run2/loss").values.tolist() == pytest.approx([3.0 - 0.2 * e for e in range(1, 11)])
    [w] = [w for w in again.warnings if w.code == "several_runs"]
    assert "2 runs" in w.message and "run2 (line 31)" in w.message
    # ... but a fit cut short (epoch 6 of 10) and started again is a crash and a fresh start: the last
    crashed = load_run(_write(tmp_path, "crashed.log", "\n".join(first[:18] + third) + "\n"))
    assert not crashed.runs and _series(crashed, "loss").values.tolist() == pytest.approx(
        [3.0 - 0.2 * e for e in range(1, 11)])
    [w] = [w for w in crashed.warnings if w.code == "skipped_runs"]
    assert "the last one, from line 19, is read" in w.message


def test_fairseq_epoch_lines_are_read_by_epoch(tmp_path: Path) -> None:
    lines = []
    for e in range(1, 9):
        loss = "nan" if e >= 6 else f"{11.7 - e:.2f}"
        lines.append(f"| epoch {e:03d} | train loss {loss} | train ppl 1111.00 | lr 0.250000 | clip  94% | gnorm {loss}")
        lines.append(f"| epoch {e:03d} | valid on 'valid' subset | valid loss {loss} | valid ppl 111.00")
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert _series(run, "train_loss").steps.tolist() == list(range(1, 9))
    assert _series(run, "valid_loss").role == "val_loss"
    [f] = [f for f in check_logs(tmp_path / "train.log").findings if f.code == "nonfinite"]
    assert f.evidence.steps[0] == 6


@pytest.mark.parametrize("line,epoch", [
    ("2021-08-18 19:36:00,257 - mmdet - INFO - Epoch [1][50/5808]\tlr: 1.000e-02, eta: 5:02:49, loss: 1.65", 1 + 50 / 5808),
    ("2023/06/05 20:10:13 - mmengine - INFO - Epoch(train)   [3][2/6]  lr: 4.0e-08  eta: 4:59:11  loss: 0.42", 3 + 2 / 6),
    ("Epoch: [2]  [1/6]  eta: 0:00:05  lr: 0.005000  loss: 3.6757 (7.9068)", 2 + 1 / 6),
    ("Epoch:[0/19](100/24681) loss:5.251", 100 / 24681),
    ("Epoch 476:   1%|▏         | 1/79 [00:00<01:00,  1.29it/s, loss=16.8, v_num=1]", 476 + 1 / 79),
])
def test_a_position_within_an_epoch_is_a_fractional_epoch(line: str, epoch: float) -> None:
    from gradhealth.logs.readers.text import pairs
    found = dict(pairs(line))
    assert float(found["epoch"]) == pytest.approx(epoch, abs=1e-6)
    assert "eta" not in found  # a time of day or duration, h:mm:ss, is not a value


def test_a_text_log_after_a_long_config_dump_is_found_and_the_dump_left_out(tmp_path: Path) -> None:
    dump = [f"    layer_{i} = dict(type='Conv', s={i}, out_channels={64 + i}, momentum=0.1)," for i in range(1500)]
    train = [f"2023/06/05 20:10:{i % 60:02d} - mmengine - INFO - Epoch(train)   [{1 + i // 6}][{1 + i % 6}/6]  "
             f"lr: 4.0e-05  eta: 4:59:11  time: 9.97  loss: {0.42 - 0.001 * i:.6f}" for i in range(60)]
    path = _write(tmp_path, "20230605_200941.log", "\n".join(dump + train) + "\n")
    assert path.stat().st_size > 64 * 1024  # past the head every reader is shown
    run = load_run(path)
    loss = _series(run, "loss")
    assert len(loss) == 60 and loss.steps[0] == pytest.approx(1 + 1 / 6, abs=1e-6)
    assert not [s for s in run.series if s.name in ("out_channels", "momentum", "s")]


def test_a_validation_loss_at_its_floor_is_not_overfitting(tmp_path: Path) -> None:
    # Keras prints 4 decimals: val_loss 3.44 falls to 0.0010, then 0.0012-0.0014 (accuracy 1.0)
    val = [3.4412, 1.5670, 0.1545, 0.0464, 0.0735, 0.1312, 0.0175, 0.0049, 0.0044, 0.0271, 0.0227, 0.0129,
           0.0047, 0.0030, 0.0010, 0.0010, 0.0055, 0.0012, 0.0014, 0.0013]
    rows = ["epoch,loss,val_loss"] + [f"{e},{0.5 * 0.8 ** e:.4f},{v:.4f}" for e, v in enumerate(val)]
    doc = check_logs(_write(tmp_path, "log.csv", "\n".join(rows) + "\n"))
    assert not [f for f in doc.findings if f.code == "validation_divergence"]
    # the same shape an order of magnitude up the scale is overfitting
    rows = ["epoch,loss,val_loss"] + [f"{e},{0.5 * 0.8 ** e:.4f},{v:.4f}" for e, v in
                                       enumerate([3.0, 2.0, 1.5, 1.2, 1.0, 1.0, 1.02, 1.06, 1.1, 1.13, 1.16, 1.2])]
    doc = check_logs(_write(tmp_path, "log2.csv", "\n".join(rows) + "\n"))
    assert [f for f in doc.findings if f.code == "validation_divergence"]


def test_fairseq_json_gnorm_is_the_grad_norm(tmp_path: Path) -> None:
    run = load_run(_write(tmp_path, "train.log", "\n".join(_FAIRSEQ_JSON) + "\n"))
    assert _series(run, "gnorm").role == "grad_norm"


def test_a_stable_baselines_progress_csv(tmp_path: Path) -> None:
    rows = ["train/total_loss,Progress,rollout/ep_rew_mean,run,time/total timesteps"]
    rows += [f"{0.04 + 0.03 * ((-1) ** i):.4f},{1.15 * (i + 1):.2f}%,{0.96 + 0.2 * i:.2f},ppo-a,{12800 * (i + 1)}"
             for i in range(40)]
    path = _write(tmp_path, "progress.csv", "\n".join(rows) + "\n")
    run = load_run(path)
    loss = _series(run, "train/total_loss")
    assert loss.role == "loss" and loss.steps[0] == 12800  # environment steps are the step
    assert _series(run, "Progress").values[0] == pytest.approx(1.15)  # a percentage is its number
    assert [w.code for w in run.warnings] == ["skipped_values"] and "'run'" in run.warnings[0].message
    # an agent's loss swings as its rollouts change; the episode reward is what improves
    assert not [f for f in check_logs(path).findings if f.code in ("loss_oscillation", "loss_plateau")]
    # a hand-rolled progress.csv without the section ("total timesteps", the first row's losses blank)
    rows = ["Progress,total timesteps,ep_rew_mean,total_loss", "0.0%,8192,12.7,"]
    rows += [f"{0.82 * i:.2f}%,{8192 * (i + 1)},{12 + i},{2.0 - 0.01 * i:.3f}" for i in range(1, 30)]
    loss = _series(load_run(_write(tmp_path, "run.csv", "\n".join(rows) + "\n")), "total_loss")
    assert loss.steps[0] == 16384 and len(loss) == 29


def test_text_later_in_a_numeric_column_is_still_an_error(tmp_path: Path) -> None:
    from gradhealth.errors import LogError
    rows = ["step,loss", "1,0.5", "2,oops", "3,0.4"]
    with pytest.raises(LogError, match="line 3.*'loss'.*'oops'"):
        load_run(_write(tmp_path, "run.csv", "\n".join(rows) + "\n"))


def test_ultralytics_validation_losses_of_epochs_not_validated_are_left_out(tmp_path: Path) -> None:
    head = "epoch,train/box_loss,train/cls_loss,train/dfl_loss,val/box_loss,val/cls_loss,val/dfl_loss"
    rows = [head] + [f"{e},{1.5 - 0.02 * e:.3f},{1.2 - 0.02 * e:.3f},{1.1 - 0.01 * e:.3f},"
                     + ("0,0,0" if e < 20 else "1.175,0.608,1.157") for e in range(1, 21)]
    run = load_run(_write(tmp_path, "results.csv", "\n".join(rows) + "\n"))
    [val] = [s for s in run.series if s.role == "val_loss"]
    assert val.steps.tolist() == [20] and val.values[0] == pytest.approx(1.175 + 0.608 + 1.157)


def test_a_resumed_run_with_other_loss_components_is_still_a_new_run(tmp_path: Path) -> None:
    # mmengine's scalars.json of a detector restarted with another config: the step starts again at 1
    # and the loss components differ; the loss, rate and norm fields say it is the same kind of record
    first = [{"step": s, "lr": 1e-5, "grad_norm": 20.0, "loss": 45.0 - s / 10, "loss_ddf_aux_0": 1.0}
             for s in range(1, 151)]
    second = [{"step": s, "lr": 1e-5, "grad_norm": 20.0, "loss": 40.0 - s / 100, "loss_fgl": 0.2}
              for s in range(1, 1501, 50)]
    run = load_run(_write(tmp_path, "scalars.json", "\n".join(json.dumps(r) for r in first + second) + "\n"))
    loss = _series(run, "run2/loss")   # each run is read (once only the last was)
    assert len(loss) == len(second) and loss.values[0] == pytest.approx(40.0 - 0.01)
    assert len(_series(run, "run1/loss")) == len(first)
    assert [w.code for w in run.warnings] == ["several_runs"]


def test_a_step_counted_within_each_epoch_is_a_position_in_it(tmp_path: Path) -> None:
    # pytorch-tutorial's prints; the step restarts every epoch, so as a step it would overlap
    lines = [f"Epoch [{e}/10], Step [{s}/600], Loss: {'nan' if (e, s) == (3, 200) else f'{2.3 / e:.4f}'}"
             for e in range(1, 6) for s in (100, 200, 300, 400, 500, 600)]
    path = _write(tmp_path, "train.log", "\n".join(lines) + "\n")
    loss = _series(load_run(path), "Loss")
    assert loss.step_unit == "epoch" and len(loss) == 30
    assert loss.steps[0] == pytest.approx(1 + 100 / 600) and np.all(np.diff(loss.steps) > 0)
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.evidence.steps[0] == pytest.approx(3 + 200 / 600, abs=1e-6)


def test_paddle_evaluation_lines_are_a_validation_loss(tmp_path: Path) -> None:
    lines = []
    for e in range(1, 13):
        lines += [f"[2023/01/01 10:00:00] ppcls INFO: [Train][Epoch {e}/400][Iter: {i}/98]lr(LinearWarmup): "
                  f"0.00036863, CELoss: {6.9 - 0.1 * e - 0.001 * i:.5f}, loss: {6.9 - 0.1 * e - 0.001 * i:.5f}, "
                  f"batch_cost: 0.5 s" for i in (0, 30, 60, 90)]
        lines += [f"[2023/01/01 10:00:00] ppcls INFO: [Eval][Epoch {e}][Iter: {i}/25]CELoss: {2.5 + 0.01 * i:.5f}, "
                  f"loss: {2.5 + 0.01 * i:.5f}, top1: 0.48" for i in (0, 20)]
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    loss, val = _series(run, "loss"), _series(run, "eval_loss")
    assert val.role == "val_loss" and loss.values.max() < 6.9  # no evaluation value among the training ones
    assert loss.steps[1] == pytest.approx(1 + 30 / 98) and np.all(np.diff(loss.steps) > 0)


def test_a_fit_console_with_epoch_headers_and_evaluation_sections(tmp_path: Path) -> None:
    # Paddle's Model.fit: "Epoch 2/10" heads "step i/n" lines; "Eval begin..." heads the evaluation's
    lines = []
    for e in range(1, 11):
        lines.append(f"Epoch {e}/10")
        lines += [f"step {s}/614 - loss: {0.2 - 0.01 * e:.4f} - AUROC: 0.77 - 577ms/step" for s in (307, 614)]
        lines += ["Eval begin...", f"step 88/88 - loss: {0.15 - 0.001 * e:.4f} - AUROC: 0.8 - 300ms/step",
                  "Eval samples: 11200"]
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    loss, val = _series(run, "loss"), _series(run, "eval_loss")
    assert len(loss) == 20 and loss.steps[0] == pytest.approx(1.5) and loss.values[0] == pytest.approx(0.19)
    assert len(val) == 10 and val.role == "val_loss"


def test_caffe_test_net_output_is_a_validation_loss(tmp_path: Path) -> None:
    lines = []
    for it in range(0, 2001, 100):
        if it % 500 == 0:
            lines += [f"I0612 10:23:45.123 12345 solver.cpp:341] Iteration {it}, Testing net (#0)",
                      f"I0612 10:23:45.123 12345 solver.cpp:409]     Test net output #0: loss = {0.0155 * 2:.7f} "
                      f"(* 1 = 0.031 loss)"]
        lines.append(f"I0612 10:23:45.123 12345 solver.cpp:228] Iteration {it}, loss = {0.0066 + 0.0001 * (it % 3):.7f}")
        lines.append(f"I0612 10:23:45.123 12345 sgd_solver.cpp:106] Iteration {it}, lr = 0.01")
    run = load_run(_write(tmp_path, "caffe.log", "\n".join(lines) + "\n"))
    assert _series(run, "loss").values.max() < 0.01 and _series(run, "eval_loss").role == "val_loss"


def test_a_trainer_console_after_model_loading_prints_is_read_by_epoch(tmp_path: Path) -> None:
    junk = [f"weights: {i}" for i in range(50)] + ["trainable_params: 4194304", "all_params: 6742609920"]
    dicts = [f"{{'loss': '{3.4 - 0.01 * i:.3f}', 'grad_norm': 1.2, 'learning_rate': 2e-05, 'epoch': {0.018 * (i + 1):.4f}}}"
             for i in range(40)]
    run = load_run(_write(tmp_path, "train_log.txt", "\n".join(junk + dicts) + "\n"))
    loss = _series(run, "loss")
    assert loss.step_unit == "epoch" and loss.steps[0] == pytest.approx(0.018) and len(loss) == 40
    assert not [s for s in run.series if s.name == "weights"]


@pytest.mark.parametrize("name", ["log", "log.json"])
def test_a_json_array_of_records_chainers_log_report(tmp_path: Path, name: str) -> None:
    records = [{"epoch": e, "iteration": 600 * e, "main/loss": 0.19 / e, "main/accuracy": 0.94,
                "validation/main/loss": 0.07 + 0.001 * max(0, e - 4) ** 2, "elapsed_time": 23.1 * e}
               for e in range(1, 21)]
    path = _write(tmp_path, name, json.dumps(records, indent=4))
    run = load_run(path)
    loss, val = _series(run, "main/loss"), _series(run, "validation/main/loss")
    assert loss.role == "loss" and val.role == "val_loss" and loss.steps[:2].tolist() == [600, 1200]
    assert [f.code for f in check_logs(path).findings if f.severity == "warning"] == ["validation_divergence"]


def test_the_command_line_takes_a_json_array_of_records_for_a_log(tmp_path: Path) -> None:
    from gradhealth.cli import is_spec
    path = _write(tmp_path, "log.json", json.dumps([{"iteration": i, "main/loss": 1.0 / i} for i in range(1, 9)]))
    assert not is_spec(str(path))


def test_a_fastai_history_with_its_time_column(tmp_path: Path) -> None:
    rows = ["epoch,train_loss,valid_loss,accuracy,time"] + [
        f"{e},{0.81 * 0.88 ** e:.6f},{0.46 - 0.04 * e if e < 7 else 0.231 + 0.04 * (e - 6):.6f},0.9,04:{39 + e:02d}"
        for e in range(19)]
    path = _write(tmp_path, "history.csv", "\n".join(rows) + "\n")
    run = load_run(path)
    assert {s.name for s in run.series} == {"train_loss", "valid_loss", "accuracy"}
    [w] = [w for w in run.warnings if w.code == "skipped_values"]
    assert "'time'" in w.message and "'04:39'" in w.message
    assert [f for f in check_logs(path).findings if f.code == "validation_divergence"]


def test_text_in_a_loss_column_is_an_error_even_in_the_first_row(tmp_path: Path) -> None:
    from gradhealth.errors import LogError
    with pytest.raises(LogError, match="'loss'.*'oops'"):
        load_run(_write(tmp_path, "run.csv", "step,loss\n1,oops\n2,0.4\n"))


def test_a_console_line_with_a_comma_in_its_timestamp_is_not_a_csv_header(tmp_path: Path) -> None:
    lines = ["2018-10-11 09:16:22,448 INFO - WIDERFACE_train append flipped images to roidb",
             "2018-10-11 09:16:23,346 INFO - load data: filtered 0 roidb entries: 25752 -> 25752"]
    lines += [f"2018-10-11 09:16:{49 + i},200 INFO - Epoch[5] Batch [{20 * (i + 1)}]\tSpeed: 25.77 samples/sec\t"
              f"loss={0.17 - 0.01 * i:.6f}\tRPNAcc=0.99" for i in range(10)]
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert run.format == "text" and len(_series(run, "loss")) == 10


def test_a_header_of_names_that_start_with_digits_heads_a_table_of_numbers(tmp_path: Path) -> None:
    # one column per model size ("8-dim"), as a W&B panel export names its runs: a header, since
    # the first row is not numbers and every row under it is, cell for cell
    sizes = [8, 16, 32, 64, 128]
    text = "Step," + ",".join(f"{d}-dim" for d in sizes) + "\n" + "".join(
        f"{s}," + ",".join(f"{5.0 / (1 + s / 100) + d / 1000:.4f}" for d in sizes) + "\n" for s in range(0, 400, 8))
    run = load_run(_write(tmp_path, "val_loss.csv", text))
    assert [s.name for s in run.series] == [f"{d}-dim" for d in sizes]
    assert list(run.series[0].steps[:3]) == [0, 8, 16]
    # the same rows with a header of numbers are data, refused: which column is which cannot be told
    with pytest.raises(Exception, match="table of numbers with no header"):
        load_run(_write(tmp_path, "numbers.csv", "1,2,3\n" + text.split("\n", 1)[1]))


def test_a_colab_progress_line_without_a_bar_and_a_constant_epoch(tmp_path: Path) -> None:
    from gradhealth.logs.readers.text import pairs
    found = dict(pairs("Epoch 0:  97% 1651/1702 [13:00<00:24,  2.11it/s, loss=0.158, v_num=0, train_loss=0.149]"))
    assert float(found["epoch"]) == pytest.approx(1651 / 1702, abs=1e-6)
    # every line in epoch 0.0: one epoch is no axis, the lines keep their order
    lines = ["{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 5e-05, 'epoch': 0.0}" for _ in range(13)]
    assert len(_series(load_run(_write(tmp_path, "t.log", "\n".join(lines) + "\n")), "loss")) == 13


def test_learning_rate_in_two_words(tmp_path: Path) -> None:
    from gradhealth.logs.readers.text import pairs
    line = " iteration      700/  400000 | learning rate 6.300E-06 | lm loss NAN | loss scale 64.0 |"
    assert ("learning_rate", "6.300E-06") in pairs(line)


def test_a_step_that_starts_again_each_epoch_without_a_total(tmp_path: Path) -> None:
    # CMGAN's "Epoch 31, Step 500, loss: ..."; as steps they would stack, 6 values on step 2500
    lines = [f"> INFO:root:Epoch {e}, Step {s}, loss: {0.19 - 0.01 * (e - 30) - s / 1e5:.6f}, disc_loss: 0.001"
             for e in range(30, 33) for s in range(500, 3001, 500)]
    loss = _series(load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n")), "loss")
    assert loss.step_unit == "epoch" and len(loss) == 18 and np.all(np.diff(loss.steps) > 0)
    assert loss.steps[0] == pytest.approx(30 + 500 / 3500) and loss.steps[-1] < 33


def test_a_step_written_out_of_its_total(tmp_path: Path) -> None:
    lines = [f"Epoch {e}, step/total_step: {s}/60 {s / 60:.2%} Loss:{3.0 / e - s / 1000:.4f}"
             for e in (11, 12) for s in range(5, 61, 5)]
    loss = _series(load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n")), "Loss")
    assert len(loss) == 24 and loss.steps[0] == pytest.approx(11 + 5 / 60)


@pytest.mark.parametrize("header,row,loss", [
    # YOLOv8: losses named *_loss, summed into the training loss
    ("      Epoch    GPU_mem   box_loss   cls_loss   dfl_loss  Instances       Size",
     "      {e}/55      9.03G     {a:.4f}      8.032      3.308         22        640: 100%|##########| 954/954 [11:41<00:00]",
     "train/loss (sum of box_loss, cls_loss, dfl_loss)"),
    # YOLOv5 (behind a CI runner's time stamps): box obj cls and their total
    ("     Epoch   gpu_mem       box       obj       cls     total    labels  img_size",
     "2023-08-02T15:00:42.3244865Z      {e}/99     0.56G   {a:.5f}  0.003545         0   {a:.5f}        13       640",
     "train/loss"),
])
def test_ultralytics_console_tables(tmp_path: Path, header: str, row: str, loss: str) -> None:
    lines = []
    for e in range(10):
        lines += [header, row.format(e=e, a=0.13 - 0.002 * e),
                  "                 Class     Images  Instances      Box(P          R      mAP50  mAP50-95): 100%",
                  "                   all       1049       1164      0.764      0.776      0.739      0.526"]
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    s = _series(run, loss)
    assert s.role == "loss" and s.steps.tolist() == list(range(10)) and s.step_unit == "epoch"


def test_a_best_so_far_line_is_not_a_steps_values(tmp_path: Path) -> None:
    # DBNet: "current best: ... train_loss: inf" before there is a best; the training losses are finite
    lines = []
    for e in range(1, 4):
        lines += [f"2020-12-06 09:21:47,666 DBNet INFO: [{e}/1200], [{i}/125], global_step: {125 * (e - 1) + i}, "
                  f"speed: 20.1 samples/sec, acc: 0.77, loss: {3.0 / e - i / 1000:.4f}, lr:0.007, time:1.2"
                  for i in range(0, 125, 10)]
        lines.append(f"2020-12-06 09:22:47,666 DBNet INFO: current best:recall: 0.000000, precision: 0.000000, "
                     f"hmean: 0.000000, train_loss: {'inf' if e == 1 else f'{3.0 / e:.4f}'}, best_model_epoch: {e}.000000,")
    path = _write(tmp_path, "train.log", "\n".join(lines) + "\n")
    run = load_run(path)
    assert _series(run, "best_train_loss").role != "loss" and "train_loss" not in {s.name for s in run.series}
    assert not [f for f in check_logs(path).findings if f.severity in ("warning", "error")]


def test_r_style_na_cells_are_missing_values(tmp_path: Path) -> None:
    # a Keras history written from R: the validation columns are NA throughout
    rows = ["epoch,accuracy,loss,mae,val_accuracy,val_loss,val_mae"] + [
        f"{e},0.{e + 1},{0.102 * 0.95 ** e:.6f},0.28,NA,NA,NA" for e in range(15)]
    run = load_run(_write(tmp_path, "training_history.csv", "\n".join(rows) + "\n"))
    assert len(_series(run, "loss")) == 15 and "val_loss" not in {s.name for s in run.series}


def test_a_format_hint_overrules_the_file_name(tmp_path: Path) -> None:
    from gradhealth.errors import UnknownLogFormat
    path = _write(tmp_path, "notes.cfg", "".join(f"step {i}: loss {3.0 - 0.1 * i:.2f}\n" for i in range(1, 10)))
    with pytest.raises(UnknownLogFormat):
        load_run(path)  # by itself a .cfg file is a configuration, not a log
    assert len(_series(load_run(path, format="text"), "loss")) == 9


def test_fairseq_validation_lines_are_the_validation_loss(tmp_path: Path) -> None:
    # fairseq names the subset before its values ("valid on 'valid' subset | loss 7.835"): the
    # epoch ahead of it is a position, not a value, so the line is an evaluation's
    lines = []
    for e in range(1, 9):
        lines += [f"| epoch {e:03d}:   {s} / 8223 loss=4.{9 - e}0 (5.20), wps=959, lr=0.001, clip=100%, gnorm=2.7"
                  for s in (2000, 4000, 6000, 8000)]
        lines.append(f"| epoch {e:03d} | valid on 'valid' subset | loss {7.8 - 0.1 * e:.3f} | nll_loss 6.9 | "
                     f"ppl 119.5 | num_updates {1000 * e}")
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    loss, val = _series(run, "loss"), _series(run, "eval_loss")
    assert val.role == "val_loss" and len(val) == 8 and val.values[0] == pytest.approx(7.7)
    assert loss.values.max() < 5 and loss.steps[0] == pytest.approx(1 + 2000 / 8223)


# --- a fifth sweep: formats from more frameworks and bug reports ----------------------------------


def test_loguru_source_tokens_are_not_values_and_yolox_iterations_count_within_the_epoch(tmp_path: Path) -> None:
    # YOLOX logs through loguru: "module.path:function:line - " before the message; its
    # "iter: 10/47" restarts every epoch and "after_iter" is a function name, not a series
    rng = np.random.default_rng(0)
    lines = []
    for e in range(1, 31):
        for i in (10, 20, 30, 40):
            loss = (6.0 * math.exp(-e / 6) + 1.4) * math.exp(rng.normal(0, 0.05))
            lines.append(f"2021-09-03 20:17:51.976 | INFO     | yolox.core.trainer:after_iter:246 - epoch: {e}/300, "
                         f"iter: {i}/47, mem: 1491Mb, iter_time: 0.487s, total_loss: {loss:.1f}, "
                         f"iou_loss: 1.9, lr: 7.073e-06, size: 640, ETA: 1:54:27")
    path = _write(tmp_path, "train_log.txt", "\n".join(lines) + "\n")
    run = load_run(path)
    assert "after_iter" not in {s.name for s in run.series}
    loss = _series(run, "total_loss")
    assert len(loss) == 120 and loss.steps[0] == pytest.approx(1 + 10 / 47) and np.all(np.diff(loss.steps) > 0)
    assert not [f for f in check_logs(path).findings if f.severity in ("warning", "error")]


def test_a_count_in_prose_is_not_a_step(tmp_path: Path) -> None:
    # "72 in 194" printed after training must not make the epoch lines before it pending rows
    lines = [f"Epoch {e} | Train Loss: {1.3 - 0.05 * e:.4f} | Val Loss: {1.2 - 0.04 * e:.4f}" for e in range(1, 11)]
    path = _write(tmp_path, "train_log.txt", "\n".join([*lines, "", "72 in 194", "144 in 321"]) + "\n")
    run = load_run(path)
    assert "in" not in {s.name for s in run.series} and len(_series(run, "Train_Loss")) == 10


def test_a_summary_line_that_ends_the_log_is_not_a_cut_off_line(tmp_path: Path) -> None:
    # KAIR (USRNet) ends each test round with "<epoch:540, Average PSNR : 30.78dB"; the file's
    # last line is one, without a newline
    lines = []
    for e in range(1, 41):
        lines.append(f"<epoch:{e}, lr:5.000e-05> loss: {0.05 - 0.0005 * e:.3e} ")
        if e % 10 == 0:
            lines.append(f"<epoch:{e}, Average PSNR : {28 + e / 20:.2f}dB")
    path = _write(tmp_path, "train.log", "\n".join(lines))
    assert not [f for f in check_logs(path).findings if f.code == "truncated_log"]
    # a line cut off in a shape no whole line has is still one
    cut = _write(tmp_path, "cut.log", "\n".join(lines[:-1] + ["<epoch:41, lr:5.0"]))
    assert [f for f in check_logs(cut).findings if f.code == "truncated_log"]


def test_paddle_pads_nan_to_its_field_width(tmp_path: Path) -> None:
    # PaddleOCR formats values with "{:x<6f}": a NaN prints as "nanxxx"
    lines = [f"[2021/06/03 00:17:35] root INFO: epoch: [1/600], iter: {10 * i}, lr: 0.000100, "
             f"loss: {'nanxxx' if i >= 3 else f'{2.0 - 0.1 * i:.6f}'}, score_loss: 0.989663, reader_cost: 0.05210 s"
             for i in range(1, 12)]
    path = _write(tmp_path, "train.log", "\n".join(lines) + "\n")
    loss = _series(load_run(path), "loss")
    assert len(loss) == 11 and np.isnan(loss.values[2:]).all()
    assert [f for f in check_logs(path).findings if f.code == "nonfinite" and f.severity == "error"]


def test_a_pandas_frame_written_with_its_index_is_read(tmp_path: Path) -> None:
    # df.to_csv(...) writes the index as an unnamed first column
    rows = [",total_loss,rpn_loss"] + [f"{i},{2.0 * 0.9 ** i:.5f},{0.5 * 0.95 ** i:.5f}" for i in range(20)]
    path = _write(tmp_path, "losses.csv", "\n".join(rows) + "\n")
    loss = _series(load_run(path), "total_loss")
    assert loss.role == "loss" and list(loss.steps[:3]) == [0, 1, 2] and loss.values[1] == pytest.approx(1.8)


def test_loss_sentences_of_dl4j_and_bigdl_are_read(tmp_path: Path) -> None:
    # DL4J's ScoreIterationListener and BigDL's DistriOptimizer write sentences, not pairs
    dl4j = [f"06:39:50.616 [main] INFO org.deeplearning4j.optimize.listeners.ScoreIterationListener - "
            f"Score at iteration {100 * i} is {1.6 * 0.97 ** i:.16f}" for i in range(12)]
    run = load_run(_write(tmp_path, "train.log", "\n".join(dl4j) + "\n"))
    loss = _series(run, "loss")
    assert loss.role == "loss" and list(loss.steps[:2]) == [0, 100] and loss.values[1] == pytest.approx(1.6 * 0.97)
    bigdl = [f"2017-08-20 16:11:38 INFO  DistriOptimizer$:295 - [Epoch 64 {1792 * i}/1281167][Iteration {45450 + i}]"
             f"[Wall Clock 197331.8s] Train 1792 in 4.38seconds. Throughput is 408.4 records/second. "
             f"Loss is {'Infinity' if i == 9 else 1.26}. Current learning rate is 0.0462. Current weight decay is 1.0E-4."
             for i in range(10)]
    path = _write(tmp_path, "bigdl.log", "\n".join(bigdl) + "\n")
    run = load_run(path)
    assert math.isinf(_series(run, "loss").values[-1]) and _series(run, "learning_rate").values[0] == 0.0462
    assert "Throughput" not in {s.name for s in run.series}
    assert any(f.code == "nonfinite" for f in check_logs(path).findings)


def _cyclegan_log(nan_from: int | None = None) -> str:
    """junyanz's CycleGAN/pix2pix loss_log.txt: D and G losses, no training loss of the usual kind."""
    rng = np.random.default_rng(0)
    lines = ["================ Training Loss (Sun Jul  7 12:00:00 2019) ================"]
    for e in range(1, 4):
        for it in range(100, 1100, 100):
            d, g = rng.uniform(0.1, 0.6, 2), rng.uniform(0.3, 1.2, 2)
            g_a = "nan" if nan_from is not None and len(lines) > nan_from else f"{g[0]:.3f}"
            lines.append(f"(epoch: {e}, iters: {it}, time: 0.231, data: 0.002) D_A: {d[0]:.3f} G_A: {g_a} "
                         f"cycle_A: 1.234 idt_A: 0.456 D_B: {d[1]:.3f} G_B: {g[1]:.3f} cycle_B: 1.111 idt_B: 0.333 ")
    return "\n".join(lines) + "\n"


def test_a_gans_losses_are_named_and_checked_for_nan(tmp_path: Path) -> None:
    doc = check_logs(_write(tmp_path, "loss_log.txt", _cyclegan_log()))
    [f] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert f.severity == "info" and f.evidence.generator == ["G_A", "G_B"] and f.evidence.discriminator == ["D_A", "D_B"]
    assert doc.status == "healthy"
    # a NaN in a part without "loss" in its name is a broken run, not an undefined metric
    doc = check_logs(_write(tmp_path, "bad_log.txt", _cyclegan_log(nan_from=20)))
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings)


def test_a_gan_whose_losses_never_move_is_stuck(tmp_path: Path) -> None:
    # StudioGAN's console from an issue: "Gen_loss: -0.0 Dis_loss: 13.82" at every logged step;
    # the healthy CycleGAN log above moves, and a frozen part beside a moving one is not frozen
    lines = [f"[INFO] 2021-11-28 10:56:36 > Step: {s:6d} Progress: 0.1% Elapsed: 0:00:57 Gen_loss: -0.0 "
             f"Dis_loss: 13.82 Cls_loss: N/A" for s in range(100, 700, 100)]
    doc = check_logs(_write(tmp_path, "stuck.log", "\n".join(lines) + "\n"))
    [f] = [f for f in doc.findings if f.code == "loss_plateau"]
    assert f.severity == "warning" and "Gen_loss is 0 and Dis_loss 13.82" in f.summary and f.evidence.steps == [100, 600]
    moving = [line.replace("Dis_loss: 13.82", f"Dis_loss: {13.82 - k / 100:.2f}") for k, line in enumerate(lines)]
    assert not [f for f in check_logs(_write(tmp_path, "moving.log", "\n".join(moving) + "\n")).findings
                if f.code == "loss_plateau"]
    assert not [f for f in check_logs(_write(tmp_path, "short.log", "\n".join(lines[:4]) + "\n")).findings
                if f.code == "loss_plateau"]


@pytest.mark.parametrize("name,part", [
    ("loss_G", "G"), ("errD", "D"), ("Loss/D/loss", "D"), ("gen_loss", "G"), ("discriminator", "D"),
    ("Generator", "G"), ("G_L1", "G"), ("D_real", None), ("D_G_z1", None), ("d_model", None), ("lr_g", None),
    ("total_loss", None), ("dice_loss", None),
])
def test_which_names_are_a_gans_parts(name: str, part: str | None) -> None:
    from gradhealth.logs.series import gan_part

    assert gan_part(name) == part


def test_stylegans_summary_records_are_read_by_their_means(tmp_path: Path) -> None:
    # StyleGAN2-ADA/3's stats.jsonl: every field a {"num", "mean", "std"} summary of one tick
    def rec(tick: int, g: float) -> str:
        def stat(mean: float) -> dict:
            return {"num": 32, "mean": mean, "std": 0.5}
        return json.dumps({"Loss/G/loss": stat(g), "Loss/D/loss": stat(0.4), "Loss/scores/fake": stat(-3.1),
                           "Progress/tick": stat(tick), "Progress/kimg": stat(4.0 * tick), "timestamp": 1.6e9 + tick})
    path = _write(tmp_path, "stats.jsonl", "\n".join(rec(t, 2.0 + 0.1 * t) for t in range(12)) + "\n")
    run = load_run(path)
    g = _series(run, "Loss/G/loss")
    assert list(g.steps[:3]) == [0.0, 4.0, 8.0] and g.values[2] == pytest.approx(2.2)
    assert "Progress/kimg" not in {s.name for s in run.series}
    bad = _write(tmp_path, "bad.jsonl", "\n".join(rec(t, math.nan if t > 6 else 2.0) for t in range(12)) + "\n")
    assert any(f.code == "nonfinite" and f.severity == "error" for f in check_logs(bad).findings)


@pytest.mark.parametrize("report", [
    "Batch 3: Invalid loss, terminating training",  # Keras' TerminateOnNaN
    "INFO:tensorflow:Error reported to Coordinator: <class 'InvalidArgumentError'>, LossTensor is inf or nan. "
    ": Tensor had NaN values",
    "FloatingPointError: Loss became infinite or NaN at iteration=1203!",  # detectron2, in its traceback
    "RuntimeError: Function 'LogSoftmaxBackward0' returned nan values in its 0th output.",
    "ERROR:tensorflow:Model diverged with loss = NaN.",  # TensorFlow's NanTensorHook
])
def test_a_framework_reporting_a_nan_before_any_value_shows_one(tmp_path: Path, report: str) -> None:
    lines = [f"iter: {10 * i}  loss: {2.0 - 0.05 * i:.4f}  lr: 0.01" for i in range(1, 11)]
    traceback = ["Traceback (most recent call last):", '  File "train.py", line 10, in <module>', report]
    path = _write(tmp_path, "train.log", "\n".join([*lines, *(traceback if "Error" in report else [report])]) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.where == ("line 13" if "Error" in report else "line 11")
    # the loss scaler's routine skips are not a report
    routine = _write(tmp_path, "amp.log", "\n".join([*lines, "Gradient overflow.  Skipping step, loss scaler 0 "
                                                     "reducing loss scale to 32768.0"]) + "\n")
    assert not [f for f in check_logs(routine).findings if f.code == "nonfinite"]


def test_a_line_ending_in_a_comma_is_not_a_wandb_export(tmp_path: Path) -> None:
    # a first line with nothing after its comma (or tab) has no "<run> - <key>" column: W&B's
    # custom-x sniff claimed it, and the console was refused as a CSV with ragged rows
    for first in ("Starting run,", "2021-10-08 23:18:49 [INFO]\t"):
        text = first + "\n" + "".join(f"step {i} loss {2.0 / i:.3f}\n" for i in range(1, 13))
        run = load_run(_write(tmp_path, "train.log", text))
        assert run.format == "text" and len(_series(run, "loss")) == 12


def test_one_dict_of_losses_printed_over_several_lines_with_a_nan_is_read(tmp_path: Path) -> None:
    # TF's Object Detection API pretty-prints one dict per report over several lines: every name
    # once, as a config file has them, but no config holds a NaN loss
    text = ("I0409 23:03:12.869635 140410452137792 model_lib_v2.py:708] {'Loss/classification_loss': nan,\n"
            " 'Loss/localization_loss': nan,\n 'Loss/regularization_loss': nan,\n 'Loss/total_loss': nan,\n"
            " 'learning_rate': 0.07922263}\n")
    path = _write(tmp_path, "train.log", text)
    doc = check_logs(path)
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings)
    # of the losses under the "Loss/" heading, the one named as a total is the training loss
    assert [s.name for s in load_run(path).series if s.role == "loss"] == ["Loss/total_loss"]
    config = "learning_rate: 0.01\nbatch_size: 32\nweight_decay: 0.0001\n"
    with pytest.raises(Exception, match="not a log format|not in the text format"):
        load_run(_write(tmp_path, "config.txt", config))


def test_a_loss_scale_fallen_to_zero_is_every_step_overflowing(tmp_path: Path) -> None:
    # fairseq's epoch summary once its fp16 scaler has halved its way to the floor
    line = ("| epoch {e:03d} | loss {l:.3f} | nll_loss 2.204 | ppl 4.61 | num_updates {u} | lr 0.00033 | gnorm 0.635 "
            "| clip 0.000 | loss_scale {s} | wall 4043")
    rows = [line.format(e=e, l=4.5 - 0.02 * e, u=330 * e, s="128.000" if e < 27 else "0.000") for e in range(1, 29)]
    [f] = [f for f in check_logs(_write(tmp_path, "train.log", "\n".join(rows) + "\n")).findings
           if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.metric == "loss_scale" and f.evidence.value == 0.0
    healthy = [r.replace("0.000 | wall", "64.000 | wall") for r in rows]
    assert not [f for f in check_logs(_write(tmp_path, "ok.log", "\n".join(healthy) + "\n")).findings
                if f.code == "nonfinite"]


def test_a_pasted_first_epoch_of_a_keras_console_is_a_log(tmp_path: Path) -> None:
    # one epoch header and one progress line: every name once, as in a config, but a loss in an epoch
    text = ("WARNING:tensorflow:`epsilon` argument is deprecated and will be removed, use `min_delta` instead.\n"
            "Epoch 1/10\n"
            "  4/234 [..............................] - ETA: 25:09:00 - loss: inf \n")
    doc = check_logs(_write(tmp_path, "out.log", text))
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings)


def test_opennmts_validation_perplexity_is_its_validation_loss(tmp_path: Path) -> None:
    # OpenNMT-py prints the training xent per step and, per validation, only a perplexity
    # (the name keeps the log's words, "Validation perplexity", as "Validation Loss" keeps them)
    lines = []
    for k in range(1, 13):
        step = 1000 * k
        lines.append(f"[2019-07-02 10:15:08,497 INFO] Step {step}/200000; acc:  45.21; ppl: {30 * 0.9 ** k:.2f}; "
                     f"xent: {math.log(30 * 0.9 ** k):.2f}; lr: 1.00000; 2883/3092 tok/s;    180 sec")
        val_ppl = 25.0 * 0.85 ** k if k <= 4 else 25.0 * 0.85 ** 4 * 1.12 ** (k - 4)  # overfits after 4000
        lines.append(f"[2019-07-02 10:16:45,121 INFO] Validation perplexity: {val_ppl:.4f}")
    path = _write(tmp_path, "train.log", "\n".join(lines) + "\n")
    run = load_run(path)
    val = next(s for s in run.series if s.role == "val_loss")
    assert val.name == "ln(Validation_perplexity)" and val.values[0] == pytest.approx(math.log(25.0 * 0.85), abs=1e-4)
    assert any(w.code == "derived_loss" for w in run.warnings)
    [f] = [f for f in check_logs(path).findings if f.code == "validation_divergence"]
    assert f.evidence.metric == "ln(Validation_perplexity)"
    # a log with its own validation loss keeps it
    with_loss = _write(tmp_path, "own.log", "\n".join([*lines, "[INFO] Step 13000/200000; val_loss: 2.1"]) + "\n")
    assert not any(s.name.startswith("ln(") for s in load_run(with_loss).series)


def _yolov5_results(epochs: int, nan_from: int | None = None) -> str:
    """YOLOv5's results.txt before v6: no header, 15 columns per epoch."""
    rows = []
    for e in range(epochs):
        box, obj, cls = 0.09 * math.exp(-e / 30) + 0.03, 0.05 * math.exp(-e / 40) + 0.02, 0.02 * math.exp(-e / 20) + 0.005
        if nan_from is not None and e >= nan_from:
            box = math.nan
        rows.append(f"   {e}/299     4.21G   {box:.5g}   {obj:.5g}   {cls:.5g}   {box + obj + cls:.5g}        76       640"
                    f"    {0.1 + e / 100:.4g}    {0.2 + e / 120:.4g}    {0.1 + e / 200:.4g}   {0.05 + e / 300:.4g}"
                    f"   {box * 0.9:.5g}   {obj * 0.9:.5g}   {cls * 0.9:.5g}")
    return "\n".join(rows) + "\n"


def test_yolov5s_headerless_results_txt_is_read(tmp_path: Path) -> None:
    run = load_run(_write(tmp_path, "results.txt", _yolov5_results(60)))
    loss = _series(run, "train/loss")
    assert loss.role == "loss" and len(loss) == 60 and loss.steps[0] == 0
    assert loss.values[0] == pytest.approx(0.09 + 0.03 + 0.05 + 0.02 + 0.02 + 0.005, abs=1e-4)
    assert next(s for s in run.series if s.role == "val_loss").name.startswith("val/loss (sum of")
    assert _series(run, "P").values[10] == pytest.approx(0.2) and _series(run, "mAP@.5").values[10] == pytest.approx(0.15)
    bad = _write(tmp_path, "bad.txt", _yolov5_results(60, nan_from=40))
    assert any(f.code == "nonfinite" and f.severity == "error" for f in check_logs(bad).findings)


def test_the_fp16_scalers_own_reports_are_its_loss_scale(tmp_path: Path) -> None:
    # fairseq halving its scale at every overflow down to its floor, then giving up
    lines = ["| epoch 001:   1000 / 8223 loss=9.1, nll_loss=8.9, ppl=480, wps=959, lr=0.001, gnorm=2.7"]
    lines += [f"| WARNING: overflow detected, setting loss scale to: {2.0 ** -k}" for k in range(0, 14)]
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    scale = _series(run, "loss_scale")
    assert scale.values[-1] == 2.0 ** -13 and "to" not in {s.name for s in run.series}
    assert any(f.code == "nonfinite" and f.evidence.metric == "loss_scale"
               for f in check_logs(_write(tmp_path, "t.log", "\n".join(lines) + "\n")).findings)
    # apex's routine skips at a healthy scale
    apex = [f"Gradient overflow.  Skipping step, loss scaler 0 reducing loss scale to {2.0 ** k}" for k in range(16, 12, -1)]
    assert _series(load_run(_write(tmp_path, "a.log", "\n".join(apex) + "\n")), "loss_scale").values[-1] == 2.0 ** 13


def test_a_table_of_losses_without_a_step_is_read_by_row(tmp_path: Path) -> None:
    # PaddleOCR's PGNet writes a tab-separated table with a trailing tab and no step column
    rows = ["total loss\tscore loss\tborder loss\tctc loss\t"]
    rows += [f"{46.6 * 0.97 ** i:.6f}\t{0.25 * 0.99 ** i:.6f}\t0.176002\t{9.2 * 0.97 ** i:.6f}\t" for i in range(40)]
    path = _write(tmp_path, "train_log.tsv", "\n".join(rows) + "\n")
    run = load_run(path)
    loss = _series(run, "total loss")
    assert loss.role == "loss" and list(loss.steps[:2]) == [0, 1] and loss.values[1] == pytest.approx(46.6 * 0.97, abs=1e-5)
    assert check_logs(path).status == "healthy"
    # the same as a CSV; a table with no loss among its columns is not taken for a log
    csv_path = _write(tmp_path, "losses.csv", "\n".join(r.replace("\t", ",") for r in rows) + "\n")
    assert _series(load_run(csv_path), "ctc loss").values[0] == pytest.approx(9.2)
    from gradhealth.errors import UnknownLogFormat
    with pytest.raises(UnknownLogFormat):
        load_run(_write(tmp_path, "prices.csv", "open,close\n1.0,2.0\n2.0,3.0\n"))


def test_a_console_whose_every_line_two_handlers_print_is_read_once(tmp_path: Path) -> None:
    # TF1 with absl: each step printed by absl and by tf.logging (tensorflow/models #8423)
    lines = []
    losses = [0.1442, 25237.8984, 75835.2812, 28575.1914, 134869.8906, 437442.4062, 212268.4531, 1216893.125]
    for step, v in zip(range(408, 416), losses, strict=True):
        lines.append(f"INFO:tensorflow:global step {step}: loss = {v:.4f} (0.302 sec/step)")
        lines.append(f"I0422 07:10:04.984018 140486560917376 learning.py:507] global step {step}: "
                     f"loss = {v:.4f} (0.302 sec/step)")
    path = _write(tmp_path, "train.log", "\n".join(lines[1:]) + "\n")  # the paste starts mid-pair
    loss = _series(load_run(path), "loss")
    assert loss.steps.tolist() == list(range(408, 416)) and loss.values.tolist() == losses
    [f] = [f for f in check_logs(path).findings if f.code == "loss_divergence"]
    assert f.severity == "error" and f.evidence.logged_minimum == 0.1442
    assert "the logged values: lowest 0.144 at step 408, last 1.22e+06" in f.summary


def test_a_yolov5_console_pasted_at_its_first_epoch_with_nan_losses(tmp_path: Path) -> None:
    # ultralytics/yolov5 #4963: the header, one epoch's row of nan losses, its validation lines
    text = (" Epoch   gpu_mem       box       obj       cls    labels  img_size\n"
            "      1/99     2.64G         nan       nan       nan         4       416: 100%|#####| 7/7 "
            "[00:15<00:00,  2.27s/it]\n"
            "               Class     Images     Labels          P          R     mAP@.5 mAP@.5:.95: 100%|"
            "#####| 1/1 [00:01<00:00,  1.30s/it]\n"
            "                 all               14          0             0          0            0"
            "              0\n")
    path = _write(tmp_path, "train.log", text)
    run = load_run(path)
    box = _series(run, "train/box_loss")
    assert box.step_unit == "epoch" and box.steps.tolist() == [1] and math.isnan(box.values[0])
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.steps[0] == 1


def test_bracketed_names_before_their_values(tmp_path: Path) -> None:
    # nv-tlabs/LION #9 (loguru): "[Loss] 51566519.44 | ... | [step]    89"; the epoch's
    # "iter[ 14/ 15]" is a position in it beside the run's own [step]
    head = "2023-01-25 00:21:09.074 | INFO     | trainers.base_trainer:train_epochs:256 - [R0] | "
    lines = [f"{head}E{e} iter[ 14/ 15] | [Loss] {v} | [exp] ./exp/0125/car | [step] {s:>5} | [url] none | "
             f"[time] 0.4m (~5h) |[best] 0 -100.000x1e-2"
             for e, v, s in ((3, "812.5", 59), (4, "9051.7", 74), (5, "51566519.44", 89), (6, "nan", 104),
                             (7, "nan", 119))]
    path = _write(tmp_path, "train.log", "\n".join(lines) + "\n")
    loss = _series(load_run(path), "Loss")
    assert loss.steps.tolist() == [59, 74, 89, 104, 119]
    assert loss.values[:3].tolist() == [812.5, 9051.7, 51566519.44] and np.isnan(loss.values[3:]).all()
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.evidence.steps[0] == 104
    # a log level in brackets is not a name
    from gradhealth.logs.readers.text import pairs
    assert pairs("[INFO] 12 epochs done") == []


def test_a_traceback_pasted_alone_that_reports_a_nan_loss_is_the_finding(tmp_path: Path) -> None:
    # detectron2 #838: only the crash, "Loss became infinite or NaN at iteration=2137!"
    tb = ("Traceback (most recent call last):\n"
          "  File \"tools/train_net.py\", line 161, in <module>\n    launch(main)\n"
          "  File \"detectron2/engine/train_loop.py\", line 239, in _detect_anomaly\n"
          "    self.iter, loss_dict\n")
    path = _write(tmp_path, "crash.log", tb + "FloatingPointError: Loss became infinite or NaN at iteration=2137!\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and "iteration=2137" in f.summary
    # a traceback with no values and no NaN report is still no training log
    with pytest.raises(LogError):
        load_run(_write(tmp_path, "other.log", tb + "RuntimeError: CUDA out of memory\n"))


def test_a_labelled_group_of_name_value_pairs_is_read(tmp_path: Path) -> None:
    # eriklindernoren's PyTorch-YOLOv3 (#13): "[Epoch e/E, Batch i/N] [Losses: x .., total ..]",
    # name and value without ':' or '=', the group's total its loss
    rows = [f"[Epoch 0/30, Batch {i}/1313] [Losses: x 0.0{i % 7}, y 0.041, w 0.{i % 9 + 1}, h 0.28, "
            f"conf {1.4 - i / 1000:.6f}, cls 0.91, total {2.9 - i / 500:.6f}, recall: 0.12, precision: 0.01]"
            for i in range(1, 41)]
    run = load_run(_write(tmp_path, "train.log", "\n".join(rows) + "\n"))
    loss = _series(run, "loss")
    assert loss.role == "loss" and len(loss) == 40 and loss.values[0] == pytest.approx(2.9 - 1 / 500)
    assert loss.steps[0] == pytest.approx(1 / 1313, abs=1e-6) and loss.step_unit == "epoch"  # 6 decimals
    assert _series(run, "losses/conf").values[-1] == pytest.approx(1.4 - 40 / 1000)
    assert _series(run, "losses/recall").values[0] == pytest.approx(0.12)
    nan = rows[:5] + [r.replace("total", "total nan, was").split(", was")[0] + "]" for r in rows[5:8]]
    doc = check_logs(_write(tmp_path, "nan.log", "\n".join(nan) + "\n"))
    assert doc.status == "unhealthy" and any(f.code == "nonfinite" for f in doc.findings)


def test_keras_progress_lines_without_an_epoch_header_are_placed_by_their_batch(tmp_path: Path) -> None:
    # CSRNet-keras #9: the progress lines pasted alone; the NaN is on the line "2/100", not the
    # second line counted from 0
    lines = ["1/100 [..............................] - ETA: 12:52 - loss: 0.0838 - mse: 0.0486",
             "  2/100 [..............................] - ETA: 20:11 - loss: nan - mse: nan",
             "  3/100 [..............................] - ETA: 19:19 - loss: nan - mse: nan"]
    doc = check_logs(_write(tmp_path, "nan.log", "\n".join(lines) + "\n"))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.evidence.steps[0] == 2 and "step 2" in f.summary
    # under "Epoch n/N" headers the epoch places them, as before: the counter is no step there
    epochs = "".join(f"Epoch {e}/9\n50/50 [==============================] - 1s - loss: {2 / e:.4f}\n"
                     for e in range(1, 10))
    run = load_run(_write(tmp_path, "fit.log", epochs))
    assert _series(run, "loss").step_unit == "epoch" and list(_series(run, "loss").steps) == list(range(1, 10))


def test_a_position_counted_within_an_epoch_is_named_as_the_log_counts_it(tmp_path: Path) -> None:
    # mmdet 2.x "Epoch [12][700/3953]": read as the fractional epoch 12.177081, which appears
    # nowhere in the log; the finding names the epoch and the iteration the user can grep for
    lines = [f"2022-12-05 16:2{k}:38,593 - mmdet - INFO - Epoch [12][{i}/3953]\tlr: 3.604e-06, "
             f"loss: 4.35{k}1, grad_norm: {'nan' if i >= 700 else '3.2'}" for k, i in enumerate((600, 650, 700, 750))]
    doc = check_logs(_write(tmp_path, "bev.log", "\n".join(lines) + "\n"))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert "epoch 12, iteration 700/3953" in f.summary
    assert f.evidence.steps[0] == pytest.approx(12 + 700 / 3953, abs=1e-6)  # the axis is unchanged


def test_espnet_reports_are_placed_at_their_batches(tmp_path: Path) -> None:
    # "18epoch:train:6376-6750batch: ...": the batches the report covers, counted per epoch; the
    # steps were the line index, and "train:6376" read as a series named train
    lines = [f"[PC] 2020-11-11 17:00:4{k},375 (trainer:486) INFO: 18epoch:train:{a}-{a + 374}batch: "
             f"iter_time=0.001, forward_time=0.005, loss={1.27 - k / 100:.3f}, backward_time=0.005, lr_0=0.100"
             for k, a in enumerate((6376, 6751, 7126))]
    run = load_run(_write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    assert list(_series(run, "loss").steps) == [6750, 7125, 7500]
    assert "train" not in {s.name for s in run.series}


def test_a_callbacks_message_glued_to_the_last_value_leaves_the_value(tmp_path: Path) -> None:
    # MobileNet-SSD keras #21: TerminateOnNaN prints onto the progress line with no separator;
    # the finite 44.4110 before it is a loss like any other
    lines = ["Epoch 1/10",
             "  2/234 [..............................] - ETA: 40:02:11 - loss: 51.2034",
             "  3/234 [..............................] - ETA: 33:37:24 - loss: 44.4110Batch 3: Invalid loss, "
             "terminating training",
             "  4/234 [..............................] - ETA: 25:09:00 - loss: inf"]
    values = list(_series(load_run(_write(tmp_path, "ssd.log", "\n".join(lines) + "\n")), "loss").values)
    assert values[:2] == [51.2034, 44.411] and math.isinf(values[2])
    # a unit glued to a number still makes it no value ("12Gb/s"), nor does a name ("3x1e5")
    from gradhealth.logs.readers.text import pairs
    assert pairs("bandwidth: 12Gb/s, loss: 0.5") == [("loss", "0.5")]
    assert pairs("shape: 3x1e5, loss: 0.5") == [("loss", "0.5")]


def test_a_trainers_start_up_banner_counts_steps_it_does_not_place_lines(tmp_path: Path) -> None:
    # LLaMA-Factory #2810: the Trainer's banner "Total optimization steps = 1,548" was read as the
    # step of every record after it, so the NaN was dated "step 1548" at epoch 0.01
    banner = ["[INFO|trainer.py:1819] 2024-03-12 11:24:23,876 >>   Gradient Accumulation steps = 8",
              "[INFO|trainer.py:1820] 2024-03-12 11:24:23,876 >>   Total optimization steps = 1,548",
              "  Num Epochs = 3"]
    records = [f"{{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 0.05, 'epoch': {e / 100:.2f}}}" for e in (1, 2, 3)]
    doc = check_logs(_write(tmp_path, "lf.log", "\n".join(banner + records) + "\n"))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert "1548" not in f.summary and f.evidence.steps[0] == pytest.approx(0.01)
    # a step named on a line of values is still a step
    from gradhealth.logs.readers.text import pairs
    assert pairs("train step=5 loss=0.3") == [("step", "5"), ("loss", "0.3")]


def test_the_summary_after_an_epochs_last_batch_is_that_epochs(tmp_path: Path) -> None:
    # "Epoch 8: 100%|...| 266/266" then the epoch's summary: 8 + 266/266 read as epoch 9
    lines = []
    for e in (7, 8):
        lines += [f"Epoch {e}: 100%|{'#' * 20}| 266/266 [00:42<00:00,  6.22it/s]",
                  f"Mean Training loss : {'nan' if e == 8 else '0.5312'}"]
    doc = check_logs(_write(tmp_path, "radar.log", "\n".join(lines) + "\n"))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert "epoch 8, iteration 266/266" in f.summary


@pytest.mark.parametrize("name,role", [("target/train_xent", "loss"), ("decoder/loss", "loss"),
                                       ("val/xent", "val_loss"), ("train_nll", "loss"),
                                       ("target/runtime_xent", "metric"), ("grad_norm/encoder", "layer_grad_norm")])
def test_a_scope_before_a_loss_name_leaves_it_a_loss(name: str, role: str) -> None:
    # Neural Monkey: "target/train_xent: 7.31"
    from gradhealth.logs.series import classify
    assert classify(name)[0] == role


def test_loss_sentences_name_their_split_and_epoch(tmp_path: Path) -> None:
    # LXMERT #22: the valid loss was read as the training loss and the training loss not at all
    from gradhealth.logs.readers.text import pairs
    assert pairs("The training loss for Epoch 1 is 7.3978") == [("Epoch", "1"), ("training_loss", "7.3978")]
    assert pairs("The valid loss is 5.3834") == [("valid_loss", "5.3834")]
    assert pairs("Score at iteration 100 is 1.39") == [("iteration", "100"), ("loss", "1.39")]


def test_a_tab_separated_epoch_table_is_read(tmp_path: Path) -> None:
    # tsai #639 (fastai's recorder saved with tabs; Keras' CSVLogger(separator="\t") alike)
    rows = ["epoch\ttrain_loss\tvalid_loss\taccuracy\ttime"] + [
        f"{e}\t{'nan' if e >= 2 else 0.9 - 0.1 * e}\tnan\t0.958595\t00:03" for e in range(5)]
    run = load_run(_write(tmp_path, "history.log", "\n".join(rows) + "\n"))
    loss = _series(run, "train_loss")
    assert list(loss.steps) == [0, 1, 2, 3, 4] and loss.values[1] == pytest.approx(0.8) and math.isnan(loss.values[2])
    assert check_logs(_write(tmp_path, "history.tsv", "\n".join(rows) + "\n")).status == "unhealthy"


@pytest.mark.parametrize("header", ["epoch     train_loss  valid_loss  accuracy  time",
                                    "epoch train loss valid loss accuracy time"])  # fastai v1's two-word names
def test_fastais_console_table_is_read(tmp_path: Path, header: str) -> None:
    rows = [header] + [f"{e:<9} {1.2 / (e + 1):.6f}    {1.0 / (e + 1) + 0.1:.6f}    {0.7 + 0.05 * e:.6f}  00:10"
                       for e in range(6)]
    run = load_run(_write(tmp_path, "fit.log", "\n".join(rows) + "\n"))
    train, valid = _series(run, "train_loss"), _series(run, "valid_loss")
    assert list(train.steps) == list(range(6)) and train.values[2] == pytest.approx(0.4)
    assert valid.role == "val_loss" and valid.values[0] == pytest.approx(1.1)
    nan = rows[:2] + [r.replace(r.split()[1], "nan", 1) for r in rows[2:]]
    doc = check_logs(_write(tmp_path, "nan.log", "\n".join(nan) + "\n"))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.evidence.steps[0] == 1


@pytest.mark.parametrize("oob", [False, True])
def test_scikit_learns_gradient_boosting_table_is_read(tmp_path: Path, oob: bool) -> None:
    # scikit-learn's GradientBoosting(verbose=1): "Iter", column names of two words set apart by wide
    # gaps, a time left in minutes or seconds (logsweep28: refused as no log at all)
    header = "      Iter       Train Loss      OOB Improve   Remaining Time " if oob else \
        "      Iter       Train Loss   Remaining Time "
    its = [*range(1, 11), *range(20, 101, 10)]
    rows = [f"{i:>10} {1.3 * 0.98 ** i:>16.4f}" + (f" {0.01:>16.4f}" if oob else "") + f" {9.0 - i / 12:>15.2f}m"
            for i in its]
    run = load_run(_write(tmp_path, "gbrt.log", "\n".join([header, *rows]) + "\n"))
    loss = _series(run, "train_loss")
    assert loss.role == "loss" and list(loss.steps) == its
    assert loss.values[-1] == pytest.approx(round(1.3 * 0.98 ** 100, 4))
    assert ("oob_improve" in {s.name for s in run.series}) == oob
    assert check_logs(_write(tmp_path, "gbrt2.log", "\n".join([header, *rows]) + "\n")).status == "healthy"


def test_a_yolov5_results_txt_nan_from_its_first_epoch_is_read(tmp_path: Path) -> None:
    # ultralytics/yolov5 #3840: one row, every loss nan
    row = ("     0/299    0.489G       nan       nan       nan       nan        10       640         0         0"
           "         0         0       nan       nan       nan")
    doc = check_logs(_write(tmp_path, "results.txt", row + "\n"))
    assert any(f.code == "nonfinite" for f in doc.findings)


def test_a_scripts_stage_banner_is_no_training_step(tmp_path: Path) -> None:
    # a fine-tuning script printing "🎓 Step 4: Creating trainer..." before the Trainer's dicts: its
    # stage number was every later record's step, and 174 losses landed on steps 4-8
    from gradhealth.logs.readers.text import pairs

    assert pairs("🎓 Step 4: Creating trainer...") == []
    assert pairs("Step 100: loss 0.5") == [("Step", "100"), ("loss", "0.5")]
    lines = ["📚 Step 1: Loading dataset...", "🎓 Step 4: Creating trainer..."] + [
        f"{{'loss': {2.0 - 0.1 * i:.4f}, 'grad_norm': 0.5, 'epoch': {0.05 * (i + 1):.2f}}}" for i in range(10)]
    run = load_run(_write(tmp_path, "ft.log", "\n".join(lines) + "\n"))
    loss = _series(run, "loss")
    assert loss.step_unit == "epoch" and loss.steps[0] == pytest.approx(0.05) and len(loss) == 10
