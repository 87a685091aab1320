"""Recurrent cells written from raw parameters (d2l's ``RNNScratch``/``GRUScratch``: nn.Parameter
matrices, torch.sigmoid/torch.tanh in a Python loop over time). modsweep44 aye_gru_scratch: each
recurrent matrix was judged as a recurrence of its own, so the one state got an exploding (W_hh)
and a vanishing (W_hz) finding, and its saturated gates went unmeasured; aye_rnn_scratch: the
underflow sentence read "no the gradient carried back ...".
"""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


class ScratchGRU(nn.Module):
    """d2l's GRUScratch (batch-first here), its weights N(0, std^2), read at every step."""

    def __init__(self, n_in: int, hidden: int, n_out: int, std: float) -> None:
        super().__init__()

        def triple() -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
            return (nn.Parameter(torch.randn(n_in, hidden) * std), nn.Parameter(torch.randn(hidden, hidden) * std),
                    nn.Parameter(torch.zeros(hidden)))

        self.hidden = hidden
        self.W_xz, self.W_hz, self.b_z = triple()
        self.W_xr, self.W_hr, self.b_r = triple()
        self.W_xh, self.W_hh, self.b_h = triple()
        self.head = nn.Linear(hidden, n_out)

    def gates(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = torch.sigmoid(torch.matmul(x, self.W_xz) + torch.matmul(h, self.W_hz) + self.b_z)
        r = torch.sigmoid(torch.matmul(x, self.W_xr) + torch.matmul(h, self.W_hr) + self.b_r)
        h_tilde = torch.tanh(torch.matmul(x, self.W_xh) + torch.matmul(r * h, self.W_hh) + self.b_h)
        return z, r, h_tilde

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.hidden)
        outs = []
        for t in range(x.shape[1]):
            z, _, h_tilde = self.gates(x[:, t], h)
            h = z * h + (1 - z) * h_tilde
            outs.append(self.head(h))
        return torch.stack(outs, 1)


def _through_time(doc):  # type: ignore[no-untyped-def]
    return [f for f in doc.findings if f.code in ("vanishing_through_time", "exploding_through_time")]


def test_scratch_gru_is_one_recurrence_with_the_states_factor() -> None:
    torch.manual_seed(0)
    steps = 12
    model = ScratchGRU(4, 16, 3, std=1e-3)
    x = torch.randn(8, steps, 4)
    doc = check_module(model, x, loss="mse", seeds=1)
    # one recurrence: one series through time, not one per matrix reading the state
    assert {ts.layer for ts in doc.time_steps} == {"W_hz"}
    found = _through_time(doc)
    assert len(found) == 1 and found[0].code == "vanishing_through_time"
    ev = found[0].evidence.model_dump()
    # the matrices whose products the next step reads within a few operations (r's reaches h only
    # through the candidate's product: no loop of its own); either way one state, one finding
    assert {"W_hz", "W_hh"} <= set(ev["layers"])
    assert found[0].summary.startswith(f"the state {', '.join(ev['layers'])} read (one recurrence)")
    # theory: tiny weights keep z = sigmoid(0) = 1/2 and h~ ~ 0, so dh_{t+1}/dh_t = diag(z) = 1/2
    # (the matrices' own terms are ~ std sqrt(hidden) = 4e-3): the state carries 1/2 a step back
    assert abs(ev["per_step_factor"] - 0.5) < 0.02
    assert found[0].severity == "info"  # gates at 0.5: as good as default ones, read at every step


def test_scratch_gru_saturated_gates_are_measured_at_their_last_step() -> None:
    torch.manual_seed(0)
    hidden, steps = 32, 30
    model = ScratchGRU(8, hidden, 4, std=2.0)
    x = torch.randn(16, steps, 8)
    # independently: the share of the update gate's units within 0.02 of 0 or 1 at the last step
    with torch.no_grad():
        h = x.new_zeros(16, hidden)
        for t in range(steps):
            z, _, h_tilde = model.gates(x[:, t], h)
            h = z * h + (1 - z) * h_tilde
        last = float(((z < 0.02) | (z > 0.98)).float().mean())
    assert last > 0.6  # the premise: N(0, 4) 32x32 recurrent weights pin the gate
    doc = check_module(model, x, loss="mse", seeds=1)
    gate = next(row for row in doc.layers if row.name == "W_hz>sigmoid")
    assert gate.saturated_fraction is not None and gate.saturated_fraction > 0.6
    assert any(f.code == "saturation" and f.severity in ("warning", "error") for f in doc.findings)


class ScratchRNN(nn.Module):
    """d2l's RNNScratch: h = tanh(x W_xh + h W_hh + b_h), read at every step, its weights tiny."""

    def __init__(self, n_in: int, hidden: int, std: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.W_xh = nn.Parameter(torch.randn(n_in, hidden) * std)
        self.W_hh = nn.Parameter(torch.randn(hidden, hidden) * std)
        self.b_h = nn.Parameter(torch.zeros(hidden))
        self.W_hq = nn.Parameter(torch.randn(hidden, 2) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.hidden)
        outs = []
        for t in range(x.shape[1]):
            h = torch.tanh(torch.matmul(x[:, t], self.W_xh) + torch.matmul(h, self.W_hh) + self.b_h)
            outs.append(torch.matmul(h, self.W_hq))
        return torch.stack(outs, 1)


def test_underflowed_carried_gradient_sentence() -> None:
    torch.manual_seed(0)
    # 1e-3 * sqrt(16) = 4e-3 a step: under float64's 1e-308 within ~130 of the 160 steps
    model = ScratchRNN(3, 16, std=1e-3)
    doc = check_module(model, torch.randn(4, 160, 3), loss="mse", seeds=1)
    found = next(f for f in doc.findings if f.code == "vanishing_through_time")
    assert found.evidence.model_dump()["value"] == 0
    assert "none of the gradient carried back through its own recurrence reaches step 0" in found.summary
    assert "no the " not in found.summary


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))


def _large_updates(clip: float | None):  # type: ignore[no-untyped-def]
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=8.0)
    kwargs = {"clip_norm": clip} if clip is not None else {}
    doc = check_module(model, torch.randn(32, 8), loss="cross_entropy", seeds=1, optimizer=opt, **kwargs)
    return next((f for f in doc.findings if f.code == "large_updates"), None)


def test_sgd_past_the_bound_evidence_and_remedy_one_rate() -> None:
    found = _large_updates(None)
    assert found is not None
    ev = found.evidence.model_dump()
    assert ev["lr_times_sharpness"] > ev["stability_bound"]
    # theory (no momentum, no weight decay): 1 / lambda_max where the run diverges (lr x sharpness 1),
    # else the largest rate under the bound, 2 / lambda_max
    expected = (1.0 if ev["diverges"] else 2.0) / ev["sharpness"]
    assert abs(ev["stable_learning_rate"] - expected) <= 1e-9 * expected
    # the sentence quotes that rate (modsweep44: the evidence said 1/lambda, the sentence and remedy 2/lambda)
    assert f"{ev['stable_learning_rate']:.3g}" in found.summary


def test_clipped_sgd_past_the_bound_keeps_its_rate() -> None:
    found = _large_updates(1e-3)
    # each clipped step moves the weights by at most lr x clip = 8e-3: no runaway to cut the rate for
    assert found is None or found.severity == "info"
    if found is not None:
        assert found.evidence.model_dump()["clip_bounded_step"] == 8.0 * 1e-3
        assert not any(r.id == "lower_learning_rate" for r in found.remedies)


def test_clipping_in_place_keeps_the_users_threshold() -> None:
    from gradhealth.core import remedies as R

    kept = R.gradient_clipping_in_place(0.0032, "2 x the norm", "global_clipnorm 1", kept=1.0)
    assert kept.params["max_norm"] == 1.0 and "max_norm=1" in kept.snippet
    raised = R.gradient_clipping_in_place(0.5, "2 x the norm", "global_clipnorm 0.01", kept=0.01)
    assert raised.params["max_norm"] == 0.5 and raised.params["replaced_max_norm"] == 0.01
