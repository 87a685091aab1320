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
    arch = run_architecture_check(
        mlp(8, width=64, init={"scheme": "normal", "std": 0.5}),
        CheckOptions(Thresholds(), Limits(), verify=False),
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
    assert arch["weight_decay"] == logs["weight_decay"]
    assert arch["weight_decay"].params == {"weight_decay": 0.01}
    assert "weight_decay=0.01" in arch["weight_decay"].snippet


def test_lower_learning_rate_has_one_default(both):
    arch, logs = both
    a, b = arch["lower_learning_rate"], logs["lower_learning_rate"]
    assert a.params["factor"] == b.params["factor"] == 0.3 == R.LOWER_LR_FACTOR
    assert a.snippet == b.snippet and "lr=lr * 0.3" in a.snippet
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
    }[rid]()
    assert made.id == rid
    for name in placeholders:
        assert "{" + name + "}" not in made.snippet
    assert "{" not in made.change
