"""logsweep79: one spike raised over several points is one spike event (u08), a spike the log ends in
folded into the divergence it starts (u07), one reward_collapse for a training and an evaluation
return that collapsed together (u09), and the tools' files each reader takes named by ``formats``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.cli import main
from gradhealth.core.document import Finding
from gradhealth.library import check_logs
from gradhealth.logs.detectors.explosion import spike_events
from gradhealth.logs.load import read_log


def _of(path: Path, code: str) -> list[Finding]:
    return [f for f in check_logs(path).findings if f.code == code]


# --- 1. one excursion over several raised points is one spike ---------------------------------------

def _epoch_csv(tmp_path: Path, raised: dict[int, float], n: int = 500) -> Path:
    """A Keras CSVLogger file: an epoch loss falling from ~0.06 to ~0.004, and ``raised`` epochs."""
    rng = np.random.default_rng(3)
    rows = ["epoch,loss,val_loss"]
    for e in range(1, n + 1):
        loss = (0.004 + 0.055 * math.exp(-(e - 1) / 20)) * math.exp(0.1 * float(rng.standard_normal()))
        val = (0.0025 + 0.05 * math.exp(-(e - 1) / 20)) * math.exp(0.1 * float(rng.standard_normal()))
        rows.append(f"{e},{raised.get(e, loss):.4f},{val:.4f}")
    path = tmp_path / "training.log"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_one_excursion_over_five_epochs_is_one_spike_event(tmp_path: Path) -> None:
    # logsweep79 u08: one spike thrown to 3.48 and falling back over 5 epochs, 1.21, 0.31, 0.061,
    # 0.012, then at its level 0.004 again: one event, not five spikes
    path = _epoch_csv(tmp_path, {250: 3.48, 251: 1.21, 252: 0.31, 253: 0.061, 254: 0.012})
    [spike] = [f for f in _of(path, "loss_spike") if f.evidence.metric == "loss"]
    extra = spike.evidence.model_extra or {}
    assert spike.summary.startswith("1 loss spike(s) in loss, the largest 3.48 at epoch 250")
    assert "raised from epoch 250 to epoch 254 (5 points)" in spike.summary
    assert extra["episodes"] == 1
    [event] = extra["events"]
    assert (event["start"], event["end"], event["peak_step"], event["points"]) == (250, 254, 250, 5)
    assert event["peak"] == pytest.approx(3.48) and event["recovered"] is True
    # the raised points are kept as before
    assert extra["count"] == 5 and extra["spike_steps"] == [250, 251, 252, 253, 254]


def test_separate_spikes_are_separate_events(tmp_path: Path) -> None:
    # two spikes 100 epochs apart, the loss back at its level between them: two events
    path = _epoch_csv(tmp_path, {150: 1.5, 151: 0.4, 300: 2.0})
    [spike] = [f for f in _of(path, "loss_spike") if f.evidence.metric == "loss"]
    extra = spike.evidence.model_extra or {}
    assert extra["episodes"] == 2 and [(e["start"], e["end"]) for e in extra["events"]] == [(150, 151), (300, 300)]
    assert spike.summary.startswith("2 loss spike(s) in loss over 3 raised points")


def test_spikes_with_raised_points_between_them_are_one_event() -> None:
    base = np.ones(10)
    v = np.ones(10)
    v[[3, 5]] = 20.0
    v[4] = 3.0  # still 3x its baseline between the two spikes: the run had not come back
    assert spike_events(np.array([3, 5]), v, base) == [(0, 2)]
    v[4] = 1.1  # back at its level between them: two spikes
    assert spike_events(np.array([3, 5]), v, base) == [(0, 1), (1, 2)]
    assert spike_events(np.array([2, 3, 4, 8]), np.ones(10), base) == [(0, 3), (3, 4)]


def test_a_short_grad_norm_excursion_is_one_event(tmp_path: Path) -> None:
    # a short grad-norm log (judged against the median of all its points): 2 glaring points in a row
    norms = [1.0, 1.1, 0.9, 1.0, 1.2, 900.0, 400.0, 1.0, 0.9, 1.1, 1.0, 0.95]
    rows = [json.dumps({"step": 10 * (i + 1), "loss": 2.0 - 0.05 * i, "grad_norm": g}) for i, g in enumerate(norms)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(rows) + "\n")
    [spike] = _of(path, "gradient_spike")
    extra = spike.evidence.model_extra or {}
    assert extra["count"] == 2 and extra["episodes"] == 1
    assert [(e["start"], e["end"], e["points"]) for e in extra["events"]] == [(60, 70, 2)]
    assert spike.summary.startswith("1 gradient norm spike(s) in grad_norm")


# --- 2. a spike the log ends in, the start of a reported divergence ---------------------------------

def _diverging_trainer_state(tmp_path: Path) -> Path:
    """logsweep79 u07's shape: a per-batch loss at ~0.04 until step 8200, then x1.25 every 100 steps to
    ~1e5 at 15000; an evaluation every 1000 steps at ~0.24 until 10000, then x9 per evaluation."""
    rng = np.random.default_rng(5)
    history: list[dict] = []
    for step in range(100, 15001, 100):
        noise = math.exp(0.3 * float(rng.standard_normal()))  # a per-batch loss's scatter
        loss = 0.75 * math.exp(-step / 800) + 0.04 * noise
        if step > 8200:
            loss = 0.04 * 1.25 ** ((step - 8200) / 100) * noise
        history.append({"epoch": step / 832, "learning_rate": 1e-5 * (1 - step / 15100), "loss": round(loss, 4),
                        "step": step})
        if step % 1000 == 0:
            ev = 0.24 + 0.01 * float(rng.standard_normal()) if step <= 10000 else 0.24 * 9 ** ((step - 10000) / 1000)
            history.append({"epoch": step / 832, "eval_loss": ev, "step": step})
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 15000, "max_steps": 15000, "log_history": history}))
    return path


def test_a_spike_the_log_ends_in_is_folded_into_the_divergence(tmp_path: Path) -> None:
    doc = check_logs(_diverging_trainer_state(tmp_path))
    codes = [f.code for f in doc.findings]
    assert "loss_spike" not in codes
    [div] = [f for f in doc.findings if f.code == "loss_divergence"]
    assert div.severity == "error"
    spikes = (div.evidence.model_extra or {})["spikes"]
    assert [s["metric"] for s in spikes] == ["eval_loss"]
    assert spikes[0]["ends_at_spike"] is True and spikes[0]["events"][-1]["end"] == 15000
    assert "the log ends in it: eval_loss reached" in div.summary and "at step 15000" in div.summary


def test_a_spike_before_the_divergence_stands(tmp_path: Path) -> None:
    # the same run with an evaluation spike at step 6000 it came back from: not the divergence's
    path = _diverging_trainer_state(tmp_path)
    state = json.loads(path.read_text())
    for rec in state["log_history"]:
        if rec.get("step") == 6000 and "eval_loss" in rec:
            rec["eval_loss"] = 30.0
    path.write_text(json.dumps(state))
    doc = check_logs(path)
    assert [f.evidence.metric for f in doc.findings if f.code == "loss_spike"] == ["eval_loss"]


# --- 3. one reward_collapse for a training and an evaluation return --------------------------------

def _progress_csv(tmp_path: Path) -> Path:
    """An SB3 PPO progress.csv: ep_rew_mean -1200 -> 950 (at 40 %) -> -1200 over the last third, and an
    evaluation every 5th update doing the same."""
    rng = np.random.default_rng(9)
    n = 300
    rows = ["time/total_timesteps,rollout/ep_rew_mean,train/loss,eval/mean_reward"]
    for i in range(n):
        x = i / n
        level = -1200 + 2150 * min(x / 0.4, 1.0) if x < 0.6 else 950 - 2150 * min((x - 0.6) / 0.1, 1.0)
        ev = f"{level + 40 * float(rng.standard_normal()):.3f}" if i % 5 == 4 else ""
        rows.append(f"{2048 * (i + 1)},{level + 20 * float(rng.standard_normal()):.3f},{abs(rng.normal(50, 5)):.3f},{ev}")
    path = tmp_path / "progress.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_training_and_an_evaluation_return_that_collapsed_together_are_one_finding(tmp_path: Path) -> None:
    [collapse] = _of(_progress_csv(tmp_path), "reward_collapse")
    extra = collapse.evidence.model_extra or {}
    assert collapse.evidence.metric == "rollout/ep_rew_mean"
    assert extra["metrics"] == ["rollout/ep_rew_mean", "eval/mean_reward"]
    [folded] = extra["also_collapsed"]
    assert folded["metric"] == "eval/mean_reward" and folded["peak"] > 800 and folded["last"] < -1000
    assert "the same collapse in the evaluations: eval/mean_reward climbed from" in collapse.summary


# --- 4. the tools' files each reader takes, in `gradhealth formats` --------------------------------

def test_formats_names_the_tools_files_each_reader_takes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "Ultralytics YOLO results.csv" in lines["keras"]
    assert "Stable-Baselines3 progress.csv" in lines["native"]
    # ... and those files are read by the readers named
    yolo = tmp_path / "results.csv"
    yolo.write_text("".join(
        f"{e:>25},{1.4 - 0.01 * e:>23.4f},{2.6 - 0.02 * e:>23.4f},{0.3 + 0.01 * e:>23.5f}\n" if e >= 0 else
        f"{'epoch':>25},{'train/box_loss':>23},{'train/cls_loss':>23},{'metrics/mAP50(B)':>23}\n"
        for e in range(-1, 20)))
    assert read_log(yolo).format == "keras"
    assert read_log(_progress_csv(tmp_path)).format == "native"


def test_a_fractional_step_is_written_with_three_decimals_not_the_floats_digits() -> None:
    # logsweep81: StyleGAN's stats.jsonl counts in kimg; a summary said "step 272.0320129394531"
    from gradhealth.logs.series import make_series

    s = make_series("loss", [0.0, 136.016, 272.0320129394531], [1.0, 0.9, 0.8])
    assert s.where(272.0320129394531) == "step 272.032"
    assert s.between(2256.008056640625, 3000.0) == "steps 2256.008-3000"
    assert s.where(0.000512) == "step 0.000512" and s.where(40.5) == "step 40.5" and s.where(12.0) == "step 12"
