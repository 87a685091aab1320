"""specsweep11: architecture specs of published networks (ResNets with BN, PlainNet-56, Fixup, SELU
nets, He/Xavier-initialised stacks) and the spec refusals a user meets."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_architecture
from gradhealth.analysis.check import layers_with_weights
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.remedies import already_init
from gradhealth.analysis.rules import (
    _judged_steps,
    direction_change,
    judged_update_ratios,
    momentum_build_up,
)
from gradhealth.analysis.simulate import simulate
from gradhealth.analysis.spec import InitSpec, parse_spec
from gradhealth.analysis.thresholds import Thresholds


def _resnet_bn(blocks: int, *, lr: float = 0.1, width: int = 8) -> dict[str, Any]:
    """A CIFAR-style ResNet with BN written with ``block`` and ``residual`` (He et al. 2016's recipe:
    SGD 0.1, momentum 0.9): a stem conv, ``blocks`` residual blocks of two convs, a pool, a head."""
    conv = {"type": "conv2d", "out_channels": width, "kernel_size": 3, "padding": 1, "bias": False,
            "norm": "batchnorm"}
    return {
        "name": "resnet-bn", "input": {"shape": [3, 8, 8]}, "seeds": 1, "batch_size": 16,
        "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.9},
        "layers": [
            {**conv, "activation": "relu"},
            {"type": "block", "repeat": blocks, "layers": [
                {"type": "residual", "layers": [{**conv, "activation": "relu"}, conv]},
                {"type": "activation", "activation": "relu"}]},
            {"type": "pool", "mode": "mean"},
            {"type": "linear", "out_features": 10}]}


def test_containers_are_not_counted_as_layers_with_weights() -> None:
    # (specsweep11 other-problem 1: Fixup ResNet-110 read "212 layers with weights" for 108.) The
    # layers with weights of the spec: the stem, two convs per block, the head
    blocks = 3
    doc = check_architecture(_resnet_bn(blocks, lr=0.001), verify=False)
    assert layers_with_weights(doc.layers) == 1 + 2 * blocks + 1
    containers = [r for r in doc.layers if r.type in ("block", "residual")]
    assert len(containers) == 2 * blocks and all(r.container for r in containers)
    # a container is not a layer an optimizer's step is judged on: its layers are
    assert all(r.update_ratio is None for r in containers)
    assert all(r.update_ratio is not None for r in doc.layers if r.type in ("conv2d", "linear"))


def test_a_bn_resnets_containers_do_not_escape_the_norms_exemption() -> None:
    # (specsweep11 other-problem 1: ResNet-56 + BN at SGD 0.1 read a large_updates error naming
    # "layers[1].block#0" at 1.04, listed again as its residual.) Every conv in the blocks is read by
    # a batch norm (scale-invariant): only the stem, those convs and the head are judged, and the
    # container is not a layer of its own beside them
    result = simulate(make_plan(parse_spec(_resnet_bn(2))))
    judged = judged_update_ratios(result)
    layers = {u.name for u in result.units if u.type in ("conv2d", "linear")}
    assert set(judged) == layers
    containers = [u for u in result.units if u.type in ("block", "residual")]
    assert len(containers) == 4 and all(u.container for u in containers)
    assert all(u.name not in _judged_steps(result, Thresholds()) for u in containers)


def _plain_bn(depth: int, lr: float) -> dict[str, Any]:
    conv = {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False,
            "norm": "batchnorm", "activation": "relu"}
    return {"name": "plain-bn", "input": {"shape": [3, 8, 8]}, "seeds": 1, "batch_size": 16,
            "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.9},
            "layers": [conv, {**conv, "repeat": depth - 1}, {"type": "pool", "mode": "mean"},
                       {"type": "linear", "out_features": 10}]}


def test_a_step_turns_a_scale_invariant_layers_weights_by_r_over_sqrt_1_plus_r2() -> None:
    # independent of the check: a conv a batch norm reads, one SGD step of r times its norm
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8, eps=1e-300)  # invariant to rounding
    x = torch.randn(16, 3, 8, 8, dtype=torch.float64)
    conv, bn = conv.double(), bn.double()
    (bn(conv(x)) ** 3).sum().backward()
    w, g = conv.weight.detach(), conv.weight.grad
    assert g is not None
    # its gradient is orthogonal to its weights (the loss does not change with their scale) ...
    assert abs(float((w * g).sum())) < 1e-9 * float(w.norm() * g.norm())
    for r in (0.05, 1.0, 102.0):
        new = w - r * float(w.norm() / g.norm()) * g
        cos = float((w * new).sum() / (w.norm() * new.norm()))
        # ... so the step turns them by atan(r): a change of direction sin(atan(r)), under 1
        assert direction_change(r) == pytest.approx(math.sqrt(1 - cos * cos), rel=1e-9)
        assert direction_change(r) < 1


def test_a_deep_plain_bn_nets_large_first_step_on_its_bn_fed_convs_is_not_an_error() -> None:
    # (specsweep11 item plainnet56_bn_cifar: He et al. 2016's plain-56 + BN at SGD 0.1 momentum 0.9
    # read a large_updates error, "102x its norm", lr ~1e-5 advised.) Backward growth through the
    # batch norms makes the first convs' first step more than their norm (judged here on the
    # first step: the one the scale-invariant carve-out reads), but each is read by a batch norm:
    # its weights turn by under 90 degrees and their norm grows, which shrinks the next step
    spec = _plain_bn(30, 0.1)
    result = simulate(make_plan(parse_spec(spec)))
    build = momentum_build_up(0.9, False)
    normed = [u for u in result.units if u.type == "conv2d"]
    assert all(u.normalised for u in normed)
    assert max(judged_update_ratios(result)[u.name] for u in normed) / build > 1
    doc = check_architecture(spec, verify=False)
    assert not [f for f in doc.findings if f.code == "large_updates" and f.severity in ("warning", "error")]


def _residual_mlp(blocks: int, lr: float) -> dict[str, Any]:
    """He-initialised residual blocks without norms: the stream's variance grows by a constant
    factor per block (Zhang et al. 2019, Fixup Sec. 2), forwards and backwards."""
    he = {"init": "kaiming_normal"}
    return {"name": "res", "input": {"shape": [32]}, "seeds": 1, "batch_size": 32,
            "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.9},
            "layers": [{"type": "linear", "out_features": 32, "activation": "relu", **he},
                       {"type": "residual", "repeat": blocks, "layers": [
                           {"type": "linear", "out_features": 32, "activation": "relu", **he},
                           {"type": "linear", "out_features": 32, **he}]},
                       {"type": "linear", "out_features": 10}]}


def test_no_rate_is_sized_from_steps_an_exploding_stream_inflated() -> None:
    # (specsweep11 other-problem 3: ResNet-110 without BN was told "lower the learning rate from 0.1
    # to 2.79e-11".) In a chain whose signal grows by g per layer, layer k's gradient delta_k x_k^T
    # carries g^k forwards and g^(L-k) backwards, the whole growth: its step is the broken network's
    doc = check_architecture(_residual_mlp(40, 0.1), verify=False)
    growth = next(f for f in doc.findings if f.code == "exploding_gradient")
    large = next(f for f in doc.findings if f.code == "large_updates")
    assert growth.severity == "error" and growth.evidence.value > 1e4
    assert "lower_learning_rate" not in [r.id for r in large.remedies]
    assert "exploding_gradient first" in large.explanation
    # the growth's own remedies still include the structural fix
    assert "scaled_residual" in [r.id for r in growth.remedies]


def test_a_rate_too_large_on_a_network_that_does_not_grow_is_still_sized() -> None:
    spec = _residual_mlp(1, 0.1)
    spec["optimizer"]["lr"] = 50.0
    doc = check_architecture(spec, verify=False)
    assert not [f for f in doc.findings if f.code == "exploding_gradient" and f.severity != "info"]
    large = next(f for f in doc.findings if f.code == "large_updates")
    [rate] = [r for r in large.remedies if r.id == "lower_learning_rate"]
    assert rate.patch and 0 < rate.patch[0]["value"] < 50.0


def test_no_init_remedy_for_layers_already_at_that_init_as_variance_scaling() -> None:
    # (specsweep11 other-problem 2: ResNet-110 without BN, He-initialised as torchvision does,
    # variance_scaling(2, fan_out), was told first to "initialise with kaiming_normal".) He et al.
    # 2015's init is Var = 2/fan in either form, fan_in or fan_out; Keras' he_normal is
    # variance_scaling(2, fan_in), lecun_normal (1, fan_in), glorot_normal (1, fan_avg)
    he_out = {"scheme": "variance_scaling", "scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}
    spec = _residual_mlp(40, 0.1)
    for layer in (spec["layers"][0], *spec["layers"][1]["layers"]):
        layer["init"] = he_out
    doc = check_architecture(spec, verify=False)
    growth = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert "he_init" not in [r.id for r in growth.remedies]
    assert already_init(InitSpec(scheme="variance_scaling", scale=2.0, mode="fan_in"), "kaiming_normal")
    assert already_init(InitSpec(scheme="variance_scaling", scale=1.0, mode="fan_avg"), "xavier_normal")
    assert not already_init(InitSpec(scheme="variance_scaling", scale=1.0, mode="fan_in"), "kaiming_normal")
    # a different variance is a different init: the remedy stays
    for layer in (spec["layers"][0], *spec["layers"][1]["layers"]):
        layer["init"] = {**he_out, "scale": 4.0}
    doc = check_architecture(spec, verify=False)
    growth = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert "he_init" in [r.id for r in growth.remedies]


def test_the_sequence_length_limit_that_a_long_sequence_meets_first_is_documented_in_spec_md() -> None:
    # (specsweep11 item inv_lstm_seq_100k: spec.md described the cell-step limit, not the sequence
    # limit a 100,000-step input reaches first.)
    from pathlib import Path

    from gradhealth.analysis.plan import Limits
    from gradhealth.errors import LimitExceeded

    limit = Limits().max_time_steps
    text = " ".join((Path(__file__).parents[2] / "docs" / "spec.md").read_text().split())
    assert f"limited to {limit:,} time steps (`GRADHEALTH_LIMITS__MAX_TIME_STEPS`)" in text
    with pytest.raises(LimitExceeded) as err:
        check_architecture({"name": "audio", "input": {"shape": [limit + 1, 1]}, "seeds": 1, "batch_size": 2,
                            "layers": [{"type": "lstm", "hidden_size": 4}, {"type": "linear", "out_features": 2}]})
    assert "/input/shape/0" in str(err.value.__dict__) + str(err.value)
