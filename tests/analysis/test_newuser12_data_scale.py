"""check_module simulates at the data's scale (newuser12 #1, #4, #8, #9): float example inputs far
from unit scale (raw 0-255 pixels) are drawn from their own rows, not replaced by N(0, 1) draws, and
regression targets given (``targets=``) set the simulated loss, so the first step's update ratios
are the real ones; ``normalise_targets`` and ``normalise_inputs`` are offered for ``large_updates``."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from gradhealth import check_module


def _regressor() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))


def _prices(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=g)
    y = 3000 + 800 * torch.tanh(x @ torch.randn(8, 1, generator=g) / 2)  # prices of 3000 +- 800
    return x, y


def _last_layer_sgd_ratio(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    """The last layer's first plain-SGD step, ||lr * dL/dW|| / ||W||, on the real batch, by hand."""
    net = copy.deepcopy(model).double()
    loss = ((net(x.double()) - y.double()) ** 2).mean()
    w = net[-1].weight
    (grad,) = torch.autograd.grad(loss, [w])
    return float(lr * grad.norm() / w.detach().norm())


def test_regression_targets_in_the_thousands_set_the_simulated_first_step() -> None:
    model, (x, y) = _regressor(), _prices()
    real = _last_layer_sgd_ratio(model, x, y, 1e-3)
    assert real > 0.5  # the real step moves the last layer by about its own norm
    doc = check_module(model, x, loss="mse", targets=y, seeds=2,
                       optimizer=torch.optim.SGD(model.parameters(), lr=1e-3))
    simulated = doc.layers[-1].update_ratio
    # the simulation's batch is other N(0, 1) rows and resampled targets: the same to a factor of 2
    # (against standard-normal targets it was four decades under)
    assert simulated is not None and abs(math.log10(simulated / real)) < math.log10(2)
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    assert f.severity == "error"
    [fix] = [r for r in f.remedies if r.id == "normalise_targets"]
    mean, std = float(y.mean()), float(y.std(unbiased=False))
    assert f"(y - {mean:.4g}) / {std:.4g}" in fix.change and f"y_mean, y_std = {mean:.6g}, {std:.6g}" in fix.snippet
    # re-simulated on standardised targets: the step is small again
    assert fix.verified is not None and fix.verified.fixed and fix.recommended
    assert fix.verified.after is not None and fix.verified.after < 0.1
    assert any("targets given (targets=)" in n and "far from unit scale" in n for n in doc.simulation.notes)


def test_standardised_targets_are_not_offered_normalise_targets() -> None:
    model, (x, y) = _regressor(), _prices()
    z = (y - y.mean()) / y.std()
    real = _last_layer_sgd_ratio(model, x, z, 1e-3)
    doc = check_module(model, x, loss="mse", targets=z, seeds=2,
                       optimizer=torch.optim.SGD(model.parameters(), lr=1e-3))
    assert doc.status == "healthy"
    simulated = doc.layers[-1].update_ratio
    assert simulated is not None and abs(math.log10(simulated / real)) < math.log10(3)
    assert not [r for f in doc.findings for r in f.remedies if r.id == "normalise_targets"]


def test_the_unused_targets_note_names_the_output_module() -> None:
    # newuser12 #8: "the output (4, no activation)" read as 4 units
    model, (x, y) = _regressor(), _prices()
    doc = check_module(model, x, loss="mse", targets=y, seeds=1, verify=False)
    [note] = [n for n in doc.simulation.notes if n.startswith("targets= used for the loss only")]
    assert "the output 4 (Linear 32\u21921), with no activation" in note


class _PixelCNN(nn.Module):
    """A CNN without norms, fed raw 0-255 pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def _head_sgd_ratio(model: nn.Module, x: torch.Tensor, lr: float) -> float:
    """The head's first SGD step on the real batch (momentum's first step is lr * grad) against
    uniform random classes, by hand: the cross-entropy's gradient does not depend much on which."""
    net = copy.deepcopy(model).double()
    labels = torch.randint(10, (x.shape[0],), generator=torch.Generator().manual_seed(3))
    loss = nn.functional.cross_entropy(net(x.double()), labels)
    (grad,) = torch.autograd.grad(loss, [net.head.weight])
    return float(lr * grad.norm() / net.head.weight.detach().norm())


def test_raw_pixels_are_simulated_at_their_scale_and_offered_normalised_inputs() -> None:
    torch.manual_seed(0)
    model = _PixelCNN()
    pixels = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 255
    real = _head_sgd_ratio(model, pixels, 0.05)
    assert real > 1.0
    doc = check_module(model, pixels, loss="cross_entropy", seeds=1,
                       optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    [note] = [n for n in doc.simulation.notes if "own rows" in n]
    assert "[0" in note and ", 255]" in note and "root mean square 14" in note  # uniform 0-255: 147
    head = next(lr for lr in doc.layers if lr.name == "head").update_ratio
    assert head is not None and abs(math.log10(head / real)) < math.log10(2)
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    [fix] = [r for r in f.remedies if r.id == "normalise_inputs"]
    assert "features.0 reads inputs of root mean square 14" in fix.change
    # re-simulated with the first layer reading its input standardised: the head's step shrinks
    assert fix.verified is not None and fix.verified.after is not None and fix.verified.after < real / 10


def test_unit_scale_examples_are_still_drawn_standard_normal() -> None:
    torch.manual_seed(0)
    model = _PixelCNN()
    for example in (torch.rand(8, 3, 16, 16), torch.randn(8, 3, 16, 16), torch.zeros(8, 3, 16, 16)):
        doc = check_module(model, example, loss="cross_entropy", seeds=1, verify=False)
        assert not any("own rows" in n for n in doc.simulation.notes)
    # the same draws whatever the example's values: N(0, 1) of its shape
    a = check_module(model, torch.rand(8, 3, 16, 16), seeds=1, verify=False)
    b = check_module(model, torch.zeros(8, 3, 16, 16), seeds=1, verify=False)
    assert [x.grad_norm for x in a.layers] == [x.grad_norm for x in b.layers]


def test_the_batch_norm_snippet_is_filled_from_a_sequential() -> None:
    # newuser12 #9: nn.Linear(n_in, n_out) raised NameError; a Sequential's widths are known
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(10):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 4))
    doc = check_module(model, torch.randn(16, 32), seeds=1, verify=False)
    [bn] = [r for f in doc.findings for r in f.remedies if r.id == "batch_norm"]
    # (modsweep47 #2: the ten layers' lines, alike but for their index, are one loop)
    assert "n_in" not in bn.snippet and "for i in range(0, 20, 2):\n    model[i] = nn.Sequential(model[i], nn.BatchNorm1d(32))" in bn.snippet
    fixed = copy.deepcopy(model)
    exec(bn.snippet, {"nn": nn, "model": fixed})  # noqa: S102 - the remedy's own code, run as a user would
    assert isinstance(fixed[0][1], nn.BatchNorm1d) and fixed(torch.randn(4, 32)).shape == (4, 4)
