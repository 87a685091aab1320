"""peersweep22 (TheDeepChecker's Stack Overflow programs and synthetic faults): P7 a constant init
behind BatchNorm read as an exploding gradient from the pre-norm activations' growth, beside the
right "no gradient reaches" error. Every model is built here; the expected figures come from theory
or from the test's own arithmetic."""

from __future__ import annotations

import torch
from torch import nn

import gradhealth


def _constant_bn_cnn() -> nn.Sequential:
    """conv -> ReLU -> BatchNorm twice, then Linear -> ReLU -> BatchNorm, then the readout: every
    weight 0.01 (Keras' Constant(0.01), deepCNN_constant's init), no biases before the norms."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(32),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(32),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * 8 * 8, 64, bias=False), nn.ReLU(), nn.BatchNorm1d(64),
        nn.Linear(64, 10),
    )
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.constant_(m.weight, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def test_a_constant_init_behind_batch_norm_is_no_forward_explosion() -> None:
    net = _constant_bn_cnn()
    x = torch.rand(32, 3, 16, 16)
    # the test's own arithmetic: every norm hands the next layer inputs of std 1 (per channel), so
    # the pre-norm stds are single layers' gains (0.01 x fan_in on copies of one channel), not a
    # signal compounding with depth; their last/first ratio is still past the 100x bar
    with torch.no_grad():
        h, pre = x, []
        for m in net:
            h = m(h)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                pre.append(float(h.std()))
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                assert abs(float(h.std()) - 1.0) < 0.05
    assert pre[2] / pre[0] > 100
    doc = gradhealth.check_module(net, x, loss="cross_entropy", input_range=(0.0, 1.0),
                                  optimizer={"type": "sgd", "lr": 1e-3, "momentum": 0.9}, verify=False)
    codes = {f.code: f for f in doc.findings}
    # the right findings: the equal weights, and no gradient past the readout (its equal rows pass
    # back 0.01 x the sum of the softmax's gradient over the classes, which is 0)
    assert codes["symmetric_weights"].severity == "error"
    assert codes["vanishing_gradient"].severity == "error"
    # and no growth read from activations every norm divides out, nor from a ratio of zero gradients
    assert "exploding_gradient" not in codes or codes["exploding_gradient"].severity == "info"


class _HiddenSoftmax(nn.Module):
    """conv -> softmax over its 16 channels (called in forward, no nn.Softmax module) -> optionally a
    BatchNorm -> conv -> ReLU -> pooled readout."""

    def __init__(self, norm: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        for c in (self.c1, self.c2):
            nn.init.kaiming_normal_(c.weight, nonlinearity="relu")
        self.bn = nn.BatchNorm2d(16) if norm else nn.Identity()
        self.out = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(torch.softmax(self.c1(x), dim=1))
        return self.out(torch.relu(self.c2(h)).mean(dim=(2, 3)))


def _grad_ratio(net: _HiddenSoftmax, x: torch.Tensor, y: torch.Tensor) -> float:
    """||dL/d c1(x)|| / ||dL/d c2(h)||, by autograd on the test's own copy (float64)."""
    net = net.double()
    z1 = net.c1(x.double())
    z1.retain_grad()
    z2 = net.c2(net.bn(torch.softmax(z1, dim=1)))
    z2.retain_grad()
    nn.functional.cross_entropy(net.out(torch.relu(z2).mean(dim=(2, 3))), y).backward()
    assert z1.grad is not None and z2.grad is not None
    return float(z1.grad.norm() / z2.grad.norm())


def test_a_hidden_softmax_behind_a_norm_does_not_claim_the_gradient_shrinks() -> None:
    x, y = torch.rand(16, 3, 8, 8), torch.randint(0, 10, (16,))
    # theory: a flat softmax over 16 features passes about 1/16 of a backward signal; behind a
    # BatchNorm (which divides by the outputs' spread, about 1/16) the layer's gradient is not smaller
    # than the next layer's; without it, it is about 1/16 of it
    with_norm, without = _grad_ratio(_HiddenSoftmax(True), x, y), _grad_ratio(_HiddenSoftmax(False), x, y)
    assert with_norm > 0.5 and without < 0.15
    for norm, ratio in ((True, with_norm), (False, without)):
        doc = gradhealth.check_module(_HiddenSoftmax(norm), x, targets=y, loss="cross_entropy",
                                      input_range=(0.0, 1.0), verify=False)
        sat = next(f for f in doc.findings if f.code == "saturation")
        ev = sat.evidence.model_dump()
        gain = ev["value"]
        assert 0.5 / 16 < gain < 1.5 / 16
        if norm:
            assert ev["shrink_given_back"] is True
            # the quoted figure is the layer's gradient against the next layer's, as autograd gives it
            assert abs(ev["grad_ratio_to_next"] / ratio - 1) < 0.5
            assert "shrink by about k at this layer" not in sat.explanation
        else:
            assert "shrink_given_back" not in ev
            assert "shrink by about k at this layer" in sat.explanation
        # the softmax is a call in forward: no nn.Softmax for a module swap to replace; the snippet
        # names the call and replaces it there
        snippet = sat.remedies[0].snippet or ""
        assert "nn.Softmax" not in snippet and "torch.relu(h)" in snippet
        assert "test_peersweep22_fixes.py" in snippet


def test_unscaled_targets_under_adam_say_how_many_steps_the_offset_takes() -> None:
    torch.manual_seed(0)
    x = torch.rand(32, 4)
    y = (200.0 + 20.0 * torch.randn(32, 1)).double()
    lr = 0.1
    net = nn.Linear(4, 1)
    # the arithmetic: every residual is negative, so Adam's first step moves each weight by lr x
    # sign(g) = +lr x sign(mean x_j) and the bias by +lr: the mean output moves
    # lr x (sum_j |mean x_j| + 1) a step, and does so every step while the offset dominates
    with torch.no_grad():
        gap = float(y.mean() - net(x).mean())
    pace = lr * (float(x.mean(dim=0).abs().sum()) + 1.0)
    expected = gap / pace
    doc = gradhealth.check_module(net, x, loss="mse", targets=y, input_range=(0.0, 1.0),
                                  optimizer={"type": "adam", "lr": lr}, verify=False)
    note = next(n for n in doc.simulation.notes if "targets given" in n)
    assert f"at least {expected:.3g} steps" in note and f"moves {pace:.3g} a step" in note
    # and training does take about that long: half way the mean is still far, by then it is there
    train = nn.Linear(4, 1)
    train.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(train.parameters(), lr=lr)
    means = []
    for _ in range(int(expected) + 1):
        opt.zero_grad()
        out = train(x)
        ((out.double() - y) ** 2).mean().backward()
        opt.step()
        means.append(float(out.detach().mean()))
    # (the first step moves the mean by the pace; Adam's second moment remembers the early large
    # gradients, so the pace only slows near the targets: the estimate is the fewest steps)
    assert abs((means[1] - means[0]) / pace - 1) < 0.02
    assert means[int(expected / 2)] < 0.6 * float(y.mean())
    assert 0.5 * float(y.mean()) < means[int(expected)] < float(y.mean())
    # under SGD the step is the gradient (large_updates judges it): no such estimate
    sgd = gradhealth.check_module(net, x, loss="mse", targets=y, input_range=(0.0, 1.0),
                                  optimizer={"type": "sgd", "lr": 1e-4}, verify=False)
    assert not any("steps to reach" in n for n in sgd.simulation.notes)
