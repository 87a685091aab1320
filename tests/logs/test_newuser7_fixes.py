"""newuser7's log diagnoses (items 1, 3, 4):

1. a 20-64-64-3 MLP under SGD lr=5 whose loss spikes and ends above chance (ln 3) read only as
   spikes "the run recovered after each";
3. a run killed after 18 steps, its loss falling steadily, read "loss barely moved" at warning;
4. a remasking GRPO run's 164 zero-gradient steps were each "a step where reward_std was 0", but
   82 of them log no reward_std at all.

Each log is written here in the form the tool reads (the recorder's JSON Lines, the Trainer's
trainer_state.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs


def _of(doc, code: str) -> list:  # noqa: ANN001
    return [f for f in doc.findings if f.code == code]


# --- 4: zero gradients half explained by a reward spread logged at that step --------------------


def _pairs(tmp_path: Path) -> Path:
    """GRPO with num_iterations=2: rewards logged on odd steps only. The batches generated at steps
    1, 13, 25, ... had no reward spread, so those steps and the next (reusing them) have grad norm 0."""
    rng = np.random.default_rng(7)
    entries = []
    bad = set(range(1, 400, 12))
    for step in range(1, 401):
        e = {"step": step, "loss": float(1e-9 * rng.standard_normal()), "learning_rate": 1e-6,
             "grad_norm": 0.0 if step in bad or step - 1 in bad else float(0.05 + 0.01 * rng.random())}
        if step % 2 == 1:
            e["reward"] = float(rng.random())
            e["reward_std"] = 0.0 if step in bad else float(0.2 + 0.1 * rng.random())
        entries.append(e)
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 400, "log_history": entries}))
    return path


def test_zero_gradient_counts_the_steps_with_the_spread_logged_and_those_without(tmp_path: Path) -> None:
    [f] = _of(check_logs(_pairs(tmp_path)), "zero_gradient")
    # 34 bad batches (1, 13, ..., 397), each a zero step and its reusing twin: 68 zero steps
    assert f.evidence.explained_steps == 68
    ev = f.evidence.model_dump()
    assert ev["explained_logged_steps"] == 34 and ev["explained_carried_steps"] == 34
    assert "each a step where" not in f.summary
    assert "34 of them at a step where reward_std was 0" in f.summary
    assert "34 with no reward_std logged" in f.summary


# --- 1 and 3: the recorder's JSON Lines --------------------------------------------------------


def _recorder_file(path: Path, loss: np.ndarray, grad: np.ndarray, params: dict[str, str], *, ended: bool = True,
                   lr: float = 5.0) -> Path:
    """What GradientRecorder writes: a start record with the params, one point per metric and step."""
    lines = [json.dumps({"gradhealth_recorder": "start", "params": params})]
    for step, (lv, gv) in enumerate(zip(loss, grad, strict=True)):
        for metric, value in (("loss", lv), ("grad_norm", gv), ("lr", lr)):
            lines.append(json.dumps({"step": step, "metric": metric, "value": float(value), "wall_time": 1.0e9 + step}))
    if ended:
        lines.append(json.dumps({"gradhealth_recorder": "end", "logged_steps": len(loss)}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _unstable_run(tmp_path: Path, params: dict[str, str]) -> Path:
    """newuser7's lr=5 run in outline: 200 SGD steps of a 3-class classifier, the loss ln 3 at step 0,
    then thrown up (1.4-2.1 over the first 20 steps, spikes of 4.6, 8.1 and 3.8 at steps 9, 15 and 23)
    and settling around 1.2, above chance, to the end; the grad norm spikes with it."""
    rng = np.random.default_rng(11)
    n = 200
    loss = 1.2 * np.exp(0.08 * rng.standard_normal(n))
    loss[0] = 1.106
    loss[1:20] = 1.6 * np.exp(0.15 * rng.standard_normal(19))
    loss[[9, 15, 23]] = [4.6, 8.1, 3.8]
    grad = 1.1 * np.exp(0.2 * rng.standard_normal(n))
    grad[[15, 35, 46, 160]] = [7.3, 6.0, 6.5, 6.2]
    return _recorder_file(tmp_path / "gradients.jsonl", loss, grad, params)


def test_spikes_that_fall_back_to_a_loss_above_chance_are_not_recovered_and_the_run_never_learnt(
        tmp_path: Path) -> None:
    doc = check_logs(_unstable_run(tmp_path, {"max_grad_norm": "1.0", "num_classes": "3"}))
    [plateau] = _of(doc, "loss_plateau")
    assert plateau.severity == "warning" and "chance for 3 classes (ln 3" in plateau.summary
    assert plateau.evidence.at_chance["num_classes"] == 3
    # the loss spikes: the rate is too large, not too small
    assert [r.id for r in plateau.remedies] == ["lower_learning_rate"]
    for code in ("loss_spike", "gradient_spike"):
        [spike] = _of(doc, code)
        assert "recovered after" not in spike.summary and "the run never learnt" in spike.summary
        assert f"ln 3 = {math.log(3):.4g}" in spike.summary
        assert spike.evidence.recovered is False and spike.severity == "warning"


def test_without_a_class_count_the_start_the_spikes_lifted_is_the_first_point(tmp_path: Path) -> None:
    doc = check_logs(_unstable_run(tmp_path, {"max_grad_norm": "1.0"}))
    [plateau] = _of(doc, "loss_plateau")
    assert plateau.severity == "warning" and "never fell below its first point (1.106" in plateau.summary
    assert [r.id for r in plateau.remedies] == ["lower_learning_rate"]
    [spike] = _of(doc, "loss_spike")
    assert "no lower than where it began (1.106, its first point)" in spike.summary


def test_a_run_that_learns_through_its_spikes_keeps_recovered(tmp_path: Path) -> None:
    # the same start and spikes, then the loss falls to 0.3: the spikes did recover
    rng = np.random.default_rng(11)
    n = 200
    loss = np.maximum(1.1 * np.exp(-np.arange(n) / 50), 0.3) * np.exp(0.05 * rng.standard_normal(n))
    loss[[9, 15, 23]] = [4.6, 8.1, 3.8]
    grad = 1.1 * np.exp(0.2 * rng.standard_normal(n))
    doc = check_logs(_recorder_file(tmp_path / "gradients.jsonl", loss, grad, {"num_classes": "3"}, lr=0.1))
    assert not _of(doc, "loss_plateau")
    [spike] = _of(doc, "loss_spike")
    assert "the run recovered after each" in spike.summary


def test_a_run_stopped_after_18_steps_while_its_loss_falls_is_a_note(tmp_path: Path) -> None:
    # newuser7 3: killed at step 17, 1.106 -> 1.07 (3.6 %) at about 0.2 % a step; it went on to 0.10.
    # Its trend over 18 points is a fall (99 % interval below 0): too few steps to say it never learnt.
    rng = np.random.default_rng(4)
    steps = np.arange(18)
    loss = 1.106 * np.exp(-0.0022 * steps) * (1 + 0.008 * rng.standard_normal(18))
    grad = 0.4 + 0.02 * rng.standard_normal(18)
    doc = check_logs(_recorder_file(tmp_path / "gradients.jsonl", loss, grad, {}, ended=False, lr=0.1))
    [plateau] = _of(doc, "loss_plateau")
    assert plateau.severity == "info" and "too few steps to tell" in plateau.summary
    assert not plateau.remedies


def test_a_short_flat_run_still_never_learnt(tmp_path: Path) -> None:
    # the rule is about a proven fall, not length alone: 18 flat points stay a warning
    rng = np.random.default_rng(4)
    loss = 2.0 * (1 + 0.004 * rng.standard_normal(18))
    grad = 0.4 + 0.02 * rng.standard_normal(18)
    doc = check_logs(_recorder_file(tmp_path / "gradients.jsonl", loss, grad, {}, lr=0.1))
    [plateau] = _of(doc, "loss_plateau")
    assert plateau.severity == "warning"
