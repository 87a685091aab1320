"""A loss told to take probabilities (Keras' ``from_logits=False``, its default) on a last layer
that gives none: the classic forgotten softmax. Keras divides the raw outputs by their sum and
clips them, and every clipped sample gets no gradient; the check simulates exactly that and
measures the silenced fraction (output_loss_mismatch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gradhealth.analysis.importers.keras import check_keras, keras_loss
from gradhealth.analysis.losses import KERAS_EPSILON, loss_value, unreachable_fraction
from gradhealth.library import check_architecture
from tests.analysis.test_keras_import import _dense, _init, _layer, _seq


def _keras_ce(out: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Keras' categorical cross-entropy on probabilities, written out in numpy: (loss, the
    fraction of samples whose target probability the clip holds)."""
    p = out / out.sum(axis=-1, keepdims=True)
    picked = p[np.arange(len(labels)), labels]
    clipped = (picked <= KERAS_EPSILON) | (picked >= 1 - KERAS_EPSILON)
    return float(-np.log(np.clip(picked, KERAS_EPSILON, 1 - KERAS_EPSILON)).mean()), float(clipped.mean())


def test_the_probability_cross_entropy_is_keras_formula_and_clipped_samples_get_no_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(256, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(10, (256,), generator=gen)
    loss, silent = loss_value("cross_entropy", out, labels, from_logits=False)
    expected, clipped = _keras_ce(out.detach().numpy(), labels.numpy())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12)
    assert silent is not None and float(silent) == pytest.approx(clipped) and 0.2 < clipped < 0.9
    loss.backward()
    assert out.grad is not None
    no_gradient = (out.grad == 0).all(dim=1).double().mean()
    assert float(no_gradient) == pytest.approx(clipped)  # the silenced samples are exactly the clipped ones


def test_on_logits_every_sample_gets_a_gradient() -> None:
    gen = torch.Generator().manual_seed(1)
    out = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(5, (64,), generator=gen)
    loss, silent = loss_value("cross_entropy", out, labels)
    assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(out, labels)))
    assert silent is not None and float(silent) == 0.0


def test_the_probability_binary_cross_entropy_clips_each_output() -> None:
    gen = torch.Generator().manual_seed(2)
    out = torch.randn(128, 1, generator=gen, dtype=torch.float64)
    target = torch.randint(2, (128, 1), generator=gen).double()
    loss, silent = loss_value("binary_cross_entropy", out, target, from_logits=False)
    o = np.clip(out.numpy(), KERAS_EPSILON, 1 - KERAS_EPSILON)
    t = target.numpy()
    assert float(loss) == pytest.approx(float(-(t * np.log(o) + (1 - t) * np.log(1 - o)).mean()))
    assert silent is not None
    assert float(silent) == pytest.approx(float(((out <= KERAS_EPSILON) | (out >= 1 - KERAS_EPSILON)).double().mean()))


def _spec(last: dict[str, Any], loss: Any) -> dict[str, Any]:
    return {"name": "mlp", "input": {"shape": [20]}, "batch_size": 64, "loss": loss,
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_normal",
                        "repeat": 2}, last]}


def test_a_linear_output_under_a_probability_loss_is_an_error_and_logits_fix_it() -> None:
    doc = check_architecture(_spec({"type": "linear", "out_features": 10},
                                   {"type": "cross_entropy", "from_logits": False}))
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.severity == "error" and f.evidence.output_activation == "identity"
    per_seed = [float(x) for x in f.evidence.silent_by_seed]
    assert f.evidence.value == pytest.approx(np.mean(per_seed), abs=1e-3)
    assert f.evidence.value >= 0.25 and f.evidence.layers == ["layers[1].linear"]
    [r] = f.remedies
    assert r.id == "logits_loss" and r.patch == [{"op": "replace", "path": "/loss/from_logits", "value": True}]
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0.0


def test_a_sigmoid_output_gives_probabilities_and_is_healthy() -> None:
    doc = check_architecture(_spec({"type": "linear", "out_features": 1, "activation": "sigmoid"},
                                   {"type": "binary_cross_entropy", "from_logits": False}))
    assert not [f for f in doc.findings if f.code == "output_loss_mismatch"]


def test_from_logits_means_nothing_to_mse() -> None:
    doc = check_architecture(_spec({"type": "linear", "out_features": 10}, {"type": "mse", "from_logits": False}))
    assert not _mismatch(doc)


@pytest.mark.parametrize("loss,expected", [
    ("categorical_crossentropy", {"type": "cross_entropy", "from_logits": False}),
    ("sparse_categorical_crossentropy", {"type": "cross_entropy", "from_logits": False}),
    ({"module": "keras.losses", "class_name": "SparseCategoricalCrossentropy",
      "config": {"from_logits": True, "reduction": "sum_over_batch_size"}}, {"type": "cross_entropy", "from_logits": True}),
    ({"class_name": "BinaryCrossentropy", "config": {"from_logits": False}},
     {"type": "binary_cross_entropy", "from_logits": False}),
    ("mse", "mse"),
])
def test_keras_losses_say_whether_they_take_logits(loss: Any, expected: Any) -> None:
    assert keras_loss(loss) == expected


def _mismatch(doc: Any) -> list[Any]:
    return [f for f in doc.findings if f.code == "output_loss_mismatch"]


@pytest.mark.parametrize("graph", [False, True])
def test_a_keras_model_without_its_softmax_is_found_and_with_it_is_not(tmp_path: Path, graph: bool) -> None:
    def model(act: str, loss: Any) -> Path:
        hidden = [_dense("d1", 32, "relu", _init_he()), _dense("d2", 32, "relu", _init_he())]
        cfg = _seq(*hidden, _dense("out", 10, act), shape=[16]) if not graph else _concat_model(act)
        path = tmp_path / f"m_{act}_{'logits' if isinstance(loss, dict) else 'probs'}.json"
        path.write_text(json.dumps({**cfg, "compile_config": {"loss": loss}}))
        return path

    forgot = check_keras(model("linear", "categorical_crossentropy"))
    [f] = _mismatch(forgot)
    assert f.severity == "error" and f.evidence.layers == ["out"]
    assert f.remedies[0].id == "logits_loss" and f.remedies[0].verified.fixed
    assert not _mismatch(check_keras(model("softmax", "categorical_crossentropy")))
    logits = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    assert not _mismatch(check_keras(model("linear", logits)))


def _init_he() -> dict[str, Any]:
    return {"module": "keras.initializers", "class_name": "HeNormal", "config": {"seed": None},
            "registered_name": None}


def _concat_model(act: str) -> dict[str, Any]:
    """A functional model with a concatenation (the graph door, not the spec language)."""
    def node(name: str) -> list[Any]:
        return [[name, 0, 0, {}]]
    inp = {**_layer("InputLayer", "x", batch_shape=[None, 16], sparse=False), "inbound_nodes": []}
    a = {**_dense("a", 32, "relu", _init_he()), "inbound_nodes": [node("x")]}
    b = {**_dense("b", 32, "relu", _init_he()), "inbound_nodes": [node("x")]}
    cat = {**_layer("Concatenate", "cat", axis=-1), "inbound_nodes": [node("a") + node("b")]}
    out = {**_dense("out", 10, act), "inbound_nodes": [node("cat")]}
    return {"class_name": "Functional", "config": {"name": "f", "layers": [inp, a, b, cat, out],
                                                   "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}}


def test_a_keras_file_checked_on_its_own_weights_is_judged_too(tmp_path: Path) -> None:
    # the default for a file with weights: the stored weights through the graph simulation, which
    # must take the compiled loss on probabilities as well
    from tests.analysis.test_keras_import import _keras3_zip

    rng = np.random.default_rng(0)
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _layer("Dense", "out", units=10, activation="linear",
                                                             use_bias=True), shape=[16])
    stored = {"d1": [("kernel", (rng.standard_normal((16, 32)) * (2 / 16) ** 0.5).astype(np.float32)),
                     ("bias", np.zeros(32, np.float32))],
              "out": [("kernel", (rng.standard_normal((32, 10)) * (1 / 32) ** 0.5).astype(np.float32)),
                      ("bias", np.zeros(10, np.float32))]}
    data = _keras3_zip({**cfg, "compile_config": {"loss": "categorical_crossentropy"}}, stored)
    doc = check_keras(data)
    assert "as stored in the file" in doc.summary
    [f] = _mismatch(doc)
    assert f.severity == "error" and f.evidence.layers == ["out"] and f.evidence.output_activation == "identity"
    assert f.remedies[0].verified is not None and f.remedies[0].verified.fixed


@pytest.mark.parametrize("kind", ["mae", "huber"])
def test_regression_losses_are_their_formulas(kind: str) -> None:
    gen = torch.Generator().manual_seed(3)
    out = torch.randn(64, 3, generator=gen, dtype=torch.float64) * 2
    target = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    loss, silent = loss_value(kind, out, target)
    d = np.abs(out.numpy() - target.numpy())
    expected = d.mean() if kind == "mae" else np.where(d <= 1.0, 0.5 * d**2, d - 0.5).mean()
    assert float(loss) == pytest.approx(expected) and float(silent) == 0.0


@pytest.mark.parametrize("loss,expected", [
    ("mean_absolute_error", "mae"), ("mae", "mae"), ({"class_name": "Huber", "config": {"delta": 1.0}}, "huber"),
    ("huber_loss", "huber"), ("poisson", None),
])
def test_keras_regression_losses(loss: Any, expected: Any) -> None:
    assert keras_loss(loss) == expected


def test_a_compiled_loss_the_check_does_not_simulate_is_said(tmp_path: Path) -> None:
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 1, "linear"), shape=[16])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "poisson"}}))
    assert "the file's loss poisson is not one the check simulates" in check_keras(path).summary
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "mean_absolute_error"}}))
    assert "not one the check simulates" not in check_keras(path).summary


@pytest.mark.parametrize("loss", ["mse", "binary_crossentropy", "mean_absolute_error"])
def test_a_softmax_over_one_unit_passes_no_gradient(tmp_path: Path, loss: str) -> None:
    # the most common bug in the StackOverflow benchmarks: softmax(x) over one unit is the constant 1
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 1, "softmax"), shape=[16])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": loss}}))
    doc = check_keras(path)
    [f] = _mismatch(doc)
    assert f.severity == "error" and f.evidence.value == 1.0 and f.evidence.output_grad_norm == 0.0
    assert f.evidence.metric == "silent_sample_fraction"  # what the value of 1.0 is
    assert all(layer.output_grad_norm == 0.0 for layer in doc.layers)  # measured: nothing gets a gradient
    [r] = f.remedies
    assert r.id == "output_activation" and r.verified is not None and r.verified.fixed
    assert r.verified.after is not None and r.verified.after < 0.05
    # one probability is a sigmoid; a regression's output takes none (a sigmoid holds it in [0, 1])
    assert ("sigmoid" in r.change) == (loss == "binary_crossentropy")


def test_a_softmax_over_several_units_under_mse_is_read_not_refused(tmp_path: Path) -> None:
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 3, "softmax"), shape=[16])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "mse"}}))
    doc = check_keras(path)
    # with the targets unknown, only a note that mse on a softmax fits probability targets (peersweep14)
    assert doc.layers and doc.status == "healthy"
    assert [f.severity for f in _mismatch(doc)] == ["info"]


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_a_softmax_applied_twice_has_the_loss_floor_theory_gives(classes: int) -> None:
    # independent of the formula: drive the first softmax's inputs far towards the right class
    # and read the loss the second softmax leaves
    z = torch.zeros(1, classes, dtype=torch.float64)
    z[0, 0] = 50.0
    loss, _ = loss_value("cross_entropy", z, torch.tensor([0]), squashed="softmax")
    chance = np.log(classes)
    assert unreachable_fraction("softmax", "softmax", classes) == pytest.approx(float(loss) / chance, rel=1e-9)
    assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(torch.softmax(z, -1), torch.tensor([0]))))
    # and no descent gets below it: 300 Adam steps on free logits
    w = torch.zeros(1, classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        step, _ = loss_value("cross_entropy", w, torch.tensor([0]), squashed="softmax")
        step.backward()
        opt.step()
    assert float(loss) - 1e-6 <= float(step.detach()) <= float(loss) + 1e-3


def test_a_sigmoid_applied_twice_leaves_a_zero_target_at_chance() -> None:
    big = torch.tensor([[60.0], [-60.0]], dtype=torch.float64)
    loss, _ = loss_value("binary_cross_entropy", big, torch.tensor([[1.0], [0.0]], dtype=torch.float64),
                         squashed="sigmoid")
    assert float(loss) / np.log(2) == pytest.approx(unreachable_fraction("sigmoid", "sigmoid", 1), rel=1e-9)


@pytest.mark.parametrize("graph", [False, True])
def test_a_keras_softmax_output_under_a_loss_on_logits_is_found_and_dropping_it_fixes_it(
        tmp_path: Path, graph: bool) -> None:
    logits = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    hidden = [_dense("d1", 32, "relu", _init_he()), _dense("d2", 32, "relu", _init_he())]
    cfg = _seq(*hidden, _dense("out", 10, "softmax"), shape=[16]) if not graph else _concat_model("softmax")
    path = tmp_path / "twice.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": logits}}))
    [f] = _mismatch(check_keras(path))
    assert f.severity == "error" and f.evidence.layers == ["out"] and f.evidence.output_activation == "softmax"
    assert f.evidence.value == pytest.approx(np.log1p(9 / np.e) / np.log(10))
    [r] = f.remedies
    assert r.id == "logits_loss" and "drop the softmax from out" in r.change
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0.0
    # the --loss override names a loss, not how it takes its inputs: the softmax is folded into it
    assert not _mismatch(check_keras(path, loss="cross_entropy"))


def test_a_keras_graph_over_the_limits_at_the_default_batch_is_checked_at_the_smallest(tmp_path: Path) -> None:
    from gradhealth.analysis.importers.keras_graph import plan_keras_graph
    from gradhealth.analysis.plan import Limits
    from gradhealth.errors import LimitExceeded
    from gradhealth.settings import Settings

    cfg = _concat_model("linear")
    at_64 = plan_keras_graph(cfg, batch_size=64).activation_bytes
    at_8 = plan_keras_graph(cfg, batch_size=8).activation_bytes
    settings = Settings(limits=Limits(max_activation_bytes=(at_8 + at_64) // 2))
    path = tmp_path / "wide.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "categorical_crossentropy"}}))
    doc = check_keras(path, settings=settings)
    assert "batch 8, chosen for this model" in doc.summary and _mismatch(doc)
    # asked for 64, it is refused, with the batch that would fit
    with pytest.raises(LimitExceeded, match=r"a batch of \d+ or fewer fits"):
        check_keras(cfg, settings=settings, batch_size=64)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "cross_entropy"])
def test_a_spec_ending_in_a_sigmoid_under_a_loss_on_logits_squashes_twice(loss):
    from gradhealth import check_architecture

    spec = {"input": {"shape": [32]}, "seeds": 2, "batch_size": 64, "loss": {"type": loss},
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 10, "activation": "sigmoid"}]}
    doc = check_architecture(spec)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    extra = f.evidence.model_dump()
    assert extra["output_activation"] == "sigmoid" and "from_logits: true" in f.summary
    # the floor the theory gives: sigmoid outputs into a sigmoid cross-entropy, or into a softmax
    # over 10 classes (ln(1 + 9/e) of ln 10)
    expected = unreachable_fraction("sigmoid", "sigmoid" if loss == "binary_cross_entropy" else "softmax", 10)
    assert f.evidence.value == pytest.approx(expected)
    [fix] = [r for r in f.remedies if r.id == "logits_loss"]
    assert fix.patch == [{"op": "replace", "path": "/layers/1/activation", "value": "identity"}]
    assert fix.verified is not None and fix.verified.fixed
    # the same output with the loss on probabilities, or without the sigmoid, is no mismatch
    for change in ({"loss": {"type": loss, "from_logits": False}} if loss == "binary_cross_entropy" else {},
                   {"layers": [spec["layers"][0], {"type": "linear", "out_features": 10}]}):
        if change:
            other = check_architecture({**spec, **change}, verify=False)
            assert "output_loss_mismatch" not in {f.code for f in other.findings}


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "cross_entropy"])
def test_a_spec_ending_in_a_tanh_under_a_loss_on_logits_bounds_its_logits(loss: str) -> None:
    # tanh logits lie in [-1, 1]: the loss floor, measured with torch on logits driven to the
    # bound (independent of the formula), is a third (10 classes) or nearly half (binary) of chance
    spec = {"input": {"shape": [32]}, "seeds": 2, "batch_size": 64, "loss": {"type": loss},
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 10, "activation": "tanh"}]}
    z = torch.full((1, 10), -50.0, dtype=torch.float64)
    z[0, 0] = 50.0
    if loss == "cross_entropy":
        floor = float(torch.nn.functional.cross_entropy(torch.tanh(z), torch.tensor([0]))) / np.log(10)
    else:  # balanced targets: the right logit at +1 for a 1, at -1 for a 0
        floor = float(torch.nn.functional.binary_cross_entropy_with_logits(
            torch.tanh(torch.tensor([50.0, -50.0], dtype=torch.float64)),
            torch.tensor([1.0, 0.0], dtype=torch.float64))) / np.log(2)
    [f] = [f for f in check_architecture(spec).findings if f.code == "output_loss_mismatch"]
    assert f.severity == "error" and f.evidence.value == pytest.approx(floor, rel=1e-9)
    assert "values in [-1, 1]" in f.explanation
    [fix] = [r for r in f.remedies if r.id == "logits_loss"]
    assert fix.verified is not None and fix.verified.fixed and "from_logits=False" not in fix.change
    # a tanh output under mse (a regression to [-1, 1]) is no mismatch
    assert not _mismatch(check_architecture({**spec, "loss": {"type": "mse"}}, verify=False))


# --- a ReLU on a regression output ------------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_a_relu_on_a_regression_output_is_a_mismatch_and_a_linear_output_fixes_it(loss: str) -> None:
    # one output unit, zero bias, a symmetric init: the sign of its pre-activation is a fair coin
    # per sample, so about half the 3 x 64 outputs are clipped at 0 (a binomial's 4 sigma: +-0.14)
    doc = check_architecture(_spec({"type": "linear", "out_features": 1, "activation": "relu",
                                    "bias_init": "zeros"}, {"type": loss}))
    [f] = _mismatch(doc)
    assert f.evidence.metric == "clipped_output_fraction" and 0.36 < f.evidence.value < 0.64
    assert f.severity in ("warning", "error") and "below 0" in f.summary
    clipped = f.evidence.clipped_by_seed
    assert f.severity == ("error" if max(clipped) == 1.0 else "warning")
    [r] = f.remedies
    assert r.id == "output_activation" and r.patch == [{"op": "replace", "path": "/layers/1/activation",
                                                        "value": "identity"}]
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0
    assert not [g for g in doc.findings if g.code == "dead_units"]  # the output's death is this finding's


def test_a_relu_output_off_for_every_sample_is_an_error_here_not_dead_units() -> None:
    # a bias of -50 holds every output's pre-activation below 0: nothing gets a gradient
    doc = check_architecture(_spec({"type": "linear", "out_features": 1, "activation": "relu",
                                    "bias_init": {"scheme": "constant", "value": -50.0}}, {"type": "mse"}))
    [f] = _mismatch(doc)
    assert f.severity == "error" and f.evidence.value == 1.0 and f.evidence.clipped_by_seed == [1.0, 1.0, 1.0]
    assert not [g for g in doc.findings if g.code == "dead_units"]
    assert any(r.id == "output_activation" and r.verified is not None and r.verified.fixed for r in f.remedies)


@pytest.mark.parametrize("last", [{"type": "linear", "out_features": 1},
                                  {"type": "linear", "out_features": 1, "activation": "softplus"}])
def test_a_linear_or_softplus_regression_output_is_no_mismatch(last: dict[str, Any]) -> None:
    assert not _mismatch(check_architecture(_spec(last, {"type": "mse"})))


def test_a_relu_output_under_cross_entropy_is_not_judged_as_a_regression() -> None:
    doc = check_architecture(_spec({"type": "linear", "out_features": 10, "activation": "relu"},
                                   {"type": "cross_entropy"}))
    # judged as the logits' clip (peersweep6: a ReLU on the logits), never in a regression's words
    clipped = [f for f in _mismatch(doc) if f.evidence.metric == "clipped_output_fraction"]
    assert clipped and all("takes them for logits" in f.summary and "target" not in f.summary for f in clipped)


def test_a_live_modules_final_relu_is_taken_out_to_verify_and_one_called_in_forward_is_named() -> None:
    from gradhealth.library import check_module

    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(13, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1), torch.nn.ReLU())
    [f] = _mismatch(check_module(seq, torch.randn(32, 13), loss="mse"))
    [r] = f.remedies
    assert r.id == "output_activation" and r.verified is not None and r.verified.fixed
    assert isinstance(seq[3], torch.nn.ReLU)  # the user's module is left as it was

    class Functional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(13, 64), torch.nn.Linear(64, 1)
            with torch.no_grad():
                self.b.bias.fill_(5.0)  # every output positive at init: the ReLU clips none yet

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.b(torch.relu(self.a(x))))

    [f] = _mismatch(check_module(Functional(), torch.randn(32, 13), loss="mse"))
    assert f.severity == "warning" and f.evidence.value == 0.0  # a structural risk, not yet a loss
    [r] = f.remedies
    assert r.id == "output_activation" and r.verified is None  # no module to take out of a copy


def test_a_keras_activation_layer_ending_a_regression_is_found_and_removed() -> None:
    cfg = _seq(_dense("d1", 64, "relu", _init_he()), _dense("out", 1),
               _layer("Activation", "act", activation="relu"), shape=[13])
    [f] = _mismatch(check_keras({**cfg, "compile_config": {"loss": "mean_squared_error"}}))
    [r] = f.remedies
    assert r.id == "output_activation" and r.verified is not None and r.verified.fixed


@pytest.mark.parametrize("act", ["sigmoid", "softmax"])
def test_a_keras_single_unit_under_categorical_cross_entropy_gets_binary_cross_entropy(tmp_path: Path, act: str) -> None:
    # StackOverflow 58609115: Dense(1, activation="sigmoid") compiled with categorical_crossentropy;
    # Keras normalises the one output to 1, the loss is 0 and no layer ever gets a gradient
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 1, act), shape=[16])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "categorical_crossentropy"}}))
    doc = check_keras(path)
    [f] = _mismatch(doc)
    assert f.severity == "error" and f.evidence.value == 1.0
    [r] = f.remedies
    assert r.id == "output_activation" and "binary cross-entropy" in r.change
    assert r.verified is not None and r.verified.fixed and r.verified.after is not None and r.verified.after < 0.05


def test_a_linear_output_under_a_probability_loss_is_at_least_a_warning(tmp_path: Path) -> None:
    # DeepCrime's audio model mutated to a linear output under sparse_categorical_crossentropy: on
    # its stored weights the clip held 3% of the batch (all outputs happened to be positive), under
    # the 5% warning line, though the model is as wrong as one where it holds 29%
    out = _dense("out", 5, "linear")
    out["config"]["bias_initializer"] = _init("Constant", value=20.0)  # every output positive: no clip
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), out, shape=[16])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "sparse_categorical_crossentropy"}}))
    [f] = _mismatch(check_keras(path))
    assert f.severity == "warning" and f.evidence.value < 0.05 and f.evidence.output_activation == "identity"
    # the same output with its softmax: no mismatch
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 5, "softmax"), shape=[16])
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "sparse_categorical_crossentropy"}}))
    assert not _mismatch(check_keras(path))


def test_a_keras_kernel_initialised_to_ones_is_symmetric() -> None:
    # DeepCrime's "change weights initialisation" mutant: kernel_initializer="ones"
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("d2", 32, "relu", _init("Ones")),
               _dense("out", 10, "softmax"), shape=[16])
    [f] = [f for f in check_keras(cfg).findings if f.code == "symmetric_weights"]
    assert f.severity == "error" and any("d2" in name for name in f.evidence.layers)


@pytest.mark.parametrize("act,loss,found", [("sigmoid", "categorical_crossentropy", True),
                                            ("softmax", "categorical_crossentropy", False),
                                            ("sigmoid", "binary_crossentropy", False)])
def test_sigmoids_per_class_under_categorical_cross_entropy_are_a_note_at_init(tmp_path: Path, act: str, loss: str,
                                                                               found: bool) -> None:
    # StackOverflow 59278771 (iris) and 55328966 (MNIST): Dense(k, sigmoid) under
    # categorical_crossentropy; Keras divides the sigmoids by their sum, nothing is clipped, and each
    # logit's gradient is the softmax's times 1 - s_j: about half at initialisation, so a note
    # (peersweep4: DeepFD's own repair of 59282996 keeps them and trains)
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", 3, act), shape=[4])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": loss}}))
    doc = check_keras(path)
    mismatches = _mismatch(doc)
    assert bool(mismatches) == found
    if found:
        [f] = mismatches
        assert f.severity == "info" and doc.status == "healthy"
        assert f.evidence.output_activation == "sigmoid" and "about half the softmax's gradient" in f.summary
        assert f.evidence.model_extra["saturated_output_fraction"] < 0.1


def test_normalised_sigmoids_pass_the_softmax_gradient_times_one_minus_s() -> None:
    # the theory the note states, computed independently: Keras' categorical cross-entropy on
    # probabilities divides y_pred by its sum before the log
    torch.manual_seed(0)
    z = (0.5 * torch.randn(256, 3)).requires_grad_()
    target = torch.randint(0, 3, (256,))
    s = torch.sigmoid(z)
    p = s / s.sum(dim=1, keepdim=True)
    torch.nn.functional.nll_loss(torch.log(p), target, reduction="sum").backward()
    onehot = torch.nn.functional.one_hot(target, 3).double()
    sd = s.detach().double()
    expected = (sd / sd.sum(dim=1, keepdim=True) - onehot) * (1 - sd)
    assert torch.allclose(z.grad.double(), expected, atol=1e-5)
    soft = torch.softmax(z.detach(), dim=1) - onehot.float()
    ratio = float(z.grad.norm() / soft.norm())
    assert 0.4 < ratio < 0.6  # about half near s = 0.5, as the note says


def test_sigmoids_per_class_already_saturated_are_a_warning(tmp_path: Path) -> None:
    # the trap the note names: every sigmoid near 1 together, where the loss sits at ln k and each
    # logit's gradient carries 1 - s ~ 0
    out = _dense("out", 3, "sigmoid")
    out["config"]["bias_initializer"] = {"module": "keras.initializers", "class_name": "Constant",
                                         "config": {"value": 8.0}, "registered_name": None}
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), out, shape=[4])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "categorical_crossentropy"}}))
    [f] = _mismatch(check_keras(path))
    assert f.severity == "warning" and "already saturated" in f.summary
    assert f.evidence.model_extra["saturated_output_fraction"] > 0.9
    [r] = f.remedies
    assert r.id == "logits_loss" and {"op": "replace", "path": "/layers/1/activation", "value": "identity"} in r.patch


@pytest.mark.parametrize("bias,severity", [(-8.0, "info"), (8.0, "warning")])
def test_only_sigmoids_saturated_towards_1_are_the_trap(tmp_path: Path, bias: float, severity: str) -> None:
    # peersweep5 (AutoTrainer's selu repair, trained weights): sigmoids near 0 keep the softmax's
    # gradient under Keras' renormalised cross-entropy, (s_j/S - [j=t])(1 - s_j) with 1 - s_j ~ 1,
    # and one near 1 is a confident prediction: only a sample whose every sigmoid is near 1 has
    # p = 1/k and no gradient; both tails of every output were counted as the trap
    out = _dense("out", 3, "sigmoid")
    out["config"]["bias_initializer"] = {"module": "keras.initializers", "class_name": "Constant",
                                         "config": {"value": bias}, "registered_name": None}
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), out, shape=[4])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "categorical_crossentropy"}}))
    [f] = _mismatch(check_keras(path))
    assert f.severity == severity, f.summary
    # the measured fraction is of samples with all three near 1: all of them at +8, none at -8
    assert (f.evidence.model_extra["saturated_output_fraction"] > 0.9) == (bias > 0)


def test_a_relu_output_under_a_loss_on_probabilities_is_made_linear_as_its_remedy_says() -> None:
    # spec sweep 6: the change said "keeping layers[1] linear" while the patch left its ReLU, which
    # passes no logit below 0
    from gradhealth.library import check_architecture
    spec = {"input": {"shape": [16]}, "batch_size": 64,
            "loss": {"type": "cross_entropy", "from_logits": False},
            "layers": [{"type": "linear", "out_features": 32, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 5, "activation": "relu"}]}
    [f] = [f for f in check_architecture(spec).findings if f.code == "output_loss_mismatch"]
    [r] = [r for r in f.remedies if r.id == "logits_loss"]
    assert {"op": "replace", "path": "/layers/1/activation", "value": "identity"} in r.patch
    assert "linear" in r.change and r.verified is not None and r.verified.fixed


@pytest.mark.parametrize("k", [2, 3, 30])
def test_a_softmax_over_more_than_two_units_under_binary_cross_entropy_is_a_warning(tmp_path: Path, k: int) -> None:
    # kerassweep23 u04 (a-amme/seeing-sums): Dense(30, softmax) compiled with binary_crossentropy and
    # trained on multi-hot targets was healthy. Over 2 units on one-hot targets the two terms are one
    # sigmoid's (p_2 = 1 - p_1): no mismatch
    cfg = _seq(_dense("d1", 32, "relu", _init_he()), _dense("out", k, "softmax"), shape=[16])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "binary_crossentropy"}}))
    doc = check_keras(path, seeds=1)
    mismatches = _mismatch(doc)
    if k == 2:
        assert not mismatches and doc.status == "healthy"
        return
    [f] = mismatches
    assert f.severity == "warning" and doc.status == "warning"
    assert f.summary.startswith("softmax under binary cross-entropy") and f"{k} softmax outputs" in f.summary
    assert f.evidence.metric == "softmax_units_under_binary_loss" and f.evidence.value == k
    assert f.evidence.model_extra["units"] == k and f.evidence.loss == "binary_cross_entropy"
    assert f.evidence.output_activation == "softmax"
    [r] = f.remedies
    assert r.id == "output_activation" and "sigmoid per unit" in r.change and "categorical cross-entropy" in r.change
    assert r.verified is not None and r.verified.fixed  # the sigmoids re-simulated: nothing left to flag


def test_softmax_under_binary_cross_entropy_cannot_reach_multi_hot_targets_and_inflates_binary_accuracy() -> None:
    # the theory the finding states, computed independently of the tool: Keras' binary cross-entropy
    # on probabilities is the mean over the k units of -[t log p + (1 - t) log(1 - p)]
    k = 5
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0]])  # multi-hot: two labels
    z = torch.zeros(1, k, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(2000):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy(torch.softmax(z, dim=1), target)
        loss.backward()
        opt.step()
    p = torch.softmax(z, dim=1).detach()
    # the best a softmax can do gives each of the m = 2 labels at most 1/2: the loss stays at 2 ln 2 / k
    assert float(p[0, :2].max()) <= 0.5 + 1e-3
    assert float(loss.detach()) == pytest.approx(2 * np.log(2) / k, rel=1e-2)
    sig = torch.nn.functional.binary_cross_entropy(torch.sigmoid(torch.tensor([[9.0, 9.0, -9.0, -9.0, -9.0]])), target)
    assert float(sig) < 1e-3  # a sigmoid per unit reaches it
    # one-hot targets, a softmax that predicts nothing (uniform): each unit 1/k < 0.5 reads 0, so
    # Keras' binary_accuracy is (k - 1)/k
    onehot = torch.nn.functional.one_hot(torch.arange(k), k).float()
    uniform = torch.full((k, k), 1.0 / k)
    assert float(((uniform > 0.5).float() == onehot).float().mean()) == pytest.approx((k - 1) / k)
