"""Recurrent cells other than PyTorch's: hard-sigmoid gates and the GRU that resets before the
recurrent product (Keras 2.2's defaults), in the spec and through the live door."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from onnx import helper
from torch import nn

from gradhealth.analysis.cells import gate, gru_cell, lstm_cell, mark, step
from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.module_check import check_module
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.errors import SpecError
from tests.analysis.test_onnx_ops import _run


def _weights(gates: int, hidden: int = 4, inputs: int = 7) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(gates * hidden, inputs, generator=g, dtype=torch.float64),
            torch.randn(gates * hidden, hidden, generator=g, dtype=torch.float64),
            torch.randn(gates * hidden, generator=g, dtype=torch.float64),
            torch.randn(gates * hidden, generator=g, dtype=torch.float64)]


def _state() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return tuple(torch.randn(5, n, generator=g, dtype=torch.float64) for n in (7, 4, 4))  # type: ignore[return-value]  # three tensors


def test_the_written_out_cells_with_sigmoid_gates_are_pytorchs() -> None:
    x, h, c = _state()
    w = _weights(4)
    ours = lstm_cell(x, h, c, w, "sigmoid")
    theirs = torch.lstm_cell(x, (h, c), *w)  # type: ignore[arg-type]  # all four given
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    w = _weights(3)
    torch.testing.assert_close(gru_cell(x, h, w, "sigmoid", True), torch.gru_cell(x, h, *w),  # type: ignore[arg-type]  # all four given
                               rtol=0, atol=1e-12)


def test_hard_sigmoids_are_keras_definitions() -> None:
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    torch.testing.assert_close(gate("hard_sigmoid", x), torch.clamp(x / 6 + 0.5, 0, 1))
    torch.testing.assert_close(gate("hard_sigmoid_keras2", x), torch.clamp(0.2 * x + 0.5, 0, 1))


def test_a_gru_that_resets_before_the_product_is_cho_et_al() -> None:
    x, h, _ = _state()
    w_ih, w_hh, b_ih, b_hh = _weights(3)
    assert w_ih is not None and w_hh is not None and b_ih is not None and b_hh is not None
    rows = w_hh.shape[0] // 3
    xr, xz, xn = (x @ w_ih.T + b_ih).split(rows, 1)
    r = torch.sigmoid(xr + h @ w_hh[:rows].T + b_hh[:rows])
    z = torch.sigmoid(xz + h @ w_hh[rows:2 * rows].T + b_hh[rows:2 * rows])
    n = torch.tanh(xn + (r * h) @ w_hh[2 * rows:].T + b_hh[2 * rows:])
    expected = (1 - z) * n + z * h
    torch.testing.assert_close(gru_cell(x, h, [w_ih, w_hh, b_ih, b_hh], "sigmoid", False), expected)
    # and it is not the reset-after cell
    assert not torch.allclose(gru_cell(x, h, [w_ih, w_hh, b_ih, b_hh], "sigmoid", True), expected)


def test_a_marked_module_steps_through_its_own_cell() -> None:
    x, h, c = _state()
    lstm = nn.LSTM(7, 4).double()
    mark(lstm, "hard_sigmoid_keras2")
    w: list[torch.Tensor | None] = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
    torch.testing.assert_close(step(lstm, "lstm", x, h, c, w), lstm_cell(x, h, c, w, "hard_sigmoid_keras2"))


def _spec(cell: dict[str, Any]) -> dict[str, Any]:
    return {"name": "rnn", "input": {"shape": [20, 8]}, "batch_size": 16, "seeds": 2,
            "layers": [{"type": "lstm", "hidden_size": 16, **cell}, {"type": "linear", "out_features": 3}]}


@pytest.mark.parametrize("cell", [{"recurrent_activation": "hard_sigmoid_keras2"},
                                  {"type": "gru", "reset_after": False, "recurrent_activation": "hard_sigmoid"}])
def test_a_spec_with_keras2_cells_is_simulated(cell: dict[str, Any]) -> None:
    doc = run_architecture_check(_spec(cell), CheckOptions(Thresholds(), Limits(), verify=False))
    steps = [s.output_grad_norm for s in doc.time_steps if s.layer == doc.layers[0].name]
    assert len(steps) == 20 and all(g is not None and g >= 0 for g in steps)


@pytest.mark.parametrize(("cell", "pointer"), [
    ({"type": "rnn", "recurrent_activation": "hard_sigmoid"}, "/layers/0"),
    ({"reset_after": False}, "/layers/0"),
])
def test_a_gate_setting_on_a_cell_without_it_is_refused(cell: dict[str, Any], pointer: str) -> None:
    with pytest.raises(SpecError) as err:
        run_architecture_check(_spec(cell), CheckOptions(Thresholds(), Limits(), verify=False))
    assert any(p.pointer.startswith(pointer) for p in err.value.problems), err.value.problems


class _GruNet(nn.Module):
    def __init__(self, gates: str, reset_after: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gru = nn.GRU(8, 16, batch_first=True)
        mark(self.gru, gates, reset_after)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x)[0][:, -1])


def _series(gates: str, reset_after: bool) -> list[float | None]:
    doc = check_module(_GruNet(gates, reset_after), torch.randn(4, 12, 8), seeds=1, verify=False)
    return [s.output_grad_norm for s in doc.time_steps if s.layer == "gru"]


def test_the_live_door_steps_a_marked_gru_through_its_own_cell() -> None:
    torchs = _series("sigmoid", True)
    keras2 = _series("hard_sigmoid_keras2", False)
    assert len(torchs) == len(keras2) == 12
    assert keras2 != pytest.approx(torchs, rel=1e-3)  # the mark is what the door ran
    assert _series("sigmoid", True) == torchs  # and nothing else differs between the runs


def _onnx_reference(kind: str, x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray,
                    alpha: float) -> np.ndarray:
    """ONNX's LSTM (gates i, o, f, c) or GRU with linear_before_reset=0 (gates z, r, h), from the
    operator's definition, with HardSigmoid(alpha, 0.5) gates: Y of shape [T, 1, N, H]."""
    def f(v: np.ndarray) -> np.ndarray:
        return np.clip(alpha * v + 0.5, 0, 1)

    hidden = r.shape[-1]
    gates = 4 if kind == "lstm" else 3
    ws, rs = np.split(w[0], gates), np.split(r[0], gates)
    wb, rb = np.split(b[0][:gates * hidden], gates), np.split(b[0][gates * hidden:], gates)
    h = np.zeros((x.shape[1], hidden))
    c = np.zeros_like(h)
    out = []
    for xt in x:
        def pre(k: int, state: np.ndarray, xt: np.ndarray = xt) -> np.ndarray:
            return xt @ ws[k].T + state @ rs[k].T + wb[k] + rb[k]
        if kind == "lstm":
            i, o, fg = f(pre(0, h)), f(pre(1, h)), f(pre(2, h))
            c = fg * c + i * np.tanh(pre(3, h))
            h = o * np.tanh(c)
        else:
            z, rt = f(pre(0, h)), f(pre(1, h))
            h = (1 - z) * np.tanh(pre(2, rt * h)) + z * h
        out.append(h)
    return np.stack(out)[:, None]


@pytest.mark.parametrize(("kind", "alpha"), [("lstm", 0.2), ("gru", 0.2), ("lstm", 1 / 6), ("gru", 1 / 6)])
def test_the_onnx_door_runs_keras_cells_as_onnx_defines_them(kind: str, alpha: float) -> None:
    rng = np.random.default_rng(3)
    steps, batch, feats, hidden = 6, 3, 5, 4
    gates = 4 if kind == "lstm" else 3
    x = rng.standard_normal((steps, batch, feats)).astype(np.float32)
    inits = {"w": (rng.standard_normal((1, gates * hidden, feats)) * 1.5).astype(np.float32),
             "r": (rng.standard_normal((1, gates * hidden, hidden)) * 1.5).astype(np.float32),
             "b": (rng.standard_normal((1, 2 * gates * hidden)) * 1.5).astype(np.float32)}
    acts = ["HardSigmoid", "Tanh", "Tanh"] if kind == "lstm" else ["HardSigmoid", "Tanh"]
    extra = {} if alpha == 0.2 else {"activation_alpha": [alpha], "activation_beta": [0.5]}
    node = helper.make_node(kind.upper(), ["x", "w", "r", "b"], ["y"], hidden_size=hidden,
                            activations=acts, **extra)
    got = _run(node, {"x": x}, inits, [steps, 1, batch, hidden])
    want = _onnx_reference(kind, x.astype(np.float64), *(v.astype(np.float64) for v in inits.values()), alpha)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_an_onnx_hard_sigmoid_gate_of_another_slope_is_refused() -> None:
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2,
                            activations=["HardSigmoid", "Tanh", "Tanh"], activation_alpha=[0.3])
    inits = {"w": np.zeros((1, 8, 3), np.float32), "r": np.zeros((1, 8, 2), np.float32)}
    with pytest.raises(ModelError, match="alpha 0.3"):
        _run(node, {"x": np.zeros((2, 1, 3), np.float32)}, inits, [2, 1, 1, 2])
