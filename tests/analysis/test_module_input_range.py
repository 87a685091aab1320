"""check_module's input_range: a live module's float inputs drawn uniform in the data's range, as
--input-range draws a model file's (modsweep33 h01: yunjey's VAE, whose binary cross-entropy reads
its input pixels as targets, failed on standard-normal draws: "all elements of target should be
between 0 and 1", with nothing saying the inputs were the check's own)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.module_check import ModelRunError
from gradhealth.errors import ArgumentError, ArgumentTypeError


class _VAELoss(nn.Module):
    """A VAE's loss as its training script computes it: BCE against the input, plus KL."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.mu, self.logvar = nn.Linear(784, 64), nn.Linear(64, 8), nn.Linear(64, 8)
        self.dec = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 784), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.enc(x))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        bce = nn.functional.binary_cross_entropy(self.dec(z), x, reduction="sum")
        return (bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())) / x.shape[0]


def test_standard_normal_draws_fail_the_loss_and_the_error_says_they_were_drawn() -> None:
    torch.manual_seed(0)
    with pytest.raises(ModelRunError, match=r"drawn standard normal, not the example's values; input_range="):
        check_module(_VAELoss(), torch.rand(16, 784), loss="sum", seeds=1, verify=False)


def test_input_range_draws_them_in_the_datas_range_and_the_vae_is_checked() -> None:
    torch.manual_seed(0)
    doc = check_module(_VAELoss(), torch.rand(16, 784), loss="sum", seeds=1, verify=False, input_range=(0, 1))
    assert doc.status == "healthy", doc.summary
    first = doc.layers[0]
    # the first layer's input is the draw: U(0, 1) pixels have rms sqrt(1/3) per element, 784 of them
    assert first.name and first.grad_norm is not None and first.grad_norm > 0


@pytest.mark.parametrize(("value", "error"), [
    ((1, 0), ArgumentError), ((0, float("inf")), ArgumentError), ("0,1", ArgumentTypeError),
    ((0, 1, 2), ArgumentTypeError), ((True, 2), ArgumentTypeError),
])
def test_a_bad_input_range_is_refused_naming_it(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="input_range"):
        check_module(nn.Linear(4, 2), torch.randn(8, 4), input_range=value)  # type: ignore[arg-type]
