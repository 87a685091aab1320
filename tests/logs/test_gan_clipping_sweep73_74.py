"""logsweep74 u02/u09: a plain DCGAN whose discriminator wins (loss_divergence for the generator);
logsweep73 u05: a Hugging Face run whose pre-clip norm is orders of magnitude over the Trainer's
default max_grad_norm (clipping_saturated); newuser9 #4: a loss spike on a log's second point (a
trainer_state.json written every 10 steps) that the no-progress test missed. Every log here is
synthetic, written in the tools' own formats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs


def _codes(doc) -> set[tuple[str, str]]:  # noqa: ANN001
    return {(f.code, f.severity) for f in doc.findings}


# --- logsweep74 u02/u09: the generator losing to its discriminator -------------------------------


def _chainer_gan_log(tmp_path: Path, gen, dis, n: int = 1000) -> Path:  # noqa: ANN001
    """Chainer's LogReport ``log``: a JSON list of records with ``iteration``, ``loss_gen``, ``loss_dis``."""
    rng = np.random.default_rng(74)
    records = []
    for k in range(n):
        x = k / (n - 1)
        records.append({"iteration": 100 * (k + 1), "epoch": k // 8,
                        "loss_gen": float(gen(x) * math.exp(0.15 * rng.standard_normal())),
                        "loss_dis": float(dis(x) * math.exp(0.3 * rng.standard_normal())),
                        "elapsed_time": 12.4 * (k + 1)})
    path = tmp_path / "log"
    path.write_text(json.dumps(records, indent=4))
    return path


def test_a_discriminator_falling_to_near_0_while_the_generator_climbs_is_a_divergence(tmp_path: Path) -> None:
    # D 0.6 -> 0.08, G 4 -> 12 (3x): the DCGAN of logsweep74 u09
    log = _chainer_gan_log(tmp_path, gen=lambda x: 4 + 8 * x, dis=lambda x: 0.6 * (0.08 / 0.6) ** x)
    doc = check_logs(log)
    found = [f for f in doc.findings if f.code == "loss_divergence"]
    assert len(found) == 1 and found[0].severity == "warning", _codes(doc)
    ev = found[0].evidence.model_extra or {}
    assert ev["generator"] == "loss_gen" and ev["discriminator"] == "loss_dis"
    # the level: a quarter of ln 2 (the balanced BCE discriminator's loss) or of D's own start (~0.6)
    assert 0.5 < ev["discriminator_start"] < 0.7
    assert math.isclose(ev["discriminator_threshold"], 0.25 * min(math.log(2), ev["discriminator_start"]),
                        rel_tol=1e-9)
    # the end levels, against the curves the log was drawn from (noise's median is 1): D 0.08, G 12
    assert 0.06 < ev["discriminator_final"] < 0.1 and 11 < ev["generator_final"] < 13
    assert found[0].evidence.value >= 1.5  # divergence_factor
    assert [r.id for r in found[0].remedies] == ["lower_learning_rate"]


def test_a_balanced_game_whose_generator_loss_rises_is_not_a_divergence(tmp_path: Path) -> None:
    # an SN-GAN (logsweep74 h06): G 0.95 -> 1.5 (1.6x), D 1.17 -> 0.74, near 2 ln 2 - its balance
    log = _chainer_gan_log(tmp_path, gen=lambda x: 0.95 + 0.55 * x, dis=lambda x: 1.17 - 0.43 * x)
    assert not any(f.code == "loss_divergence" for f in check_logs(log).findings)


def test_a_wgan_critic_below_0_is_not_judged(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = [{"iteration": 100 * (k + 1), "loss_gen": 2 + 10 * k / 999 + rng.random(),
                "loss_dis": -0.05 + 0.1 * rng.random()} for k in range(1000)]
    path = tmp_path / "log"
    path.write_text(json.dumps(records))
    assert not any(f.code == "loss_divergence" for f in check_logs(path).findings)


# --- logsweep73 u05: pre-clip norms orders of magnitude over the HF default ---------------------


def _trainer_state(tmp_path: Path, norms: np.ndarray, losses: np.ndarray, every: int = 2) -> Path:
    history = [{"epoch": round((i + 1) * every / 100, 2), "grad_norm": float(g), "learning_rate": 2e-5,
                "loss": round(float(v), 4), "step": (i + 1) * every} for i, (g, v) in enumerate(zip(norms, losses, strict=True))]
    state = {"global_step": len(history) * every, "logging_steps": every, "log_history": history}
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state, indent=2))
    return path


def test_hf_norms_two_decades_over_the_default_max_grad_norm_saturate_clipping(tmp_path: Path) -> None:
    rng = np.random.default_rng(73)
    n = 300
    norms = 2e5 * np.exp(0.6 * rng.standard_normal(n))  # 3e4-1e6: every one over 100 x 1.0
    losses = 5.0 * np.exp(-np.arange(n) / 60) + 0.1
    doc = check_logs(_trainer_state(tmp_path, norms, losses))
    found = [f for f in doc.findings if f.code == "clipping_saturated"]
    assert len(found) == 1 and found[0].severity == "warning", _codes(doc)
    ev = found[0].evidence.model_extra or {}
    assert ev["max_norm"] == 1.0 and ev["max_norm_assumed"] is True
    assert math.isclose(ev["median_norm"], float(np.median(norms)), rel_tol=1e-6)
    assert math.isclose(ev["median_ratio"], float(np.median(norms)), rel_tol=1e-6)
    # (logsweep86: under the Trainer's default AdamW the clip is no unit step: AdamW divides its scale out)
    assert "default 1.0" in found[0].summary and "before AdamW takes it" in found[0].summary


def test_hf_norms_a_few_times_the_default_are_ordinary_clipping(tmp_path: Path) -> None:
    # a Whisper fine-tune's 12-30 (logsweep73 h02): clipped at 1.0 every step, as fine-tunes are
    rng = np.random.default_rng(2)
    n = 300
    norms = 18 * np.exp(0.3 * rng.standard_normal(n))
    losses = 5.0 * np.exp(-np.arange(n) / 60) + 0.1
    doc = check_logs(_trainer_state(tmp_path, norms, losses))
    assert not any(f.code == "clipping_saturated" for f in doc.findings), _codes(doc)


# --- newuser9 #4: a spike on the second logged point ---------------------------------------------


def test_a_spike_on_the_second_point_lifts_the_start_the_run_never_got_below(tmp_path: Path) -> None:
    # the lr=3.0 run logged every 10 steps: 1.112, then 19.98 at step 11, then 1.09-1.6 to the end,
    # its last tenth's median above the first point: the spike was not "recovered" from
    rng = np.random.default_rng(9)
    losses = np.concatenate([[1.112, 19.98, 1.47, 2.53], 1.1 + 0.25 * rng.random(36)])
    norms = np.concatenate([[0.29, 45.2, 0.38, 0.82], 0.1 + 0.3 * rng.random(36)])
    history = [{"step": 1 + 10 * i, "loss": float(v), "grad_norm": float(g), "learning_rate": 3.0, "epoch": i / 10}
               for i, (v, g) in enumerate(zip(losses, norms, strict=True))]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 400, "log_history": history}))
    assert float(np.median(losses[-4:])) >= losses[0]  # the premise: it ends above its first point
    doc = check_logs(path)
    assert doc.status != "healthy", _codes(doc)
    spike = next(f for f in doc.findings if f.code == "loss_spike")
    assert spike.severity == "warning" and "no lower than where it began" in spike.summary
    assert any(f.code == "loss_plateau" for f in doc.findings)
