"""specsweep10 (architecture specs from public repositories): a recurrent layer read at every step
is judged alike for every cell kind; through-time summaries say their steps count from 0; a usual
optimizer step is said in words."""

from __future__ import annotations

import math

import pytest
import torch

from gradhealth import check_architecture


def _carried_per_step(cell: torch.nn.RNN, x: torch.Tensor) -> float:
    """dL/dh_t's factor per step carried back by ``cell``'s own recurrence from a gradient injected
    at the last step alone, from step T-2 back to step 0: torch autograd on the unrolled cell,
    independent of the check's probes."""
    w_ih, w_hh = cell.weight_ih_l0.double(), cell.weight_hh_l0.double()
    b = (cell.bias_ih_l0 + cell.bias_hh_l0).double()
    h = torch.zeros(x.shape[0], w_hh.shape[0], dtype=torch.float64)
    states = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ w_ih.T + h @ w_hh.T + b)
        h.retain_grad()
        states.append(h)
    (states[-1] * torch.randn_like(states[-1])).sum().backward()
    steps = x.shape[1]
    ratio = float(states[0].grad.norm() / states[-2].grad.norm())  # type: ignore[union-attr]
    return ratio ** (1 / (steps - 2))


def _pooled(kind: str, **cell: object) -> dict:
    return {"name": f"pooled {kind}", "input": {"shape": [50, 65]}, "batch_size": 8, "seeds": 3,
            "layers": [{"type": kind, "hidden_size": 128, "output": "sequence", **cell},
                       {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 65}]}


@pytest.mark.parametrize("cell", [{}, {"init": {"scheme": "normal", "std": 0.01},
                                       "recurrent_init": {"scheme": "normal", "std": 0.01}}])
def test_specsweep10_a_plain_rnn_read_at_every_step_is_a_note_like_a_gated_cell(cell: dict) -> None:
    # torch's default tanh RNN pooled over 50 steps, and Karpathy's min-char-rnn's N(0, 0.01) weights,
    # were warnings while a default LSTM beside them at the same per-step factor was a note;
    # docs/findings.md caps a layer read at more steps than its last at a note where no long
    # stretch escapes it, for a plain cell too
    spec = _pooled("rnn", nonlinearity="tanh", **cell)
    [f] = [f for f in check_architecture(spec, verify=False).findings if f.code == "vanishing_through_time"]
    assert f.severity == "info"
    # the per-step factor it judged, against torch autograd on an RNN drawn the same way
    torch.manual_seed(0)
    rnn = torch.nn.RNN(65, 128, batch_first=True)
    if cell:
        for p in (rnn.weight_ih_l0, rnn.weight_hh_l0):
            torch.nn.init.normal_(p, std=0.01)
    expected = _carried_per_step(rnn, torch.randn(8, 50, 65, dtype=torch.float64))
    assert f.evidence.model_dump()["per_step_factor"] == pytest.approx(expected, rel=0.1)
    # theory: a recurrent matrix of i.i.d. entries of variance s^2 scales a vector by sqrt(H) s, and
    # tanh' <= 1 only shrinks it: U(+-1/sqrt(H)) gives 1/sqrt(3) = 0.577, N(0, 0.01) 0.113
    assert expected <= (0.01 * math.sqrt(128) if cell else 1 / math.sqrt(3)) * 1.05
    # the same gated counterpart is a note too
    lstm = [f for f in check_architecture(_pooled("lstm"), verify=False).findings
            if f.code == "vanishing_through_time"]
    assert {g.severity for g in lstm} <= {"info"}


def test_specsweep10_a_plain_rnn_read_at_its_last_step_alone_is_still_judged_by_its_total() -> None:
    last = {"input": {"shape": [50, 65]}, "batch_size": 8, "seeds": 2,
            "layers": [{"type": "rnn", "hidden_size": 128, "nonlinearity": "tanh"},
                       {"type": "linear", "out_features": 65}]}
    [f] = [f for f in check_architecture(last, verify=False).findings if f.code == "vanishing_through_time"]
    assert f.severity == "error"  # ~0.58^48 ~ 1e-11, under the 1e-4 error threshold


def test_specsweep10_a_through_time_summary_says_its_steps_count_from_zero() -> None:
    [f] = [f for f in check_architecture(_pooled("rnn"), verify=False).findings
           if f.code == "vanishing_through_time"]
    assert "from step 48 back to step 0" in f.summary
    assert "per step, of steps 0-49)" in f.summary  # numbered from 0: 49 is the last, where the gradient enters


@pytest.mark.parametrize("scheme", ["constant", "ones", "Ones", "ones_"])
def test_specsweep10_a_constant_weight_init_is_refused_saying_the_format_has_none(scheme: str) -> None:
    # inv_constant_ones_init: a course template's nn.init.ones_ written by analogy with bias_init's
    # `constant` was refused without saying a spec cannot express it at all
    from gradhealth.analysis.spec import SpecError, parse_spec

    spec = {"input": {"shape": [8]}, "layers": [{"type": "linear", "out_features": 4,
                                                 "init": {"scheme": scheme}}]}
    with pytest.raises(SpecError) as exc:
        parse_spec(spec)
    text = str(exc.value)
    assert "/layers/0/init/scheme" in text and "no constant weight init" in text and "check_module" in text
    # a bias's constant stays valid
    parse_spec({"input": {"shape": [8]}, "layers": [{"type": "linear", "out_features": 4,
                                                     "bias_init": {"scheme": "constant", "value": 1.0}}]})
