"""modsweep23: a zeroed hidden layer under a ReLU is no designed zero init, and an activation swap
is not offered where the output's own squashing is the only one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module


class _Actor(nn.Module):
    """minimalRL's DDPG actor (MuNet), with its hidden fc2 zeroed or, ``relu=False``, read linearly."""

    def __init__(self, relu: bool = True) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc_mu = nn.Linear(3, 128), nn.Linear(128, 64), nn.Linear(64, 1)
        nn.init.zeros_(self.fc2.weight)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        x = F.relu(x) if self.relu else x
        return torch.tanh(self.fc_mu(x)) * 2


def _dead_after_training(net: _Actor, steps: int = 100) -> int:
    """fc2's units that output 0 for every sample after ``steps`` Adam steps (independent of the check)."""
    torch.manual_seed(1)
    x, y = torch.randn(256, 3), torch.rand(256, 1) * 4 - 2
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()
    with torch.no_grad():
        h = F.relu(net.fc2(F.relu(net.fc1(x))))
    return int((h.amax(dim=0) == 0).sum())


def test_a_zeroed_hidden_layer_under_a_relu_is_an_error_not_a_design() -> None:
    torch.manual_seed(0)
    net = _Actor()
    # the premise, measured: the units whose bias starts negative never come back
    assert _dead_after_training(_Actor()) > 10
    doc = check_module(net, torch.randn(32, 3), loss="mse", seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "error" and f.evidence.model_extra["zero_weights"] == ["fc2"]
    assert not f.evidence.model_extra.get("zero_init")


def test_a_zeroed_layer_read_linearly_is_still_a_designed_zero_init() -> None:
    torch.manual_seed(0)
    doc = check_module(_Actor(relu=False), torch.randn(32, 3), loss="mse", seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "info" and f.evidence.model_extra["zero_init"] is True


class _TinyReluTanh(nn.Module):
    """An all-ReLU stack at a tiny init whose output is squashed by tanh (an autoencoder's)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(64, 64), nn.ReLU())])
        self.out = nn.Linear(64, 64)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.05)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.body(x)))


def test_no_activation_swap_where_the_output_squashing_is_the_only_one() -> None:
    torch.manual_seed(0)
    doc = check_module(_TinyReluTanh(), torch.randn(32, 64), loss="mse", seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity in ("warning", "error")
    ids = [r.id for r in f.remedies]
    assert "relu_family_activation" not in ids and "he_init" in ids
    assert not any(" in ;" in r.change for r in f.remedies)


class _FlowMLP(nn.Module):
    """karpathy/pytorch-normalizing-flows' 4-layer conditioner MLP (LeakyReLU 0.2)."""

    def __init__(self, init: str) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256), nn.LeakyReLU(0.2),
                                 nn.Linear(256, 256), nn.LeakyReLU(0.2), nn.Linear(256, 16))
        for m in self.net:
            if isinstance(m, nn.Linear) and init == "uniform":
                nn.init.uniform_(m.weight, -1, 1)
                nn.init.uniform_(m.bias, -1, 1)
            elif isinstance(m, nn.Linear) and init == "he":
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_shallow_chain_at_a_gain_no_init_gives_is_exploding() -> None:
    torch.manual_seed(0)
    doc = check_module(_FlowMLP("uniform"), torch.randn(128, 8), loss="mse", seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    extra = f.evidence.model_extra
    # under the through-depth bar in all, yet each layer multiplies the gradient by
    # sqrt(chi1) = sqrt(sigma_w^2 (1 + a^2) / 2) with sigma_w^2 = 256 / 3 (mean-field, Schoenholz et al.)
    assert f.severity == "warning" and f.evidence.value < 100
    chi1 = (256 / 3) * (1 + 0.2 ** 2) / 2
    assert abs(extra["stretch_gain"] / chi1 ** 0.5 - 1) < 0.15
    assert extra["stretch"] == ["net.0", "net.4"] and "per layer" in f.summary


def test_the_same_chain_at_he_or_torchs_default_init_is_not() -> None:
    for init in ("he", "default"):
        torch.manual_seed(0)
        doc = check_module(_FlowMLP(init), torch.randn(128, 8), loss="mse", seeds=2, verify=False)
        assert not [f for f in doc.findings if f.code == "exploding_gradient"], init


def test_a_post_ln_finding_sets_no_threshold_beside_a_norm() -> None:
    # specsweep11: the depth bar (6) stood as the threshold of a gradient norm (4.88), which read as
    # "under the bar" to anything comparing the two (baselines, dashboards)
    from gradhealth.library import check_architecture
    spec = {"input": {"tokens": {"vocab_size": 100, "seq_len": 16}}, "batch_size": 8, "seeds": 1,
            "layers": [{"type": "embedding", "embedding_dim": 32},
                       {"type": "transformer_encoder", "d_model": 32, "heads": 4, "ff_width": 64,
                        "norm_first": False, "num_layers": 6},
                       {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 10}]}
    [f] = [f for f in check_architecture(spec, verify=False).findings if f.code == "post_ln_depth_risk"]
    assert f.evidence.metric == "last_layer_grad_norm" and f.evidence.threshold is None
    assert f.evidence.model_extra["depth"] == 6 and f.evidence.model_extra["depth_threshold"] == 6


def _hourglass(init: dict | str) -> dict:
    """handson-ml3's stacked autoencoder, 784-100-30-100-784, with the given init on every layer."""
    return {"input": {"shape": [784]}, "batch_size": 64, "seeds": 2, "loss": "mse",
            "layers": [{"type": "linear", "out_features": 100, "activation": "relu", "init": init},
                       {"type": "linear", "out_features": 30, "activation": "relu", "init": init},
                       {"type": "linear", "out_features": 100, "activation": "relu", "init": init},
                       {"type": "linear", "out_features": 784, "init": init}]}


def test_an_hourglass_at_unit_variance_grows_its_activations_per_layer() -> None:
    # kerassweep10 u09: RandomNormal(stddev=1) on 784-100-30-100-784; no two hidden layers share a
    # width, so the equal-width gradient chain cannot judge it; the per-unit activation std can:
    # relu under N(0, 1) multiplies it by sqrt(fan_in / 2) (He's variance is 2 / fan_in)
    from gradhealth.library import check_architecture
    doc = check_architecture(_hourglass({"scheme": "normal", "std": 1.0}), verify=False)
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    extra = f.evidence.model_extra
    assert f.severity == "warning" and extra["stretch_measure"] == "activation"
    # from the 100-unit layer to the 30- and the 100-unit one: sqrt(100/2) and sqrt(30/2), geometric mean
    expected = ((100 / 2) ** 0.5 * (30 / 2) ** 0.5) ** 0.5
    assert abs(extra["stretch_gain"] / expected - 1) < 0.25
    # He's init on the same hourglass keeps the scale
    he = check_architecture(_hourglass("kaiming_normal"), verify=False)
    assert not [f for f in he.findings if f.code == "exploding_gradient"]
