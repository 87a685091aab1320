"""Layer kinds: one per spec layer type, planning and building agree, the torch boundary holds."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import typing
from typing import Any

import pytest
import torch
from torch import nn

from gradhealth.analysis import kinds as K
from gradhealth.analysis import spec as S
from gradhealth.analysis.activations import ACTIVATIONS, ALIASES, GATES, SATURATING, canonical
from gradhealth.analysis.model import activation_module, build_network
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import parse_spec

# One spec per input layout; together they use every registered kind, in the variants whose
# parameter counts differ (bias off, batchnorm vs layernorm after a weight layer, norms on each layout).
CASES: dict[str, dict[str, Any]] = {
    "vector": {
        "input": {"shape": [12]},
        "layers": [
            {"type": "linear", "out_features": 16, "activation": "relu", "norm": "batchnorm"},
            {"type": "linear", "out_features": 8, "activation": "tanh", "norm": "layernorm", "bias": False},
            {"type": "batchnorm"},
            {"type": "layernorm"},
            {"type": "dropout", "p": 0.2},
            {"type": "activation", "activation": "swish"},
            {"type": "residual", "scale": 0.5, "layers": [
                {"type": "linear", "out_features": 8}, {"type": "activation", "activation": "tanh"}]},
            {"type": "block", "repeat": 2, "layers": [{"type": "linear", "out_features": 8}]},
            {"type": "linear", "out_features": 3},
        ],
    },
    "channels": {
        "input": {"shape": [3, 20]},
        "layers": [
            {"type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": "same", "norm": "layernorm"},
            {"type": "conv1d", "out_channels": 5, "kernel_size": 3, "stride": 2, "norm": "batchnorm",
             "activation": "relu"},
            {"type": "batchnorm"},
            {"type": "layernorm"},
            {"type": "flatten"},
            {"type": "linear", "out_features": 2},
        ],
    },
    "image": {
        "input": {"shape": [2, 9, 9]},
        "layers": [
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "norm": "batchnorm"},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "conv2d", "out_channels": 3, "kernel_size": 2, "padding": 1, "norm": "layernorm",
             "bias": False},
            {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
            {"type": "batchnorm"},
            {"type": "flatten"},
            {"type": "linear", "out_features": 2},
        ],
    },
    "tokens": {
        "input": {"tokens": {"vocab_size": 11, "seq_len": 6}},
        "layers": [
            {"type": "embedding", "embedding_dim": 8},
            {"type": "transformer_encoder", "d_model": 8, "heads": 2, "ff_width": 16, "num_layers": 2,
             "norm_first": True},
            {"type": "transformer_encoder", "d_model": 8, "heads": 4, "ff_width": 12},
            {"type": "lstm", "hidden_size": 5, "num_layers": 2, "output": "sequence"},
            {"type": "gru", "hidden_size": 4, "output": "sequence"},
            {"type": "rnn", "hidden_size": 3, "nonlinearity": "relu", "output": "sequence"},
            {"type": "batchnorm"},
            {"type": "pool", "mode": "last"},
            {"type": "linear", "out_features": 2},
        ],
    },
}


def _spec(case: str) -> S.Spec:
    return parse_spec({**CASES[case], "batch_size": 4, "seeds": 1})


def _layer_classes() -> list[type[S._LayerBase]]:
    """The members of the spec's discriminated ``Layer`` union, read from the type itself."""
    union = typing.get_args(S.Layer)[0]
    return list(typing.get_args(union))


def _type_literals(cls: type[S._LayerBase]) -> tuple[str, ...]:
    return typing.get_args(cls.model_fields["type"].annotation)


def test_every_spec_layer_type_has_exactly_one_kind() -> None:
    classes = _layer_classes()
    literals = [name for cls in classes for name in _type_literals(cls)]
    assert len(literals) == len(set(literals)), "two spec models share a `type` literal"
    for cls in classes:
        kinds = {id(K.KINDS[name]) for name in _type_literals(cls)}
        assert len(kinds) == 1, f"{cls.__name__}'s types map to {len(kinds)} kinds"
        assert K.KINDS[_type_literals(cls)[0]].spec is cls
    # Nothing registered beyond the spec's types but the internal final norm of a Pre-LN stack.
    assert set(K.KINDS) - set(literals) == {"final_norm"}
    assert {k.spec for k in K.KINDS.values()} - {None} == set(classes)
    # The remedies' notion of a weight layer is the kinds' one.
    assert {k.spec for k in K.KINDS.values() if isinstance(k, K._WeightKind)} == set(S.WEIGHT_LAYERS)


def test_registering_a_name_twice_is_refused() -> None:
    class Twice(K.LayerKind[S.LinearLayer]):
        spec = S.LinearLayer

    with pytest.raises(ValueError, match="registered twice"):
        K.register(Twice)
    assert type(K.KINDS["linear"]) is K.LinearKind


def test_cases_use_every_kind() -> None:
    used = {u.kind for case in CASES for u in make_plan(_spec(case)).all_units()}
    assert used == set(K.KINDS), "add a layer of each new kind to CASES"


@pytest.mark.parametrize("case", sorted(CASES))
def test_planned_parameters_equal_built_parameters(case: str) -> None:
    plan = make_plan(_spec(case))
    torch.manual_seed(0)
    net = build_network(plan)
    built = {u.name: u for u in net.units()}
    assert set(built) == {u.name for u in plan.all_units()}
    for unit in plan.all_units():
        numel = sum(p.numel() for p in built[unit.name].parameters())
        assert unit.parameters == numel, f"{unit.name} ({unit.kind}): planned {unit.parameters}, built {numel}"
    assert plan.parameters == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("case", sorted(CASES))
def test_planned_shapes_are_the_built_shapes(case: str) -> None:
    spec = _spec(case)
    plan = make_plan(spec)
    torch.manual_seed(0)
    net = build_network(plan).double()
    x = (torch.randint(11, (4, 6)) if spec.input.tokens else torch.randn(4, *plan.input_shape, dtype=torch.float64))
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [u.register_forward_hook(lambda m, i, o, n=u.name: seen.__setitem__(n, tuple(o.shape[1:])))
             for u in net.units()]
    net(x)
    for h in hooks:
        h.remove()
    for unit in plan.all_units():
        assert seen[unit.name] == unit.out_shape, unit.name


def test_activation_of_each_kind() -> None:
    plan = make_plan(_spec("tokens"))
    acts = {u.name: K.kind_of(u.kind).activation(u.layer) for u in plan.all_units()}
    assert acts["layers[3].lstm"] == "tanh"
    assert acts["layers[4].gru"] == "tanh"
    assert acts["layers[5].rnn"] == "relu"
    assert acts["layers[1].transformer_encoder#0"] is None
    vec = make_plan(_spec("vector"))
    by_name = {u.name: K.kind_of(u.kind).activation(u.layer) for u in vec.all_units()}
    assert by_name["layers[5].activation"] == "silu"  # swish, under its one name
    assert by_name["layers[0].linear"] == "relu"
    assert by_name["layers[8].linear"] == "identity"
    assert by_name["layers[3].layernorm"] is None


def test_alias_is_the_same_function() -> None:
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    for alias, name in ALIASES.items():
        assert canonical(alias) == name
        torch.testing.assert_close(activation_module(alias)(x), activation_module(name)(x))
    # swish(x) = x * sigmoid(x) (Ramachandran et al. 2017), computed independently
    torch.testing.assert_close(activation_module("swish")(x), x * torch.sigmoid(x))


def test_activation_facts_match_the_spec_and_torch() -> None:
    assert typing.get_args(S.LinearLayer.model_fields["activation"].annotation) == ACTIVATIONS
    assert set(ACTIVATIONS) >= SATURATING
    # Saturating means the derivative vanishes in the tails: check it against torch's autograd, far
    # enough out for softsign, whose derivative 1/(1 + |x|)^2 falls polynomially (1e-3 at 30, 1e-8 here).
    far = torch.tensor([-1e4, 1e4], dtype=torch.float64, requires_grad=True)
    for name in ACTIVATIONS:
        (grad,) = torch.autograd.grad(activation_module(name)(far).sum(), far)
        assert (grad.abs().max().item() < 1e-6) == (name in SATURATING), name
    # Gate counts against torch's own stacked weights.
    assert set(GATES) == set(_type_literals(S.RecurrentLayer))
    for cell, cls in (("rnn", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)):
        assert cls(3, 7).weight_ih_l0.shape[0] == GATES[cell] * 7


def test_planning_every_kind_loads_no_torch() -> None:
    code = textwrap.dedent(f"""
        import sys
        from gradhealth.analysis.plan import make_plan
        from gradhealth.analysis.spec import parse_spec
        from gradhealth.analysis import kinds
        cases = {CASES!r}
        for case in cases.values():
            plan = make_plan(parse_spec(case))
            for u in plan.all_units():
                kinds.kind_of(u.kind).activation(u.layer)
        assert "torch" not in sys.modules, "planning imported torch"
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("case,shape", [("conv1d", [3, 20]), ("conv2d", [2, 9, 9])])
def test_a_layernorm_after_a_convolution_normalises_its_channels_at_each_position(case: str, shape: list[int]) -> None:
    # as ConvNeXt's and Keras' LayerNormalization on a channels-last map; over the last spatial
    # axis alone (each row of each channel) a sigmoid conv stack's per-channel offsets stayed, and a
    # layer_norm remedy read healthy where the usual norm leaves it vanishing (specsweep4)
    import torch

    from gradhealth.analysis.model import build_network
    from gradhealth.analysis.plan import make_plan

    for inline in (True, False):
        conv = {"type": case, "out_channels": 6, "kernel_size": 3}
        layers = [{**conv, "norm": "layernorm"}] if inline else [conv, {"type": "layernorm"}]
        plan = make_plan(parse_spec({"input": {"shape": shape}, "batch_size": 4, "seeds": 1,
                                     "layers": [*layers, {"type": "flatten"}, {"type": "linear", "out_features": 2}]}))
        torch.manual_seed(0)
        net = build_network(plan).double()
        z = net.body[:len(layers)](torch.randn(4, *shape, dtype=torch.float64) + 3.0)
        assert z.shape[1] == 6
        torch.testing.assert_close(z.mean(dim=1), torch.zeros_like(z.mean(dim=1)), atol=1e-9, rtol=0)
        torch.testing.assert_close(z.var(dim=1, unbiased=False), torch.ones_like(z.mean(dim=1)), atol=1e-2, rtol=0)
        assert sum(p.numel() for p in net.parameters()) == plan.parameters
