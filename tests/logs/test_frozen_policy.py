"""An RL or preference run whose policy never moved from its reference model (a real TRL GRPO run
logged ``kl`` exactly 0 at all 200 steps with a peak learning rate of 1e-6, its reward flat, and
read healthy). The files here are written in the Trainer's ``trainer_state.json`` form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gradhealth.library import check_logs


def _grpo(tmp_path: Path, *, kl: np.ndarray | None, lr_peak: float = 1e-6, decimals: int | None = None,
          reward_key: str = "reward", extra: dict[str, np.ndarray] | None = None) -> Path:
    """A GRPO trainer_state: linear warm-up then decay, grad norms around 0.08, a noisy reward."""
    n = 200 if kl is None else len(kl)
    rng = np.random.default_rng(3)
    steps = np.arange(1, n + 1)
    lr = np.where(steps < 20, lr_peak * (steps - 1) / 20, lr_peak * (n - steps) / (n - 20))
    grad = 0.08 + 0.02 * rng.standard_normal(n) ** 2
    if decimals is not None:
        grad = np.round(grad, decimals)
    entries = []
    for i in range(n):
        e = {"step": int(steps[i]), "epoch": float(steps[i]) / n, "loss": float(1e-9 * rng.standard_normal()),
             "grad_norm": float(grad[i]), "learning_rate": float(lr[i]), reward_key: float(1.9 + 0.3 * rng.standard_normal()),
             f"{reward_key}_std": 0.5}
        if kl is not None:
            e["kl"] = float(kl[i])
        for k, v in (extra or {}).items():
            e[k] = float(v[i])
        entries.append(e)
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": n, "log_history": entries}))
    return path


def _frozen(doc):
    return [f for f in doc.findings if f.code == "small_updates"]


def test_a_kl_exactly_zero_at_every_step_is_a_policy_that_never_moved(tmp_path: Path) -> None:
    [f] = _frozen(check_logs(_grpo(tmp_path, kl=np.zeros(200))))
    assert f.severity == "warning" and f.evidence.metric == "kl"
    assert f.evidence.steps == [1, 200] and f.evidence.points == 200
    assert f.evidence.max_learning_rate == pytest.approx(1e-6)  # the schedule's peak, read from the file
    assert "never moved from its reference" in f.summary and "1e-06" in f.summary
    [r] = f.remedies
    assert r.id == "raise_learning_rate"


def test_a_kl_that_leaves_zero_after_the_first_update_is_healthy(tmp_path: Path) -> None:
    kl = np.concatenate([[0.0], np.linspace(1e-4, 0.05, 199)])  # a LoRA adapter starts as the identity
    assert not _frozen(check_logs(_grpo(tmp_path, kl=kl)))


def test_a_kl_that_moved_once_is_not_frozen(tmp_path: Path) -> None:
    kl = np.zeros(200)
    kl[150] = 3e-7
    assert not _frozen(check_logs(_grpo(tmp_path, kl=kl)))


def test_a_learning_rate_of_zero_is_named_and_not_multiplied(tmp_path: Path) -> None:
    [f] = _frozen(check_logs(_grpo(tmp_path, kl=np.zeros(200), lr_peak=0.0)))
    assert "learning rate of 0" in f.summary and f.evidence.max_learning_rate == 0
    assert f.remedies == []  # 3 x 0 is no advice


def test_norms_rounded_to_a_few_decimals_could_hide_a_small_kl(tmp_path: Path) -> None:
    # a log that writes its numbers with 4 decimals would print a moving KL of 3e-5 as 0
    assert not _frozen(check_logs(_grpo(tmp_path, kl=np.zeros(200), decimals=4)))


def test_a_kl_in_a_run_without_rewards_is_another_quantity(tmp_path: Path) -> None:
    # a VAE logs its KL term; no reward in the run, no policy to have moved
    assert not _frozen(check_logs(_grpo(tmp_path, kl=np.zeros(200), reward_key="recon")))


def test_a_short_run_is_not_judged(tmp_path: Path) -> None:
    assert not _frozen(check_logs(_grpo(tmp_path, kl=np.zeros(15))))


def test_dpo_implicit_rewards_exactly_zero_are_the_same_finding(tmp_path: Path) -> None:
    zeros = np.zeros(200)
    [f] = _frozen(check_logs(_grpo(tmp_path, kl=None, extra={"rewards/chosen": zeros, "rewards/margins": zeros})))
    assert f.evidence.metric in {"rewards/chosen", "rewards/margins"}
