"""What the sixteenth live-module sweep found.

1. A forward that makes or casts tensors in float32 (an LSTM's ``torch.zeros`` initial state, a
   timestep embedding's ``t.float()``, guided-diffusion's GroupNorm32) met the float64 copy's
   weights and crashed: the check now runs such a model in its own dtype, and says so.
2. The old hook-based ``torch.nn.utils.weight_norm`` (TCN, WaveNet, HiFi-GAN) keeps ``weight`` as a
   tensor with a history, which ``copy.deepcopy`` refuses: the check's one copy helper copies it
   detached, and turns any other copy failure into a clear refusal.
3. A zero-initialised readout (Fixup's fc, beside its zero branch ends) was called a vanishing
   error: an all-zero layer that gets a weight gradient of its own learns at the first step."""

from __future__ import annotations

import math
import threading
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module

# --- 1. float32 made inside forward ---------------------------------------------------------------


class _LSTMZeroState(nn.Module):
    """pytorch-tutorial's LSTM classifier: h0 and c0 built with torch.zeros (the default dtype)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.fc = nn.LSTM(8, 16, 2, batch_first=True), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = torch.zeros(2, x.size(0), 16)
        c0 = torch.zeros(2, x.size(0), 16)
        out, _ = self.lstm(x, (h0, c0))
        return self.fc(out[:, -1, :])


class _TimestepEmbedding(nn.Module):
    """A diffusion model's sinusoidal embedding of t, computed in float32 (``t.float()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.body, self.head = nn.Linear(16, 32), nn.Linear(8, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(-math.log(1e4) * torch.arange(8, dtype=torch.float32) / 8)
        args = t[:, None].float() * freqs[None]
        e = self.emb(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
        return self.head(F.silu(self.body(x) + e))


class _GroupNorm32(nn.GroupNorm):
    """guided-diffusion's: the norm computed in float32, whatever the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class _NormedConvs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.norm = nn.Conv2d(3, 8, 3, padding=1), _GroupNorm32(4, 8)
        self.conv2, self.fc = nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm(self.conv1(x))))
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("make,inputs", [
    (_LSTMZeroState, lambda: torch.randn(4, 6, 8)),
    (_TimestepEmbedding, lambda: (torch.randn(4, 8), torch.rand(4) * 1000)),
    (_NormedConvs, lambda: torch.randn(4, 3, 8, 8)),
])
def test_a_forward_that_makes_float32_tensors_is_simulated_in_float32(make, inputs) -> None:
    torch.manual_seed(0)
    doc = check_module(make(), inputs(), seeds=2, verify=False)
    # the document says which precision the simulation ran in
    assert doc.simulation is not None and doc.simulation.precision == "float32"
    assert doc.layers


class _DeepSigmoid(nn.Module):
    """Ten sigmoid layers whose input is cast to float32 in forward: vanishing, with remedies."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(10))
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        for layer in self.layers:
            x = torch.sigmoid(layer(x))
        return self.head(x)


def test_remedies_of_a_float32_forward_are_verified_in_float32_too() -> None:
    torch.manual_seed(0)
    doc = check_module(_DeepSigmoid(), torch.randn(16, 32), seeds=2)
    assert doc.simulation is not None and doc.simulation.precision == "float32"
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    verified = [r for r in f.remedies if r.verified is not None]
    # every remedy edit simulates (in float32): none "could not simulate the changed network"
    assert verified and all(r.verified is not None and r.verified.after is not None for r in verified)
    assert any(r.verified is not None and r.verified.fixed for r in verified)


def test_a_model_that_runs_in_float64_stays_there_and_its_own_errors_stand() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    doc = check_module(net, torch.randn(4, 8), seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.precision == "float64"
    # an error float32 repeats is the model's own, raised as the float64 pass met it
    broken = nn.Sequential(nn.Linear(8, 16), nn.Linear(12, 4))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        check_module(broken, torch.randn(4, 8), seeds=1, verify=False)


# --- 2. the old hook-based weight_norm -----------------------------------------------------------


def _old_weight_norm(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated, and still in TCN, WaveNet, HiFi-GAN
        return torch.nn.utils.weight_norm(module)


class _TemporalBlocks(nn.Module):
    """locuslab/TCN's pattern: weight-normed dilated convolutions with a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_old_weight_norm(nn.Conv1d(8, 8, 3, padding=2 ** i, dilation=2 ** i))
                                   for i in range(3))
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x) + x)
        return self.linear(x[:, :, -1])


def test_old_weight_norm_modules_are_copied_and_measured() -> None:
    torch.manual_seed(0)
    net = _TemporalBlocks()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    doc = check_module(net, torch.randn(4, 8, 16), seeds=2, verify=False)
    layers = {u.name: u for u in doc.layers}
    # the weight the hook computes is the layer's: its gradient is measured, as a parametrization's
    assert all(layers[f"convs.{i}"].grad_norm for i in range(3))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the user's module untouched


def test_copy_module_detaches_computed_weights_and_they_are_recomputed() -> None:
    from gradhealth.analysis.graph import copy_module

    torch.manual_seed(0)
    layer = _old_weight_norm(nn.Linear(4, 3))
    copied = copy_module(layer)
    assert copied.weight_v is not layer.weight_v and torch.equal(copied.weight_v, layer.weight_v)
    out = copied(torch.randn(2, 4))
    out.sum().backward()
    assert copied.weight_g.grad is not None and layer.weight_g.grad is None


class _TokensWeightNorm(nn.Module):
    """Integer ids (the check's embedding probe copies the module too) into a weight-normed layer."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.fc = nn.Embedding(20, 8), _old_weight_norm(nn.Linear(8, 4))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(ids).mean(1))


def test_integer_inputs_beside_old_weight_norm() -> None:
    torch.manual_seed(0)
    doc = check_module(_TokensWeightNorm(), torch.randint(0, 20, (4, 6)), seeds=1, verify=False)
    assert doc.layers


class _Locked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.lock = threading.Lock()  # no deep copy of a lock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_a_module_that_cannot_be_copied_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="cannot copy _Locked"):
        check_module(_Locked(), torch.randn(4, 4), seeds=1, verify=False)


# --- 3. zero-initialised layers that learn at the first step ------------------------------------


class _FixupBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        nn.init.zeros_(self.conv2.weight)
        self.scale, self.bias = nn.Parameter(torch.ones(1)), nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))) * self.scale + self.bias)


class _Fixup(nn.Module):
    """Fixup's ResNet: each branch's last conv AND the classifier start at zero."""

    def __init__(self, hidden: str = "branch") -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.blocks = nn.Sequential(*[_FixupBlock(8) for _ in range(3)])
        self.extra = nn.Linear(8, 8)  # zeroed too in the broken variants below
        self.fc = nn.Linear(8, 5)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.hidden = hidden
        if hidden != "branch":
            nn.init.zeros_(self.extra.weight)
        nn.init.constant_(self.extra.bias, 0.5 if hidden == "series" else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.stem(x))).mean((2, 3))
        if self.hidden == "series":  # two zero layers in series: the fc reads only extra's constant bias
            h = self.extra(h)
        elif self.hidden == "dead":  # a zero layer under a ReLU: relu'(0) = 0 passes nothing to it, ever
            h = h + torch.relu(self.extra(h))
        return self.fc(h)


def test_a_zero_readout_beside_zero_branch_ends_is_the_design() -> None:
    torch.manual_seed(0)
    doc = check_module(_Fixup(), torch.randn(8, 3, 8, 8), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    evidence = f.evidence.model_dump()
    assert f.severity == "info" and f.remedies == [] and evidence["zero_init"] is True
    assert evidence["zero_weights"] == [*(f"blocks.{i}.conv2" for i in range(3)), "fc"]
    assert "zero_branch_ends" not in evidence  # the fc ends no branch: the general case
    assert "fc gets a gradient of its own" in f.explanation
    assert doc.status == "healthy"


@pytest.mark.parametrize("hidden", ["series", "dead"])
def test_a_zero_layer_that_can_never_learn_is_still_the_error(hidden: str) -> None:
    torch.manual_seed(0)
    doc = check_module(_Fixup(hidden), torch.randn(8, 3, 8, 8), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "error" and "zero_init" not in f.evidence.model_dump()
