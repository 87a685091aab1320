"""logsweep87: plain-text training consoles. Large early spikes in a short Keras run judged against
levels the spikes set themselves (deepfd_spikes), a traceback of a later stage read as training stopping
(wind_diffusion), ..."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import write

# --- 3. spikes dense enough to set the level they are judged against ----------------------------------


def _epochs(tmp_path: Path, losses: list[float]) -> Path:
    n = len(losses)
    return write(tmp_path, "train.log", "".join(f"Epoch {e}/{n} - loss: {v:.4f}\n" for e, v in enumerate(losses, 1)))


#: deepfd_spikes' epoch losses: a calm level near 2.3 with three points 2,000-27,000 times it
_SPIKED = [2.2907, 5433.5405, 63018.2031, 2.1337, 2.6766, 33272.1367, 2.0664, 2.5103, 2.2322, 1.9788]


def test_dense_early_spikes_of_a_short_run_are_found(tmp_path: Path) -> None:
    doc = run_log_check(_epochs(tmp_path, _SPIKED))
    [f] = [f for f in doc.findings if f.code == "loss_spike"]
    assert f.severity == "warning"
    # the three spikes at epochs 2, 3 and 6, and none of the calm points
    assert f.evidence.spike_steps == [2, 3, 6]
    # measured from the run's start, the median of its first 3 calm points (2.29, 2.13, 2.68), not
    # from 5433, the median of 2.29, 5433 and 63018
    start = float(np.median([2.2907, 2.1337, 2.6766]))
    assert f"{63018.2031 / start:.3g}x where the run started" in f.summary
    assert "above the run's start level 5.43e+03" not in f.summary and "5434 (the median" not in f.summary


def test_the_noise_spikes_are_measured_in_leaves_the_spikes_out() -> None:
    from gradhealth.logs.detectors.explosion import _calm_sigma
    from gradhealth.logs.thresholds import LogThresholds

    v = np.array(_SPIKED)
    lv = np.log(v)
    calm = np.delete(lv, [1, 2, 5])
    sigma = _calm_sigma(v, lv, 2, 0.00005, LogThresholds())
    # the calm points' own scatter in log units is about 0.1: their noise, not the spikes' ~8
    assert sigma < 3 * float(np.std(calm))
    # a loss with no point far above its level leaves nothing out
    assert _calm_sigma(v[6:], lv[6:], 2, 0.0, LogThresholds()) == float("inf")


def test_a_spike_measured_from_calm_start_words_say_so(tmp_path: Path) -> None:
    # 15 epochs, spikes at 2 and 3: the start level is the calm points' (2.29, 2.13, 2.68) and no
    # sentence calls the spike "above the start level" that the spike itself set
    losses = [2.29, 5433.5, 63018.2, 2.13, 2.68, 33272.1, 2.07, 2.51, 2.23, 1.98, 1.96, 1.95, 1.94, 1.93, 1.92]
    doc = run_log_check(_epochs(tmp_path, losses))
    [f] = [f for f in doc.findings if f.code == "loss_spike"]
    assert f.severity == "warning" and f.evidence.spike_steps == [2, 3, 6]
    assert "above the run's start level" not in f.summary
    assert f"{63018.2 / 2.29:.3g}x where the run started" in f.summary


# --- 1. a traceback after training ended -------------------------------------------------------------

_TB = ("Traceback (most recent call last):\n  File \"eval.py\", line 12, in <module>\n"
       "    y = np.load(\"results/y_true.npy\")\n"
       "FileNotFoundError: [Errno 2] No such file or directory: 'results/y_true.npy'\n")


def _console(epochs: int, total: int, between: str = "") -> str:
    return "".join(f"Epoch {e}/{total} Train Loss: {1.26 * 0.9 ** e:.4f} | Val Loss: {0.93 * 0.93 ** e:.4f}\n"
                   for e in range(1, epochs + 1)) + between + _TB


def _truncated(tmp_path: Path, text: str):  # noqa: ANN202 - the truncated_log finding
    doc = run_log_check(write(tmp_path, "train.log", text))
    [f] = [f for f in doc.findings if f.code == "truncated_log"]
    return f


def test_a_traceback_after_the_counter_reached_its_total_is_a_note(tmp_path: Path) -> None:
    f = _truncated(tmp_path, _console(12, 12))
    assert f.severity == "info" and "epoch 12/12" in f.summary and "FileNotFoundError" in f.summary


def test_a_traceback_after_a_later_stage_began_is_a_note(tmp_path: Path) -> None:
    f = _truncated(tmp_path, _console(7, 50, "Training complete. Saved model.\nStage 2: Predicting\n"))
    assert f.severity == "info" and "Training complete" in f.summary
    assert read_log(write(tmp_path, "t.log", _console(7, 50, "Stage 2: Predicting\n"))).after_training


def test_a_traceback_that_cuts_training_short_is_a_warning(tmp_path: Path) -> None:
    # epoch 7 of 50, nothing after it: training stopped there
    f = _truncated(tmp_path, _console(7, 50))
    assert f.severity == "warning"
    # the last epoch's header printed and no line of it: the crash was in epoch 12 of 12
    f = _truncated(tmp_path, "".join(f"Epoch {e}/12\n10/10 [==========] - 1s - loss: {1 / e:.4f}\n"
                                     for e in range(1, 12)) + "Epoch 12/12\n" + _TB)
    assert f.severity == "warning"
    # a Keras bar of the last epoch cut part way: still training
    f = _truncated(tmp_path, "".join(f"Epoch {e}/3\n10/10 [==========] - 1s - loss: {1 / e:.4f}\n"
                                     for e in range(1, 3)) + "Epoch 3/3\n 4/10 [===>......] - loss: 0.3000\n" + _TB)
    assert f.severity == "warning"
    # ... and whole: training had ended
    f = _truncated(tmp_path, "".join(f"Epoch {e}/3\n10/10 [==========] - 1s - loss: {1 / e:.4f}\n"
                                     for e in range(1, 4)) + _TB)
    assert f.severity == "info"
    # a stage line followed by more training: the traceback is training's
    f = _truncated(tmp_path, _console(3, 50, "Stage 2: fine-tuning\nEpoch 4/50\n"))
    assert f.severity == "warning"


# --- 2. a loss printed without the word loss --------------------------------------------------------


def _vae(tmp_path: Path, total_name: str = "Total", extra: str = "") -> Path:
    rec = 0.3 * 0.99 ** np.arange(40)
    kl = 48.0 * 0.9 ** np.arange(40)
    total = rec + 0.01 * kl
    lines = [f"Epoch {1 + i // 10}, Step {100 * (i + 1)}: Rec={r:.6f}, KL={k:.6f}, {total_name}={t:.6f}{extra}"
             for i, (r, k, t) in enumerate(zip(rec, kl, total, strict=True))]
    return write(tmp_path, "vae.log", "\n".join(lines) + "\n")


def test_a_bare_total_beside_its_parts_is_the_training_loss(tmp_path: Path) -> None:
    log = read_log(_vae(tmp_path))
    [loss] = [s for s in log.series if s.role == "loss"]
    assert loss.name == "Total"
    expected = 0.3 * 0.99 ** np.arange(40) + 0.48 * 0.9 ** np.arange(40)
    assert np.allclose(loss.values, expected, atol=1e-6)
    assert any(w.code == "derived_loss" and "Total" in w.message for w in log.warnings)


def test_a_total_that_is_a_count_or_beside_an_accuracy_is_no_loss(tmp_path: Path) -> None:
    path = write(tmp_path, "eval.log", "".join(f"Step {s}: Correct={900 + s} Total=1000 acc={0.9 + s / 1e4:.4f}\n"
                                               for s in range(20)))
    assert not [s for s in read_log(path).series if s.role == "loss"]
    path = write(tmp_path, "eval2.log", "".join(f"Step {s}: acc={0.5 + s / 100:.3f} total={1 / (s + 1):.4f}\n"
                                                for s in range(20)))
    assert not [s for s in read_log(path).series if s.role == "loss"]


def test_no_loss_found_says_how_to_name_one_and_lists_no_epoch(tmp_path: Path) -> None:
    path = write(tmp_path, "rk.log", "".join(f"Epoch {1 + s // 5}, Step {s}: Rec={0.3 - s / 100:.3f}, KL={40 - s:.1f}\n"
                                             for s in range(20)))
    doc = run_log_check(path)
    [f] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert "(series found: Rec, KL)" in f.summary
    assert "word loss" in f.explanation and "Total loss=0.78" in f.explanation


# --- 4. evaluate() after fit() does not overwrite the last epoch's training loss -----------------------


def test_evaluate_bars_and_a_summary_dict_after_fit_are_the_evaluations(tmp_path: Path) -> None:
    losses = 1.8 * 0.9 ** np.arange(5)
    lines = []
    for e, v in enumerate(losses, 1):
        lines += [f"Epoch {e}/5", f"6000/6000 - 2s - loss: {v:.4f} - accuracy: {0.5 + e / 20:.4f} - 2s/epoch"]
    lines += ["  1/313 [..............................] - ETA: 35s - loss: 0.2033 - accuracy: 0.9688",
              "313/313 [==============================] - 0s 496us/step - loss: 2.5000 - accuracy: 0.7053",
              'Info:{"accuracy": "0.71", "loss": "2.500000", "train_size": "60000", "test_size": "10000"}']
    series = {s.name: s for s in read_log(write(tmp_path, "output.txt", "\n".join(lines) + "\n")).series}
    # the training loss keeps each epoch's own value, the fifth's last
    assert np.allclose(series["loss"].values, np.round(losses, 4))
    assert series["eval_loss"].role == "val_loss" and series["eval_loss"].values[-1] == 2.5
    # sizes by their name are no values
    assert not [n for n in series if "size" in n]


def test_a_summary_after_fit_without_evaluate_leaves_the_training_loss(tmp_path: Path) -> None:
    lines = []
    for e in range(1, 4):
        lines += [f"Epoch {e}/3", f"100/100 [==============================] - 1s - loss: {1 / e:.4f}"]
    lines += ["final: loss: 9.0000"]
    series = {s.name: s for s in read_log(write(tmp_path, "output.txt", "\n".join(lines) + "\n")).series}
    assert np.allclose(series["loss"].values, [1.0, 0.5, 0.3333])
