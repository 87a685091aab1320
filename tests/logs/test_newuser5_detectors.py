"""What the newuser5 walkthrough found in the log detectors: a run that converged read as vanishing
gradients, dead layers and spikes (P1); a gradient that blew up early and stayed up losing its
``exploding_gradient`` on a longer log and read as clipped (P2); a grad norm that moved to a new
level as the loss fell read as a spike that did not recover (P10). Every input is a synthetic
recorder JSONL file (``GradientRecorder``'s format) built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.logs.check import run_log_check
from gradhealth.logs.detectors.clipping import pinned_maximum
from gradhealth.logs.stats import early_baseline


def _recorder(tmp_path: Path, loss: np.ndarray, grad: np.ndarray,
              layers: dict[str, np.ndarray] | None = None) -> Path:
    """A closed recorder file: loss, grad_norm and lr per step, per-layer norms when given."""
    rows: list[dict[str, object]] = [{"gradhealth_recorder": "start", "params": {}}]
    for i, (lo, g) in enumerate(zip(loss, grad, strict=True)):
        rows += [{"step": i, "metric": "loss", "value": float(lo)},
                 {"step": i, "metric": "grad_norm", "value": float(g)},
                 {"step": i, "metric": "lr", "value": 0.05}]
        for name, v in (layers or {}).items():
            rows.append({"step": i, "layer": name, "kind": "grad_norm", "value": float(v[i])})
    rows.append({"gradhealth_recorder": "end", "logged_steps": len(loss)})
    p = tmp_path / "run.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _codes(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def _converging(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An MLP solving an easy task: the loss 2.3 -> ~1e-9 and the grad norm 1.7 -> ~5e-9 with it in
    the first 30 % of the run (both per-step noisy)."""
    decay = np.exp(-np.arange(n) / (n / 80))
    loss = np.maximum(2.3 * decay * rng.uniform(0.7, 1.3, n), 1e-9)  # at its floor from step ~110
    grad = np.maximum(1.7 * decay, 5e-9) * rng.uniform(0.7, 1.3, n)
    return loss, grad


# --- P1: convergence is not vanishing, dead or spiking ---------------------------------------------

def test_a_grad_norm_that_shrank_as_the_loss_fell_to_its_floor_is_a_converged_note(tmp_path: Path) -> None:
    loss, grad = _converging(400, np.random.default_rng(0))
    doc = run_log_check(_recorder(tmp_path, loss, grad))
    vanish = _codes(doc.findings, "vanishing_gradient")
    assert vanish and all(f.severity == "info" for f in vanish)
    assert vanish[0].evidence.model_extra["converged"] is True
    # the loss evidence: the late level (p90 of the last quarter, at most 1.3e-9) against the start (~2.3)
    assert vanish[0].evidence.model_extra["loss_level"] <= 0.01 * vanish[0].evidence.model_extra["loss_start"]
    assert 1.5 < vanish[0].evidence.model_extra["loss_start"] < 3.0
    assert not vanish[0].remedies


def test_a_grad_norm_that_shrank_under_a_stuck_loss_is_still_vanishing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _, grad = _converging(400, rng)
    loss = 2.3 * rng.uniform(0.98, 1.02, 400)  # stuck at chance: the network stopped learning
    doc = run_log_check(_recorder(tmp_path, loss, grad))
    assert any(f.code == "vanishing_gradient" and f.severity == "warning" for f in doc.findings)


def test_layers_at_exactly_zero_once_the_loss_is_exactly_zero_are_a_converged_note(tmp_path: Path) -> None:
    n, solved = 300, 20
    loss = np.concatenate([np.geomspace(1.4, 1e-6, solved), np.zeros(n - solved)])
    grad = np.concatenate([np.geomspace(0.75, 1e-6, solved), np.zeros(n - solved)])
    layers = {f"l{k}.weight": grad / (k + 1) for k in range(4)}
    doc = run_log_check(_recorder(tmp_path, loss, grad, layers))
    dead = _codes(doc.findings, "dead_layer")
    assert dead and all(f.severity == "info" for f in dead)
    assert dead[0].evidence.model_extra["converged"] is True and dead[0].evidence.model_extra["loss_level"] == 0.0
    assert dead[0].evidence.steps[0] == solved
    assert not dead[0].remedies


def test_a_total_grad_norm_exactly_zero_once_the_loss_is_exactly_zero_is_a_converged_note(tmp_path: Path) -> None:
    # the same easy CNN's total norm: 0 on 280 of 300 steps, each after the loss reached exactly 0
    n, solved = 300, 20
    loss = np.concatenate([np.geomspace(1.4, 1e-6, solved), np.zeros(n - solved)])
    grad = np.concatenate([np.geomspace(0.75, 1e-6, solved), np.zeros(n - solved)])
    zero = _codes(run_log_check(_recorder(tmp_path, loss, grad)).findings, "zero_gradient")
    assert len(zero) == 1 and zero[0].severity == "info" and not zero[0].remedies
    assert zero[0].evidence.model_extra["converged"] is True
    assert zero[0].evidence.value == (n - solved) / n


def test_a_total_grad_norm_exactly_zero_under_a_loss_that_stays_up_still_warns(tmp_path: Path) -> None:
    # zero gradients with the loss stuck near its start (a detached graph): no update, not convergence
    n = 300
    loss = np.full(n, 1.4) * np.random.default_rng(3).uniform(0.98, 1.02, n)
    grad = np.concatenate([np.full(20, 0.7), np.zeros(n - 20)])
    zero = _codes(run_log_check(_recorder(tmp_path, loss, grad)).findings, "zero_gradient")
    assert len(zero) == 1 and zero[0].severity == "warning" and "converged" not in (zero[0].evidence.model_extra or {})


def test_a_layer_dead_from_the_start_stays_dead_when_the_loss_later_reaches_zero(tmp_path: Path) -> None:
    n, solved = 300, 100
    loss = np.concatenate([np.geomspace(1.4, 1e-6, solved), np.zeros(n - solved)])
    grad = np.concatenate([np.geomspace(0.75, 1e-6, solved), np.zeros(n - solved)])
    layers = {"l0.weight": np.zeros(n), "l1.weight": grad}  # l0 gets nothing while the loss is 1.4
    doc = run_log_check(_recorder(tmp_path, loss, grad, layers))
    dead = _codes(doc.findings, "dead_layer")
    assert dead and dead[0].severity in ("warning", "error") and "converged" not in (dead[0].evidence.model_extra or {})


def test_spikes_of_a_converged_grad_norm_below_its_early_level_are_a_note_without_a_clip(tmp_path: Path) -> None:
    loss, grad = _converging(400, np.random.default_rng(2))
    for i in (250, 300, 350):  # 60x the ~5e-9 floor, yet millions of times under the starting 1.7
        grad[i] = 3e-7
    doc = run_log_check(_recorder(tmp_path, loss, grad))
    spikes = _codes(doc.findings, "gradient_spike")
    assert spikes and all(f.severity == "info" for f in spikes)
    assert spikes[0].evidence.model_extra["converged"] is True
    # no clip taken from the converged norms (that one would cut the healthy start ~1000x)
    assert not spikes[0].remedies
    assert doc.status == "healthy"


# --- P2: a blow-up that stays up ----------------------------------------------------------------

def _blown_up(n: int) -> np.ndarray:
    """A missing zero_grad(): 0.75 rising to 5.85 over 13 steps, then the accumulated gradient at
    2.9e6 and 1.83e7 for the rest of the run (constant: the loss gives it nothing new)."""
    head = np.array([0.751, 1.41, 1.93, 2.56, 3.67, 5.44, 5.85, 5.85, 5.85, 5.85, 5.85, 5.85, 5.85])
    rest = np.where(np.arange(n - 13) < 30, 2.9e6, 1.83e7)
    return np.concatenate([head, rest])


def test_the_early_baseline_comes_from_before_a_blow_up_inside_its_window() -> None:
    for n in (300, 600, 3000):
        # the healthy level is the 13 points before the growth: median 5.44..5.85, nowhere near 1e6
        assert 0.7 < early_baseline(_blown_up(n), 0.1) < 6.0


def test_the_early_baseline_of_a_norm_that_starts_high_and_settles_is_unchanged() -> None:
    v = np.concatenate([np.full(15, 100.0), np.full(285, 1.0)])  # start-up 100x above, then 1
    assert early_baseline(v, 0.1) == 1.0


def test_a_sustained_early_blow_up_stays_an_exploding_error_however_long_the_log(tmp_path: Path) -> None:
    for n in (100, 300, 600):
        loss = np.concatenate([np.geomspace(1.39, 0.05, 13), np.geomspace(10.0, 400.0, n - 13)])
        doc = run_log_check(_recorder(tmp_path, loss, _blown_up(n)))
        assert any(f.code == "exploding_gradient" and f.severity == "error" for f in doc.findings), n
        assert not _codes(doc.findings, "clipping_saturated"), n
        clips = [r for f in doc.findings for r in f.remedies if r.id == "gradient_clipping"]
        # a threshold from the healthy start (0.75-5.85), never from the exploded 1.8e7
        assert clips and all(0 < r.params["max_norm"] <= 6.0 for r in clips), n


def test_a_pinned_maximum_after_growth_by_decades_is_no_clip_threshold() -> None:
    v = _blown_up(300)
    assert pinned_maximum(v, 0.5, baseline=early_baseline(v, 0.1), max_growth=100.0) is None
    # a norm logged after clipping at 1.0: the early level is 0.6, the ceiling 1.0
    clipped = np.concatenate([np.linspace(0.5, 0.7, 30), np.ones(270)])
    assert pinned_maximum(clipped, 0.5, baseline=early_baseline(clipped, 0.1), max_growth=100.0) == 1.0


# --- P10: a step to a new level is not an unrecovered spike ---------------------------------------

def _level_shift(n: int, rng: np.random.Generator) -> np.ndarray:
    """A healthy ReLU MLP leaving its plateau: 0.3, a rise to 4.2 over steps 17-41, slow and then
    fast (the newuser5 walkthrough's deep_mlp.py healthy_relu run, rounded), 5.76 at step 42, then a
    steady 2.7 (+-15 %) to step 70 and 1.4 (+-15 %) to the end."""
    g = np.empty(n)
    g[:17] = 0.3 * rng.uniform(0.9, 1.1, 17)
    g[17:42] = [0.37, 0.44, 0.41, 0.41, 0.49, 0.51, 0.51, 0.54, 0.64, 0.61, 0.68, 0.81, 0.86, 0.91,
                1.08, 1.35, 1.23, 1.46, 2.22, 1.81, 2.05, 2.75, 3.02, 4.21, 4.2]
    g[42] = 5.76
    g[43:70] = 2.7 * rng.uniform(0.85, 1.15, 27)
    g[70:] = 1.4 * rng.uniform(0.85, 1.15, n - 70)
    return g


def test_a_grad_norm_that_steps_to_a_new_steady_level_as_the_loss_falls_recovered(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    grad = _level_shift(300, rng)
    loss = np.concatenate([np.full(30, 2.3), np.geomspace(2.3, 0.2, 270)]) * rng.uniform(0.9, 1.1, 300)
    doc = run_log_check(_recorder(tmp_path, loss, grad))
    spikes = _codes(doc.findings, "gradient_spike")
    assert all(f.severity == "info" and f.evidence.model_extra["recovered"] is True for f in spikes)
    assert doc.status == "healthy"


def test_a_grad_norm_that_stays_up_while_the_loss_is_stuck_did_not_recover(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    grad = _level_shift(300, rng)
    loss = 2.3 * rng.uniform(0.98, 1.02, 300)
    doc = run_log_check(_recorder(tmp_path, loss, grad))
    spikes = _codes(doc.findings, "gradient_spike")
    assert spikes and spikes[0].severity == "warning" and spikes[0].evidence.model_extra["recovered"] is False


# --- P11: dead_layer's remedies fit what zeroed the layers ---------------------------------------

def test_dead_recurrent_layers_get_no_relu_remedy(tmp_path: Path) -> None:
    # a GRU at lr 200: its weights go to exactly zero gradient while the loss is still high
    n = 60
    loss = np.full(n, 4.2) * np.random.default_rng(5).uniform(0.97, 1.03, n)
    grad = np.concatenate([np.full(10, 3.0), np.full(n - 10, 1e-3)])
    layers = {name: np.concatenate([np.full(10, 1.0), np.zeros(n - 10)])
              for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0")}
    layers["fc.weight"] = np.full(n, 0.5)
    dead = _codes(run_log_check(_recorder(tmp_path, loss, grad, layers)).findings, "dead_layer")
    assert len(dead) == 1 and dead[0].evidence.model_extra["recurrent"] is True
    ids = [r.id for r in dead[0].remedies]
    assert "relu_family_activation" not in ids and "init" not in ids
    assert "lower_learning_rate" in ids


def test_a_layer_dead_from_the_first_step_is_not_blamed_on_the_learning_rate(tmp_path: Path) -> None:
    n = 60
    loss = np.geomspace(2.3, 0.5, n)
    grad = np.geomspace(1.0, 0.3, n)
    layers = {"l0.weight": np.geomspace(1.0, 0.3, n), "l1.weight": np.zeros(n), "l2.weight": np.geomspace(0.5, 0.2, n)}
    dead = _codes(run_log_check(_recorder(tmp_path, loss, grad, layers)).findings, "dead_layer")
    assert len(dead) == 1 and dead[0].evidence.model_extra["from_start"] is True
    ids = [r.id for r in dead[0].remedies]
    assert "lower_learning_rate" not in ids and "relu_family_activation" in ids
