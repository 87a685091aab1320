"""logsweep78: RLHF fine-tuning logs (TRL GRPO's trainer_state) got none of the RL judgements. The
batch-mean reward these trainers log (``reward``, ``objective/scores``, ``critic/score/mean``) is the
run's return for reward_plateau and reward_collapse, judged with the logged-means bar (200 points),
with a note where it is too short (u01: 50 points); a KL to the reference model that blows up is
``kl_divergence`` (u06: 0.05 -> 540 nats per token while the reward fell from 0.6 to -2.5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.library import check_logs


def _codes(path: Path) -> dict[str, Finding]:
    return {f.code: f for f in check_logs(path).findings}


def _grpo_state(tmp_path: Path, reward: np.ndarray, kl: np.ndarray, *, reward_key: str = "reward",
                kl_key: str = "kl", grad: np.ndarray | None = None, extra: dict | None = None) -> Path:
    """A TRL GRPOTrainer trainer_state.json: one log every 5 steps with the loss (about beta x KL),
    the batch-mean reward, its group spread, the KL to the reference and the gradient norm."""
    rng = np.random.default_rng(1)
    logs = []
    for i, (r, k) in enumerate(zip(reward, kl, strict=True)):
        entry = {"step": 5 * (i + 1), "epoch": 0.0625 * (i + 1), "learning_rate": 1e-5,
                 "loss": float(0.04 * k + 0.01 * rng.standard_normal()),
                 "grad_norm": float(grad[i]) if grad is not None else float(0.3 + 0.05 * rng.random()),
                 reward_key: float(r), "reward_std": 0.8, kl_key: float(k)}
        entry.update(extra or {})
        logs.append(entry)
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 5 * len(logs), "log_history": logs}))
    return path


def _noisy_flat(n: int, level: float = 0.55, spread: float = 0.3, seed: int = 0) -> np.ndarray:
    return level + spread * np.random.default_rng(seed).standard_normal(n)


def test_a_short_grpo_reward_gets_a_note_that_it_was_not_judged(tmp_path: Path) -> None:
    # u01: 50 batch means over 250 steps, flat and noisy, KL 0 -> 0.06: too few points to say the
    # reward never rose (200 logged means are asked), and "healthy" must say so
    n = 50
    path = _grpo_state(tmp_path, _noisy_flat(n), np.linspace(0.0, 0.06, n))
    doc = check_logs(path)
    found = {f.code: f for f in doc.findings}
    assert doc.status == "healthy" and "kl_divergence" not in found
    note = found["insufficient_data"]
    assert note.severity == "info" and note.summary.startswith("rewards not judged")
    unjudged = note.evidence.model_dump()["unjudged"]
    assert unjudged[0]["metric"] == "reward" and unjudged[0]["points"] == n
    assert "200 logged means" in unjudged[0]["reason"]


def test_a_long_flat_grpo_reward_is_a_plateau_judged_on_logged_means(tmp_path: Path) -> None:
    # 300 batch means (over the 200 logged means asked, under the 1,000 an episode series needs),
    # i.i.d. around 0.55: the running median never leaves the start's band
    n = 300
    path = _grpo_state(tmp_path, _noisy_flat(n), np.linspace(0.0, 0.05, n))
    plateau = _codes(path)["reward_plateau"]
    ev = plateau.evidence.model_dump()
    assert ev["metric"] == "reward" and ev["points"] == n
    assert abs(ev["start"] - 0.55) < 0.15 and abs(ev["last"] - 0.55) < 0.15


def test_a_rising_grpo_reward_is_healthy(tmp_path: Path) -> None:
    n = 300
    reward = np.linspace(0.2, 0.8, n) + 0.1 * np.random.default_rng(2).standard_normal(n)
    found = _codes(_grpo_state(tmp_path, reward, np.linspace(1e-5, 0.08, n)))
    assert not {"reward_plateau", "reward_collapse", "kl_divergence", "insufficient_data"} & set(found)


def test_other_trainers_reward_names_are_the_return(tmp_path: Path) -> None:
    # verl's critic/score/mean (one point per step), TRL PPO's objective/scores: flat over 300 steps
    n = 300
    for key in ("critic/score/mean", "objective/scores", "env/reward_mean"):
        sub = tmp_path / key.replace("/", "_")
        sub.mkdir()
        found = _codes(_grpo_state(sub, _noisy_flat(n), np.linspace(0.0, 0.05, n), reward_key=key))
        assert found["reward_plateau"].evidence.metric == key


def test_dpo_implicit_rewards_are_not_a_return(tmp_path: Path) -> None:
    # DPO's rewards/chosen (beta x the log-ratio to the reference) falls in healthy runs
    n = 300
    logs = [{"step": i + 1, "loss": 0.69 * math.exp(-i / 150), "grad_norm": 1.0, "learning_rate": 5e-7,
             "rewards/chosen": -0.01 * i, "rewards/rejected": -0.03 * i, "rewards/margins": 0.02 * i,
             "rewards/accuracies": 0.5 + i / 700} for i in range(n)]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": n, "log_history": logs}))
    found = _codes(path)
    assert not {"reward_plateau", "reward_collapse", "kl_divergence"} & set(found)


def _blow_up(n: int) -> tuple[np.ndarray, np.ndarray]:
    """u06's shape: KL about 0.05 and the reward about 0.6 for 60% of the run, then the KL grows
    e-fold every 2 logs to 540 while the reward falls to -2.5."""
    start = int(0.6 * n)
    kl = np.full(n, 0.05)
    kl[start:] = 0.05 * np.exp(np.linspace(0.0, math.log(540 / 0.05), n - start))
    reward = _noisy_flat(n, 0.6, 0.2, seed=3)
    reward[start:] = np.linspace(0.6, -2.5, n - start) + 0.1 * np.random.default_rng(4).standard_normal(n - start)
    return reward, kl


def test_a_kl_blow_up_is_an_error_with_its_levels_and_the_reward(tmp_path: Path) -> None:
    n = 50
    reward, kl = _blow_up(n)
    found = _codes(_grpo_state(tmp_path, reward, kl))
    f = found["kl_divergence"]
    ev = f.evidence.model_dump()
    assert f.severity == "error" and ev["metric"] == "kl"
    assert ev["early"] == 0.05 and ev["peak"] == max(kl) and ev["peak_step"] == 5 * n
    # the last fifth's median: the 5th and 6th of its last 10 values (an independent computation)
    assert math.isclose(ev["last"], float(np.median(kl[-10:])), rel_tol=1e-9) and ev["last"] > 10
    assert ev["reward"]["metric"] == "reward" and ev["reward"]["start"] > 0.3 and ev["reward"]["last"] < -1.5
    assert [r.id for r in f.remedies][:2] == ["raise_kl_coefficient", "lower_learning_rate"]
    assert "reward_collapse" in found


def test_a_kl_that_rises_while_the_reward_collapses_is_a_warning(tmp_path: Path) -> None:
    # 0.05 -> 2 nats per token (40x): under the 10-nat blow-up, but the reward fell from 0.6 to -2.5
    n = 60
    reward, _ = _blow_up(n)
    start = int(0.6 * n)
    kl = np.full(n, 0.05)
    kl[start:] = np.linspace(0.05, 2.0, n - start)
    kl[-int(0.2 * n):] = 2.0
    f = _codes(_grpo_state(tmp_path, reward, kl))["kl_divergence"]
    assert f.severity == "warning" and f.evidence.model_dump()["reward_collapsed"] is True


def test_a_healthy_kl_growth_and_a_sequence_kl_are_not_a_blow_up(tmp_path: Path) -> None:
    n = 300
    reward = np.linspace(0.2, 0.8, n) + 0.1 * np.random.default_rng(2).standard_normal(n)
    # per token: 1e-5 -> 0.1, four decades but a tenth of a nat
    assert "kl_divergence" not in _codes(_grpo_state(tmp_path, reward, np.geomspace(1e-5, 0.1, n)))
    # TRL PPO's objective/kl is summed over the response: 0.5 -> 60 nats per sequence, under 100
    sub = tmp_path / "ppo"
    sub.mkdir()
    found = _codes(_grpo_state(sub, reward, np.geomspace(0.5, 60, n), reward_key="objective/scores",
                               kl_key="objective/kl"))
    assert "kl_divergence" not in found


def test_a_kl_exactly_zero_is_still_small_updates(tmp_path: Path) -> None:
    n = 50
    found = _codes(_grpo_state(tmp_path, _noisy_flat(n), np.zeros(n)))
    assert "small_updates" in found and "kl_divergence" not in found


def test_a_vae_kl_term_is_not_a_policy_kl(tmp_path: Path) -> None:
    # a VAE's KL term rising from 0.01 to 50 (no reward logged): its own quantity
    n = 100
    logs = [{"step": i + 1, "loss": 100 * math.exp(-i / 40) + 20, "kl": float(x)}
            for i, x in enumerate(np.geomspace(0.01, 50, n))]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": n, "log_history": logs}))
    assert "kl_divergence" not in _codes(path)
