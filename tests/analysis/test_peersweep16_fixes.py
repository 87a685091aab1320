"""peersweep16: a convolution's fan_out read as its output's width (u10), units that are exact copies
of one another in a layer whose weights are not all one value (u11), and SGD's momentum build-up
left out of the update-size judgement, with the sharpness bound skipped in silence (u05)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn as nn

from gradhealth.analysis.module_check import check_module


def _doc(model: nn.Module, x: torch.Tensor, **kw: Any) -> dict[str, Any]:
    report = check_module(model, x, **kw)
    return report.model_dump() if hasattr(report, "model_dump") else dict(report)


def _finding(doc: dict[str, Any], code: str) -> dict[str, Any]:
    return next(f for f in doc["findings"] if f["code"] == code)


def test_a_conv_output_counts_its_logits_not_its_fan_out_and_says_its_zero_weights() -> None:
    # u10: Conv2d(4, 11, 5) on 5x5 inputs makes 11 channels of 1x1, flattened: 11 logits; its
    # fan_out is 11 * 5 * 5 = 275 and its fan_in 4 * 5 * 5 = 100, neither a width of the output
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 11, 5)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten())
    x = torch.randn(9, 4, 5, 5)
    assert model(x).shape == (9, 11)
    doc = _doc(model, x, loss="cross_entropy", optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    found = _finding(doc, "output_loss_mismatch")
    assert found["evidence"]["classes"] == 11
    # every channel is 0 for every sample: all 11 logits, in every seed
    assert found["evidence"]["dead_output_units_by_seed"] == [11, 11, 11]
    assert "11 of the 11 outputs" in found["summary"] and "275" not in found["summary"]
    # the zero layer's own state: weights all 0, its weight gradient exactly 0 (relu'(0) = 0)
    assert found["evidence"]["zero_weights"] is True
    assert found["evidence"]["grad_norm_by_seed"] == [0.0, 0.0, 0.0]
    assert "weights are all 0" in found["summary"]
    params = found["remedies"][0]["params"]
    # nn.Linear(n_in, n_out) for the head: 11 classes; a conv has no Linear in_features to name
    assert params["n_out"] == "11" and params["n_in"] == "n_in"


def test_a_linear_outputs_width_is_still_its_out_features() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 7), nn.ReLU())
    doc = _doc(model, torch.randn(16, 6), loss="cross_entropy")
    found = _finding(doc, "output_loss_mismatch")
    assert found["evidence"]["classes"] == 7
    assert found["remedies"][0]["params"]["n_in"] == "6" and found["remedies"][0]["params"]["n_out"] == "7"


def test_units_that_are_exact_copies_are_symmetric_weights_with_their_groups() -> None:
    # u11: Dense(11) on 4 features, weights all 1 but two zero rows: 9 copies of one unit, which
    # get the same gradient forever (checked below by training), and 2 dead units left to others
    torch.manual_seed(0)
    d = nn.Linear(4, 11)
    with torch.no_grad():
        d.weight.fill_(1.0)
        d.weight[0:2, :] = 0.0
        d.bias.zero_()
    model = nn.Sequential(d, nn.ReLU(), nn.Linear(11, 3))
    x = torch.randn(32, 4)
    doc = _doc(model, x, loss="cross_entropy", optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    found = _finding(doc, "symmetric_weights")
    assert found["severity"] == "warning"
    assert found["evidence"]["groups"]["0"] == [list(range(2, 11))]
    # 9 of 11 are in the group, 8 of them redundant: the layer starts as 11 - 8 = 3 units
    assert found["evidence"]["duplicate_units"]["0"] == pytest.approx(9 / 11, abs=1e-6)
    assert found["evidence"]["value"] == pytest.approx(8 / 11)
    assert found["evidence"]["distinct_units"] == 3


@pytest.mark.parametrize("equal_outgoing", [True, False])
def test_copies_stay_copies_exactly_where_what_reads_them_weighs_them_alike(equal_outgoing: bool) -> None:
    # the theory the finding states: row i's gradient is delta_i x^T; copies read alike get equal
    # deltas under momentum SGD and Adam, and separate where the next layer weighs them differently
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[0].weight[1:4] = model[0].weight[0]
        model[0].bias[1:4] = model[0].bias[0]
        if equal_outgoing:
            model[2].weight[:, 1:4] = model[2].weight[:, 0:1]
    x, y = torch.randn(32, 4), torch.randint(3, (32,))
    for opt in (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.optim.Adam(model.parameters())):
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    rows = model[0].weight.detach()
    assert all(torch.equal(rows[i], rows[0]) for i in range(1, 4)) == equal_outgoing


def test_a_few_copies_are_a_note_and_random_or_zero_rows_are_nothing() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(32, 8)
    doc = _doc(model, x, loss="cross_entropy")
    assert "symmetric_weights" not in {f["code"] for f in doc["findings"]}
    with torch.no_grad():
        model[0].weight[1] = model[0].weight[0]
        model[0].bias[1] = model[0].bias[0]
    found = _finding(_doc(model, x, loss="cross_entropy"), "symmetric_weights")
    assert found["severity"] == "info" and found["evidence"]["groups"]["0"] == [[0, 1]]
    # equal rows but different biases are no copies; zero rows (dead, not symmetric) are left out
    with torch.no_grad():
        model[0].bias[1] = model[0].bias[0] + 0.5
        model[0].weight[5:9] = 0.0
        model[0].bias[5:9] = 0.0
    assert "symmetric_weights" not in {f["code"] for f in _doc(model, x, loss="cross_entropy")["findings"]}


def test_identical_conv_filters_are_copies() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3)
    with torch.no_grad():
        conv.weight[1:] = conv.weight[0]
        conv.bias[1:] = conv.bias[0]
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    found = _finding(_doc(model, torch.randn(16, 3, 8, 8), loss="cross_entropy"), "symmetric_weights")
    assert found["severity"] == "warning" and found["evidence"]["groups"]["0"] == [list(range(8))]


def _velocity_rms(beta: float, nesterov: bool, steps: int, trials: int = 20000) -> float:
    """The mean over the first ``steps`` steps of SGD's step RMS under independent unit gradients,
    over its first step's, simulated as torch.optim.SGD runs it."""
    gen = torch.Generator().manual_seed(0)
    p = torch.zeros(trials, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0, momentum=beta, nesterov=nesterov)
    sizes = []
    for _ in range(steps):
        before = p.detach().clone()
        p.grad = torch.randn(trials, generator=gen, dtype=torch.float64)
        opt.step()
        sizes.append(float((p.detach() - before).pow(2).mean().sqrt()))
    return sum(sizes) / len(sizes) / sizes[0]


@pytest.mark.parametrize(("beta", "nesterov"), [(0.9, False), (0.5, False), (0.9, True), (0.8, True)])
def test_momentum_build_up_is_the_mean_rms_step_over_its_time_constant(beta: float, nesterov: bool) -> None:
    from gradhealth.analysis.rules import momentum_build_up
    steps = round(1 / (1 - beta))
    assert momentum_build_up(beta, nesterov) == pytest.approx(_velocity_rms(beta, nesterov, steps), rel=0.03)
    assert momentum_build_up(0.0) == 1.0
    # between the first step and the noise limit 1/sqrt(1 - beta^2) (the steady-gradient bound 1/(1 - beta))
    assert 1.0 < momentum_build_up(beta, nesterov) < 1 / math.sqrt(1 - beta ** 2) < 1 / (1 - beta)


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def _xavier_mx(model: nn.Sequential) -> None:
    # mxnet's Xavier(magnitude=2.24): uniform, factor avg (the SageMaker Debugger demo's init)
    for lin in model:
        if isinstance(lin, nn.Linear):
            fan_in, fan_out = lin.weight.shape[1], lin.weight.shape[0]
            scale = math.sqrt(2.24 / ((fan_in + fan_out) / 2.0))
            with torch.no_grad():
                lin.weight.uniform_(-scale, scale)
                lin.bias.zero_()


def test_sgd_at_an_effective_rate_of_10_is_a_large_update_and_the_skipped_sharpness_is_said() -> None:
    # u05: SGD lr 1.0 momentum 0.9 on a 784-128-64-10 ReLU MLP (109,386 parameters, past the
    # sharpness estimate's 100,000): first steps under 0.1, built up 1.78x over them
    from gradhealth.analysis.rules import momentum_build_up
    torch.manual_seed(0)
    model = _mlp()
    _xavier_mx(model)
    x = torch.rand(100, 784)
    doc = _doc(model, x, loss="cross_entropy", input_range=(0.0, 1.0),
               optimizer=torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9))
    found = _finding(doc, "large_updates")
    assert found["severity"] == "warning"
    assert found["evidence"]["first_step_factor"] == pytest.approx(1 / momentum_build_up(0.9))
    assert "momentum 0.9 has built up" in found["summary"]
    note = next(n for n in doc["simulation"]["notes"] if "sharpness" in n)
    assert "109,386 trainable parameters" in note and "not estimated" in note
    # the usual rate with the same momentum stays healthy
    torch.manual_seed(0)
    model = _mlp()
    _xavier_mx(model)
    doc = _doc(model, x, loss="cross_entropy", input_range=(0.0, 1.0),
               optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    assert "large_updates" not in {f["code"] for f in doc["findings"]}
