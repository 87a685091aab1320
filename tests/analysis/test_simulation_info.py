"""The document says which loss and which optimizer the check used (peersweep8: a Keras file's
compiled SGD with momentum could not be confirmed from the output), and the text report says when
no optimizer was given, so that update sizes were not checked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth import check_architecture, check_module
from gradhealth.report.text import render_text

SPEC = {"input": {"shape": [8]}, "seeds": 1,
        "layers": [{"type": "linear", "out_features": 16, "activation": "relu"}, {"type": "linear", "out_features": 3}]}


def test_a_specs_loss_and_optimizer_are_in_the_document_and_the_text() -> None:
    doc = check_architecture({**SPEC, "loss": {"type": "mse"},
                              "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9}}, verify=False)
    assert doc.simulation is not None
    assert doc.simulation.loss == "mse"
    assert doc.simulation.optimizer == {"type": "sgd", "lr": 0.01, "momentum": 0.9}   # defaults left out
    assert "  loss mse; optimizer sgd, lr 0.01, momentum 0.9" in render_text(doc).splitlines()


def test_no_optimizer_is_said_and_probabilities_are_named() -> None:
    doc = check_architecture({**SPEC, "layers": [*SPEC["layers"][:-1], {"type": "linear", "out_features": 1,
                                                                        "activation": "sigmoid"}],
                              "loss": {"type": "binary_cross_entropy", "from_logits": False}}, verify=False)
    assert doc.simulation is not None and doc.simulation.optimizer is None
    assert doc.simulation.loss == "binary_cross_entropy (on probabilities)"
    assert "no optimizer given: update sizes not checked" in render_text(doc)


def test_a_live_modules_loss_and_torch_optimizer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=0.01)
    doc = check_module(model, torch.randn(4, 8), seeds=1, verify=False, optimizer=opt)
    assert doc.simulation is not None and doc.simulation.loss == "cross_entropy"
    # torch's optimizer states its eps: shown as the optimizer has it
    assert doc.simulation.optimizer == {"type": "adam", "lr": 3e-4, "eps": 1e-8, "weight_decay": 0.01}


def test_a_live_modules_loss_on_probabilities_is_named_as_the_specs() -> None:
    # modsweep45: nn.BCELoss on a forward ending in its own sigmoid read "loss binary_cross_entropy",
    # the name of the loss on logits; the document names it as a spec's from_logits: false
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    for loss in (nn.BCELoss(), "binary_cross_entropy_probs"):
        doc = check_module(model, torch.randn(8, 8), seeds=1, verify=False, loss=loss)
        assert doc.simulation is not None
        assert doc.simulation.loss == "binary_cross_entropy (on probabilities)"
        assert "  loss binary_cross_entropy (on probabilities); no optimizer given" in render_text(doc)
    on_logits = check_module(model[:3], torch.randn(8, 8), seeds=1, verify=False, loss=nn.BCEWithLogitsLoss())
    assert on_logits.simulation is not None and on_logits.simulation.loss == "binary_cross_entropy"


def test_each_layers_first_step_ratio_is_in_the_layer_table() -> None:
    # peersweep9: with no large_updates the user could not see how close the rate came. SGD's first
    # step is lr * ||dL/dW||, so each layer's ratio is lr * grad_norm / ||W|| (one seed: no mean to take)
    lr = 0.1
    doc = check_architecture({**SPEC, "optimizer": {"type": "sgd", "lr": lr}}, verify=False)
    for layer in doc.layers:
        assert layer.update_ratio is not None and layer.grad_norm is not None and layer.weight_std is not None
        n = layer.fan_in * layer.fan_out
        weight_norm = layer.weight_std * n ** 0.5   # zero-mean weights: ||W|| ~ std sqrt(n)
        assert layer.update_ratio == pytest.approx(lr * layer.grad_norm / weight_norm, rel=0.1)
    assert "dW/W" in render_text(doc, layers=True)
    assert all(layer.update_ratio is None for layer in check_architecture(SPEC, verify=False).layers)


def test_the_table_shows_the_step_large_updates_judges_beside_the_first() -> None:
    # peersweep11 u05: the dW/W column showed RMSprop's first step (0.146) beside "healthy", while
    # large_updates judges its usual step, 1/sqrt(1 - alpha) times smaller (its square average starts
    # at (1 - alpha) g^2). At alpha 0.75 the judged figure is half the first step's, on every layer.
    from gradhealth.report.context import ReportContext
    from gradhealth.report.html import render_html

    spec = {**SPEC, "layers": [{**SPEC["layers"][0], "init": "kaiming_normal"}, SPEC["layers"][1]]}
    doc = check_architecture({**spec, "optimizer": {"type": "rmsprop", "lr": 0.01, "alpha": 0.75}}, verify=False)
    for layer in doc.layers:
        assert layer.update_ratio is not None and layer.judged_update_ratio is not None
        assert layer.judged_update_ratio == pytest.approx(0.5 * layer.update_ratio, rel=1e-6)
    text = render_text(doc, layers=True)
    assert "dW/W first" in text and "dW/W judged" in text
    html = render_html(doc, ReportContext())
    assert "dW/W first step" in html and "dW/W judged" in html
    # where the step is large enough to fire, the finding's figure is the judged column's
    doc = check_architecture({**spec, "optimizer": {"type": "rmsprop", "lr": 0.3, "alpha": 0.75}}, verify=False)
    found = next(f for f in doc.findings if f.code == "large_updates")
    judged = {layer.name: layer.judged_update_ratio for layer in doc.layers}
    for name, ratio in found.evidence.model_extra["update_ratios"].items():
        assert ratio == pytest.approx(judged[name], rel=1e-9)
