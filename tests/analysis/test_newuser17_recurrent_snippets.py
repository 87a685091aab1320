"""newuser17 #1, #2: the recurrent remedies' snippets (gated_recurrent_cell, orthogonal_init) are
filled from what the check knows (the layer's path, sizes and the sequence length) and run as pasted
on the model checked, doing what the remedy says; the residual_connections snippet for a live module
wraps the named layers of the model (the change it verified), and applying it as given makes the
re-check healthy. Snippets are the project's own generated text, executed on test models."""

from __future__ import annotations

import math
from importlib import resources

import pytest
import torch
import yaml
from torch import nn

import gradhealth
from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds


class TanhRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(8, 32, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o, _ = self.rnn(x)
        return self.head(o[:, -1])


class GruNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(6, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o, _ = self.gru(x)
        return self.head(o[:, -1])


def _remedies(doc, code: str) -> dict:
    f = next(f for f in doc.findings if f.code == code)
    return {r.id: r for r in f.remedies}


def _run(snippet: str, model: nn.Module) -> dict:
    ns = {"model": model, "nn": nn, "torch": torch, "math": math}
    exec(compile(snippet, "snippet", "exec"), ns)  # noqa: S102 - the project's own generated snippet
    return ns


@pytest.fixture(scope="module")
def rnn_doc():
    torch.manual_seed(0)
    return gradhealth.check_module(TanhRNN(), torch.randn(4, 100, 8), seeds=1)


def test_a_live_rnn_gets_an_lstm_of_its_sizes_put_into_the_model_with_chrono_over_its_steps(rnn_doc) -> None:
    gated = _remedies(rnn_doc, "vanishing_through_time")["gated_recurrent_cell"]
    torch.manual_seed(0)
    model = TanhRNN()
    _run(gated.snippet, model)  # raised NameError: n_in
    lstm = model.rnn
    assert isinstance(lstm, nn.LSTM) and (lstm.input_size, lstm.hidden_size, lstm.batch_first) == (8, 32, True)
    h = 32
    b_f = lstm.bias_ih_l0.detach()[h:2 * h]
    # chrono over T = 100: b_f = log U(1, 99), b_i = -b_f, the recurrent biases of i and f zero
    assert float(b_f.min()) >= 0.0 and float(b_f.max()) <= math.log(99) + 1e-6
    assert torch.equal(lstm.bias_ih_l0.detach()[:h], -b_f)
    assert torch.count_nonzero(lstm.bias_hh_l0.detach()[:2 * h]) == 0
    assert model(torch.randn(2, 100, 8)).shape == (2, 4)  # the model still runs with the LSTM in it


def test_a_live_rnn_orthogonal_snippet_makes_its_recurrent_matrix_orthogonal(rnn_doc) -> None:
    orth = _remedies(rnn_doc, "vanishing_through_time")["orthogonal_init"]
    model = TanhRNN()
    _run(orth.snippet, model)  # raised NameError: rnn
    w = model.rnn.weight_hh_l0.detach().double()
    assert torch.allclose(w @ w.T, torch.eye(32, dtype=torch.float64), atol=1e-5)


def test_a_live_gru_gets_its_update_gate_opened_by_chrono() -> None:
    from gradhealth.analysis.module_check import _recurrent_modules
    from gradhealth.core import remedies as R

    model = GruNet()

    class Unit:  # the one field _recurrent_modules reads of a measured unit
        name, pointer = "gru", "module:gru"

    layers = list(_recurrent_modules([Unit()], model, None).values())  # type: ignore[list-item]
    _run(R.gated_recurrent_cell("gru", "chrono", 200, layers=layers).snippet, model)
    z = model.gru.bias_ih_l0.detach()[16:32]  # gates r, z, n: the update gate z = log U(1, 199)
    assert isinstance(model.gru, nn.GRU) and float(z.min()) >= 0.0 and float(z.max()) <= math.log(199) + 1e-6
    assert float(z.std()) > 0 and torch.count_nonzero(model.gru.bias_hh_l0.detach()[16:32]) == 0


def test_the_spec_check_fills_the_snippets_with_the_layers_sizes_and_steps() -> None:
    raw = yaml.safe_load((resources.files("gradhealth") / "examples" / "tanh_rnn_long.yaml").read_text())
    raw["seeds"] = 1
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits()))
    remedies = {r.id: r for f in doc.findings for r in f.remedies}
    ns = _run(remedies["gated_recurrent_cell"].snippet, nn.Identity())
    lstm = ns["lstm"]  # the spec's rnn (32 -> 128 over 100 steps) as an LSTM
    assert (lstm.input_size, lstm.hidden_size) == (32, 128) and ns["T_max"] == 100
    ns = _run(remedies["orthogonal_init"].snippet, nn.Identity())
    w = ns["rnn"].weight_hh_l0.detach().double()
    assert ns["rnn"].input_size == 32 and torch.allclose(w @ w.T, torch.eye(128, dtype=torch.float64), atol=1e-5)


def test_residual_snippet_wraps_the_models_layers_and_the_recheck_is_healthy() -> None:
    def make() -> nn.Sequential:
        torch.manual_seed(0)
        return nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(64, 64), nn.Sigmoid())], nn.Linear(64, 10))

    x = torch.randn(32, 64)
    doc = gradhealth.check_module(make(), x, seeds=1)
    assert doc.status == "unhealthy"
    residual = _remedies(doc, "vanishing_gradient")["residual_connections"]
    model = make()
    before = sum(p.numel() for p in model.parameters())
    _run(residual.snippet, model)  # only defined a class: the model was unchanged
    assert sum(isinstance(m, nn.Module) and type(m).__name__ == "Residual" for m in model.modules()) >= 10
    assert sum(p.numel() for p in model.parameters()) == before  # the same layers, wrapped
    y = torch.randn(5, 64)
    with torch.no_grad():  # block 1 is now x + sigmoid(W x + b)
        first = model[0]
        assert torch.allclose(first(y), y + torch.sigmoid(first.f[0](y)))
    again = gradhealth.check_module(model, x, seeds=1, verify=False)
    assert "vanishing_gradient" not in [f.code for f in again.findings if f.severity != "info"]
    assert residual.verified is not None and residual.verified.fixed  # the change pasted is the one verified


def test_an_imported_rnn_gets_its_layer_built_with_its_sizes() -> None:
    import io
    import warnings

    pytest.importorskip("onnx")
    torch.manual_seed(0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TanhRNN(), torch.randn(2, 100, 8), buf, dynamo=False)
    doc = gradhealth.check_onnx(buf.getvalue(), seeds=1)
    remedies = {r.id: r for f in doc.findings if f.code == "vanishing_through_time" for r in f.remedies}
    lstm = _run(remedies["gated_recurrent_cell"].snippet, nn.Identity())["lstm"]
    assert (lstm.input_size, lstm.hidden_size) == (8, 32)
    rnn = _run(remedies["orthogonal_init"].snippet, nn.Identity())["rnn"]
    w = rnn.weight_hh_l0.detach().double()
    assert rnn.input_size == 8 and torch.allclose(w @ w.T, torch.eye(32, dtype=torch.float64), atol=1e-5)
