"""specsweep11: architecture specs of published networks (ResNets with BN, PlainNet-56, Fixup, SELU
nets, He/Xavier-initialised stacks) and the spec refusals a user meets."""

from __future__ import annotations

from typing import Any

from gradhealth import check_architecture
from gradhealth.analysis.check import layers_with_weights
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.rules import _judged_steps, judged_update_ratios
from gradhealth.analysis.simulate import simulate
from gradhealth.analysis.spec import parse_spec
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

