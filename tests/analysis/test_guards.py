"""Eps guards on an operation's input: located NaN makers get a verified ``domain_guard`` remedy."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.graph import GraphRun, InputSpec, simulate_graph
from gradhealth.analysis.guards import (
    DOMAINS,
    EPS,
    DomainGuards,
    Guard,
    caller,
    guarded_args,
    guarded_code,
)

# the edge of each kind of domain, where the unguarded operation is NaN or infinite
_EDGES = {"positive": [0.0, -1.0], "divisor": [0.0, -0.0], "unit": [1.0, -1.0, 1.5],
          "above_one": [1.0, 0.5], "above_minus_one": [-1.0, -2.0], "probability": [0.0, 1.0]}


@pytest.mark.parametrize("op", sorted(DOMAINS))
def test_every_guard_keeps_its_operation_finite_at_the_edge_and_leaves_ordinary_values(op: str) -> None:
    kind, index = DOMAINS[op]
    func = {"truediv": torch.Tensor.__truediv__, "itruediv": torch.Tensor.__truediv__,
            "rtruediv": torch.Tensor.__rtruediv__, "rdiv": torch.Tensor.__rtruediv__,
            "polygamma": lambda n, x: torch.polygamma(n, x), "pow": torch.pow}.get(op) or getattr(torch, op)
    edge = torch.tensor(_EDGES[kind], dtype=torch.float64)
    ordinary = torch.tensor([1.5, 2.0] if kind == "above_one" else [0.3, 0.6], dtype=torch.float64)

    def args_with(x: torch.Tensor) -> tuple:
        if op == "polygamma":
            return (1, x)
        if op == "pow":
            return (x, 0.5)
        if op in ("rtruediv", "rdiv"):
            return (x, 2.0)
        return (torch.full_like(x, 0.7), x) if index == 1 else (x,)
    with torch.no_grad():
        assert not torch.isfinite(func(*args_with(edge))).all()  # the independent fact: NaN/inf there
        assert torch.isfinite(func(*guarded_args(op, args_with(edge)))).all()
        assert torch.equal(func(*guarded_args(op, args_with(ordinary))), func(*args_with(ordinary)))
    assert "{" not in guarded_code(op)


def test_a_divisor_keeps_its_sign_and_an_integer_power_is_left_alone() -> None:
    d = torch.tensor([-1e-20, 0.0, 1e-20, -3.0], dtype=torch.float64)
    [_, guarded] = guarded_args("div", (torch.ones(4, dtype=torch.float64), d))
    assert guarded.tolist() == [-EPS, EPS, EPS, -3.0]
    x = torch.tensor([0.0, -2.0], dtype=torch.float64)
    assert guarded_args("pow", (x, 2))[0] is x  # x ** 2 is defined everywhere
    assert guarded_args("pow", (x, -1))[0].tolist() == [EPS, -2.0]  # 1 / x: a division


def test_caller_names_the_users_line() -> None:
    here = inspect.currentframe()
    assert here is not None
    line, where = here.f_lineno, caller()  # both read on this line
    assert where == f"test_guards.py:{line} (line, where = here.f_lineno, caller()  # both read on this line)"


class _TwoLogs(nn.Module):
    """One log of a ReLU's zeros (-inf), one of a softplus plus 1 (always defined)."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l1(x)
        safe = torch.log(nn.functional.softplus(h) + 1.0)
        bad = torch.log(torch.relu(h))
        return self.l2(safe + bad)


def _site(method, offset: int, code: str) -> str:
    line = inspect.getsourcelines(method)[1] + offset
    return f"test_guards.py:{line} ({code})"


def test_a_guard_acts_at_its_own_call_site_only() -> None:
    torch.manual_seed(0)
    run = GraphRun(_TwoLogs(), [InputSpec((16, 16))], seeds=1, trace_functions=True)
    bad = _site(_TwoLogs.forward, 3, "bad = torch.log(torch.relu(h))")
    safe = _site(_TwoLogs.forward, 2, "safe = torch.log(nn.functional.softplus(h) + 1.0)")
    plain = simulate_graph(run)
    assert not all(math.isfinite(x) for x in plain.losses)
    at_safe = simulate_graph(GraphRun(run.model, run.inputs, seeds=1, trace_functions=True, guards=(Guard("log", safe),)))
    assert not all(math.isfinite(x) for x in at_safe.losses)
    at_bad = simulate_graph(GraphRun(run.model, run.inputs, seeds=1, trace_functions=True, guards=(Guard("log", bad),)))
    assert all(math.isfinite(x) for x in at_bad.losses)
    # the guard's forward is the hand-guarded model's, number for number
    x = torch.randn(4, 16, dtype=torch.float64)
    model = run.model.double()
    with torch.no_grad(), DomainGuards((Guard("log", bad),)):
        guarded = model(x)
    with torch.no_grad():
        h = model.l1(x)
        by_hand = model.l2(torch.log(nn.functional.softplus(h) + 1.0) + torch.log(torch.relu(h).clamp(min=EPS)))
    assert torch.equal(guarded, by_hand)


def test_a_forward_nan_from_a_log_gets_a_verified_guard_at_its_line() -> None:
    torch.manual_seed(0)
    doc = check_module(_TwoLogs(), torch.randn(16, 16), seeds=2)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    extra = f.evidence.model_dump()
    assert extra["operation"] == "log" and extra["called_at"] == _site(_TwoLogs.forward, 3, "bad = torch.log(torch.relu(h))")
    guard = f.remedies[0]
    assert guard.id == "domain_guard" and "torch.log(x.clamp(min=1e-12))" in guard.change
    assert extra["called_at"] in guard.change
    assert guard.verified is not None and guard.verified.fixed and guard.verified.after == 0 and guard.recommended
    # a new init does not keep a ReLU's zeros out of the log: verified as no fix
    init = next(r for r in f.remedies if r.id in ("he_init", "xavier_init"))
    assert init.verified is not None and not init.verified.fixed


class _SelfDistance(nn.Module):
    """The distance of an embedding to itself through a second call (a siamese pair on one input):
    sqrt of 0 in the forward, whose derivative is infinite, so every weight's gradient is NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.a(x), self.a(x.clone())
        d = torch.sqrt(((z1 - z2) ** 2).sum(-1, keepdim=True))
        return self.b(z1) + d


def test_a_backward_nan_names_the_derivative_that_made_it_and_its_guard_fixes_it() -> None:
    torch.manual_seed(0)
    model, x = _SelfDistance(), torch.randn(16, 8)
    # the independent fact: the forward is finite, the weights' gradients are not
    out = model(x)
    nn.functional.cross_entropy(out, torch.zeros(16, dtype=torch.long)).backward()
    assert torch.isfinite(out).all() and not torch.isfinite(model.a.weight.grad).all()
    doc = check_module(_SelfDistance(), x, seeds=2)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    extra = f.evidence.model_dump()
    assert f.severity == "error" and extra["pass"] == "backward" and extra["operation"] == "sqrt"
    assert extra["called_at"].startswith(_site(_SelfDistance.forward, 2, "")[:-3])
    assert "the derivative of sqrt" in f.summary
    [guard] = [r for r in f.remedies if r.id == "domain_guard"]
    assert guard.verified is not None and guard.verified.fixed and guard.recommended


def test_an_overflow_gets_no_guard() -> None:
    class ExpOverflow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1, self.l2 = nn.Linear(16, 32), nn.Linear(32, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.l2(torch.exp(1000.0 * self.l1(x)))

    torch.manual_seed(0)
    doc = check_module(ExpOverflow(), torch.randn(16, 16), seeds=1)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert "domain_guard" not in {r.id for r in f.remedies}


def test_a_masked_backward_nan_is_located_in_its_note() -> None:
    # sqrt's infinite derivative at a ReLU layer's zeros, replaced by 0 by the ReLU before it: a note
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)
            with torch.no_grad():
                self.a.bias.fill_(-10.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.b(h) + torch.sqrt((h * h).sum(-1, keepdim=True))

    torch.manual_seed(0)
    doc = check_module(Masked(), torch.randn(16, 8), seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.severity == "info" and f.evidence.model_dump()["operation"] == "sqrt" and not f.remedies
    assert "the derivative of sqrt at test_guards.py:" in f.summary


def test_an_imported_graph_names_the_node_and_guards_its_op() -> None:
    # an ONNX graph's calls are the importer's own code: the node is named, not a line of ours
    from gradhealth.analysis.module_check import check_onnx
    from tests.analysis.onnx_models import export

    class LogHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.log(torch.relu(self.a(x))))

    torch.manual_seed(0)
    doc = check_onnx(export(LogHead(), torch.randn(2, 8)), seeds=2)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    extra = f.evidence.model_dump()
    assert extra["operation"] == "log" and extra["node"].startswith("node ") and "Log" in extra["node"]
    assert "called_at" not in extra and "test_guards.py" not in f.summary
    [guard] = [r for r in f.remedies if r.id == "domain_guard"]
    assert extra["node"] in guard.change and guard.verified is not None and guard.verified.fixed
