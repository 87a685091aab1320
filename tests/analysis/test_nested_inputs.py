"""Example inputs nested in tuples, lists and dicts (modsweep22: pytorch/examples' word language model
takes ``model(input, (h0, c0))`` and the check crashed with ``TypeError: example inputs must be tensors``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.module_check import example_layout, input_specs
from gradhealth.errors import GradHealthError


class _WordLM(nn.Module):
    """word_language_model's RNNModel, small: seq-first tokens and an LSTM state (h0, c0)."""

    def __init__(self, ntoken: int = 50, nhid: int = 16, nlayers: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Embedding(ntoken, nhid)
        self.rnn = nn.LSTM(nhid, nhid, nlayers)
        self.decoder = nn.Linear(nhid, ntoken)
        self.ntoken, self.nhid, self.nlayers = ntoken, nhid, nlayers
        self.seen: list[tuple[int, ...]] = []

    def forward(self, input: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        assert isinstance(hidden, tuple) and len(hidden) == 2  # the structure comes back as given
        self.seen.append(tuple(hidden[0].shape))
        output, hidden = self.rnn(self.encoder(input), hidden)
        return torch.log_softmax(self.decoder(output).view(-1, self.ntoken), dim=1), hidden

    def init_hidden(self, bsz: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(self.nlayers, bsz, self.nhid), torch.zeros(self.nlayers, bsz, self.nhid))


def _word_lm() -> tuple[_WordLM, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = _WordLM()
    return model, (torch.randint(0, 50, (7, 3)), model.init_hidden(3))


def test_an_lstm_state_beside_the_tokens_is_checked() -> None:
    model, example = _word_lm()
    doc = check_module(model, example, loss="cross_entropy", seeds=2)
    assert doc.status in ("healthy", "info", "warning", "error")
    assert any(layer.name.startswith("rnn") for layer in doc.layers)


def test_each_tensor_leaf_is_a_spec_named_where_it_sits_and_shaped_as_given() -> None:
    model, example = _word_lm()
    specs = input_specs(example, model)
    assert [s.name for s in specs] == ["input", "hidden[0]", "hidden[1]"]
    # the state's batch is its dim 1 (nn.LSTM's h0/c0): the check keeps every shape as given
    assert [s.shape for s in specs] == [(7, 3), (2, 3, 16), (2, 3, 16)]
    assert specs[0].high is not None and specs[0].value is None  # token ids, drawn
    for s in specs[1:]:  # a zero state is kept as given, not drawn
        assert s.value is not None and not s.value.any()


def test_the_forward_gets_the_structure_back_for_every_seed() -> None:
    model, example = _word_lm()
    check_module(model, example, seeds=2, verify=False)
    # the user's module never runs (copies do): the copies' records are not the module's
    assert model.seen == []
    layout = example_layout(example)
    assert layout is not None
    xs = [torch.ones(2), torch.zeros(1), torch.zeros(3)]
    tokens, (h, c) = layout(xs)
    assert tokens is xs[0] and h is xs[1] and c is xs[2]


class _Configured(nn.Module):
    """A forward taking a dict of a list of tensors, a number and None beside its input."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)
        self.calls: list[tuple[Any, Any]] = []

    def forward(self, x: torch.Tensor, extra: dict[str, Any]) -> torch.Tensor:
        lo, hi = extra["pair"]
        self.calls.append((extra["scale"], extra["none"]))
        return self.b(torch.relu(self.a(x * extra["scale"]) + lo - hi))


def test_dicts_lists_numbers_and_none_nest_and_pass_through() -> None:
    torch.manual_seed(0)
    model = _Configured()
    example = (torch.randn(6, 8), {"scale": 2.5, "pair": [torch.randn(6, 8), torch.randn(6, 8)], "none": None})
    specs = input_specs(example, model)
    assert [s.name for s in specs] == ["x", "extra['pair'][0]", "extra['pair'][1]"]
    doc = check_module(model, example, seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.seeds == 1
    layout = example_layout(example)
    assert layout is not None
    _, extra = layout([torch.ones(1), torch.ones(2), torch.ones(3)])
    assert extra["scale"] == 2.5 and extra["none"] is None and [t.numel() for t in extra["pair"]] == [2, 3]


class _DeepReLU(nn.Module):
    """12 ReLU layers at std 1 (far above He's): the gradient explodes; he_init fixes it."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(12))
        for m in self.layers:
            nn.init.normal_(m.weight, std=1.0)
        self.head = nn.Linear(32, 10)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        x = batch["features"][0] + batch["features"][1] * batch["mix"]
        for m in self.layers:
            x = torch.relu(m(x))
        return self.head(x)


def test_remedies_are_re_simulated_with_the_nested_inputs() -> None:
    torch.manual_seed(0)
    example = ({"features": (torch.randn(16, 32), torch.randn(16, 32)), "mix": 0.0},)
    doc = check_module(_DeepReLU(), example, seeds=1)
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert any(r.verified is not None and r.verified.fixed for r in f.remedies)


@pytest.mark.parametrize(("example", "where"), [
    ((torch.zeros(2, 3), (torch.zeros(2, 3), "c0")), r"example input hidden\[1\] is a str"),
    ((torch.zeros(2, 3), {"h": [torch.zeros(1), object()]}), r"example input hidden\['h'\]\[1\] is a object"),
    ({"input": torch.zeros(2, 3), "hidden": {1, 2}}, r"example input hidden is a set"),
])
def test_anything_else_is_refused_naming_its_place(example: Any, where: str) -> None:
    model, _ = _word_lm()
    with pytest.raises(ModelError, match=where) as caught:
        check_module(model, example, seeds=1)
    assert isinstance(caught.value, GradHealthError) and caught.value.status == 422


@pytest.mark.parametrize("example", [(), (3, None), ([],)])
def test_example_inputs_without_a_tensor_are_refused(example: Any) -> None:
    with pytest.raises(ModelError, match="example inputs hold no tensor"):
        check_module(nn.Linear(2, 2), example, seeds=1)
