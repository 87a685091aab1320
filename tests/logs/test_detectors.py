"""Detectors on synthetic series whose truth is known by construction, plus property tests:
a healthy run stays healthy under noise, a planted NaN or spike is always found at its step."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradhealth.core.document import SEVERITY_RANK
from gradhealth.logs.check import diagnose
from gradhealth.logs.series import RunLog, make_series


def run_of(**series: np.ndarray) -> RunLog:
    run = RunLog(format="test", source="synthetic")
    for name, values in series.items():
        run.series.append(make_series(name.replace("__", "/"), np.arange(len(values)) * 10, values))
    return run


def healthy(n: int, seed: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    loss = (2.0 * np.exp(-t / (n / 4)) + 0.3) * np.exp(rng.normal(0, noise, n))
    grad = 1.0 * np.exp(rng.normal(0, 0.15, n))
    return loss, grad


def worst(doc) -> int:  # noqa: ANN001
    return max((SEVERITY_RANK[f.severity] for f in doc.findings), default=-1)


def codes(doc) -> set[str]:  # noqa: ANN001
    return {f.code for f in doc.findings}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(60, 600), noise=st.floats(0.0, 0.15))
def test_a_healthy_run_stays_healthy_under_noise(seed, n, noise):
    loss, grad = healthy(n, seed, noise)
    doc = diagnose(run_of(loss=loss, grad_norm=grad))
    assert doc.status == "healthy", [(f.code, f.summary) for f in doc.findings]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 400), where=st.floats(0, 1), metric=st.sampled_from(
    ["loss", "grad_norm"]), token=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_a_planted_nonfinite_value_is_found_at_its_step(seed, n, where, metric, token):
    loss, grad = healthy(n, seed)
    i = min(int(where * n), n - 1)
    if metric == "loss":
        loss[i] = token
    else:
        grad[i:] = token  # the norm never comes back: the weights are gone
    doc = diagnose(run_of(loss=loss, grad_norm=grad))
    f = next(f for f in doc.findings if f.code == "nonfinite")
    assert f.severity == "error" and f.evidence.metric == metric and f.evidence.steps[0] == i * 10
    if metric == "grad_norm" and i < n - 1:
        # one step's norm non-finite and the next ones fine, the loss finite throughout: a loss
        # scaler's skipped step (fp16), a note
        grad[i + 1:] = healthy(n, seed)[1][i + 1:]
        f = next(f for f in diagnose(run_of(loss=loss, grad_norm=grad)).findings if f.code == "nonfinite")
        assert f.severity == "info" and "loss scaler" in f.summary and f.evidence.steps[0] == i * 10


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), where=st.floats(0.3, 0.9), size=st.floats(20, 1000))
def test_a_planted_gradient_spike_is_found_and_recovered(seed, where, size):
    loss, grad = healthy(300, seed)
    i = int(where * 300)
    grad[i] *= size
    doc = diagnose(run_of(loss=loss, grad_norm=grad))
    f = next(f for f in doc.findings if f.code == "gradient_spike")
    assert i * 10 in f.evidence.spike_steps and f.evidence.recovered is True
    assert f.severity == "info" and doc.status == "healthy"
    clip = next(r for r in f.remedies if r.id == "gradient_clipping")
    # max_norm from the healthy norms: around their 98th percentile, far below the spike
    assert np.percentile(np.delete(grad, i), 90) < clip.params["max_norm"] < grad[i] / 5


def test_sustained_growth_is_exploding_with_its_onset():
    loss, grad = healthy(200, 1)
    grad[100:] *= np.geomspace(1, 1e4, 100)
    doc = diagnose(run_of(loss=loss, grad_norm=grad))
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert f.severity == "error" and 1000 <= f.evidence.steps[0] <= 1500 and f.evidence.steps[1] == 1990


def test_layer_ratio_vanishing_and_small_absolute_norms_are_not_vanishing():
    loss, _ = healthy(100, 2)
    rng = np.random.default_rng(0)
    lora = {f"grad_norm__layers.{i}.weight": 1e-7 * np.exp(rng.normal(0, 0.2, 100)) for i in range(4)}
    doc = diagnose(run_of(loss=loss, **lora))
    assert "vanishing_gradient" not in codes(doc)  # tiny but uniform: LoRA-like, not vanishing
    deep = {f"grad_norm__layers.{i}.weight": 10.0 ** (-i * 2) * np.exp(rng.normal(0, 0.2, 100)) for i in range(4)}
    doc = diagnose(run_of(loss=loss, **dict(reversed(list(deep.items())))))
    f = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert f.evidence.layers == ["layers.3.weight", "layers.0.weight"]
    assert abs(np.log10(f.evidence.value) + 6) < 0.3


def test_dead_layer_is_named():
    loss, grad = healthy(100, 3)
    doc = diagnose(run_of(loss=loss, grad_norm=grad, grad_norm__fc1__weight=np.zeros(100),
                          grad_norm__fc2__weight=np.ones(100)))
    f = next(f for f in doc.findings if f.code == "dead_layer")
    assert f.evidence.layers == ["fc1/weight"]


def test_clipping_saturated_needs_the_threshold():
    loss, grad = healthy(100, 4)
    run = run_of(loss=loss, grad_norm=grad * 3)
    assert "clipping_saturated" not in codes(diagnose(run))
    run.params["max_grad_norm"] = "1.0"
    f = next(f for f in diagnose(run).findings if f.code == "clipping_saturated")
    assert f.evidence.max_norm == 1.0 and f.evidence.value > 0.9


def test_a_clip_threshold_read_from_the_norm_itself_says_none_was_given():
    # newuser16 #10: a constant grad norm of 1.0 (a live run with no config) read "(from grad_norm,
    # constant at its maximum)", as if clipping had been configured
    loss, _ = healthy(100, 4)
    run = run_of(loss=loss, grad_norm=np.full(len(loss), 1.0))
    f = next(f for f in diagnose(run).findings if f.code == "clipping_saturated")
    assert f.evidence.max_norm == 1.0
    assert "(no threshold given: inferred from grad_norm holding its maximum" in f.summary
    run.params["max_grad_norm"] = "1.0"
    f = next(f for f in diagnose(run).findings if f.code == "clipping_saturated")
    assert "(from the run's params)" in f.summary and "no threshold given" not in f.summary


def test_divergence_names_the_learning_rate_at_its_onset():
    n = 200
    loss = np.concatenate([np.linspace(2, 0.5, 120), np.linspace(0.5, 5, 80)])
    lr = np.where(np.arange(n) < 110, 1e-3, 1e-2)
    doc = diagnose(run_of(loss=loss, lr=lr))
    f = next(f for f in doc.findings if f.code == "loss_divergence")
    assert f.severity == "error" and 1200 <= f.evidence.steps[0] <= 1400
    fix = next(r for r in f.remedies if r.id == "lower_learning_rate")
    assert fix.params["learning_rate_at_onset"] == 1e-2 and fix.params["suggested_learning_rate"] < 1e-2


def test_overfitting_is_validation_divergence_but_noise_is_not():
    n = 40
    train = np.linspace(2, 0.2, n)
    val = np.concatenate([np.linspace(2, 0.8, 20), np.linspace(0.8, 1.6, 20)])
    doc = diagnose(run_of(loss=train, val_loss=val))
    f = next(f for f in doc.findings if f.code == "validation_divergence")
    assert f.evidence.metric == "val_loss" and f.remedies[0].id == "early_stopping"
    rng = np.random.default_rng(5)
    flat = 0.8 * np.exp(rng.normal(0, 0.2, n))  # noisy but flat: no trend to call overfitting
    flat[:10] = np.linspace(2, 0.8, 10)
    assert "validation_divergence" not in codes(diagnose(run_of(loss=train, val_loss=flat)))


def test_a_loss_that_never_moves_is_a_plateau_warning():
    rng = np.random.default_rng(6)
    doc = diagnose(run_of(loss=2.3 * np.exp(rng.normal(0, 0.01, 100))))
    f = next(f for f in doc.findings if f.code == "loss_plateau")
    assert f.severity == "warning"


def test_oscillating_loss():
    t = np.arange(100)
    loss = 1.0 + 0.6 * (-1) ** t
    assert "loss_oscillation" in codes(diagnose(run_of(loss=loss)))


def test_short_and_empty_runs():
    assert codes(diagnose(run_of(loss=np.array([1.0, 0.9, 0.8])))) == {"insufficient_data"}
    doc = diagnose(run_of(throughput=np.linspace(0, 1, 50)))
    assert codes(doc) == {"insufficient_data"} and doc.status == "warning"
    # an accuracy alone is a run the user can read, not one that says nothing: a note
    doc = diagnose(run_of(accuracy=np.linspace(0, 1, 50)))
    assert codes(doc) == {"insufficient_data"} and doc.status == "healthy"


def test_an_rl_objective_at_zero_is_not_judged_by_relative_change():
    rng = np.random.default_rng(7)
    loss = np.where(rng.random(300) < 0.8, 0.0, rng.normal(0, 1e-4, 300))
    grad = np.where(rng.random(300) < 0.15, 0.0, np.exp(rng.normal(-3, 0.5, 300)))
    doc = diagnose(run_of(loss=loss, grad_norm=grad))
    assert not codes(doc) & {"loss_plateau", "loss_oscillation", "loss_divergence"}


def test_steps_with_exactly_zero_gradient():
    loss, grad = healthy(200, 8)
    assert "zero_gradient" not in codes(diagnose(run_of(loss=loss, grad_norm=grad)))
    grad[::10] = 0.0  # every tenth step updates nothing
    f = next(f for f in diagnose(run_of(loss=loss, grad_norm=grad)).findings if f.code == "zero_gradient")
    assert f.evidence.value == 0.1 and f.evidence.steps == [0, 1900] and f.evidence.zero_steps[:3] == [0, 100, 200]


def test_the_rl_edge_case_from_a_real_run():
    """hf-dllm-remasking (read from the shared data, not redistributed): loss exactly 0 on 792 of 1000
    steps, grad_norm exactly 0 on 164 (its SOURCES.md)."""
    from pathlib import Path

    import pytest

    from gradhealth.logs.check import run_log_check

    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-logs" / "hf-dllm-remasking"
    if not path.exists():
        pytest.skip("the shared real-log set is not here")
    doc = run_log_check(path)
    f = next(f for f in doc.findings if f.code == "zero_gradient")
    assert f.evidence.value == 0.164
    assert not codes(doc) & {"loss_plateau", "loss_oscillation", "loss_divergence", "exploding_gradient"}


# --- issue 14 ----------------------------------------------------------------------------------


def test_two_isolated_spikes_list_their_steps_with_the_largest_as_value():
    loss, grad = healthy(400, 3)
    grad[150] *= 40
    grad[330] *= 90
    doc = diagnose(run_of(loss=loss, grad_norm=grad))
    f = next(f for f in doc.findings if f.code == "gradient_spike")
    ev = f.evidence.model_dump()
    assert ev["steps"] == [1500, 3300]  # each spike, not a span between them
    assert ev["count"] == 2
    assert ev["value"] == grad[330] and f"{grad[330]:.3g}" in f.summary  # the largest, named alike
    from gradhealth.report.text import render_text

    assert "at steps 1500, 3300" in render_text(doc)


def test_an_early_spike_gives_no_warmup_that_does_nothing():
    # A spike on the fourth logged step: a warm-up "derived" from it (2x its step) would last 6.
    loss, grad = healthy(300, 5)
    grad[3] *= 200
    run = run_of(loss=loss, grad_norm=grad)
    run.series[1].steps[:] = np.arange(300)  # one step apart
    doc = diagnose(run)
    spike = next(f for f in doc.findings if f.code == "gradient_spike")
    assert spike.evidence.steps == [3] and "lower_learning_rate" in {r.id for r in spike.remedies}
    for f in doc.findings:
        for r in f.remedies:
            assert r.params.get("warmup_steps", 10) >= 10, (f.code, r.params)
            assert "/ 6)" not in r.snippet


def _vanishing_layers(activation: str | None):
    rng = np.random.default_rng(2)
    # The first layer gets 1e6x less gradient than the last.
    layers = {f"grad_norm__layers.{i}.weight": 10.0 ** (-(3 - i) * 2) * np.exp(rng.normal(0, 0.2, 100))
              for i in range(4)}
    run = run_of(loss=healthy(100, 2)[0], **layers)
    if activation is not None:
        run.params["activation"] = activation
    return next(f for f in diagnose(run).findings if f.code == "vanishing_gradient")


def test_he_init_is_not_offered_to_a_sigmoid_network():
    ids = {r.id for r in _vanishing_layers("sigmoid").remedies}
    assert "he_init" not in ids and "xavier_init" in ids  # Glorot fits sigmoid
    assert "he_init" in {r.id for r in _vanishing_layers("ReLU").remedies}
    # The log does not say: no init is guessed (switching to ReLU with He init stays offered).
    unknown = {r.id for r in _vanishing_layers(None).remedies}
    assert "he_init" not in unknown and "relu_family_activation" in unknown


def test_each_learning_rate_remedy_says_what_its_snippet_does():
    rng = np.random.default_rng(6)
    doc = diagnose(run_of(loss=2.3 * np.exp(rng.normal(0, 0.01, 100))))  # a loss that never moved
    plateau = next(f for f in doc.findings if f.code == "loss_plateau")
    r = plateau.remedies[0]
    assert r.id == "raise_learning_rate" and r.change.startswith("raise")
    factor = r.params["factor"]
    assert factor > 1 and f'group["lr"] * {factor}' in r.snippet


def _fine_tune(end: float) -> np.ndarray:
    """A fine-tune's loss over 48 logs: 2.1 falling to 0.03 by the 25th, at 0.03 to the 34th,
    then at ``end`` (each with 10 % noise) to the last."""
    rng = np.random.default_rng(0)
    fall = 2.1 * (0.03 / 2.1) ** (np.arange(25) / 24)
    return np.concatenate([fall, 0.03 * (1 + 0.1 * rng.standard_normal(9)),
                           end * (1 + 0.1 * rng.standard_normal(14))])


def test_a_loss_creeping_back_by_a_sliver_of_its_fall_is_not_a_divergence():
    # 2.1 -> 0.03, then 0.065: 2.2x the minimum, but 1.7 % of the way back up (a LoRA fine-tune at
    # a constant rate, memorising); a divergence climbs back a real part of its fall
    assert not [f for f in diagnose(run_of(loss=_fine_tune(0.065))).findings if f.code == "loss_divergence"]


def test_a_loss_that_regains_a_real_part_of_its_fall_or_many_times_its_floor_still_diverges():
    for end in (0.2, 0.5):  # 6.7x its minimum (8 % of the way back); 16x (23 %)
        codes = {(f.code, f.severity) for f in diagnose(run_of(loss=_fine_tune(end))).findings}
        assert ("loss_divergence", "error") in codes, end
    loss = np.concatenate([np.linspace(2.0, 0.5, 120), np.linspace(0.5, 1.0, 80)])  # 2x, a third back
    assert [f.severity for f in diagnose(run_of(loss=loss)).findings if f.code == "loss_divergence"] == ["error"]


def test_a_short_run_whose_loss_sits_at_chance_at_every_point_is_stuck():
    # r2c (an issue: "stuck"): four epochs, a 4-way task, every evaluation at 1.386 = ln 4
    run = run_of(loss=np.array([1.3563, 1.38639, 1.38638, 1.38638]), val_loss=np.array([1.386] * 4))
    [f] = [f for f in diagnose(run).findings if f.code == "loss_plateau"]
    assert f.severity == "warning" and f.evidence.at_chance["num_classes"] == 4
    # a short run that starts at chance and then learns, and three points at chance, say nothing
    for run in (run_of(loss=np.array([1.386, 1.2, 1.0, 0.9]), val_loss=np.array([1.386, 1.25, 1.1, 1.0])),
                run_of(loss=np.array([1.3863] * 3), val_loss=np.array([1.3863] * 3))):
        assert not [f for f in diagnose(run).findings if f.code == "loss_plateau"]
