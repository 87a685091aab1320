"""logsweep89: text consoles from new repositories. A best-so-far's ``inf`` placeholder in a console of
resumed fine-tunes read as a NaN/Inf event (simplenmt_rl_burmese), a gradient norm printed before AMP's
loss scale is undone read as an explosion (simplenmt_rl_burmese), separate runs read as one resumed run
(yolox_voc_gbk_windows, simplenmt_rl_burmese), paper-style loss names ``L``/``L_crf`` (openjere_tqdm_killed),
a tqdm bar's label read as a series (biped_d4pg_tqdm_only) and ``Total reward in global step N: x``
(trpo_tiny_kl_stuck)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.errors import UnknownLogFormat
from gradhealth.library import check_logs
from gradhealth.logs.load import read_log


def _codes(path: Path) -> dict[str, str]:
    """finding code -> its worst severity."""
    order = {"info": 0, "warning": 1, "error": 2}
    out: dict[str, str] = {}
    for f in check_logs(path).findings:
        if order[f.severity] >= order.get(out.get(f.code, "info"), -1):
            out[f.code] = f.severity
    return out


# --- 1. a best-so-far's inf placeholder in resumed fine-tunes ------------------------------------

def _simple_nmt_run(start: int, end: int, base: float, *, nan_at: int | None = None) -> list[str]:
    """A simple-nmt style pass from epoch ``start`` to ``end``: its config print, then per epoch the
    training line and the validation line with the best so far, which starts as inf."""
    out = [f"{{   'batch_size': 16, 'init_epoch': {start}, 'n_epochs': {end} }}"]
    best = float("inf")
    for e in range(start, end + 1):
        loss = base * 0.97 ** (e - start)
        shown = "nan" if e == nan_at else f"{loss:.4e}"
        out.append(f"Epoch {e} - |param|=3.02e+02 |g_param|={1.0 + 0.03 * (e % 7):.2e} loss={shown} ppl=20.0")
        out.append(f"Validation - loss={loss * 0.9:.4e} ppl=18.0 best_loss={best:.4e} best_ppl={best:.2f}")
        best = min(best, loss * 0.9)
    return out


def test_a_best_so_far_placeholder_replaced_by_a_resumed_pass_is_no_nonfinite_error(tmp_path: Path) -> None:
    # three passes resumed from epochs 1, 12 and 8: the second pass's best_loss=inf at epoch 12 is
    # replaced by the third pass's finite best at epoch 12; it was a nonfinite ERROR ("the log reports
    # a NaN/Inf") while the same inf in a single pass is no failure
    path = tmp_path / "rl.log"
    path.write_text("\n".join(_simple_nmt_run(1, 20, 4.0) + _simple_nmt_run(12, 20, 3.0)
                              + _simple_nmt_run(8, 20, 3.2)) + "\n")
    codes = _codes(path)
    assert codes.get("nonfinite", "info") == "info"
    assert "nonfinite_event" not in {w.code for w in read_log(path).warnings}


def test_a_nan_loss_replaced_by_a_resumed_pass_is_still_reported(tmp_path: Path) -> None:
    # the control: a real NaN of the loss that a later pass overwrites stays a nonfinite finding
    path = tmp_path / "rl.log"
    path.write_text("\n".join(_simple_nmt_run(1, 20, 4.0) + _simple_nmt_run(12, 20, 3.0, nan_at=14)
                              + _simple_nmt_run(8, 20, 3.2)) + "\n")
    assert _codes(path).get("nonfinite") == "error"


def test_a_min_so_far_record_starting_at_inf_is_a_placeholder(tmp_path: Path) -> None:
    # ``min_val_loss`` (inf until the first evaluation) is a record like ``best_loss``: its initial
    # inf is no overflow, though its name holds "loss"
    lines = [f"epoch {e} loss {3.0 * 0.95 ** e:.4f} val_loss {2.9 * 0.95 ** e:.4f} "
             f"min_val_loss {'inf' if e == 0 else f'{2.9 * 0.95 ** (e - 1):.4f}'}" for e in range(30)]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    assert "nonfinite" not in _codes(path)


# --- 2. a gradient norm printed before AMP's loss scale is undone ------------------------------

def _amp_lines(epochs: int, norm: list[float], *, scale: bool = False) -> list[str]:
    out = []
    for e in range(1, epochs + 1):
        loss = 4.75 * 0.97 ** (e - 1)
        extra = " scale=65536" if scale else ""
        out.append(f"Epoch {e} - |param|=6.01e+02 |g_param|={norm[e - 1]:.2e} loss={loss:.4e} ppl=20.0{extra}")
    return out


def _exploding(path: Path) -> list:
    return [f for f in check_logs(path).findings if f.code == "exploding_gradient"]


def test_a_flat_loss_scaled_norm_over_a_falling_loss_is_a_note_without_a_clip(tmp_path: Path) -> None:
    # simple-nmt under AMP: |g_param| ~3e5 = 2^16 x ~4.6, flat while the loss falls; it was an
    # exploding_gradient warning "463x |param|" with a clip sized from those numbers
    norm = [3.27e5 * (1 - 0.01 * k) for k in range(30)]
    path = tmp_path / "amp.log"
    path.write_text("\n".join(_amp_lines(30, norm)) + "\n")
    [f] = _exploding(path)
    assert f.severity == "info" and not f.remedies
    ev = f.evidence.model_dump()
    assert ev["loss_scaled"] is True
    # GradScaler's initial 2^16: 3e5 / 65536 = 4.6, a healthy norm
    assert ev["scale_power"] == 16
    assert 3.0 < ev["value"] / 2 ** 16 < 5.0
    assert "unscale_" in f.summary and "unscale_" in f.explanation


def test_a_logged_loss_scale_marks_the_norm_scaled_too(tmp_path: Path) -> None:
    norm = [2.0e5 * (1 + 0.02 * (k % 3)) for k in range(30)]
    path = tmp_path / "amp.log"
    path.write_text("\n".join(_amp_lines(30, norm, scale=True)) + "\n")
    [f] = _exploding(path)
    assert f.severity == "info" and "loss scale is logged" in f.summary


def test_a_growing_norm_stays_an_explosion(tmp_path: Path) -> None:
    # the control: a norm that grows 100x over the run is no loss scale, whatever its size
    norm = [3.0e3 * 1.2 ** k for k in range(30)]
    path = tmp_path / "boom.log"
    path.write_text("\n".join(_amp_lines(30, norm)) + "\n")
    assert any(f.severity in ("warning", "error") for f in _exploding(path))


# --- 3. separate runs in one console ----------------------------------------------------------

def test_a_yolox_fresh_start_after_training_is_done_is_a_run_of_its_own(tmp_path: Path) -> None:
    # YOLOX (loguru): a run of 10 epochs ends ("Training of experiment is done"), a new one starts again at
    # epoch 1 with new args; it was read as one run resumed, its values overwritten
    head = "2021-09-03 20:18:49.869 | INFO     | yolox.core.trainer:after_iter:246 - "
    lines: list[str] = []
    firsts = []
    for run, (epochs, start) in enumerate(((10, 9.0), (6, 20.0))):
        lines.append(f"2021-09-03 20:22:07.593 | INFO     | yolox.core.trainer:before_train:126 - args: "
                     f"Namespace(batch_size={4 - 3 * run}, devices=1)")
        for e in range(1, epochs + 1):
            for it in (10, 20, 30, 40):
                loss = start * 0.93 ** ((e - 1) * 4 + it / 10)
                if e == 1 and it == 10:
                    firsts.append(loss)
                lines.append(f"{head}epoch: {e}/300, iter: {it}/47, mem: 1756Mb, total_loss: {loss:.1f}, "
                             f"iou_loss: {loss / 2:.1f}, lr: 1.560e-04")
        if run == 0:
            lines.append("2021-09-03 20:18:58.555 | INFO     | yolox.core.trainer:after_train:184 - "
                         "Training of experiment is done and the best AP is 0.00")
    path = tmp_path / "train_log.txt"
    path.write_text("\n".join(lines) + "\n")
    log = read_log(path)
    assert not [w for w in log.warnings if w.code == "overwritten_values"]
    assert any(w.code == "skipped_runs" for w in log.warnings)
    loss = next(s for s in log.series if s.name.endswith("total_loss"))
    # the run read is the second: 6 epochs x 4 lines, its first value the second run's first
    assert len(loss) == 24
    assert abs(float(loss.values[0]) - round(firsts[1], 1)) < 1e-9


def test_fine_tunes_each_run_to_the_same_last_epoch_are_separate_runs(tmp_path: Path) -> None:
    # simple-nmt's RL fine-tunes, each from a baseline checkpoint (epochs 41, 50, 58) to epoch 100:
    # each went back part way after the one before had ended; read as one run resumed three times
    lines = _simple_nmt_run(41, 100, 2.8) + _simple_nmt_run(50, 100, 2.7) + _simple_nmt_run(58, 100, 2.6)
    path = tmp_path / "rl.log"
    path.write_text("\n".join(lines) + "\n")
    log = read_log(path)
    assert not [w for w in log.warnings if w.code == "overwritten_values"]
    loss = {s.name: s for s in log.series}
    # each run judged on its own (all three ended at the same epoch): its own epochs and values
    runs = sorted({n.split("/")[0] for n in loss if n.startswith("run")})
    assert len(runs) == 3
    for run, (start, base) in zip(runs, ((41, 2.8), (50, 2.7), (58, 2.6)), strict=True):
        s = loss[f"{run}/loss"]
        assert float(s.steps[0]) == start and float(s.steps[-1]) == 100
        assert abs(float(s.values[0]) - base) < 1e-3


def test_a_resume_from_a_checkpoint_after_a_crash_is_still_one_run(tmp_path: Path) -> None:
    # the control: 1..60, cut short, resumed from epoch 20 to 100 (a stretch ending elsewhere): one run
    lines = _simple_nmt_run(1, 60, 4.0) + _simple_nmt_run(20, 100, 3.5)
    path = tmp_path / "resume.log"
    path.write_text("\n".join(lines) + "\n")
    log = read_log(path)
    assert not log.runs
    assert any(w.code == "overwritten_values" for w in log.warnings)


# --- 4. paper-style loss names ----------------------------------------------------------------

def _paper_lines(total_name: str = "L", whole: bool = False) -> list[str]:
    out = []
    for b in range(40):
        crf, sel = 43.0 / (1 + b) + 6.5, 1968.0 / (1 + b) ** 2 + 0.8
        if whole:
            crf, sel = float(round(crf)), float(round(sel))
        out.append(f"{total_name}: {crf + sel:.2f}, L_crf: {crf:.2f}, L_selection: {sel:.2f}, epoch: 0/50")
    return out


def test_L_beside_its_L_terms_is_the_training_loss(tmp_path: Path) -> None:
    path = tmp_path / "nohup.out"
    path.write_text("\n".join(_paper_lines()) + "\n")
    doc = check_logs(path)
    assert "insufficient_data" not in {f.code for f in doc.findings}
    log = read_log(path)
    from gradhealth.logs.derive import add_named_loss
    add_named_loss(log)
    [loss] = [s for s in log.series if s.role == "loss"]
    assert loss.name == "L"


def test_a_whole_numbered_L_is_no_loss(tmp_path: Path) -> None:
    # a length and its parts in whole numbers: no loss is read from them
    lines = [f"L: {100 + b}, L_max: 512, epoch: {b}" for b in range(30)]
    path = tmp_path / "lengths.log"
    path.write_text("\n".join(lines) + "\n")
    from gradhealth.logs.derive import add_named_loss
    log = read_log(path)
    add_named_loss(log)
    assert not [s for s in log.series if s.role == "loss"]


# --- 5. a tqdm bar's label --------------------------------------------------------------------

def test_a_tqdm_label_is_no_series(tmp_path: Path) -> None:
    # a bar redrawn between the loss prints: "Training" was a series of the bar's percentages
    lines = []
    for k in range(1, 31):
        lines.append(f"Training:   {k // 3}%|▌         | {k * 1000}/300000 [00:{k:02d}<14:48, 533.33step/s]")
        lines.append(f"loss: {2.0 * 0.95 ** k:.4f}")
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    series = {s.name: s for s in read_log(path).series}
    assert set(series) == {"loss"} and len(series["loss"]) == 30


def test_a_console_of_tqdm_bars_only_is_refused(tmp_path: Path) -> None:
    bars = "".join(f"Training:   {k // 3}%|▌         | {k * 1000}/300000 [00:{k:02d}<14:48, 533.33step/s]\r"
                   for k in range(1, 40))
    path = tmp_path / "train.log"
    path.write_text(bars + "\n")
    with pytest.raises(UnknownLogFormat):
        read_log(path)


# --- 6. "<name> in global step N: x" -----------------------------------------------------------

def test_a_value_named_in_its_step_clause_is_read(tmp_path: Path) -> None:
    rewards = [1.37, 0.72, 4.76, 5.08, 0.33, 3.81, 2.2, 1.1]
    lines = []
    for k, r in enumerate(rewards):
        lines.append(f"Global-step {33 + 300 * k} --Accept update with alpha=1.0, kl=1e-12, old=0.5, new=0.5")
        lines.append(f"Total reward in global step {33 + 300 * k}: {r}")
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    series = {s.name: s for s in read_log(path).series}
    s = series["Total_reward"]
    assert list(s.steps) == [33 + 300 * k for k in range(len(rewards))]
    assert list(s.values) == rewards
