"""logsweep93: mmengine's year-less date prefix ``04/24 02:03:09`` read as a position "4 of 24"
(yoloworld_prompt_zero_grad), a loss-scale explanation for an exploded run whose loss swings
(openpi_loss_explosion), a paste starting mid-epoch before its first ``Training at epoch N`` header
(pccai_nan_epoch9), and "lower the learning rate" for a NaN at a step whose logged rate is 0
(minicpmv_lora_gradnan_loss0). Every file is synthetic, built here in the real format."""

from __future__ import annotations

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write
from tests.logs.test_detectors_real_runs import found

# --- 1. a month/day date before a time of day is a time stamp, not an i/N count ----------------

def _mmengine(date: str, rows: list[tuple[int, int, str, float]]) -> str:
    return "".join(
        f"{date} 02:{k:02d}:09 - mmengine - INFO - Epoch(train)  [{e}][{i:3d}/290]  lr: 2.0000e-03  "
        f"eta: 1:20:08  time: 0.1792  data_time: 0.0081  memory: 4843  grad_norm: {g}  loss: {loss:.4f}\n"
        for k, (e, i, g, loss) in enumerate(rows))


_ROWS = [(16, 200, "0.0000", 208.4161), (16, 250, "0.0000", 208.5272), (17, 50, "nan", 209.18),
         (17, 100, "0.0000", 208.8468)]


def test_mmengine_month_day_prefix_is_no_step_count(tmp_path) -> None:
    # "04/24 02:03:09" (mmengine's default %m/%d %H:%M:%S) put every point at step 4; the position is
    # the line's own Epoch(train) [e][i/N]: epoch e + i / N
    for date in ("04/24", "12/31", "4/2"):
        series = by_name(read_log(write(tmp_path, "mm.log", _mmengine(date, _ROWS))))
        loss = series["loss"]
        np.testing.assert_allclose(loss.steps, [e + i / 290 for e, i, _, _ in _ROWS], atol=1e-6)
        np.testing.assert_allclose(loss.values, [r[3] for r in _ROWS])
        assert "epoch" not in series  # a position, not a metric


def test_mmengine_zero_grad_norm_under_the_date_is_a_zero_gradient(tmp_path) -> None:
    # the grad norm is exactly 0 at every finite point beside a loss that does not move: zero_gradient
    report = diagnose(read_log(write(tmp_path, "mm.log", _mmengine("04/24", _ROWS))))
    assert found(report, "zero_gradient")


def test_a_leading_count_before_a_time_is_still_read_when_no_date(tmp_path) -> None:
    # a count past any month or day ("1920/191900") leads its line as the step, whatever follows
    lines = "".join(f"{k * 20}/191900 (epoch 1) loss: {8.0 - k * 0.1:.3f}\n" for k in range(1, 12))
    loss = by_name(read_log(write(tmp_path, "count.log", lines)))["loss"]
    np.testing.assert_allclose(loss.steps, [k * 20 for k in range(1, 12)])


# --- 2. a huge loss swinging around its level has not "fallen smoothly": no loss-scale story -----

def _openpi(losses: list[float]) -> str:
    # openpi's console: "Step 5900: grad_norm=681325.8125, loss=344671968.0000, param_norm=1802.5465"
    return "".join(f"Step {5900 + 100 * k}: grad_norm={(7e5 + 2.5e4 * k) * (1 + 0.15 * (-1) ** k):.4f}, "
                   f"loss={v:.4f}, param_norm={1802.55 + 0.005 * k:.4f}\n" for k, v in enumerate(losses))


def test_an_exploded_run_swinging_at_a_huge_loss_is_no_loss_scale_note(tmp_path) -> None:
    # openpi_loss_explosion: the loss swings 2e8..6.6e8 (up and down by about 2x from point to point)
    # and ends a little under where it started; the flat 1e6 grad norm was explained as a norm printed
    # before scaler.unscale_ "while the training loss falls smoothly" and the run read HEALTHY
    swing = [3.4e8, 4.4e8, 2.5e8, 5.4e8, 2.7e8, 6.6e8, 4.3e8, 3.9e8, 4.8e8, 2.0e8, 4.0e8, 4.6e8, 5.9e8,
             6.0e8, 2.9e8, 4.0e8, 3.0e8]
    # (the test's premise: a net fall, yet far smaller than the point-to-point scatter in log units)
    assert swing[-1] < 0.97 * swing[0]
    report = diagnose(read_log(write(tmp_path, "train.log", _openpi(swing))))
    grads = found(report, "exploding_gradient")
    assert grads and all(not f.evidence.model_dump().get("loss_scaled") for f in grads)
    assert any(f.severity in ("warning", "error") for f in grads)


def test_the_same_norm_over_a_smoothly_falling_loss_is_still_the_loss_scale_note(tmp_path) -> None:
    # the control: the same norms beside a loss that falls 3% a point with 1% scatter keep the note
    rng = np.random.default_rng(0)
    smooth = [4.75 * 0.97 ** k * (1 + 0.01 * rng.standard_normal()) for k in range(17)]
    report = diagnose(read_log(write(tmp_path, "train.log", _openpi(smooth))))
    [f] = found(report, "exploding_gradient")
    assert f.severity == "info" and f.evidence.model_dump()["loss_scaled"] is True


# --- 3. a paste that starts mid-epoch, above its first epoch header -----------------------------

def _pccai(first_epoch: int, epochs: int, *, head_from: int = 200, nan_at: tuple[int, int] | None = None,
           reset: bool = True) -> tuple[str, list[tuple[int, int, float]]]:
    """PCC AI's console: "Training at epoch N (total M)" headers, each over "batch count: i/308, iter: i"
    lines counted from 0 in each epoch (``reset``; else the iteration goes on across epochs); the paste
    starts at batch ``head_from`` of the epoch before ``first_epoch``, its header cut. Returns the text
    and (epoch, batch, loss) for each line, the loss falling 0.01 a line across the whole paste."""
    rows: list[tuple[int, int, float]] = []
    for e in range(first_epoch - 1, first_epoch + epochs):
        for i in range(head_from if e == first_epoch - 1 else 0, 301, 20):
            rows.append((e, i, round(1.0 - 0.01 * len(rows), 6)))
    out, seen = [], None
    for k, (e, i, loss) in enumerate(rows):
        if e != seen and e >= first_epoch:
            out.append(f"[2023-03-10 19:56:30,772] Training at epoch {e} (total {first_epoch + epochs - 1}) "
                       "with lr 0.0008 and aux_lr 0.005")
        seen = e
        it = i if reset else k * 20
        value = "nan" if (e, i) == nan_at else f"{loss:.6f}"
        out.append(f"[2023-03-10 19:56:31,117]     batch count: {i}/308, iter: {it}, loss: {value}")
    return "\n".join(out) + "\n", rows


def test_lines_above_the_first_epoch_header_end_the_epoch_before_it(tmp_path) -> None:
    # pccai_nan_epoch9: the per-epoch counter starts again under each header; with the first header
    # cut, every line was placed by its counter alone (epoch 9's batches before epoch 8's, a false
    # loss_oscillation in the smooth repro) and the NaN's range read "steps 60..300"
    text, rows = _pccai(2, 2)
    loss = by_name(read_log(write(tmp_path, "train.log", text)))["loss"]
    # each line in its epoch: e + i / length, the length the largest batch plus the usual step (320)
    np.testing.assert_allclose(loss.steps, [e + i / 320 for e, i, _ in rows], atol=1e-6)
    np.testing.assert_allclose(loss.values, [v for _, _, v in rows])
    assert np.all(np.diff(loss.steps) > 0)  # in the order the lines were printed
    assert not found(diagnose(read_log(write(tmp_path, "train.log", text))), "loss_oscillation")


def test_a_nan_in_a_mid_epoch_paste_is_placed_in_its_own_epoch(tmp_path) -> None:
    text, _ = _pccai(9, 1, head_from=240, nan_at=(9, 60))
    [f] = found(diagnose(read_log(write(tmp_path, "train.log", text))), "nonfinite")
    assert f.evidence.model_dump()["steps"][0] == round(9 + 60 / 320, 6)


def test_a_counter_that_goes_on_across_the_headers_stays_the_step(tmp_path) -> None:
    # the control: an iteration counted across epochs is the run's own step, header or none above it
    text, rows = _pccai(2, 2, reset=False)
    loss = by_name(read_log(write(tmp_path, "train.log", text)))["loss"]
    np.testing.assert_allclose(loss.steps, [20 * k for k in range(len(rows))])


# --- 4. a NaN where every logged learning rate is 0 is not the rate's fault ----------------------

def _trainer_dicts(rates: list[float], grads: list[str]) -> str:
    # the HF Trainer's console dicts: {'loss': 1.0778, 'grad_norm': nan, 'learning_rate': 0.0, 'epoch': 0.0}
    return "".join(f"{{'loss': {1.08 if k == 0 else 0.0}, 'grad_norm': {g}, 'learning_rate': {r!r}, 'epoch': 0.0}}\n"
                   for k, (r, g) in enumerate(zip(rates, grads, strict=True)))


_WARMUP = [0.0] + [1.3e-7 * (1 + 0.3 * k) for k in range(10)]


def test_a_nan_at_a_logged_learning_rate_of_0_is_no_learning_rate_advice(tmp_path) -> None:
    # minicpmv_lora_gradnan_loss0: grad_norm NaN from the first line, whose learning_rate is 0.0 (no
    # update had moved the weights); the remedy was "lower the learning rate from 1.31e-07 (in effect
    # at step 0)", a rate logged only on the next line
    report = diagnose(read_log(write(tmp_path, "train.log", _trainer_dicts(_WARMUP, ["nan"] * 11))))
    [f] = found(report, "nonfinite")
    assert f.severity == "error"
    ids = [r.id for r in f.remedies]
    assert "lower_learning_rate" not in ids and "check_data" in ids
    assert "not the learning rate" in f.summary and "is 0" in f.summary


def test_a_nan_after_a_rate_above_0_keeps_the_learning_rate_advice(tmp_path) -> None:
    # the control: the first NaN two lines after the rate rose above 0 may be the rate's doing
    grads = ["0.8", "0.9"] + ["nan"] * 9
    report = diagnose(read_log(write(tmp_path, "train.log", _trainer_dicts(_WARMUP, grads))))
    [f] = found(report, "nonfinite")
    assert "not the learning rate" not in f.summary


def test_the_rate_quoted_is_where_it_was_logged() -> None:
    # a rate of 0 logged at the step: the rate quoted is the first above 0, and so is its place
    from gradhealth.logs.remedies import lower_lr
    from tests.logs.test_detectors_real_runs import run_of
    run = run_of(loss=np.ones(11), learning_rate=np.array(_WARMUP))
    fix = lower_lr(run, at_step=0.0)
    assert fix.params["learning_rate_at_onset"] == _WARMUP[1]
    assert "in effect at step 0)" not in fix.change and "step 1, the first rate above 0 logged" in fix.change
    # a step whose own logged rate is above 0 is quoted as in effect there
    assert "in effect at step 3)" in lower_lr(run, at_step=3.0).change


# --- 5. wording: an isolated NaN note's range, which line a repeated line is ----------------------

def test_an_isolated_skipped_step_note_spans_its_nan_steps_only() -> None:
    # yoloworld_finetune_ok: one NaN grad_norm among finite ones; the note's steps were the whole series
    from tests.logs.test_detectors_real_runs import run_of
    g = 1.0 + 0.05 * np.sin(np.arange(200))
    g[[40, 90]] = np.nan
    run = run_of(loss=np.linspace(3.0, 1.0, 200), grad_norm=g)
    [f] = found(diagnose(run), "nonfinite")
    assert f.severity == "info"
    assert f.evidence.model_dump()["steps"] == [40, 90]


def test_a_repeated_line_note_names_the_line(tmp_path) -> None:
    # caffe_mbv3_ln1000: "1 line(s) repeat the step and values of the line before them" named no line
    lines = [f"Iteration {20 * k}, loss = {6.9 - 0.01 * k:.4f}, lr = 0.01" for k in range(12)]
    lines.insert(5, lines[4])  # file line 6 repeats line 5
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    [w] = [w for w in log.warnings if w.code == "repeated_lines"]
    assert "line 6" in w.message and w.where == "line 6"
