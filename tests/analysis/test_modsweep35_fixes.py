"""What the thirty-fifth live-module sweep found: a recurrent classifier reading h_n judged as if
no gradient reached its LSTM (the gradient read from the per-step output alone), a frozen
embedding named as the vanishing path's end, hand-written Post-LN blocks whose in-place residual
add (``q += residual``) hid them, and a sigmoid before the forward's own log_softmax unseen."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gradhealth import check_module

# --- a bounded activation right before the forward's own (log_)softmax --------------------------

class _SquashedLogSoftmax(nn.Module):
    def __init__(self, squash: str, classes: int = 10, final: str = "log_softmax") -> None:
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, classes)
        self.squash, self.final = squash, final

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc2(torch.relu(self.fc1(x)))
        z = torch.sigmoid(z) if self.squash == "sigmoid" else torch.tanh(z) if self.squash == "tanh" else z
        return F.log_softmax(z, dim=1)


def _floor(k: int, low: float, high: float) -> float:
    """The best cross-entropy with k logits in [low, high]: the right class at high, the others at low."""
    return -math.log(math.exp(high) / (math.exp(high) + (k - 1) * math.exp(low)))


@pytest.mark.parametrize(("squash", "classes", "low", "high"), [("sigmoid", 10, 0.0, 1.0), ("tanh", 5, -1.0, 1.0)])
def test_a_squash_before_the_forwards_log_softmax_is_an_output_loss_mismatch(
        squash: str, classes: int, low: float, high: float) -> None:
    torch.manual_seed(0)
    doc = check_module(_SquashedLogSoftmax(squash, classes), torch.randn(64, 20), loss="cross_entropy", seeds=2)
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert found, [(f.code, f.summary) for f in doc.findings]
    f = found[0]
    evidence = f.evidence.model_dump()
    floor = _floor(classes, low, high)
    assert evidence["loss_floor"] == pytest.approx(floor, rel=1e-9)
    assert evidence["value"] == pytest.approx(floor / math.log(classes), rel=1e-9)
    assert evidence["output_activation"] == squash and evidence["classes"] == classes
    assert f"{floor:.3g}" in f.summary and squash in f.summary
    if squash == "sigmoid":
        assert f.severity == "error"  # 63% of chance: the loss can barely move
        assert math.isclose(floor, 1.4612, abs_tol=1e-4)


def test_log_softmax_of_plain_logits_is_no_mismatch() -> None:
    torch.manual_seed(0)
    doc = check_module(_SquashedLogSoftmax("none"), torch.randn(64, 20), loss="cross_entropy", seeds=2, verify=False)
    assert not any(f.code == "output_loss_mismatch" for f in doc.findings)


# --- a recurrent classifier reading h_n, beside a frozen embedding --------------------------------

class _HnClassifier(nn.Module):
    """prakashpandey9's LSTMClassifier in small: a frozen (pretrained) embedding, an LSTM whose
    per-step output goes unused, a linear head on h_n[-1]."""

    def __init__(self, cell: str = "lstm", vocab: int = 50, width: int = 16, hidden: int = 24) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, width)
        self.word_embeddings.weight = nn.Parameter(torch.randn(vocab, width) * 0.4, requires_grad=False)
        self.rnn = nn.LSTM(width, hidden) if cell == "lstm" else nn.GRU(width, hidden)
        self.label = nn.Linear(hidden, 2)
        self.cell = cell

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(ids).permute(1, 0, 2)
        if self.cell == "lstm":
            _output, (h_n, _c_n) = self.rnn(x)
        else:
            _output, h_n = self.rnn(x)
        return self.label(h_n[-1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_classifier_reading_h_n_gets_its_gradient_measured_at_h_n(cell: str) -> None:
    steps = 12
    torch.manual_seed(0)
    doc = check_module(_HnClassifier(cell), torch.randint(0, 50, (8, steps)), seeds=2, verify=False)
    layers = {layer.name: layer for layer in doc.layers}
    rnn = layers["rnn"]
    # the loss reaches the layer through h_n alone: a gradient, not "no gradient reaches rnn"
    assert rnn.output_grad_norm is not None and rnn.output_grad_norm > 0
    assert not any("no gradient reaches" in f.summary for f in doc.findings), [f.summary for f in doc.findings]
    # h_n is the last step's state and c_n (an LSTM's) goes unread: the gradient at h_n is the one
    # the through-time figures read at the last step, the per-step states' own
    last = [ts for ts in doc.time_steps if ts.layer == "rnn" and ts.t == steps - 1]
    assert len(last) == 1 and last[0].output_grad_norm == pytest.approx(rnn.output_grad_norm, rel=1e-9)
    assert len({ts.t for ts in doc.time_steps if ts.layer == "rnn"}) == steps
    # the frozen table is not judged, nor named as a path's end
    for f in doc.findings:
        if f.code in ("vanishing_gradient", "exploding_gradient"):
            assert "word_embeddings" not in (f.evidence.layers or []) and "word_embeddings" not in f.summary


# --- hand-written Post-LN blocks whose residual add is in place ------------------------------------

class _AddNorm(nn.Module):
    """One Post-LN sublayer written by hand, its LayerNorm inside it (jadore801120's SubLayers):
    the residual added by ``x = x + r`` or in place, ``x += r`` (after a dropout that, without
    noise, returns the layer's output itself)."""

    def __init__(self, d: int, in_place: bool) -> None:
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.dropout, self.layer_norm = nn.Dropout(0.1), nn.LayerNorm(d, eps=1e-6)
        self.in_place = in_place

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        y = self.dropout(self.w_2(F.relu(self.w_1(x))))
        if self.in_place:
            y += residual
        else:
            y = y + residual
        return self.layer_norm(y)


class _HandPostLN(nn.Module):
    def __init__(self, in_place: bool, layers: int = 6, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(16, d)
        self.sublayers = nn.ModuleList(_AddNorm(d, in_place) for _ in range(2 * layers))  # two per layer
        self.head = nn.Linear(d, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for sub in self.sublayers:
            x = sub(x)
        return self.head(x)


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("shape", [(8, 10, 16), (16, 16)])  # a sequence (the linear's output a view) or not
def test_hand_written_post_ln_is_seen_with_an_in_place_residual_add(in_place: bool, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = _HandPostLN(in_place)
    doc = check_module(model, torch.randn(*shape), seeds=1, verify=False,
                       optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
    found = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    assert found and found[0].severity == "warning", [(f.code, f.severity) for f in doc.findings]
    assert found[0].evidence.model_dump()["depth"] == 6
