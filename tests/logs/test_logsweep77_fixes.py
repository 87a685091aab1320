"""logsweep77: a recovered loss spike that undid the training (u09), a whole model's loss beside its
terms (u01's loss_vae), simple-nmt's norms ``|param|=`` / ``|g_param|=`` and the series named first
when several go NaN/Inf at once (u07), and the log's own counters in NaN reports (u02, u04, u05)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.library import check_logs
from gradhealth.logs.load import read_log


def _codes(path: Path) -> dict[str, Finding]:
    return {f.code: f for f in check_logs(path).findings}


# --- 1. a recovered loss spike that undid the training ------------------------------------------

def _epoch_log(tmp_path: Path, spike: dict[int, float], n: int = 200) -> Path:
    """A NoProp-style console: one epoch-mean loss per line, 12.9 at epoch 1 falling to ~1.15."""
    rng = np.random.default_rng(0)
    rows = []
    for e in range(1, n + 1):
        loss = 1.15 + 11.75 * math.exp(-(e - 1) / 2) + 0.01 * float(rng.standard_normal())
        loss = spike.get(e, loss)
        rows.append(f"Epoch {e:02d} loss {loss:.4f} | train 2.9s\n")
    path = tmp_path / "log_cifar10.md"
    path.write_text("--- resnet18 on CIFAR10 (10 classes) using cuda ---\n" + "".join(rows))
    return path


def test_a_recovered_spike_above_the_start_level_is_a_warning(tmp_path: Path) -> None:
    # 14.72 at epoch 100, where the run began at 12.9 (the median of its first 3 epochs: 3.82) and
    # sat at 1.15: it lost everything it had learnt, however fast it came back
    found = _codes(_epoch_log(tmp_path, {100: 14.72, 101: 6.19, 102: 2.08}))
    spike = found["loss_spike"]
    assert spike.severity == "warning"
    assert "above the run's start level" in spike.summary
    assert spike.evidence.model_dump()["undid_learning"]["why"] == "start"
    assert spike.evidence.model_dump()["recovered"] is True


def test_a_tenfold_spike_of_an_epoch_mean_below_the_start_is_a_warning(tmp_path: Path) -> None:
    # 3.5 against ~1.15 (3x), below the start: an ordinary recovered spike, a note; 11.9 (10.3x) is not
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small = _codes(_epoch_log(tmp_path / "a", {100: 3.5}))
    assert small["loss_spike"].severity == "info"
    big = _codes(_epoch_log(tmp_path / "b", {100: 11.9}))
    assert big["loss_spike"].severity == "warning"
    assert big["loss_spike"].evidence.model_dump()["undid_learning"]["why"] in ("average", "start")


def test_a_per_batch_spike_below_the_start_stays_a_note(tmp_path: Path) -> None:
    # a per-step loss (falling 2.3 -> 0.4) with one bad batch at 2.0, 5x its median and under the
    # start 2.3: a noisy mini-batch loss has those
    rng = np.random.default_rng(1)
    rows = []
    for i in range(400):
        loss = 0.4 + 1.9 * math.exp(-i / 30) + 0.02 * float(rng.standard_normal())
        if i == 250:
            loss = 2.0
        rows.append(f"step {i} loss {loss:.4f}\n")
    path = tmp_path / "train.log"
    path.write_text("".join(rows))
    spike = _codes(path)["loss_spike"]
    assert spike.severity == "info"
    assert "undid_learning" not in spike.evidence.model_dump()


# --- 2. a whole model's loss beside its terms -------------------------------------------------------

def test_a_loss_named_for_the_whole_model_is_the_training_loss_not_a_part(tmp_path: Path) -> None:
    # the peptide WAE's console: loss_vae (the model's objective) with its terms loss_recon and
    # loss_mmd; loss_vae falls to 0.08 and climbs back to 0.55 at a constant rate
    rows = []
    for k in range(200):
        it = 500 * k
        vae = 3.5 * math.exp(-k / 4) + 0.08 if k < 70 else 0.08 + 0.47 * (k - 70) / 130
        recon = 0.9 * vae
        rows.append(f"ITER {it} TRAINING (phase 1). loss_vae: {vae:.4f}; loss_recon: {recon:.4f}; "
                    f"loss_kl: 230.0; loss_mmd: -1.9700; Grad_norm: 5.0e-01 \n")
    path = tmp_path / "train.log"
    path.write_text("".join(rows))
    run = read_log(path)
    loss = run.first("loss")
    assert loss is not None and loss.name == "loss_vae"
    div = _codes(path)["loss_divergence"]
    assert div.evidence.metric == "loss_vae"


# --- 3. simple-nmt's norms; the gradient named first ------------------------------------------------

def _nmt_log(tmp_path: Path) -> Path:
    rows = []
    gnorms = [1.8e5] * 17 + [1.3e5, 3.1e6, 8.9e7, 2.4e9]
    for e, g in enumerate(gnorms, start=1):
        loss = 4.3 - 0.15 * e if e < 18 else [1.9, 2.93, 6.84, 6.84][e - 18]
        rows.append(f"Epoch {e} - |param|=5.0e+02 |g_param|={g:.2e} loss={loss:.4e} ppl={math.exp(loss):.2f}\n")
        rows.append(f"Validation - loss={loss - 0.2:.4e} ppl={math.exp(loss - 0.2):.2f} best_loss=7.0e-01\n")
    rows.append(f"Epoch {len(gnorms) + 1} - |param|=inf |g_param|=inf loss=nan ppl=nan\n")
    path = tmp_path / "simple-nmt.log"
    path.write_text("".join(rows))
    return path


def test_norms_written_between_bars_are_read_as_the_weight_and_gradient_norms(tmp_path: Path) -> None:
    run = read_log(_nmt_log(tmp_path))
    grad = run.first("grad_norm")
    weights = run.first("weight_norm")
    assert grad is not None and grad.name == "|g_param|"
    assert weights is not None and weights.name == "|param|"
    assert np.isinf(grad.values[-1])
    # the loss after "|g_param|=inf" is still the loss (not a series named "inf_loss")
    loss = run.first("loss")
    assert loss is not None and np.isnan(loss.values[-1])


def test_the_gradient_is_named_first_when_several_series_break_at_one_step(tmp_path: Path) -> None:
    found = _codes(_nmt_log(tmp_path))
    nonfinite = found["nonfinite"]
    assert nonfinite.summary.startswith("Inf first appears in |g_param| at epoch 22")
    assert "loss" in nonfinite.summary and "|param|" in nonfinite.summary
    assert "exploding_gradient" in found


def test_a_training_loss_that_multiplied_did_not_hold(tmp_path: Path) -> None:
    # the validation loss's rise comes with the training loss's 0.9 -> 6.8: no overfitting note that
    # says the training loss "held"
    found = check_logs(_nmt_log(tmp_path)).findings
    assert not any("held" in f.summary for f in found if f.code == "validation_divergence")


# --- 4. the log's own counters -------------------------------------------------------------------

def test_a_batch_counted_out_of_its_epoch_places_the_nan(tmp_path: Path) -> None:
    path = tmp_path / "ppasr.log"
    path.write_text("".join(
        f"[2021-07-14 02:09:40.075967] Train epoch: 0, batch: {b}/34799, loss: "
        f"{'nan' if b >= 790 else f'{6.7 - 0.001 * b:.5f}'}, learning rate: 0.0001, train time: 4.3s\n"
        f"完成第{b}的保存\n" for b in range(700, 850, 10)))
    nonfinite = _codes(path)["nonfinite"]
    assert "epoch 0, batch 790" in nonfinite.summary


def test_ep_is_the_epoch(tmp_path: Path) -> None:
    path = tmp_path / "res.res"
    path.write_text(
        "ep=22 tr=['train_clean_100'] loss=0.671 err=0.214 valid=dev_clean loss=0.693 err=0.212 time(s)=17255\n"
        "ep=23 tr=['train_clean_100'] loss=nan err=0.218 valid=dev_clean loss=nan err=0.911 time(s)=17416\n")
    assert "at epoch 23" in _codes(path)["nonfinite"].summary


def test_an_ordinal_step_on_its_own_line_is_the_step(tmp_path: Path) -> None:
    # GE2E's console: "current step: Nth step" then "batch loss:X", a checkpoint line every 100
    # steps, and TensorFlow's device lines (with values) before the first step
    rows = ["name: GeForce GTX 1080 Ti major: 6 minor: 1 memoryClockRate(GHz): 1.582\n",
            "totalMemory: 10.91GiB freeMemory: 10.76GiB\n", "start from 0\n"]
    for i in range(1, 11):
        rows.append(f"current step: {i}th step\n")
        rows.append(f"batch loss:{'nan' if i >= 5 else f'{4.0 - 0.1 * i:.7f}'}\n")
        if i == 3:
            rows.append("model saved in file: ./ckpt/model.ckpt-3 / 3 th step\n")
    path = tmp_path / "train.log"
    path.write_text("".join(rows))
    loss = read_log(path).first("loss")
    assert loss is not None and list(loss.steps) == list(range(1, 11))
    assert "at step 5" in _codes(path)["nonfinite"].summary


def test_an_ordinal_in_prose_is_no_step(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("the 1st step of the script loads the data\n"
                    + "".join(f"loss: {1 / (i + 1):.4f}\n" for i in range(10)))
    loss = read_log(path).first("loss")
    assert loss is not None and list(loss.steps) == list(range(10))


def test_a_gradient_that_dwarfs_steady_weights_in_a_run_that_learnt_is_a_note(tmp_path: Path) -> None:
    # simple-nmt under Adam on a loss summed over tokens (logsweep77 h01): |g_param| ~1e5 against
    # |param| ~650 (ratio ~200, over the 100x warning bar), the weights within 2 % over 30 epochs
    # while the loss falls 4.26 -> 0.30: the steps were not the gradient's size
    rows = []
    for e in range(1, 31):
        loss = 0.3 + 3.96 * math.exp(-(e - 1) / 6)
        rows.append(f"Epoch {e} - |param|={650 + 0.3 * e:.2e} |g_param|={1.8e5 - 4e3 * e:.2e} "
                    f"loss={loss:.4e} ppl={math.exp(loss):.2f}\n")
        rows.append(f"Validation - loss={loss + 0.05:.4e} ppl={math.exp(loss + 0.05):.2f} best_loss={loss + 0.05:.4e}\n")
    path = tmp_path / "simple-nmt.log"
    path.write_text("".join(rows))
    doc = check_logs(path)
    (steep,) = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert steep.severity == "info" and not steep.remedies
    extra = steep.evidence.model_dump()
    assert extra["weights_steady"] <= 1.25 and extra["loss_fell"] >= 5
    assert not [f for f in doc.findings if f.severity in ("warning", "error")]


def test_a_training_level_that_multiplied_rose_whatever_its_noise() -> None:
    from gradhealth.logs.detectors.validation import _fell_or_held, _train_course

    # epoch means falling 4.26 -> 0.925 over 17 epochs, then 1.41, 2.93, 6.84 before NaN (u07's
    # course): the stretch from the validation loss's best (evaluation 16) has the blow-up in its own
    # noise, which hid a 2.6x rise of the level (1.13 -> 2.93)
    lv = np.array([4.264, 3.888, 3.567, 3.217, 2.886, 2.722, 2.476, 2.336, 2.157, 2.047, 1.918, 1.799,
                   1.685, 1.618, 1.394, 1.129, 0.925, 1.412, 2.932, 6.842])
    ls = np.arange(1, 21, dtype=float)
    then, now, rose = _train_course(ls, lv, ls, 16)
    assert now / then >= 1.5 and rose
    assert "held" not in _fell_or_held("loss", 0.925, 6.84)
    assert _fell_or_held("loss", 0.300, 0.301) == "loss held (0.3 -> 0.301)"


def test_a_per_batch_spike_above_the_start_that_lasts_is_a_warning_and_a_lone_one_a_note(tmp_path: Path) -> None:
    # a GPT-2 loss logged every 100 steps (start ~7.7, then ~2.1): 9.81, 7.53, 5.12, 3.20 back to 2.03
    # (logsweep68 u07's course) undid the training; the same 9.81 alone, back at 2.1 on the next
    # point, is one bad batch (sweep39's rule)
    def log(folder: str, after: list[float]) -> Path:
        rng = np.random.default_rng(2)
        # (300 points: one spike in 60 would be "frequent", a warning by that rule alone)
        vals = [2.1 + 5.6 * math.exp(-i / 4) + 0.03 * float(rng.standard_normal()) for i in range(300)]
        vals[150:150 + len(after)] = after
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "train.log"
        path.write_text("".join(f"step {100 * i} | loss {x:.4f}\n" for i, x in enumerate(vals)))
        return path

    lasting = _codes(log("a", [9.81, 7.53, 5.12, 3.20]))["loss_spike"]
    assert lasting.severity == "warning" and lasting.evidence.model_dump()["undid_learning"]["why"] == "start"
    lone = _codes(log("b", [9.81]))["loss_spike"]
    assert lone.severity == "info" and "undid_learning" not in lone.evidence.model_dump()
