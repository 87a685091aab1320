"""One remedy vocabulary: both checks build clipping, learning-rate and weight-decay remedies the
same way (same id, wording, defaults, snippet), and a remedy's id, words and numbers agree."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core import remedies as R
from gradhealth.core.document import Diagnosis, Remedy
from gradhealth.logs.check import diagnose
from gradhealth.logs.series import RunLog, make_series
from tests.helpers import mlp


def _log_run(**series: np.ndarray) -> RunLog:
    run = RunLog(format="test", source="synthetic")
    for name, values in series.items():
        run.series.append(make_series(name, np.arange(len(values)) * 10, values))
    return run


@pytest.fixture(scope="module")
def both() -> tuple[dict[str, Remedy], dict[str, Remedy]]:
    """The exploding_gradient remedies of each check, by id."""
    # ReLU layers with Var(W) * fan_in = 16, 8x He's 2: the gradient grows sqrt(8) per layer,
    # ~1e3 over the 7 steps between first and last hidden layer.
    # Verified: a clipping threshold needs the healthy norms of a verified fix's re-simulation.
    # (with an optimizer: an init-made explosion in a spec without one gets no rate or decay remedy)
    arch = run_architecture_check(
        {**mlp(8, width=64, init={"scheme": "normal", "std": 0.5}), "optimizer": {"type": "sgd", "lr": 0.01}},
        CheckOptions(Thresholds(), Limits(), verify=True),
    )
    n = 200
    rng = np.random.default_rng(0)
    grad = np.exp(np.linspace(0, np.log(500), n)) * np.exp(rng.normal(0, 0.05, n))  # 500x growth
    loss = np.linspace(2, 1, n)
    logs = diagnose(_log_run(loss=loss, grad_norm=grad))

    def remedies(doc: Diagnosis) -> dict[str, Remedy]:
        finding = next(f for f in doc.findings if f.code == "exploding_gradient")
        return {r.id: r for r in finding.remedies}

    return remedies(arch), remedies(logs)


def test_both_checks_propose_the_training_time_remedies(both):
    arch, logs = both
    for rid in ("gradient_clipping", "lower_learning_rate", "weight_decay"):
        assert rid in arch and rid in logs, rid


def test_weight_decay_is_the_same_in_both(both):
    arch, logs = both
    # The same remedy; only where its measurement is missing from differs (a training-time change).
    assert arch["weight_decay"].model_dump(exclude={"unverified"}) == logs["weight_decay"].model_dump(
        exclude={"unverified"})
    assert arch["weight_decay"].unverified == "training_time"
    assert arch["weight_decay"].params == {"weight_decay": 0.01}
    assert 'group["weight_decay"] = 0.01' in arch["weight_decay"].snippet


def test_lower_learning_rate_has_one_default(both):
    arch, logs = both
    a, b = arch["lower_learning_rate"], logs["lower_learning_rate"]
    assert a.params["factor"] == b.params["factor"] == 0.3 == R.LOWER_LR_FACTOR
    assert a.snippet == b.snippet and 'group["lr"] = group["lr"] * 0.3' in a.snippet
    assert (a.title, a.rationale) == (b.title, b.rationale)
    # The log has no learning-rate series, so it says what the architecture check says, and why.
    assert a.change == "lower the learning rate to 0.3x"
    assert b.change == a.change + " (gradient norm exploding)"


def test_gradient_clipping_is_worded_from_its_own_number(both):
    for r in both:
        clip = r["gradient_clipping"]
        max_norm = clip.params["max_norm"]
        assert clip.change == f"clip the total gradient norm at {max_norm:g} every step"
        assert f"max_norm={max_norm})" in clip.snippet and clip.params["basis"]
    arch, logs = both
    assert arch["gradient_clipping"].snippet.replace(
        str(arch["gradient_clipping"].params["max_norm"]), "X"
    ) == logs["gradient_clipping"].snippet.replace(
        str(logs["gradient_clipping"].params["max_norm"]), "X"
    )


def test_an_id_never_contradicts_its_factor():
    with pytest.raises(ValueError):
        R.lower_learning_rate(2.0)
    with pytest.raises(ValueError):
        R.lower_learning_rate(1.0)
    with pytest.raises(ValueError):
        R.raise_learning_rate(0.5)
    lower = R.lower_learning_rate(0.5, learning_rate=1e-3, at_step=40)
    assert lower.change == "lower the learning rate from 0.001 (in effect at step 40) to 0.0005"
    assert lower.params["suggested_learning_rate"] == pytest.approx(5e-4)
    up = R.raise_learning_rate(learning_rate=1e-4, at_step=0)
    assert up.id == "raise_learning_rate" and up.params["suggested_learning_rate"] == pytest.approx(
        3e-4
    )
    assert up.change.startswith("raise the learning rate from 0.0001")


def test_a_loss_that_never_moved_gets_a_raise_not_a_lower():
    rng = np.random.default_rng(6)
    doc = diagnose(_log_run(loss=2.3 * np.exp(rng.normal(0, 0.01, 100))))
    plateau = next(f for f in doc.findings if f.code == "loss_plateau")
    assert [r.id for r in plateau.remedies] == ["raise_learning_rate"]
    assert plateau.remedies[0].params["factor"] > 1
    for f in doc.findings:
        for r in f.remedies:
            if r.id == "lower_learning_rate":
                assert 0 < r.params["factor"] < 1


@pytest.mark.parametrize("rid", sorted(R.SNIPPETS))
def test_every_snippet_placeholder_is_filled_by_its_builder(rid):
    # A snippet's {placeholders} are the params its builder passes; none may be left in the output.
    placeholders = set(re.findall(r"\{(\w+)\}", R.SNIPPETS[rid]))
    made = {
        "he_init": lambda: R.init("kaiming_normal", "x"),
        "xavier_init": lambda: R.init("xavier_normal", "x"),
        "lecun_init": lambda: R.init("lecun_normal", "x"),
        "orthogonal_init": lambda: R.orthogonal_init("x"),
        "relu_family_activation": lambda: R.relu_family_activation("x"),
        "bounded_cell_activation": lambda: R.bounded_cell_activation("x", "relu"),
        "residual_connections": lambda: R.residual_connections("x"),
        "scaled_residual": lambda: R.scaled_residual("x"),
        "batch_norm": lambda: R.normalisation("batchnorm", "x"),
        "layer_norm": lambda: R.normalisation("layernorm", "x"),
        "pre_layer_norm": lambda: R.pre_layer_norm("x"),
        "gated_recurrent_cell": lambda: R.gated_recurrent_cell("x", "chrono", 100),
        "gradient_clipping": lambda: R.gradient_clipping(1.5, "b"),
        "lower_learning_rate": lambda: R.lower_learning_rate(),
        "raise_learning_rate": lambda: R.raise_learning_rate(),
        "weight_decay": lambda: R.weight_decay(),
        "early_stopping": lambda: R.early_stopping(10, 3),
        "balance_classes": lambda: R.balance_classes(0.72),
        "logits_loss": lambda: R.logits_loss("binary_cross_entropy", "out"),
        "output_activation": lambda: R.output_activation("out"),
        "positive_learning_rate": lambda: R.positive_learning_rate(-1e3, "Adam"),
        "check_updates": lambda: R.check_updates("val_loss repeats exactly"),
        "check_loss_graph": lambda: R.check_loss_graph("train_loss repeats exactly"),
        "check_data": lambda: R.check_data("step 250", "250", "the values before it were flat"),
        "raise_kl_coefficient": lambda: R.raise_kl_coefficient("the KL to the reference blew up"),
        "keep_exploring": lambda: R.keep_exploring("epsilon went from 1 to 0"),
        "zero_bias": lambda: R.zero_bias("x"),
        "normalise_inputs": lambda: R.normalise_inputs("x", 147.0),
        "normalise_targets": lambda: R.normalise_targets(3032.0, 641.3),
        "stable_decay": lambda: R.stable_decay("x", vanishing=True),
        "domain_guard": lambda: R.domain_guard("log", "net.py:12 (torch.log(h))", "torch.log(x.clamp(min=1e-12))"),
    }[rid]()
    assert made.id == rid
    for name in placeholders:
        assert "{" + name + "}" not in made.snippet
    assert "{" not in made.change


# --- issue 14: remedies and evidence that contradicted themselves ----------------------------------


def _arch(spec, *, verify: bool) -> Diagnosis:
    return run_architecture_check(spec, CheckOptions(Thresholds(), Limits(), verify=verify))


@pytest.mark.parametrize("rid", ["lower_learning_rate", "raise_learning_rate", "weight_decay"])
def test_training_time_snippets_keep_the_users_optimizer(rid):
    # Neither check knows the optimizer, so no snippet may replace it (it used to build AdamW).
    r = {"lower_learning_rate": R.lower_learning_rate, "raise_learning_rate": R.raise_learning_rate,
         "weight_decay": R.weight_decay}[rid]()
    assert "torch.optim.AdamW" not in r.snippet and "torch.optim.Adam(" not in r.snippet
    assert "optimizer.param_groups" in r.snippet


@pytest.mark.parametrize("steps", [0, 1, 2, R.MIN_WARMUP_STEPS - 1])
def test_a_warmup_too_short_to_do_anything_is_not_proposed(steps):
    r = R.lower_learning_rate(warmup_steps=steps)
    assert "warmup_steps" not in r.params and "warm-up" not in r.change
    assert "LambdaLR" not in r.snippet and "/ 1)" not in r.snippet


def test_a_warmup_of_real_length_is_in_words_params_and_code_alike():
    r = R.lower_learning_rate(warmup_steps=400)
    assert r.params["warmup_steps"] == 400 and "400 steps" in r.change
    assert "min(1.0, (step + 1) / 400)" in r.snippet
    # That factor is 1/400 at the first step and reaches 1 at step 399: the warm-up does something.
    assert min(1.0, (0 + 1) / 400) < 0.01 and min(1.0, (399 + 1) / 400) == 1.0


@pytest.fixture(scope="module")
def std1_unverified() -> Diagnosis:
    # 6 ReLU layers of width 64 with std-1 weights: sigma_w^2 = 64, chi1 = 32 per layer.
    return _arch({**mlp(6, width=64, init={"scheme": "normal", "std": 1.0}), "optimizer": {"type": "sgd", "lr": 0.01}},
                 verify=False)


def test_no_verify_labels_say_skipped_not_unsimulable(std1_unverified):
    from gradhealth.report.text import render_text

    f = next(f for f in std1_unverified.findings if f.code == "exploding_gradient")
    by_id = {r.id: r for r in f.remedies}
    assert by_id["he_init"].unverified == "skipped" and by_id["he_init"].verified is None
    assert by_id["lower_learning_rate"].unverified == "training_time"
    text = render_text(std1_unverified)
    he_line = next(line for line in text.splitlines() if "he_init:" in line)
    assert "not verified: --no-verify" in he_line and "not simulable" not in he_line


def test_no_clipping_threshold_without_a_healthy_range(std1_unverified):
    # Without a verified fix the only norms are the exploding network's own: a threshold from them
    # (3.6e13 on std1_mlp) clips nothing, so clipping is not proposed.
    f = next(f for f in std1_unverified.findings if f.code == "exploding_gradient")
    assert "gradient_clipping" not in {r.id for r in f.remedies}


def test_a_clipping_threshold_comes_from_the_fixed_networks_norms(both):
    arch, _ = both
    clip = arch["gradient_clipping"]
    # 2x the total gradient norm of the best verified fix's re-simulation, not of the exploding one.
    assert "re-simulation" in clip.params["basis"]
    assert clip.params["max_norm"] == pytest.approx(2 * clip.params["reference_total_grad_norm"], rel=0.05)


def test_exploding_evidence_names_what_its_value_is(std1_unverified):
    f = next(f for f in std1_unverified.findings if f.code == "exploding_gradient")
    ev = f.evidence.model_dump()
    # The value is the larger of the gradient ratio and the activation growth; the name says so.
    assert ev["value"] == pytest.approx(max(ev["grad_ratio"], ev["activation_growth"]))
    assert ev["metric"] == "max(output_grad_ratio_first_to_last, activation_growth)"


def test_a_remedy_that_overshoots_into_the_opposite_finding_is_not_fixed():
    # Xavier on ReLU: chi1 = 1/2 per layer, the ratio 2^-11.5 ~ 3.5e-4 over 24 layers (warning).
    # A remedy that pushes it past the exploding threshold fixes nothing.
    doc = _arch(mlp(24, width=128, init="xavier_normal"), verify=True)
    f = next(f for f in doc.findings if f.code == "vanishing_gradient")
    t = Thresholds()
    for r in f.remedies:
        v = r.verified
        if v is None or v.after is None:
            continue
        if v.after > t.exploding_warning:
            assert not v.fixed and not r.recommended, r.id
        if v.fixed:
            assert t.vanishing_warning <= v.after <= t.exploding_warning, r.id
    assert any(r.verified and r.verified.fixed for r in f.remedies)  # He init does fix it
    # and one remedy does overshoot here (the residual wrap: ~1e3), so the rule above was exercised.
    assert any(r.verified and (r.verified.after or 0) > t.exploding_warning for r in f.remedies)


@pytest.mark.parametrize("rid,variance", [("he_init", lambda fan_in, fan_out: 2 / fan_in),
                                          ("xavier_init", lambda fan_in, fan_out: 2 / (fan_in + fan_out))])
def test_init_snippets_run_as_pasted_and_give_their_variance(rid, variance):
    # pasted into a user's file with torch and nn imported, on a model with a layer without bias
    import torch
    from torch import nn

    from gradhealth.core.remedies import SNIPPETS

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(400, 300, bias=False), nn.ReLU(), nn.Linear(300, 200))
    exec(SNIPPETS[rid], {"torch": torch, "nn": nn, "model": model})  # our own constant text
    for layer in (model[0], model[2]):
        assert float(layer.weight.detach().var()) == pytest.approx(variance(layer.in_features, layer.out_features),
                                                          rel=0.05)
    assert bool((model[2].bias == 0).all())


def test_a_lowered_weight_decay_fills_the_weight_decay_snippet_with_the_new_value():
    made = R.lower_weight_decay(20.0, 0.01, "why")
    assert made.id == "weight_decay" and "= 0.01" in made.snippet and "{" not in made.snippet + made.change
    assert made.params["previous_weight_decay"] == 20.0 and made.change.startswith("lower the weight decay from 20 to 0.01")
