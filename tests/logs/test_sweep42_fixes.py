"""What the forty-second log sweep (unhealthy real runs from public repositories) found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradhealth.logs import check
from gradhealth.logs.check import diagnose, run_log_check
from gradhealth.logs.series import RunLog
from gradhealth.logs.thresholds import LogThresholds
from tests.logs.helpers import write
from tests.logs.test_detectors import healthy, run_of


def test_a_long_loss_qualifier_names_a_component_and_the_total_is_judged(tmp_path: Path) -> None:
    # a VAE's console: "Reconstruction Loss" was read as the bare loss, so the total's blow-up
    # (its KL term 95x in one step) was never looked at
    total = [476.6 * 0.9 ** i for i in range(20)] + [45008.3, 23015.4, 7747.1] + [50 * 0.99 ** i for i in range(60)]
    lines = [f"Epoch 1, Step {30 * i}: Reconstruction Loss={0.9 * 0.98 ** i:.4f}, KL Loss={t * 3.3:.2f}, "
             f"Total Loss={t:.4f}\n" for i, t in enumerate(total)]
    doc = run_log_check(write(tmp_path, "vae.txt", "".join(lines)))
    roles = {s.name: s.role for s in doc.series}
    assert roles["Reconstruction_Loss"] == "metric" and roles["Total_Loss"] == "loss"
    assert any(f.code == "loss_spike" and f.evidence.metric == "Total_Loss" for f in doc.findings)


def _lm(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # a word-level RNN at lr 20: 12.3 nats rising to 15-17 over three epochs, then the rate cut to 5
    # and the loss down to 8 (what a scheduler on the validation loss does)
    n = 90
    loss = np.concatenate([np.linspace(12.3, 13.1, 14), np.full(28, 14.9), np.full(8, 13.0), np.full(6, 16.5),
                           np.linspace(8.8, 8.0, n - 56)]) + rng.normal(0, 0.1, n)
    lr = np.concatenate([np.full(56, 20.0), np.full(n - 56, 5.0)])
    return loss, lr


def test_a_divergence_a_rate_cut_rescued_is_still_a_warning() -> None:
    loss, lr = _lm(np.random.default_rng(3))
    [f] = [f for f in diagnose(run_of(loss=loss, learning_rate=lr)).findings if f.code == "loss_divergence"]
    assert f.severity == "warning" and "came down only from" in f.summary
    assert "learning rate went from 20 to 5" in f.summary and f.evidence.recovered_at == 560  # steps of 10


def test_a_short_bump_before_new_lows_is_no_divergence() -> None:
    # a warm-up overshoot: the loss rises for a few points, then falls to new lows for good
    rng = np.random.default_rng(4)
    loss = np.concatenate([np.linspace(10.4, 9.0, 10), np.linspace(9.0, 10.8, 4), np.linspace(10.8, 3.0, 86)])
    loss = loss * np.exp(rng.normal(0, 0.01, len(loss)))
    assert not [f for f in diagnose(run_of(loss=loss)).findings if f.code == "loss_divergence"
                and f.severity != "info"]


def _gan(tmp_path: Path, d: np.ndarray, g: np.ndarray) -> list[tuple[str, str]]:
    lines = [f"[{i:8d} Epoch:[ 0/25] [{i:4d}/ 273] time: {0.76 * i:.4f}, d_loss: {a:.8f}, g_loss: {b:.8f}\n"
             for i, (a, b) in enumerate(zip(d, g, strict=True))]
    doc = run_log_check(write(tmp_path, "nohup.out", "".join(lines)))
    return [(f.code, f.severity) for f in doc.findings]


def test_a_gan_pinned_at_its_equilibrium_losses_is_not_playing(tmp_path: Path) -> None:
    # a DCGAN whose discriminator says 0.5 to everything from the start: d_loss at 2 ln 2 and
    # g_loss at ln 2 within half a percent, step after step
    rng = np.random.default_rng(5)
    n = 300
    found = _gan(tmp_path, 1.386 * (1 + rng.normal(0, 0.003, n)), 0.693 * (1 + rng.normal(0, 0.003, n)))
    assert ("loss_plateau", "warning") in found


def test_a_gan_whose_losses_swing_is_playing(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    n = 300
    d = np.clip(0.9 + 0.3 * rng.standard_normal(n), 0.1, None)
    g = np.clip(2.0 + 0.8 * rng.standard_normal(n), 0.2, None)
    assert ("loss_plateau", "warning") not in _gan(tmp_path, d, g)


def _slow_updates() -> RunLog:
    rng = np.random.default_rng(7)
    n = 200
    loss, _ = healthy(n, 7)
    ratios = 5e-4 * np.exp(rng.normal(0, 0.1, n))
    return run_of(loss=loss, update_ratio__fc1__weight=ratios, update_ratio__fc2__weight=0.8 * ratios)


def test_a_small_update_threshold_above_the_floor_target_raises_the_rate_to_it() -> None:
    # a live run's config set small_update_warning to 1e-3 (the healthy level): ratios of 5e-4 are
    # under it, and the remedy raised the rate by 1e-4 / 5e-4, "a factor above 1" refused: every
    # append was a 500
    doc = diagnose(_slow_updates(), LogThresholds(small_update_warning=1e-3))
    [f] = [f for f in doc.findings if f.code == "small_updates"]
    [r] = f.remedies
    assert r.id == "raise_learning_rate" and 1.8 < r.params["factor"] < 2.2  # to 1e-3 from ~5e-4


def test_a_detector_that_fails_is_a_note_and_the_others_stand(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(run: RunLog, t: LogThresholds) -> list[Any]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(check, "DETECTORS", [broken, *check.DETECTORS])
    monkeypatch.delenv("GRADHEALTH_STRICT")
    loss = np.full(100, 2.3)
    loss[60] = np.nan
    doc = diagnose(run_of(loss=loss))
    assert any(f.code == "nonfinite" for f in doc.findings)  # the other detectors ran
    assert any("broken check failed" in w and "ZeroDivisionError" in w for w in doc.log.warnings)
    monkeypatch.setenv("GRADHEALTH_STRICT", "1")  # what the tests run under: the bug surfaces
    with pytest.raises(ZeroDivisionError):
        diagnose(run_of(loss=loss))
