"""logsweep85: plain-text consoles whose values were dropped or misplaced. Sentence-style values
(PaddlePaddle's ``avg loss so far is X``, ``val mse is X``, ``Val acc is 99.17%``: prednet_paddle,
mbv2_liveness), ..."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.load import read_log


def _series(path: Path) -> dict:
    return {s.name: s for s in read_log(path).series}


# --- 1. <name> is <number> ----------------------------------------------------------------------

def test_sentence_values_of_known_metrics_are_read(tmp_path: Path) -> None:
    losses = 0.12 * 0.9 ** np.arange(8)
    lines = ["total sample is 93858, postive sample is 39370", "Starting epoch 0 current lr is 0.001"]
    for e, v in enumerate(losses):
        lines += [f"Epoch {e}, Step {s}, total used time {s * 0.27:.3f} (s), avg loss so far is {v:.6f}"
                  for s in (25, 50)]
        lines += [f"Epoch {e}, val loss is {v * 0.7:.6f}, val mse is {v * 0.3:.6f}.",
                  f"Epoch {e}: Val acc is {90 + e:.4f}%"]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    series = _series(path)
    # the training loss, a running average: 2 points an epoch, each epoch's value
    assert series["avg_loss"].role == "loss"
    assert np.allclose(series["avg_loss"].values, np.repeat(np.round(losses, 6), 2))
    assert np.allclose(series["val_loss"].values, np.round(losses * 0.7, 6))
    assert np.allclose(series["val_mse"].values, np.round(losses * 0.3, 6))
    assert np.allclose(series["val_acc"].values, 90 + np.arange(8))
    # prose with "is" and a number is no series ("total sample is 93858")
    assert not [n for n in series if "sample" in n]


# --- 5. "Loss <part>:" names a part's loss, as "<part> loss" does --------------------------------

def _word_first(tmp_path: Path, encoder: np.ndarray) -> Path:
    lines = [f"Epoch {e}/1000 - Loss Discriminator: {0.01 * e:.6f}, Loss Encoder: {v:.6g}, Loss Decoder: 0.0077"
             for e, v in enumerate(encoder, 1)]
    path = tmp_path / "training_log.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_loss_word_before_the_part_names_that_parts_loss(tmp_path: Path) -> None:
    from gradhealth.logs.detectors.divergence import loss_terms
    from gradhealth.logs.series import gan_part

    enc = -0.0067 * 1.2 ** np.arange(30)
    log = read_log(_word_first(tmp_path, enc))
    series = {s.name: s for s in log.series}
    assert set(series) == {"Loss_Discriminator", "Loss_Encoder", "Loss_Decoder"}
    assert np.allclose(series["Loss_Encoder"].values, np.array([float(f"{v:.6g}") for v in enc]))
    # the discriminator's is a GAN player's loss; the encoder's and decoder's are terms of the loss
    assert gan_part("Loss_Discriminator") == "D"
    assert {s.name for s in loss_terms(log)} == {"Loss_Encoder", "Loss_Decoder"}


def test_a_loss_term_falling_without_a_floor_is_a_divergence_where_no_total_is_logged(tmp_path: Path) -> None:
    from gradhealth.library import check_logs

    # negative from the start and 1.2x a point: 0.0067 -> 1,580, past 100x its size below 0
    doc = check_logs(_word_first(tmp_path, -0.0067 * 1.2 ** np.arange(60)))
    div = [f for f in doc.findings if f.code == "loss_divergence"]
    assert div and div[0].severity == "error" and div[0].evidence.metric == "Loss_Encoder"
    assert (div[0].evidence.value or 0) > 100
    # a term that settles (under 100x) is no divergence
    doc = check_logs(_word_first(tmp_path, -0.0067 * (1 + 5 * (1 - np.exp(-np.arange(60) / 5)))))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]


# --- 2. a bracketed step opening the message; absl's lines printed twice -------------------------

def test_bracketed_step_is_the_step_and_absl_duplicates_are_read_once(tmp_path: Path) -> None:
    steps = np.arange(5000, 200001, 5000)
    gnorm = 0.3 + 0.01 * (np.arange(len(steps)) % 10)
    loss = np.round(5.56 - 0.0005 * np.arange(len(steps)), 2)
    lines = ["INFO:tensorflow:d_model               : 128",
             "I1212 15:08:07.428642 128529813321536 train_trans.py:404] d_model               : 128"]
    for s, g, v in zip(steps, gnorm, loss, strict=True):
        msg = f"[{s:>6d}] | gnorm {g:5.2f} lr {0.00025:9.6f} | loss {v:>5.2f}"
        lines += [f"INFO:tensorflow:{msg}", f"I1212 15:10:27.449019 128529813321536 train_trans.py:298] {msg}"]
    path = tmp_path / "training.err"
    path.write_text("\n".join(lines) + "\n")
    log = read_log(path)
    series = {s.name: s for s in log.series}
    # one point per report, at the step the log prints (5,000 to 200,000), not at line indices
    assert list(series["loss"].steps) == list(steps)
    assert np.allclose(series["loss"].values, loss)
    assert np.allclose(series["gnorm"].values, np.round(gnorm, 2))
    assert series["gnorm"].role == "grad_norm"
    assert [w.code for w in log.warnings] == ["repeated_lines"]
    assert f"{len(steps)} line(s)" in log.warnings[0].message


def test_a_step_repeated_with_other_values_keeps_both(tmp_path: Path) -> None:
    # (only a line repeating the same step AND the same values is a copy)
    path = tmp_path / "train.log"
    path.write_text("step 1 loss 0.5\nstep 1 loss 0.5\nstep 2 loss 0.4\nstep 2 acc 0.4\nstep 3 loss 0.3\n")
    log = read_log(path)
    series = {s.name: s for s in log.series}
    assert list(series["loss"].steps) == [1, 2, 3] and list(series["acc"].steps) == [2]


# --- 3. a refusal says what the lines hold, and where ----------------------------------------------

def test_refusal_of_a_text_file_says_what_its_lines_hold(tmp_path: Path) -> None:
    import pytest

    from gradhealth.errors import GradHealthError
    from gradhealth.library import check_logs

    def refusal(name: str, text: str, **kw: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(GradHealthError) as e:
            check_logs(path, **kw)
        return str(e.value)

    # an accuracy per line under a comment: bare numbers, and what would name them
    acc = "% mean class accuracy (train set)\n" + "".join(f" {90 + k / 10:.4e}\n" for k in range(30))
    why = refusal("train.log", acc)
    assert "none of its 31 non-blank lines holds a named value" in why
    assert "30 of them are bare numbers under '% mean class accuracy (train set)'" in why
    # the same when the text format is asked for
    assert "30 of them are bare numbers" in refusal("train.log", acc, format="text")
    # an export's console: no value at all
    export = "Loading checkpoint from w.pt\n\nFusing model...\nStarting to export ONNX...\nExport complete (8.82s)\n"
    assert "none of its 4 non-blank lines holds a named value" in refusal("train.log", export)
    # values but no loss: where the first one is, and what it names
    speed = "starting\nwarming up\nthroughput: 30.1 img/s\nready\nshutting down\n"
    assert "1 of its 5 non-blank lines hold values, the first at line 3 (throughput)" in refusal("train.log", speed)


# --- 4. a bump that takes a few windows to fade recovered ----------------------------------------

def _running_means(tmp_path: Path, raised_epochs: int, factor: float = 4.0) -> Path:
    """A per-epoch running mean printed 10 times an epoch (it restarts every epoch, low at its first
    prints), fitted near 0 (about 8e-4), thrown to 0.0051 at the first print of epoch 32 by a bad batch
    that the mean dilutes over the epoch, then ``factor`` times its level for ``raised_epochs`` epochs."""
    shape = np.array([0.3, 0.45, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.3])  # a restarted running mean
    prints: list[float] = []
    for e in range(1, 43):
        level = 0.56 * np.exp(-(e - 1) / 2.5) + 8e-4
        if e == 32:
            prints += list(0.0051 / (1 + 0.2 * np.arange(10)))  # 0.0051 -> 0.0018
            continue
        if 32 < e <= 32 + raised_epochs:
            level *= factor
        prints += list(level * (shape if e > 12 else np.ones(10)))
    lines = []
    for k, v in enumerate(prints):
        if k % 10 == 0 and k:
            lines.append(f"Epoch {k // 10}: Val acc is {98 + 0.01 * (k // 10):.4f}%")
        lines.append(f"Epoch: {k // 10 + 1}| train loss: {v:.8f}")
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_near_zero_bump_back_within_a_few_windows_recovered(tmp_path: Path) -> None:
    from gradhealth.library import check_logs

    # 4x its level for 3 epochs (30 prints, more than the 25-point window), then back: recovered
    [f] = [f for f in check_logs(_running_means(tmp_path, 3)).findings if f.code == "loss_spike"]
    assert f.severity == "info" and f.evidence.model_extra["recovered"] is True
    # 4x its level to the end: did not recover
    [f] = [f for f in check_logs(_running_means(tmp_path, 20)).findings if f.code == "loss_spike"]
    assert f.severity == "warning" and f.evidence.model_extra["recovered"] is False


# --- 6. TF Estimator's evaluation; config reprs and example prints -------------------------------

def test_estimator_evaluation_loss_is_no_training_point_and_its_config_no_series(tmp_path: Path) -> None:
    config = ("INFO:tensorflow:Using config: {'_num_ps_replicas': 0, '_is_chief': True, '_session_config': gpu_options {\n"
              "  per_process_gpu_memory_fraction: 0.8\n  allow_growth: true\n}\n"
              ", '_keep_checkpoint_max': 5, '_num_worker_replicas': 1, '_save_summary_steps': 100}\n")
    example = ("INFO:tensorflow:*** Example ***\nINFO:tensorflow:input_ids: 101 2582 720 3291 102 0 0\n"
               "INFO:tensorflow:input_mask: 1 1 1 1 1 0 0\n"
               "INFO:tensorflow:  name = bert/encoder/layer_0/attention/self/query/kernel:0, shape = (768, 768)\n")
    steps = np.arange(0, 5401, 100)
    loss = np.round(1.02 * np.exp(-steps / 800) + 0.015, 6)
    train = "".join(f"INFO:tensorflow:loss = {v}, step = {s}\nINFO:tensorflow:global_step/sec: 0.69\n"
                    for s, v in zip(steps, loss, strict=True))
    evaluation = ("INFO:tensorflow:Saving dict for global step 5468: eval_accuracy = 0.85, eval_auc = 0.69, "
                  "eval_loss = 0.7216634, global_step = 5468, loss = 0.7218847\n"
                  "INFO:tensorflow:***** Eval results *****\nINFO:tensorflow:  eval_accuracy = 0.85\n"
                  "INFO:tensorflow:  global_step = 5468\nINFO:tensorflow:  loss = 0.7218847\n")
    path = tmp_path / "train.log"
    path.write_text(config + example + config + train + config + example + evaluation)
    series = _series(path)
    # the training loss is training's alone: its last point is step 5400's, not the evaluation's 0.72
    assert list(series["loss"].steps) == list(steps) and np.allclose(series["loss"].values, loss)
    assert series["eval_loss"].values[-1] == 0.7218847 and series["eval_accuracy"].values[-1] == 0.85
    # no series from the config's repr, the example's token lists or a tensor's name
    assert not [n for n in series if n.startswith("_") or "input" in n or "kernel" in n or "fraction" in n]
    # a repr closed on its own line is no value, and the line's other values are read
    path.write_text("".join(f"Config: {{'batch_size': 128, 'lr': 0.001}}, Epoch {e}/8, Train Loss: {0.5 / e:.4f}\n"
                            for e in range(1, 9)))
    series = _series(path)
    assert set(series) == {"Train_Loss"} and np.allclose(series["Train_Loss"].values, np.round(0.5 / np.arange(1, 9), 4))


# --- 6. value-first "value step" numbers -----------------------------------------------------------

def test_value_first_numbers_are_read_and_a_bad_first_step_is_named(tmp_path: Path) -> None:
    import pytest

    from gradhealth.errors import LogError

    steps = np.arange(0, 5401, 100)
    loss = np.round(1.02 * np.exp(-steps / 800) + 0.017, 7)
    path = tmp_path / "loss.log"
    path.write_text("".join(f"{v} {s}\n" for s, v in zip(steps, loss, strict=True)))
    [s] = read_log(path).series
    assert s.name == "loss" and list(s.steps) == list(steps) and np.allclose(s.values, loss)
    # neither column counts up in whole numbers: refused at line 1 with its own number, no "-inf"
    path.write_text("0.5 1\n0.52 1\n0.3 2\n")
    with pytest.raises(LogError) as e:
        read_log(path)
    assert "line 1" in str(e.value) and "0.5 is not a whole number" in str(e.value) and "inf" not in str(e.value)


# --- 6. a loss stuck at ln 256 is at chance over a byte's values -----------------------------------

def test_a_loss_flat_at_ln_256_is_chance_for_256_classes(tmp_path: Path) -> None:
    from gradhealth.library import check_logs

    rng = np.random.default_rng(1)
    # a start near ln 256 = 5.545 that never leaves it (a side-channel model's key byte, 80 reports)
    loss = np.round(np.log(256) + 0.005 * rng.standard_normal(80), 2)
    path = tmp_path / "train.log"
    path.write_text("".join(f"[{5000 * (k + 1):>6d}] | gnorm 0.30 lr 0.000250 | loss {v:.2f}\n"
                            for k, v in enumerate(loss)))
    [f] = [f for f in check_logs(path).findings if f.code == "loss_plateau"]
    assert "at chance for about 256 classes, as ln 256 = 5.55" in f.summary
