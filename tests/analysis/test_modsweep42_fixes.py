"""modsweep42: a module called at every time step measured over its calls (not at a first call the
loss never reads), the refusal of a forward that fails on the user's own inputs, a float32 overflow
located in the model's own dtype from the float64 figures, growth past the float range worded without
"infx", and the batch of sequence-first inputs. Every module is built here; expected numbers come
from theory or an independent torch computation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import gradhealth


class _CharRNN(nn.Module):
    """The PyTorch char-RNN tutorial's cell over a name: ``i2h`` and ``i2o`` both read [x_t, h_{t-1}],
    ``i2o`` runs at every step and only the last step's output is returned (``head_reads_state``:
    i2o reads the new h_t instead)."""

    def __init__(self, letters: int = 20, hidden: int = 16, classes: int = 6, head_reads_state: bool = False) -> None:
        super().__init__()
        self.hidden, self.head_reads_state = hidden, head_reads_state
        self.i2h = nn.Linear(letters + hidden, hidden)
        self.i2o = nn.Linear(hidden if head_reads_state else letters + hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, letters]
        h = torch.zeros(x.size(0), self.hidden, dtype=x.dtype)
        out = h
        for t in range(x.size(1)):
            c = torch.cat((x[:, t], h), 1)
            h = self.i2h(c)
            out = self.i2o(h if self.head_reads_state else c)
        return out


def _one_hot_names(b: int = 12, t: int = 5, letters: int = 20) -> torch.Tensor:
    torch.manual_seed(3)
    # one-hot letters: 95% zeros, kept as given by the check (structure), so the gradients can be
    # recomputed here on exactly the inputs it ran
    return nn.functional.one_hot(torch.randint(0, letters, (b, t)), letters).double()


def _torch_gradients(model: nn.Module, x: torch.Tensor) -> tuple[float, float, float]:
    """(||dL/d i2o.weight||, ||dL/d i2h.weight||, ||dL/d out||) from torch's own backward on a float64
    copy, under the check's cross-entropy against its seed-0 labels."""
    net = copy.deepcopy(model).double()
    out = net(x)
    out.retain_grad()
    labels = torch.randint(out.shape[-1], out.shape[:-1], generator=torch.Generator().manual_seed(20_000))
    nn.functional.cross_entropy(out, labels).backward()
    assert net.i2o.weight.grad is not None and net.i2h.weight.grad is not None and out.grad is not None
    return float(net.i2o.weight.grad.norm()), float(net.i2h.weight.grad.norm()), float(out.grad.norm())


@pytest.mark.parametrize("head_reads_state", [False, True])
def test_head_called_every_step_is_measured_at_the_call_the_loss_reads(head_reads_state: bool) -> None:
    # modsweep42 #1: i2o's first call's output reaches nothing, and was measured: "no gradient
    # reaches i2o ... nothing in the network learns", an output_loss_mismatch error
    torch.manual_seed(0)
    model, x = _CharRNN(head_reads_state=head_reads_state), _one_hot_names()
    doc = gradhealth.check_module(model, x.float(), seeds=1, verify=False)
    assert "output_loss_mismatch" not in [f.code for f in doc.findings], [f.summary for f in doc.findings]
    rows = {r.name: r for r in doc.layers}
    w_head, w_state, g_out = _torch_gradients(model, x)
    assert rows["i2o"].grad_norm == pytest.approx(w_head, rel=1e-9)
    assert rows["i2h"].grad_norm == pytest.approx(w_state, rel=1e-9)
    # the call measured is the last, whose output is the loss's input: its gradient is dL/d out
    assert rows["i2o"].output_grad_norm == pytest.approx(g_out, rel=1e-9)
    assert rows["i2h"].output_grad_norm is not None and rows["i2h"].output_grad_norm > 0


def test_loop_time_series_ends_at_the_last_step_the_loss_reads() -> None:
    # in the tutorial's cell the head reads h_{t-1}: the last step's new state reaches nothing, and
    # was counted as a step whose dL/dh_t is 0 (the series ended in a zero)
    torch.manual_seed(0)
    x = _one_hot_names(t=6)
    doc = gradhealth.check_module(_CharRNN(), x.float(), seeds=1, verify=False)
    steps = [s for s in doc.time_steps if s.layer == "i2h"]
    assert len(steps) == x.shape[1] - 1
    assert all(s.output_grad_norm is not None and s.output_grad_norm > 0 for s in steps)


class _SoftmaxHeadRNN(nn.Module):
    """A tanh cell whose softmax head runs at every step (``per_step``; only the last step's is
    returned) or once after the loop: the same network, the same output."""

    def __init__(self, per_step: bool, letters: int = 10, hidden: int = 16, classes: int = 8) -> None:
        super().__init__()
        self.hidden, self.per_step = hidden, per_step
        self.i2h = nn.Linear(letters + hidden, hidden)
        self.i2o = nn.Linear(hidden, classes)
        with torch.no_grad():
            self.i2o.weight.mul_(300)  # logits so large that the output's softmax rows are one-hot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.size(0), self.hidden, dtype=x.dtype)
        out = h
        for t in range(x.size(1)):
            h = torch.tanh(self.i2h(torch.cat((x[:, t], h), 1)))
            if self.per_step:
                out = torch.softmax(self.i2o(h), 1)
        return out if self.per_step else torch.softmax(self.i2o(h), 1)


def test_output_softmax_run_at_every_step_is_the_outputs_not_a_hidden_one() -> None:
    # the output's softmax at the steps before the last read as a softmax inside the network:
    # "92% of the rows of the softmax in forward are one-hot", a saturation warning the same head
    # applied once after the loop does not get; its output layer was named i2h (i2o's first call cut)
    found = {}
    for per_step in (True, False):
        torch.manual_seed(0)
        doc = gradhealth.check_module(_SoftmaxHeadRNN(per_step), torch.randn(32, 6, 10), loss="mse", seeds=1,
                                      verify=False)
        found[per_step] = sorted((f.code, f.severity, f.summary.split(":")[0]) for f in doc.findings)
    assert "saturation" not in [c for c, _, _ in found[True]]
    assert found[True] == found[False]


class _SqueezeBug(nn.Module):
    """A GAT layer's attention with ``.squeeze(1)`` where ``.squeeze(2)`` belongs: [N, N, 1] stays 3-D and
    the next ``torch.mm`` fails, on any graph of more than one node."""

    def __init__(self) -> None:
        super().__init__()
        self.W, self.a = nn.Parameter(torch.randn(8, 4)), nn.Parameter(torch.randn(8, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        wh = torch.mm(h, self.W)
        pairs = torch.cat([wh.unsqueeze(1).expand(-1, h.size(0), -1), wh.unsqueeze(0).expand(h.size(0), -1, -1)], 2)
        attention = torch.softmax(torch.matmul(pairs, self.a).squeeze(1), dim=1)
        return torch.mm(attention, wh)


class _NeedsPositiveInputs(nn.Module):
    """A forward that runs on its example (pixels in [0, 1]) and fails on standard-normal draws."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy(torch.sigmoid(self.fc(x)), x)


def test_a_forward_that_fails_on_the_example_too_is_worded_as_the_forwards_bug_with_its_line() -> None:
    # modsweep42 #2: "(its float inputs were drawn standard normal ...; input_range=(low, high) ...)" for a
    # shape bug that a plain call on the example raises too, and no line
    from gradhealth.analysis.module_check import ModelRunError

    x = torch.randn(6, 8)
    with pytest.raises(RuntimeError) as plain:  # the independent control: the forward on the example
        _SqueezeBug()(x)
    with pytest.raises(ModelRunError) as raised:
        gradhealth.check_module(_SqueezeBug(), x, seeds=1, verify=False)
    text = str(raised.value)
    assert raised.value.stage == "forward"
    assert "input_range" not in text and "drawn standard normal" not in text
    assert "fails on example_inputs ((6, 8) float32) as given" in text
    assert str(plain.value).splitlines()[0] in text
    # the user's line that raised: this file, the forward's last line
    line = _SqueezeBug.forward.__code__.co_firstlineno + 4
    assert f"test_modsweep42_fixes.py:{line} (return torch.mm(attention, wh))" in text


def test_a_forward_that_fails_only_on_the_drawn_inputs_keeps_the_input_range_hint() -> None:
    from gradhealth.analysis.module_check import ModelRunError

    x = torch.rand(8, 6)
    _NeedsPositiveInputs()(x)  # runs on the example
    with pytest.raises(ModelRunError) as raised:
        gradhealth.check_module(_NeedsPositiveInputs(), x, loss="sum", seeds=1, verify=False)
    text = str(raised.value)
    assert "drawn standard normal, not the example's values; input_range=(low, high)" in text
    assert "the forward runs on example_inputs as given" in text
    line = _NeedsPositiveInputs.forward.__code__.co_firstlineno + 1
    assert f"test_modsweep42_fixes.py:{line} " in text


class _Deep(nn.Module):
    """``depth`` bias-free Linear+ReLU layers of width 32 with N(0, sigma^2) weights: each multiplies the
    signal, and the gradient backwards, by sigma * sqrt(32 / 2) (He et al. 2015)."""

    def __init__(self, depth: int = 20, gain: float = 1e4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32, bias=False) for _ in range(depth))
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.normal_(0.0, gain / math.sqrt(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


def test_a_float32_overflow_is_located_where_float32_makes_it_and_growth_keeps_a_finite_factor() -> None:
    # modsweep42 #4/#5: 100 ReLU layers of N(0, 1) weights overflow float32 in the forward at layers.36;
    # the float64 simulation named "the backward pass at layers.99" and "grows infx"
    torch.manual_seed(0)
    model = _Deep()
    x = torch.randn(16, 32)
    # independently: the first layer whose float32 output is Inf, the model run as it trains
    h, first = x, None
    with torch.no_grad():
        for k, layer in enumerate(model.layers):
            h = torch.relu(layer(h))
            if first is None and not bool(torch.isfinite(h).all()):
                first = k
    assert first is not None and 0 < first < len(model.layers) - 1
    doc = gradhealth.check_module(model, x, loss="mse", seeds=1, verify=False)
    nonfinite = next(f for f in doc.findings if f.code == "nonfinite")
    ev = nonfinite.evidence.model_dump()
    assert ev["dtype"] == "float32" and ev["pass"] == "forward" and ev["layers"] == [f"layers.{first}"]
    assert ev["largest"] > float(torch.finfo(torch.float32).max)
    assert f"forward pass at layers.{first} in float32" in nonfinite.summary
    exploding = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert "infx" not in exploding.summary and "nanx" not in exploding.summary
    # the per-layer factor over the stretch still finite: sigma * sqrt(32 / 2) = 1e4 per layer
    factor = exploding.evidence.model_dump()["per_layer_factor"]
    assert 0.5e4 < factor < 2e4
    assert f"{factor:.3g} per step" in exploding.summary


class _SeqFirstCell(nn.Module):
    """A hand-written tanh cell looping over the first dimension of ``[T, B, F]`` (the char-RNN
    training scripts' ``for i in range(line.size(0)): rnn(line[i], hidden)``)."""

    def __init__(self, features: int = 10, hidden: int = 12) -> None:
        super().__init__()
        self.hidden = hidden
        self.inp, self.rec, self.out = nn.Linear(features, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.size(1), self.hidden, dtype=x.dtype)
        for t in range(x.size(0)):
            h = torch.tanh(self.inp(x[t]) + self.rec(h))
        return self.out(h)


class _PerSample(nn.Module):
    """A layer applied to each sample of ``[B, T, F]`` in a loop, no state carried: B is the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.head = nn.Linear(10, 12), nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.stack([torch.tanh(self.fc(x[i])).mean(0) for i in range(x.size(0))]))


class _TokensLSTM(nn.Module):
    """Token ids ``[T, B]`` through an embedding into a sequence-first ``nn.LSTM``."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.lstm, self.head = nn.Embedding(50, 8), nn.LSTM(8, 12), nn.Linear(12, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(ids))
        return self.head(out[-1])


@pytest.mark.parametrize(("model", "x", "batch"), [
    (_SeqFirstCell(), torch.randn(7, 16, 10), 16),      # [T, B, F], a loop over T: batch 16, not 7
    (_PerSample(), torch.randn(6, 9, 10), 6),            # [B, T, F], a loop over the samples: batch 6
    (_TokensLSTM(), torch.randint(0, 50, (11, 5)), 5),   # [T, B] ids -> Embedding -> LSTM(batch_first=False)
])
def test_the_batch_of_sequence_first_inputs_is_read_from_the_layout(model: nn.Module, x: torch.Tensor,
                                                                   batch: int) -> None:
    # modsweep42 #6: "simulated 2 seed(s) x batch 8" for 16 names of 8 letters fed [T, B, letters]
    torch.manual_seed(0)
    doc = gradhealth.check_module(model, x, seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.batch_size == batch
