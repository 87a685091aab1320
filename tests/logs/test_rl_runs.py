"""RL and preference runs (TRL's GRPO, DPO), as real ones read wrongly:

- a policy that never moved from its reference model (a GRPO run logged ``kl`` exactly 0 at all
  200 steps with a peak learning rate of 1e-6, its reward flat, and read healthy);
- steps whose gradient is exactly 0 because every completion in their group scored the same (a
  GRPO run with 16 % such steps was a zero_gradient warning with a generic cause).

The files here are written in the Trainer's ``trainer_state.json`` form."""

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
    return _trainer_state(tmp_path, entries)


def _trainer_state(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": len(entries), "log_history": entries}))
    return path


def _of(doc, code: str) -> list:  # noqa: ANN001
    return [f for f in doc.findings if f.code == code]


def _frozen(doc):  # noqa: ANN001, ANN202
    return _of(doc, "small_updates")


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


def _zero_spread(tmp_path: Path, zero_steps: set[int], *, spread_zero: set[int], n: int = 200,
                 every: int = 1) -> Path:
    """A GRPO run whose grad norm is exactly 0 on ``zero_steps`` and whose ``reward_std`` is 0 on
    ``spread_zero``; rewards are logged every ``every`` steps (num_iterations reuses a batch)."""
    rng = np.random.default_rng(5)
    entries = []
    for step in range(1, n + 1):
        e = {"step": step, "loss": float(1e-9 * rng.standard_normal()), "learning_rate": 1e-6,
             "grad_norm": 0.0 if step in zero_steps else float(0.05 + 0.01 * rng.random())}
        if (step - 1) % every == 0:
            e["reward"] = float(rng.random())
            e["reward_std"] = 0.0 if step in spread_zero else float(0.2 + 0.1 * rng.random())
        entries.append(e)
    return _trainer_state(tmp_path, entries)


def _zero(doc):  # noqa: ANN001, ANN202
    return _of(doc, "zero_gradient")


def test_zero_gradients_on_groups_without_reward_spread_are_explained_and_a_note(tmp_path: Path) -> None:
    zero = set(range(1, 200, 7))  # 29 of 200 steps
    [f] = _zero(check_logs(_zero_spread(tmp_path, zero, spread_zero=zero)))
    assert f.severity == "info" and f.evidence.explained_by == "reward_std"
    assert f.evidence.explained_steps == len(zero) and f.evidence.value == pytest.approx(len(zero) / 200)
    assert "reward_std was 0" in f.summary and "nothing is learned" not in f.explanation


def test_a_reward_logged_once_per_generated_batch_covers_the_steps_that_reuse_it(tmp_path: Path) -> None:
    # num_iterations=2: rewards on odd steps only; the even step after a spread-less batch is 0 too
    bad = {s for s in range(1, 200, 2) if s % 5 == 0}
    zero = bad | {s + 1 for s in bad}
    [f] = _zero(check_logs(_zero_spread(tmp_path, zero, spread_zero=bad, every=2)))
    assert f.evidence.explained_steps == len(zero) and f.severity == "info"


@pytest.mark.parametrize("keep", [5, 2])   # 80 %, then 45 % of the steps: from a quarter on, a warning
def test_many_steps_without_reward_spread_is_a_warning(tmp_path: Path, keep: int) -> None:
    zero = {s for s in range(1, 201) if s % keep != 0 and s > 20}
    [f] = _zero(check_logs(_zero_spread(tmp_path, zero, spread_zero=zero)))
    assert f.severity == "warning" and f"On {len(zero) / 200:.0%} of the steps here nothing is learned" in f.explanation


def test_zero_gradients_where_the_rewards_did_spread_keep_the_plain_warning(tmp_path: Path) -> None:
    zero = set(range(1, 200, 7))
    [f] = _zero(check_logs(_zero_spread(tmp_path, zero, spread_zero=set())))
    assert f.severity == "warning" and "explained_by" not in f.evidence.model_dump()


def test_a_dqn_td_loss_that_grows_with_the_returns_is_not_a_divergence() -> None:
    from gradhealth.logs.check import diagnose
    from tests.logs.test_detectors_real_runs import found, run_of

    # a DQN on Breakout (Stable-Baselines3's table): the TD loss regresses onto returns that grow
    # as the policy improves, 1e-4 -> 5e-4 while the episode reward goes 1.6 -> 18.9
    rng = np.random.default_rng(0)
    steps = np.arange(16_000, 500_000, 4_000)
    n = len(steps)
    reward = np.linspace(1.6, 18.9, n) + rng.normal(0, 0.5, n)
    td = np.linspace(1e-4, 5e-4, n) * np.exp(rng.normal(0, 0.3, n))
    run = run_of(steps, rollout__ep_rew_mean=reward, train__loss=td)
    assert run.first("loss") is not None and run.first("loss").name == "train/loss"
    assert not found(diagnose(run), "loss_divergence")
    # the same run without its rollouts is a supervised loss that rose 5x: a divergence
    assert found(diagnose(run_of(steps, train__loss=td)), "loss_divergence")
    # and a TD loss that blows up by orders of magnitude diverged whatever the reward did
    blown = td * np.where(np.arange(n) > n // 2, 1e5, 1.0)
    assert found(diagnose(run_of(steps, rollout__ep_rew_mean=reward, train__loss=blown)), "loss_divergence")
