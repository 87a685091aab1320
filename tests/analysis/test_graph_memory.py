"""simulate_graph keeps one seed's autograd graph alive at a time: a finished seed's records keep
names, roles, modules and shapes, not the tensors whose grad_fn hold its graph (retained for the
carried gradient). A Keras Embedding -> SimpleRNN over 2,500 steps grew about 0.5 GB a seed."""

from __future__ import annotations

import gc
import weakref

import torch
from torch import nn

from gradhealth.analysis import graph
from gradhealth.analysis.graph import GraphRun, simulate_graph
from gradhealth.analysis.module_check import input_specs


class _Marker:
    """A Python object a graph node holds for as long as the graph lives."""


_MARKERS: list[weakref.ref[_Marker]] = []


class _Tagged(torch.autograd.Function):
    """The identity, whose backward node holds a :class:`_Marker` (weakly watched)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        marker = _Marker()
        ctx.marker = marker  # type: ignore[attr-defined]
        _MARKERS.append(weakref.ref(marker))
        return x.clone()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(_Tagged.apply(torch.tanh(self.fc1(x))))


def test_an_earlier_seeds_graph_is_freed_before_the_next_seed_runs(monkeypatch) -> None:
    _MARKERS.clear()
    alive_at_start: list[int] = []
    step = graph.instrumented_step

    def watched(*args, **kwargs):  # the graphs still alive as each seed starts
        gc.collect()
        alive_at_start.append(sum(ref() is not None for ref in _MARKERS))
        return step(*args, **kwargs)

    monkeypatch.setattr(graph, "instrumented_step", watched)
    model = _Net()
    x = torch.randn(16, 8)
    run = GraphRun(model, input_specs(x, model, None), "cross_entropy", 3, trace_functions=True)
    result = simulate_graph(run, device="cpu")
    assert len(alive_at_start) == 3 and _MARKERS  # every seed ran, through the tagged op
    assert alive_at_start == [0, 0, 0]  # was [0, 1, 1]: seed 0's graph held by its records
    # what the table reads from the records is kept: names, types, fans, the batch
    assert [(u.name, u.type, u.fan_in, u.fan_out) for u in result.units if u.has_weights] == [
        ("fc1", "linear", 8, 16), ("fc2", "linear", 16, 4)]
    assert result.batch_size == 16
    gc.collect()
    assert not any(ref() is not None for ref in _MARKERS)
