"""A model of several outputs in the graph door: each output adds its own loss, and the units
that make outputs are readouts, not the trunk whose first-to-last gradient ratio the rules read."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.analysis.findings import trunk
from gradhealth.analysis.graph import GraphRun, InputSpec, simulate_graph


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(4, 8)
        self.deep = nn.Linear(8, 8)
        self.head_a = nn.Linear(8, 3)
        self.head_b = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.deep(torch.relu(self.body(x))))
        return self.head_a(h), self.head_b(h)


def _run(**extra: object) -> GraphRun:
    return GraphRun(TwoHeads(), [InputSpec((6, 4))], "cross_entropy", 1, **extra)  # type: ignore[arg-type]  # the optional fields under test


def test_the_heads_are_readouts_and_the_trunk_is_what_feeds_them() -> None:
    result = simulate_graph(_run(losses=("cross_entropy", "mse"), readouts=frozenset({"head_a", "head_b"})))
    assert [u.name for u in trunk(result)] == ["body", "deep"]
    # without naming the readouts, only the last unit is one, and the other head counts as trunk
    unnamed = simulate_graph(_run(losses=("cross_entropy", "mse")))
    assert [u.name for u in trunk(unnamed)] == ["body", "deep", "head_a"]


def test_both_losses_reach_the_shared_layers() -> None:
    both = simulate_graph(_run(losses=("cross_entropy", "mse"), readouts=frozenset({"head_a", "head_b"})))
    first = simulate_graph(_run())
    grad = {r.name: r.geo("output_grad_norm") for r in both.units}
    only_a = {r.name: r.geo("output_grad_norm") for r in first.units}
    assert grad["head_a"] == pytest.approx(only_a["head_a"], rel=1e-12)  # its own loss, unchanged
    assert grad["deep"] != pytest.approx(only_a["deep"], rel=1e-3)  # head_b's loss adds to it
    assert grad["head_b"] > 0 and not only_a["head_b"] > 0  # no loss of its own: no gradient


def test_a_model_that_returns_another_number_of_outputs_is_an_error() -> None:
    with pytest.raises(ValueError, match="returned 2 outputs where 3 were expected"):
        simulate_graph(_run(losses=("mse", "mse", "mse")))
