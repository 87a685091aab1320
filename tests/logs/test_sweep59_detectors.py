"""What the fifty-ninth log sweep found in the detectors: a Chainer DCGAN's ``gen/loss`` judged as
the run's training loss, a loss term at 1e16 beside a falling total, and a DDPG console's
``Episode: N  Avg: x  BestAvg: -inf`` (a best-so-far's initial -inf called non-finite, 36 means
over 19,500 episodes refused as too few)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose, run_log_check
from gradhealth.logs.series import RunLog, classify, make_series
from tests.logs.helpers import write

# --- a GAN player is never the run's training loss ----------------------------------------------


def _dcgan_records(n: int, rng: np.random.Generator) -> list[dict[str, float]]:
    """Chainer's LogReport of a DCGAN: the generator's loss climbing 1.0 -> 2.5 (running medians
    rise 2.5x) as the discriminator's falls 1.7 -> 0.65, the ordinary game."""
    t = np.linspace(0, 1, n)
    gen = (0.95 + 1.55 * t) * np.exp(rng.normal(0, 0.08, n))
    dis = (1.7 - 1.05 * t) * np.exp(rng.normal(0, 0.08, n))
    return [{"epoch": i // 20, "iteration": 100 * (i + 1), "gen/loss": float(g), "dis/loss": float(d),
             "elapsed_time": 30.0 * (i + 1)} for i, (g, d) in enumerate(zip(gen, dis, strict=True))]


def test_a_scoped_gan_player_is_a_metric_not_the_loss() -> None:
    assert classify("gen/loss") == ("metric", None)
    assert classify("dis/loss") == ("metric", None)
    assert classify("train/gen/loss") == ("metric", None)
    # a model's scope that names no GAN player still leaves the loss (Chainer's main/loss,
    # Neural Monkey's target/train_xent)
    assert classify("main/loss")[0] == "loss"
    assert classify("target/train_xent")[0] == "loss"


def test_a_dcgan_whose_generator_loss_rises_is_no_divergence(tmp_path: Path) -> None:
    records = _dcgan_records(200, np.random.default_rng(3))
    doc = run_log_check(write(tmp_path, "log", json.dumps(records, indent=4)))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]
    assert doc.status == "healthy"
    # the GAN checks see both players
    note = [f for f in doc.findings if f.code == "insufficient_data"]
    assert note and "gen/loss" in note[0].summary and "dis/loss" in note[0].summary


def test_a_gan_player_a_reader_calls_the_loss_is_not_judged_for_divergence() -> None:
    rng = np.random.default_rng(4)
    rec = _dcgan_records(200, rng)
    steps = [r["iteration"] for r in rec]
    run = RunLog(format="test", source="synthetic")
    run.series.append(make_series("gen/loss", steps, [r["gen/loss"] for r in rec], role="loss"))
    run.series.append(make_series("dis/loss", steps, [r["dis/loss"] for r in rec]))
    assert not [f for f in diagnose(run).findings if f.code == "loss_divergence"]
    # the same rise under a plain loss's name is a divergence (the check itself still works)
    plain = RunLog(format="test", source="synthetic")
    plain.series.append(make_series("loss", steps, [r["gen/loss"] for r in rec]))
    assert [f for f in diagnose(plain).findings if f.code == "loss_divergence"]


# --- a loss term at 1e15 or more blew up, whatever the total does ------------------------------


def _terms_csv(kl_top: float, name: str = "KL_loss") -> str:
    """A total loss falling 8.2 -> 2.5 over 300 steps beside its terms: gen_loss 8 -> 14 and a
    term ``name`` growing geometrically from 13 to ``kl_top`` over the run."""
    n = 300
    t = np.arange(n)
    total = 2.5 + 5.7 * np.exp(-t / 60)
    gen = 8.0 + 6.0 * t / (n - 1)
    kl = 13.0 * (kl_top / 13.0) ** (t / (n - 1))
    rows = "".join(f"{i},{a:.4f},{g:.4f},{k:.6g}\n" for i, a, g, k in zip(t * 5, total, gen, kl, strict=True))
    return f"step,loss,gen_loss,{name}\n" + rows


def test_a_loss_term_at_1e16_is_a_divergence_naming_the_term(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "train.csv", _terms_csv(1.1e16)))
    div = [f for f in doc.findings if f.code == "loss_divergence"]
    assert div and div[0].severity == "error"
    assert div[0].evidence.metric == "KL_loss"
    assert "a term of the loss" in div[0].summary
    # 13 * (1.1e16 / 13) ** (i / 299) >= 1e15 from i = ceil(299 * ln(1e15/13) / ln(1.1e16/13)) = 268
    first = int(np.ceil(299 * np.log(1e15 / 13) / np.log(1.1e16 / 13)))
    assert div[0].evidence.steps[0] == first * 5
    assert div[0].evidence.points == 300 - first


def test_a_loss_term_under_1e15_and_a_loss_scale_are_not_judged_so(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "a.csv", _terms_csv(5e14)))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]
    # an fp16 loss scale is no term of the loss, however large
    doc = run_log_check(write(tmp_path, "b.csv", _terms_csv(1.1e16, name="loss_scale")))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]


# --- a best-so-far's initial -inf, a bare Avg against an episode counter --------------------------


def test_best_so_far_names() -> None:
    from gradhealth.logs.detectors.nonfinite import best_so_far

    for name in ("best_loss", "best/acc", "BestAvg", "best avg", "best-reward", "val/best_acc", "eval_best_loss"):
        assert best_so_far(name), name
    for name in ("Avg", "bestow", "loss", "Bestiary"):
        assert not best_so_far(name), name


def _ddpg_console(means: list[float], every: int = 100) -> str:
    """A DDPG console: one line per ``every`` episodes with the mean of the last 100 episodes and
    the best such mean so far (-inf before the first)."""
    lines, best = ["#### DDPG", "```"], -np.inf
    for i, m in enumerate(means, 1):
        shown = f"{best:9.3f}" if np.isfinite(best) else "     -inf"
        lines.append(f"Episode: {i * every:5d}   Avg: {m:8.3f}   BestAvg: {shown}   σ: {12.5:7.3f}  |  "
                     f"Steps: {9000 * i:8d}   Secs: {40 * i:6d}")
        best = max(best, m)
    return "\n".join([*lines, "```"]) + "\n"


def _flat_means(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(-105.0 + rng.normal(0, 3.0, n))


def test_a_best_so_far_initial_inf_is_not_nonfinite(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "walker.md", _ddpg_console(_flat_means(40, 1))))
    assert not [f for f in doc.findings if f.code == "nonfinite"]


def test_a_best_so_far_nan_later_is_still_noted() -> None:
    run = RunLog(format="test", source="synthetic")
    steps = np.arange(30)
    run.series.append(make_series("loss", steps, np.linspace(2, 1, 30)))
    best = np.linspace(-100, -90, 30)
    best[0], best[20] = -np.inf, np.nan
    run.series.append(make_series("BestAvg", steps, best))
    found = [f for f in diagnose(run).findings if f.code == "nonfinite"]
    assert found and found[0].severity == "info"


def test_a_bare_avg_against_episodes_spanning_4000_is_a_plateau(tmp_path: Path) -> None:
    # 40 means, every 100 episodes: 4,000 episodes (>= 1,000) though 40 points (< 200)
    doc = run_log_check(write(tmp_path, "walker.md", _ddpg_console(_flat_means(40, 2))))
    plateau = [f for f in doc.findings if f.code == "reward_plateau"]
    assert plateau and plateau[0].evidence.metric == "Avg"
    assert plateau[0].evidence.episodes == 4000
    assert "spanning 4,000 episodes" in plateau[0].summary


def test_a_bare_avg_over_too_few_episodes_or_with_a_return_is_not_judged_so(tmp_path: Path) -> None:
    # 40 means every 10 episodes: 400 episodes, too few to say the agent never learnt
    doc = run_log_check(write(tmp_path, "short.md", _ddpg_console(_flat_means(40, 2), every=10)))
    assert not [f for f in doc.findings if f.code == "reward_plateau"]
    # with no episode counter, a bare Avg is no return
    run = RunLog(format="test", source="synthetic")
    run.series.append(make_series("Avg", np.arange(300), _flat_means(300, 5)))
    assert not [f for f in diagnose(run).findings if f.code == "reward_plateau"]
    # beside a named return, the bare Avg is not read as one (the return is judged instead)
    run = RunLog(format="test", source="synthetic")
    steps = np.arange(40)
    run.series.append(make_series("Episode", steps, (steps + 1) * 100))
    run.series.append(make_series("Avg", steps, _flat_means(40, 6)))
    run.series.append(make_series("episode_reward", steps, np.linspace(-100, 200, 40)))
    assert not [f for f in diagnose(run).findings if f.code == "reward_plateau"]
