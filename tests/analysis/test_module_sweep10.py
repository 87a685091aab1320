"""What the tenth live-module sweep found, each rebuilt here with plain torch: complex weights kept
complex in the float64 copy, and a NaN in the backward pass that no weight receives."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.analysis.graph import to_precision
from gradhealth.analysis.module_check import check_module


class Spectral(nn.Module):
    """An FNO layer: a complex weight multiplying the input's low Fourier modes."""

    def __init__(self, c: int = 4, modes: int = 6, scale: float = 1.0) -> None:
        super().__init__()
        self.w = nn.Parameter(scale * torch.randn(c, c, modes, dtype=torch.cfloat))
        self.modes = modes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = torch.fft.rfft(x)
        out = torch.zeros(x.shape[0], self.w.shape[1], xf.shape[-1], dtype=xf.dtype)
        out[..., :self.modes] = torch.einsum("bim,iom->bom", xf[..., :self.modes], self.w.to(xf.dtype))
        return torch.fft.irfft(out, n=x.shape[-1])


def test_a_complex_weight_stays_complex_at_float64() -> None:
    torch.manual_seed(0)
    layer = Spectral()
    w = layer.w.detach().clone()
    copy = to_precision(layer, torch.device("cpu"), torch.float64)
    assert copy.w.dtype == torch.complex128
    torch.testing.assert_close(copy.w.detach(), w.to(torch.complex128))
    assert isinstance(copy.w, nn.Parameter)


class FourierNet(nn.Module):
    def __init__(self, scale: float, depth: int = 6, c: int = 12, modes: int = 8) -> None:
        super().__init__()
        self.lift = nn.Conv1d(2, c, 1)
        self.sp = nn.ModuleList([Spectral(c, modes, scale) for _ in range(depth)])
        self.pw = nn.ModuleList([nn.Conv1d(c, c, 1) for _ in range(depth)])
        self.out = nn.Conv1d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lift(x)
        for s, w in zip(self.sp, self.pw, strict=True):
            h = nn.functional.gelu(s(h) + w(h))
        return self.out(h)


def test_complex_weights_count_at_their_full_size() -> None:
    # the imaginary parts are half of each weight's size: a copy that dropped them would see the
    # gradient grow much less across the spectral layers (msweep10: 620 against 5.7e3)
    torch.manual_seed(0)
    model = FourierNet(scale=1.0)
    doc = check_module(model, torch.randn(8, 2, 32), loss="mse", seeds=1)
    assert any(f.code == "exploding_gradient" for f in doc.findings)
    grow = next(f for f in doc.findings if f.code == "exploding_gradient").evidence.value
    # the same weights with their imaginary parts set to 0 (what a copy that dropped them measures)
    # grow the gradient far less
    with torch.no_grad():
        for s in model.sp:
            s.w.copy_(s.w.real.to(torch.cfloat))
    doc_real = check_module(model, torch.randn(8, 2, 32), loss="mse", seeds=1)
    grow_real = max((f.evidence.value for f in doc_real.findings if f.code == "exploding_gradient"), default=1.0)
    assert grow > 2 * grow_real


class Squash(nn.Module):
    """Capsules' squash without an eps: sqrt(|s|^2) after a ReLU, whose zeros give sqrt's
    derivative at 0 (NaN), which the ReLU's backward then replaces with 0."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).flatten(2).transpose(1, 2)   # [B, positions, 8]
        n = torch.sqrt((h ** 2).sum(-1, keepdim=True))
        v = h * n / (1 + n ** 2)
        return self.head(v.mean(1))


def test_a_nan_in_the_backward_that_no_weight_receives_is_a_note() -> None:
    torch.manual_seed(0)
    model = Squash()
    with torch.no_grad():
        model.conv.bias.fill_(-0.5)  # some positions all-negative: sqrt at exactly 0
    x = torch.randn(8, 3, 8, 8)
    # independently: the backward reaches every weight finite
    out = model.double()(x.double())
    (out ** 2).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    doc = check_module(model.float(), x, seeds=1)
    nonfinite = [f for f in doc.findings if f.code == "nonfinite"]
    assert [f.severity for f in nonfinite] == ["info"] and nonfinite[0].evidence.masked


class MaskedSquash(Squash):
    """The squash over positions zeroed by a product with a fixed mask: the product's backward is
    NaN x 0 = NaN, so sqrt's NaN reaches the convolution's weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).flatten(2).transpose(1, 2)
        mask = torch.ones(h.shape[1], 1, dtype=h.dtype)
        mask[::2] = 0
        h = h * mask
        n = torch.sqrt((h ** 2).sum(-1, keepdim=True))
        return self.head((h * n / (1 + n ** 2)).mean(1))


def test_a_nan_that_reaches_a_weight_is_still_an_error() -> None:
    torch.manual_seed(0)
    model = MaskedSquash()
    doc = check_module(model, torch.randn(8, 3, 8, 8), seeds=1)
    assert [f.severity for f in doc.findings if f.code == "nonfinite"] == ["error"]


class TwoTowers(nn.Module):
    """DeepONet: a branch net on the sensors and a trunk net on the query points, joined by a product.
    The branch runs first; the trunk is ``depth`` sigmoid layers at Xavier scale."""

    def __init__(self, depth: int, act: str = "sigmoid") -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
        self.trunk = nn.ModuleList([nn.Linear(1 if i == 0 else 32, 32) for i in range(depth)])
        for layer in self.trunk:
            nn.init.xavier_normal_(layer.weight)
        self.act = torch.sigmoid if act == "sigmoid" else torch.tanh
        self.tout = nn.Linear(32, 8)

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = self.branch(u)
        t = y
        for layer in self.trunk:
            t = self.act(layer(t))
        return torch.einsum("bp,bqp->bq", b, self.tout(t))


def _trunk_ratio(model: TwoTowers, u: torch.Tensor, y: torch.Tensor) -> float:
    """||dL/dh|| at the trunk's first layer over its last, measured here with hooks-free autograd."""
    model = model.double()
    outs = []
    t = y.double()
    for layer in model.trunk:
        t = model.act(layer(t))
        t.retain_grad()
        outs.append(t)
    b = model.branch(u.double())
    out = torch.einsum("bp,bqp->bq", b, model.tout(t))
    torch.nn.functional.mse_loss(out, torch.randn_like(out)).backward()
    return float(outs[0].grad.norm() / outs[-1].grad.norm())


def test_a_vanishing_tower_is_judged_on_its_own_path_whatever_ran_first() -> None:
    torch.manual_seed(0)
    model = TwoTowers(16)
    u, y = torch.randn(16, 16), torch.randn(16, 10, 1)
    assert _trunk_ratio(TwoTowers(16), u, y) < 1e-6  # independently: the trunk vanishes
    doc = check_module(model, (u, y), loss="mse", seeds=1)
    [v] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert "trunk.0" in v.summary and "branch" not in v.summary
    # a shallow tanh trunk is healthy on both paths
    assert not [f for f in check_module(TwoTowers(3, "tanh"), (u, y), loss="mse", seeds=1).findings
                if f.code == "vanishing_gradient"]


class Mixing(nn.Module):
    """Glow's invertible 1x1 convolution on vectors: x @ W.t() with W a Parameter."""

    def __init__(self, steps: int = 8, d: int = 16, scale: float = 1.0) -> None:
        super().__init__()
        self.ws = nn.ParameterList([nn.Parameter(scale * torch.randn(d, d)) for _ in range(steps)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w in self.ws:
            x = x @ w.t()
        return x


def test_a_product_with_a_transposed_weight_is_a_layer() -> None:
    torch.manual_seed(0)
    doc = check_module(Mixing(), torch.randn(16, 16), loss="mse", seeds=1)
    # each W is a unit: the gradient grows about sqrt(16) = 4x a layer through the 8 products
    assert [layer.name for layer in doc.layers][:2] == ["ws.0", "ws.1"]
    [e] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert 4 ** 5 < e.evidence.value < 4 ** 9


class GluStack(nn.Module):
    """TabNet's GLU blocks without their batch norm: Linear(32, 64) then a * sigmoid(b)."""

    def __init__(self, std: float, module: bool, depth: int = 4) -> None:
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(32, 64) for _ in range(depth)])
        for layer in self.fcs:
            nn.init.normal_(layer.weight, 0.0, std)
        self.glu = nn.GLU(-1) if module else None
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.fcs:
            x = self.glu(layer(x)) if self.glu is not None else nn.functional.glu(layer(x), -1)
        return self.head(x)


@pytest.mark.parametrize("module", [True, False])
def test_a_glus_gate_in_its_tails_is_saturation_and_is_not_swapped_for_a_relu(module: bool) -> None:
    torch.manual_seed(0)
    model = GluStack(1.0, module)
    x = torch.randn(64, 32)
    # independently: the share of the last block's gates within 0.02 of 0 or 1
    with torch.no_grad():
        h = x
        for layer in model.fcs:
            z = layer(h)
            gate = torch.sigmoid(z.chunk(2, -1)[1])
            h = nn.functional.glu(z, -1)
    flat = float(((gate < 0.02) | (gate > 0.98)).double().mean())
    doc = check_module(model, x, seeds=1)
    [sat] = [f for f in doc.findings if f.code == "saturation"]
    assert sat.evidence.value == pytest.approx(flat, abs=0.1) and flat > 0.6
    ids = {r.id for r in sat.remedies}
    assert "xavier_init" in ids and "relu_family_activation" not in ids  # a ReLU gates nothing
    assert not [f for f in check_module(GluStack(32 ** -0.5, module), x, seeds=1).findings if f.code == "saturation"]
