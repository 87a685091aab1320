"""modsweep49 items 1, 4 and 5: a selective scan (Mamba's sequential form) that grows through time
is judged through time with the decay's remedy, not as depth; a stacked element-wise recurrence
(IndRNN) keeps its through-time factor out of the depth ratio; and the through-time remedies name
only the scan they are about, with no orthogonal init or LSTM for a vector decay. Every module is
built here; expected numbers come from theory or an independent torch computation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module


class _SelectiveScan(nn.Module):
    """h_t = exp(delta_t * A) * h_(t-1) + delta_t * B x_t with delta_t = softplus(W x_t + b) > 0, per
    channel and state: Mamba's sequential scan. A = -exp(A_log) decays; A = +exp(A_log) makes every
    step multiply the state (and dL/dh back through it) by exp(delta_t * A) > 1."""

    def __init__(self, grow: bool, width: int = 8, state: int = 4, steps: int = 48) -> None:
        super().__init__()
        self.grow, self.steps = grow, steps
        self.inp = nn.Linear(6, width)
        self.dt = nn.Linear(width, width)
        self.b = nn.Linear(width, state, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.linspace(0.05, 0.2, state)).repeat(width, 1))
        self.out = nn.Linear(width, 5)

    def decays(self, x: torch.Tensor) -> torch.Tensor:
        u = self.inp(x)
        a = torch.exp(self.A_log) if self.grow else -torch.exp(self.A_log)
        delta = F.softplus(self.dt(u))
        return torch.exp(delta.unsqueeze(-1) * a)  # [B, L, width, state]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.inp(x)
        a = torch.exp(self.A_log) if self.grow else -torch.exp(self.A_log)
        delta = F.softplus(self.dt(u))
        da = torch.exp(delta.unsqueeze(-1) * a)
        bx = delta.unsqueeze(-1) * self.b(u).unsqueeze(2) * u.unsqueeze(-1)
        h = torch.zeros(x.shape[0], u.shape[-1], self.A_log.shape[1], dtype=x.dtype)
        for t in range(self.steps):
            h = da[:, t] * h + bx[:, t]
        return self.out(h.sum(-1))


def test_a_selective_scan_that_grows_is_judged_through_time_with_the_decay_remedy() -> None:
    # modsweep49 mamba_positive_A: read as exploding_gradient through 21 layers (he_init, batch_norm,
    # relu in place of the softplus), never as the scan's exp(delta * A) > 1 per step
    torch.manual_seed(0)
    model, x = _SelectiveScan(grow=True), torch.randn(16, 48, 6)
    doc = check_module(model, x, loss="cross_entropy", seeds=2)
    codes = [f.code for f in doc.findings]
    assert "exploding_through_time" in codes and "exploding_gradient" not in codes
    [f] = [f for f in doc.findings if f.code == "exploding_through_time"]
    assert f.evidence.layers == ["A_log"]
    assert [r.id for r in f.remedies] == ["stable_decay"] and "|a| < 1" in f.remedies[0].change
    # dL/dh_(t-1) = a_t * dL/dh_t element-wise: the measured factor a step lies within the decays' range
    with torch.no_grad():
        a = model.decays(x)
    factor = f.evidence.model_dump()["per_step_factor"]
    assert float(a.min()) <= factor <= float(a.max())
    assert factor > 1


def test_a_selective_scan_that_decays_is_no_finding() -> None:
    torch.manual_seed(0)
    doc = check_module(_SelectiveScan(grow=False), torch.randn(16, 48, 6), loss="cross_entropy", seeds=2)
    assert not [f for f in doc.findings if f.code.startswith("exploding")]


def test_a_gate_computed_from_the_state_is_no_selective_scan() -> None:
    # h = z * h + (1 - z) * c with z = sigmoid(U h + W x): the "decay" depends on h_(t-1), a gated cell
    # (the loop of its layers), not an element-wise scan with an own parameter
    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w, self.u, self.c, self.out = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(6, 8), nn.Linear(8, 5)
            self.bias = nn.Parameter(torch.zeros(8))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.zeros(x.shape[0], 8, dtype=x.dtype)
            for t in range(x.shape[1]):
                z = torch.sigmoid(self.u(h) + self.w(x[:, t]) + self.bias)
                h = z * h + (1 - z) * torch.tanh(self.c(x[:, t]))
            return self.out(h)

    torch.manual_seed(0)
    doc = check_module(Gated(), torch.randn(8, 12, 6), loss="cross_entropy", seeds=2)
    assert not any(s.layer == "bias" for s in doc.time_steps)


class _IndRNN(nn.Module):
    """Two stacked IndRNN cells, h_t = relu(W x_t + u * h_(t-1) + b) with a vector recurrent weight
    u (the shuheng-W cell), then a Linear on the last state. |u| = 0.05 makes dL/dh_t vanish by
    0.05 a step through time, while W (He init) keeps each layer's gain near 1 through depth."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.w = nn.ParameterList([nn.Parameter(torch.randn(hidden, n) * math.sqrt(2 / n)) for n in (4, hidden)])
        self.u = nn.ParameterList([nn.Parameter(torch.full((hidden,), 0.05)) for _ in range(2)])
        self.head = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w, u in zip(self.w, self.u, strict=True):
            h = torch.zeros(x.shape[1], w.shape[0], dtype=x.dtype)
            hs = []
            for t in range(x.shape[0]):
                h = F.relu(F.linear(x[t], w) + u * h)
                hs.append(h)
            x = torch.stack(hs)
        return self.head(x[-1])


def test_through_time_vanishing_is_not_counted_again_as_depth() -> None:
    # modsweep49 indrnn_default_init: "gradient shrinks 4.53e+109x ... (3 layers)" from the first
    # call of the input projection (step 0), the through-time underflow read as depth
    torch.manual_seed(0)
    x = torch.randn(60, 16, 4)
    doc = check_module(_IndRNN(), x, loss="cross_entropy", seeds=2)
    codes = [f.code for f in doc.findings]
    assert "vanishing_through_time" in codes
    assert "vanishing_gradient" not in codes  # He-initialised layers: a gain near 1 through depth
    # each layer measured at the last step, the head's: He init and relu keep ||dL/dh|| within a
    # small factor through 2 layers, where step 0's is 0.05 ** 59 ~ 1e-77 of it (through time)
    norms = {layer.name: layer.output_grad_norm for layer in doc.layers}
    assert 0.1 < norms["w.0"] / norms["head"] < 10
    assert 0.1 < norms["w.1"] / norms["head"] < 10


def test_through_time_remedies_name_only_the_scan_found_and_no_matrix_remedies() -> None:
    # modsweep49 indrnn (item 5): the finding on one cell's decay offered "make <the other cell's>
    # weight_hh an LSTM" and orthogonal init of a vector
    torch.manual_seed(0)
    doc = check_module(_IndRNN(), torch.randn(60, 16, 4), loss="cross_entropy", seeds=2)
    for f in (f for f in doc.findings if f.code == "vanishing_through_time"):
        assert [r.id for r in f.remedies] == ["stable_decay"]
        others = {"u.0", "u.1"} - set(f.evidence.layers)
        assert not any(o in r.change for r in f.remedies for o in others)


class _ConstantReadout(nn.Module):
    """A max over time between the readout's trace and a state that stays at its initial 0 (a
    spiking net with no spike): the readout's values lie far below 0, so the max picks the constant
    0 for every sample, and the loss's gradient reaches no weight."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(torch.relu(self.fc1(x))) - 1e3
        return torch.stack([torch.zeros_like(y), y], dim=1).max(dim=1).values


def test_no_output_gradient_with_two_outputs_tells_no_softmax_story() -> None:
    # modsweep49 spytorch_silent: 2 classes, no output activation, yet "a softmax over a single unit is
    # the constant 1 ... cross-entropy over a single class is 0" and "drop the softmax over one unit"
    torch.manual_seed(0)
    doc = check_module(_ConstantReadout(), torch.randn(16, 6), loss="cross_entropy", seeds=2)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    words = f"{f.summary} {f.explanation}"
    assert "is the constant 1" not in words and "over a single class is 0" not in words
    assert "2 outputs" in words and "max" in words
    assert not [r for r in f.remedies if r.id == "output_activation"]


class _ScaledScan(_SelectiveScan):
    """Mamba's scan with A = -exp(A_log), A_log = log(``a``) (A = -a, a from 2 to 4) and delta =
    softplus(W x + b) near 0.7 at init: each step multiplies dL/dh by exp(-0.7 * a), 0.06 to 0.25."""

    def __init__(self, a: tuple[float, float]) -> None:
        super().__init__(grow=False)
        with torch.no_grad():
            self.A_log.copy_(torch.log(torch.linspace(*a, self.A_log.shape[1])).repeat(self.A_log.shape[0], 1))


def test_a_selective_scans_decay_remedy_is_worded_in_mambas_parameterisation() -> None:
    # exp(delta * A) with A = +exp(A_log): the fix is Mamba's A = -exp(A_log), not LRU's exp(-exp(nu))
    torch.manual_seed(0)
    doc = check_module(_SelectiveScan(grow=True), torch.randn(16, 48, 6), loss="cross_entropy", seeds=2)
    [f] = [f for f in doc.findings if f.code == "exploding_through_time"]
    [r] = f.remedies
    assert r.id == "stable_decay" and r.params["form"] == "selective"
    assert "A = -exp(A_log)" in r.change and "exp(delta * A)" in r.change and "exp(-exp(nu))" not in r.change
    assert "A = -torch.exp(self.A_log)" in r.snippet and "nu" not in r.snippet
    # a scan forgetting fast (exp(-0.7 * a) <= 0.25 a step): A and the step size delta, in Mamba's terms
    torch.manual_seed(0)
    doc = check_module(_ScaledScan((2.0, 4.0)), torch.randn(16, 48, 6), loss="cross_entropy", seeds=2)
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time"]
    [r] = f.remedies
    assert "A = -exp(A_log)" in r.change and "dt_proj" in r.change and "0.9 to 0.999" not in r.change


def test_a_fixed_decays_remedy_keeps_the_lru_parameterisation() -> None:
    # h = a * h + W x_t with a plain learned vector a = 1.3 (1.3^47 ~ 2e5 over the steps): no step size, no A; the fix is exp(-exp(nu))
    class Growing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp, self.out = nn.Linear(6, 16), nn.Linear(16, 5)
            self.a = nn.Parameter(torch.full((16,), 1.3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.zeros(x.shape[0], 16, dtype=x.dtype)
            for t in range(x.shape[1]):
                h = self.a * h + self.inp(x[:, t])
            return self.out(h)

    torch.manual_seed(0)
    doc = check_module(Growing(), torch.randn(16, 48, 6), loss="cross_entropy", seeds=2)
    [f] = [f for f in doc.findings if f.code == "exploding_through_time"]
    [r] = f.remedies
    assert r.id == "stable_decay" and "exp(-exp(nu))" in r.change and "A_log" not in r.change + r.snippet
