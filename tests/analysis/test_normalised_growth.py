"""Gradient growth that a normalisation causes, and absorbs.

Batch statistics make a plain BN-ReLU net's gradient grow backwards at init by about
sqrt(pi / (pi - 1)) = 1.211 per layer (Yang et al. 2019, A Mean Field Theory of Batch
Normalization, in the large-batch limit), whatever the init. A layer whose output a norm takes is
scale-invariant, so a large gradient grows its weights' norm and shrinks its own step (Arora, Li &
Lyu 2019): normalised nets train through growth of a few hundred times (ResNet-50 shows ~200x at
init), and the check reports it as a note (``info``, status healthy) up to the error threshold.
Growth that reaches an unnormalised layer, or passes the error threshold, is reported as before.
"""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
import torch
from torch import nn

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.module_check import check_module
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.document import Diagnosis

YANG_FACTOR = math.sqrt(math.pi / (math.pi - 1))


def _mlp(depth: int, *, width: int = 256, batch: int = 64, norm: str | None = "batchnorm",
         init: dict[str, Any] | str = "kaiming_normal", unnormalised_first: int = 0) -> dict[str, Any]:
    """``depth`` linear-norm-ReLU layers (the first ``unnormalised_first`` without the norm), then a
    readout."""
    def layer(n: int, with_norm: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "linear", "out_features": width, "activation": "relu",
                                "init": init, "bias_init": "zeros", "repeat": n}
        if with_norm and norm:
            spec["norm"] = norm
        return spec
    layers = ([layer(unnormalised_first, False)] if unnormalised_first else []) + [
        layer(depth - unnormalised_first, True), {"type": "linear", "out_features": 10}]
    return {"name": "mlp", "input": {"shape": [width]}, "batch_size": batch, "seeds": 2, "layers": layers}


def _check(raw: dict[str, Any], verify: bool = False) -> Diagnosis:
    return run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), verify=verify))


def _growth(doc: Diagnosis) -> tuple[str, Any]:
    found = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert len(found) == 1, [f.code for f in doc.findings]
    return found[0].severity, found[0]


def test_a_plain_batchnorm_relu_net_grows_at_the_rate_mean_field_theory_predicts() -> None:
    doc = _check(_mlp(30, width=512, batch=256))
    norms = [layer.output_grad_norm or 0.0 for layer in doc.layers[:-1]]
    assert all(n > 0 for n in norms)
    per_layer = (norms[0] / norms[-1]) ** (1 / (len(norms) - 1))
    assert per_layer == pytest.approx(YANG_FACTOR, rel=0.02)


def test_growth_only_through_normalised_layers_is_a_note_and_the_net_is_healthy() -> None:
    doc = _check(_mlp(30))
    severity, finding = _growth(doc)
    assert severity == "info"
    assert doc.status == "healthy"
    assert doc.summary.startswith("healthy: ") and "exploding_gradient" in doc.summary
    assert finding.evidence.model_dump()["absorbed_by_normalisation"] is True
    assert 1e2 < finding.evidence.model_dump()["grad_ratio"] < 1e4
    assert [layer.normalised for layer in doc.layers] == [True] * 30 + [False]
    # a note: nothing to fix, its explanation says what removes the growth
    assert finding.remedies == []
    assert "zero-initialising the scale" in finding.explanation


def test_past_the_error_threshold_normalisation_absorbs_nothing() -> None:
    severity, finding = _growth(_check(_mlp(50)))
    assert severity == "error"
    assert "absorbed_by_normalisation" not in finding.evidence.model_dump()


def test_the_same_growth_without_a_norm_is_a_warning() -> None:
    # He's variance times 1.21^2 gives the BN net's per-layer factor with no norm at all
    std = YANG_FACTOR * math.sqrt(2 / 256)
    doc = _check(_mlp(30, norm=None, init={"scheme": "normal", "std": std}))
    severity, finding = _growth(doc)
    assert severity == "warning"
    assert doc.status == "warning"
    assert not any(layer.normalised for layer in doc.layers)


def test_growth_that_reaches_an_unnormalised_layer_stays_a_warning() -> None:
    # three He-initialised layers without a norm in front of the BN stack: the gradient the BN
    # layers grew reaches them past the warning threshold, and their steps are not self-limiting
    doc = _check(_mlp(33, unnormalised_first=3))
    severity, finding = _growth(doc)
    assert finding.evidence.model_dump()["grad_ratio"] > 1e2
    assert severity == "warning"
    assert [layer.normalised for layer in doc.layers[:4]] == [False] * 3 + [True]


def test_a_note_costs_no_remedy_simulation() -> None:
    doc = _check(_mlp(30), verify=True)
    assert _growth(doc)[0] == "info"
    assert doc.simulation.remedies_simulated == 0


def test_a_remedy_that_leaves_only_a_note_has_fixed_the_warning() -> None:
    # unnormalised and too large a gain: a warning; batch norm fixes it, though the BN net's own
    # growth remains as a note
    std = YANG_FACTOR * math.sqrt(2 / 256)
    doc = _check(_mlp(30, norm=None, init={"scheme": "normal", "std": std}), verify=True)
    _, finding = _growth(doc)
    bn = next(r for r in finding.remedies if r.id == "batch_norm")
    assert bn.verified is not None and bn.verified.fixed
    assert bn.verified.after is not None and bn.verified.after > 1e2  # the note's growth


def _torch_mlp(depth: int, norm: bool) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(256, 256, bias=False), *([nn.BatchNorm1d(256)] if norm else []), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def test_the_live_door_marks_normalised_layers_and_notes_their_growth() -> None:
    doc = check_module(_torch_mlp(30, norm=True), torch.randn(64, 256), seeds=2, verify=False)
    severity, finding = _growth(doc)
    assert severity == "info" and doc.status == "healthy"
    assert [layer.normalised for layer in doc.layers] == [True] * 30 + [False]
    assert finding.remedies == []


def test_a_norm_after_a_relu_makes_the_layer_before_it_normalised() -> None:
    # Linear -> ReLU -> BatchNorm: relu(c z) = c relu(z), so the norm divides the scale out still
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(30):
        layers += [nn.Linear(256, 256, bias=False), nn.ReLU(), nn.BatchNorm1d(256)]
    doc = check_module(nn.Sequential(*layers, nn.Linear(256, 10)), torch.randn(64, 256), seeds=2, verify=False)
    assert [layer.normalised for layer in doc.layers] == [True] * 30 + [False]
    # a saturating activation is not scale-covariant: tanh(c z) is not c tanh(z)
    torch.manual_seed(0)
    tanh = check_module(nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.BatchNorm1d(8), nn.Linear(8, 2)),
                        torch.randn(16, 8), seeds=1, verify=False)
    assert not tanh.layers[0].normalised


def test_the_live_door_does_not_count_a_layer_scale_as_a_norm() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 16)
            self.gamma = nn.Parameter(torch.full((16,), 0.5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.gamma * torch.relu(self.fc(x))

    torch.manual_seed(0)
    net = nn.Sequential(Scaled(), Scaled(), nn.Linear(16, 2))
    doc = check_module(net, torch.randn(8, 16), seeds=1, verify=False)
    assert not any(layer.normalised for layer in doc.layers)


class _PooledNorms(nn.Module):
    """Norms that read a convolution's output through pooling, padding and reshapes only, each
    positively homogeneous (f(c z) = c f(z)), and one that reads it through a sum with the input,
    which is not."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)  # -> relu -> max pool -> BN
        self.bn1 = nn.BatchNorm2d(8)
        self.mid = nn.Conv2d(8, 8, 3, bias=False)  # -> zero pad -> avg pool -> flatten -> LayerNorm
        self.ln = nn.LayerNorm(8 * 4 * 4)
        self.side = nn.Linear(128, 128, bias=False)  # -> (+ its input) -> LayerNorm
        self.ln2 = nn.LayerNorm(128)
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(nn.functional.max_pool2d(torch.relu(self.stem(x)), 2))
        x = self.ln(nn.functional.avg_pool2d(nn.functional.pad(self.mid(x), [1, 1, 1, 1]), 2).flatten(1))
        x = x[:, :128]
        return cast(torch.Tensor, self.head(self.ln2(x + self.side(x))))


def test_a_norm_read_through_pooling_and_padding_makes_the_layer_before_it_normalised() -> None:
    torch.manual_seed(0)
    net, x = _PooledNorms(), torch.randn(16, 3, 16, 16)
    doc = check_module(net, x, seeds=1, verify=False)
    assert {layer.name: layer.normalised for layer in doc.layers} == {
        "stem": True, "mid": True, "side": False, "head": False}
    # what the flag claims, computed independently: scaling a normalised layer's weights changes
    # nothing the network computes; scaling the other one does
    net.train()
    with torch.no_grad():
        before = net(x)
        for name, changes in (("stem", False), ("mid", False), ("side", True)):
            weight = getattr(net, name).weight
            weight.mul_(3.0)
            after = net(x)
            weight.div_(3.0)
            assert (not torch.allclose(before, after, atol=1e-4)) is changes, name


def test_a_walk_back_stops_at_a_reciprocal_a_shift_and_a_learned_bias() -> None:
    from gradhealth.analysis.graph import homogeneous_sources

    w = torch.randn(4, 4, requires_grad=True)
    v = torch.randn(4, 4, requires_grad=True)
    bias = torch.randn(4, requires_grad=True)
    z, y = torch.randn(2, 4) @ w, torch.randn(2, 4) @ v
    sources = {z.grad_fn: "z", y.grad_fn: "y"}
    assert homogeneous_sources(nn.functional.max_pool1d(z.unsqueeze(0), 2).flatten() / 2.0, sources) == (["z"], False)
    assert homogeneous_sources(torch.cat([z, torch.relu(y)]) + z.mean(), sources) == (["z", "y"], True)
    assert homogeneous_sources(torch.div(torch.ones(2, 4), z), sources) is None  # 1 / z: degree -1
    assert homogeneous_sources(z.tanh(), sources) is None
    assert homogeneous_sources(z + 1.0, sources) is None  # a shift: (c z + 1) is not c (z + 1)
    assert homogeneous_sources(z + bias, sources) is None  # a learned shift, not scaled with z
    assert homogeneous_sources(z + torch.randn(2, 4), sources) is None  # an input added


class _Residual(nn.Module):
    """x + fc2(relu(fc1(norm(x)))): a pre-norm block (``pre_norm``) or a block without a norm."""

    def __init__(self, width: int, pre_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if pre_norm else nn.Identity()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


def _stream(pre_norm: bool) -> nn.Module:
    """A stem, four residual blocks and a final LayerNorm before the head."""
    return nn.Sequential(nn.Linear(16, 32), *[_Residual(32, pre_norm) for _ in range(4)],
                         nn.LayerNorm(32), nn.Linear(32, 10))


def test_a_pre_norm_stream_is_normalised_jointly_and_an_unnormalised_one_is_not() -> None:
    # Pre-norm: every reader of the stream is a norm and each branch reads a norm's output, so
    # scaling the stem and every fc2 together scales the stream, which the norms divide out.
    # Without the blocks' norms each branch reads the stream itself: scaled together, a branch
    # grows by c^2, so the final norm cannot divide it out; the same walk finds the same writers,
    # and the backward pass says they are not invariant.
    writers = {"0", "1.fc2", "2.fc2", "3.fc2", "4.fc2"}
    x = torch.randn(32, 16)
    for pre_norm in (True, False):
        torch.manual_seed(0)
        net = _stream(pre_norm)
        doc = check_module(net, x, seeds=1, verify=False)
        marked = {layer.name for layer in doc.layers if layer.normalised}
        assert marked == (writers if pre_norm else set()), pre_norm
        # independently: the network's output under the joint scale
        with torch.no_grad():
            before = net(x)
            params = [p for name, p in net.named_parameters() if name.rsplit(".", 1)[0] in writers]
            for p in params:
                p.mul_(2.0)
            after = net(x)
        assert torch.allclose(before, after, atol=1e-4) is pre_norm


class _BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNormAct2d, as its code has it: a BatchNorm2d subclass that calls batch_norm as
    a function, then its own dropout and activation modules."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                     self.training, self.momentum or 0.0, self.eps)
        return cast(torch.Tensor, self.act(self.drop(x)))


@pytest.mark.parametrize("act", [True, False])
def test_a_norm_with_its_activation_inside_is_read_as_a_norm_then_that_activation(act: bool) -> None:
    def net(fused: bool) -> nn.Module:
        torch.manual_seed(0)
        body: list[nn.Module] = []
        for _ in range(6):
            body.append(nn.Conv2d(8, 8, 3, padding=1, bias=False))
            body += [_BatchNormAct2d(8, act)] if fused else [nn.BatchNorm2d(8), *([nn.ReLU()] if act else [])]
        return nn.Sequential(*body, nn.Flatten(), nn.Linear(8 * 4 * 4, 10))

    x = torch.randn(16, 8, 4, 4)
    fused, plain = (check_module(net(f), x, seeds=1, verify=False) for f in (True, False))
    assert sum(isinstance(m, _BatchNormAct2d) for m in net(True).modules()) == 6
    # the same units, normalised, with the same activation and the same measurements
    assert [(u.normalised, u.activation) for u in fused.layers] == [
        (u.normalised, u.activation) for u in plain.layers]
    assert all(u.normalised for u in fused.layers[:-1])
    assert [u.activation for u in fused.layers[:-1]] == ["relu" if act else None] * 6
    for a, b in zip(fused.layers, plain.layers, strict=True):
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-6)
        assert a.dead_fraction == b.dead_fraction


@pytest.mark.parametrize("pointwise_bias", [False, True])
def test_a_norm_after_a_bias_free_layer_normalises_the_layer_before_that_too(pointwise_bias: bool) -> None:
    # a separable convolution (depthwise, then pointwise) and a BatchNorm: the pointwise
    # convolution without a bias is linear in its input, so the norm divides out the depthwise
    # convolution's scale as well; with a bias it is not (c W x + b is not c (W x + b))
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(3):
        layers += [nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                   nn.Conv2d(8, 8, 1, bias=pointwise_bias), nn.GroupNorm(2, 8), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    x = torch.randn(8, 8, 4, 4)
    doc = check_module(net, x, seeds=1, verify=False)
    marked = {u.name: u.normalised for u in doc.layers}
    assert marked == {"0": not pointwise_bias, "1": True, "4": not pointwise_bias, "5": True,
                      "8": not pointwise_bias, "9": True, "13": False}
    # what the flag claims, computed independently: the depthwise weights' scale
    with torch.no_grad():
        before = net(x)
        net[4].weight.mul_(3.0)
        assert torch.allclose(net(x), before, atol=1e-4) is not pointwise_bias
