"""A log applied to a softmax's output (``torch.log(torch.softmax(x))``, then NLL or a hand-written
cross-entropy) is log_softmax computed in two steps. Held-out peersweep22 (ips01, ips14: TF1's
``tf.log(softmax)``) read it as a one-hot *attention* softmax ("scores not scaled by 1/sqrt(d_head)"),
though its gradient on the scores is e_y - p (no vanishing Jacobian) and its real hazard is a
probability that rounds to 0: log 0 = -inf, then NaN. The finding names that, with log_softmax as the
fix; the attention wording stays for softmaxes over a product of two activations."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.module_check import check_module

IN, K, N = 32, 10, 64


class LogSoftmaxHead(nn.Module):
    """A linear classifier returning log(softmax(logits)), its weights scaled by ``gain``; the softmax
    functional or an ``nn.Softmax`` module."""

    def __init__(self, gain: float, module: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(IN, K)
        with torch.no_grad():
            self.fc.weight.mul_(gain)
        self.sm = nn.Softmax(dim=1) if module else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(x)
        return torch.log(self.sm(z) if self.sm is not None else torch.softmax(z, dim=1))


def _saturation(net: nn.Module, x: torch.Tensor) -> list:  # type: ignore[type-arg]
    doc = check_module(net, x, seeds=2, loss="cross_entropy", verify=False)
    return [f for f in doc.findings if f.code == "saturation"]


def _one_hot_share(net: LogSoftmaxHead, x: torch.Tensor) -> float:
    with torch.no_grad():
        p = torch.softmax(net.fc(x), dim=1)
    return float((p.max(dim=1).values > 0.99).double().mean())


def test_underflow_theory() -> None:
    """The hazard named: in float32 a score ~104 below its row's largest gives a probability of 0
    (exp(-104) is under float32's smallest subnormal, 1.4e-45), whose log is -inf; log_softmax is finite."""
    z = torch.tensor([[0.0, -110.0]], requires_grad=True)
    logged = torch.log(torch.softmax(z, dim=1))
    assert torch.isinf(logged[0, 1])
    logged[0, 1].backward()
    assert torch.isnan(z.grad).any()
    assert torch.isfinite(torch.log_softmax(z.detach(), dim=1)).all()


def test_log_of_a_one_hot_softmax_is_named_with_log_softmax() -> None:
    for module in (False, True):
        torch.manual_seed(0)
        net, x = LogSoftmaxHead(40.0, module), torch.randn(N, IN)
        share = _one_hot_share(net, x)
        assert share > 0.5  # large logits: most rows one-hot
        found = _saturation(net, x)
        assert len(found) == 1 and found[0].severity == "warning", module
        f = found[0]
        ev = f.evidence.model_dump()
        assert ev["log_of_softmax"] is True
        assert "sqrt(d_head)" not in f.explanation and "attention" not in f.explanation
        assert "log_softmax" in f.explanation and "-inf" in f.explanation
        # the seeds' shares pooled: near this seed's share, computed on its own
        assert abs(ev["value"] - share) < 0.2
        assert [r.id for r in f.remedies] == ["logits_loss"]
        assert "torch.log_softmax" in f.remedies[0].change


def test_log_of_a_flat_softmax_is_an_info() -> None:
    """Well-scaled logits: no row one-hot yet, the unstable form still named, as an info."""
    torch.manual_seed(0)
    net, x = LogSoftmaxHead(1.0), torch.randn(N, IN)
    assert _one_hot_share(net, x) == 0.0
    found = _saturation(net, x)
    assert len(found) == 1 and found[0].severity == "info"
    assert found[0].evidence.model_dump()["log_of_softmax"] is True


class GatedSharp(nn.Module):
    """A softmax over a linear layer's outputs that gates the features (no attention: no product of
    two activations makes its scores), fed far too large scores."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.out = nn.Linear(IN, IN), nn.Linear(IN, K)
        with torch.no_grad():
            self.gate.weight.mul_(50.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x * torch.softmax(self.gate(x), dim=-1))


def test_sharp_softmax_without_a_product_gets_no_attention_wording() -> None:
    torch.manual_seed(0)
    found = _saturation(GatedSharp(), torch.randn(N, IN))
    assert found and found[0].severity == "warning"
    f = found[0]
    assert "log_of_softmax" not in f.evidence.model_dump() or not f.evidence.model_dump()["log_of_softmax"]
    assert "sqrt(d_head)" not in f.explanation and "attention" not in f.explanation
