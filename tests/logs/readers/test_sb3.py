"""Stable-Baselines3's console tables, written out the way its logger prints them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.sb3 import READER
from gradhealth.logs.sniff import detect


def _table(rows: list[tuple[str, str]]) -> str:
    """One table as SB3's HumanOutputFormat draws it: sections, indented keys, padded columns."""
    width_k = max(len(k) for k, _ in rows) + 4
    width_v = max(len(v) for _, v in rows) + 1
    rule = "-" * (width_k + width_v + 7)
    body = []
    for k, v in rows:
        key = k if k.endswith("/") else "    " + k
        body.append(f"| {key:<{width_k}} | {v:<{width_v}} |")
    return "\n".join([rule, *body, rule])


def _log(n: int, loss: list[float] | None = None, tail: str = "") -> str:
    rng = np.random.default_rng(0)
    out = ["A.L.E: Arcade Learning Environment (version 0.8.1+53f58b7)", "Using cpu device",
           "Wrapping the env in a DummyVecEnv."]
    for i in range(n):
        rows = [("rollout/", ""), ("ep_len_mean", f"{190 + i}"), ("ep_rew_mean", f"{1.5 + 0.2 * i:.3g}"),
                ("time/", ""), ("fps", "180"), ("iterations", f"{i + 1}"), ("total_timesteps", f"{2048 * (i + 1)}")]
        if i:
            value = loss[i] if loss is not None else 0.05 * math.exp(rng.normal(0, 0.3))
            rows += [("train/", ""), ("approx_kl", "0.0142255565"), ("entropy_loss", "-1.38"),
                     ("learning_rate", "0.0003"), ("loss", f"{value:.3g}"), ("n_updates", f"{10 * i}"),
                     ("policy_gradi...", "-0.00751")]  # SB3 shortens keys past its width
        out.append(_table(rows))
    return "\n".join(out) + "\n" + tail


def test_each_table_is_a_record_stepped_by_total_timesteps(tmp_path: Path) -> None:
    path = tmp_path / "ppo.txt"
    path.write_text(_log(30))
    assert detect(path).name == "sb3"
    run = read_log(path)
    series = {s.name: s for s in run.series}
    rew, loss = series["rollout/ep_rew_mean"], series["train/loss"]
    assert list(rew.steps[:3]) == [2048, 4096, 6144] and rew.values[2] == pytest.approx(1.9)
    assert loss.role == "loss" and len(loss) == 29 and loss.steps[0] == 4096
    assert series["train/learning_rate"].role == "learning_rate"
    assert "time/total_timesteps" not in series
    assert check_logs(path).status == "healthy"


def test_a_nan_loss_in_a_table_is_found(tmp_path: Path) -> None:
    loss = [0.05] * 12 + [math.nan] * 8
    path = tmp_path / "ppo.txt"
    path.write_text(_log(20, loss))
    doc = check_logs(path)
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings)


def test_a_log_cut_inside_a_table_keeps_it_and_says_so(tmp_path: Path) -> None:
    text = _log(10)
    cut = text[:text.rindex("    loss ")]  # the last table's rule and last rows lost
    path = tmp_path / "ppo.txt"
    path.write_text(cut)
    run = read_log(path)
    rew = next(s for s in run.series if s.name == "rollout/ep_rew_mean")
    assert rew.steps[-1] == 2048 * 10
    assert any(w.code == "truncated_log" for w in run.warnings)


def test_a_console_without_sb3_sections_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("\n".join(f"| epoch | {i} |\n| loss | {1 / (i + 1):.3f} |\n" + "-" * 20 for i in range(10)))
    assert READER.sniff(path.name, path.read_bytes()) == 0.0


def test_openai_baselines_tables_without_sections(tmp_path):
    # stable-baselines 2's PPO2 (hill-a/stable-baselines #178): one table per update, no sections;
    # ep_rewmean is nan until an episode ends, which is no training NaN
    def table(steps: int, value_loss: float, rew: str) -> str:
        rows = [("approxkl", "6.6147855e-05"), ("ep_rewmean", rew), ("nupdates", str(steps // 128)),
                ("policy_entropy", "0.6017113"), ("serial_timesteps", str(steps)),
                ("total_timesteps", str(steps)), ("value_loss", str(value_loss))]
        rule = "-" * 38
        return "\n".join([rule, *[f"| {k:<18} | {v:<13} |" for k, v in rows], rule]) + "\n"

    path = tmp_path / "ppo2.txt"
    path.write_text(table(24960, 63.7, "nan") + table(25088, 41.2, "nan") + table(25216, 30.5, "12.5"))
    assert detect(path).name == "sb3"
    run = read_log(path)
    s = {x.name: x for x in run.series}
    assert s["value_loss"].steps.tolist() == [24960, 25088, 25216]
    assert s["value_loss"].values.tolist() == [63.7, 41.2, 30.5]
    assert s["ep_rewmean"].values[-1] == 12.5 and "total_timesteps" not in s
    doc = check_logs(path)
    assert not [f for f in doc.findings if f.code == "nonfinite" and f.severity != "info"]
