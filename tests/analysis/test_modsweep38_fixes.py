"""What the thirty-eighth live-module sweep found: a hand-written SpectralNorm wrapper (the SN-GAN
repositories', which deletes the wrapped layer's ``weight`` and sets it as a plain tensor inside
forward) crashed the check in ``role_of`` (modsweep38 h03); and a neural ODE's function, one module
called at every solver stage with its output scaled by dt, read as a vanishing_gradient error
though its weights got a normal gradient (u06)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gradhealth import check_module

# --- 1. layers whose weight is computed in forward ----------------------------------------------


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / (v.norm() + 1e-12)


class _HandSpectralNorm(nn.Module):
    """The SN-GAN repositories' wrapper, as it behaves: the wrapped layer's ``weight`` parameter is
    removed, ``weight_bar`` (trained) and the power iteration's ``weight_u``/``weight_v`` (not
    trained) are registered on it, and each forward sets ``layer.weight = weight_bar / sigma`` as a
    plain tensor and runs ``layer.forward`` directly (no module call: no hook of the layer's fires)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.module = layer
        w = layer.weight.data
        rows = w.shape[0]
        del layer._parameters["weight"]
        layer.register_parameter("weight_u", nn.Parameter(_unit(w.new_empty(rows).normal_()), requires_grad=False))
        layer.register_parameter("weight_v", nn.Parameter(_unit(w.new_empty(w[0].numel()).normal_()),
                                                          requires_grad=False))
        layer.register_parameter("weight_bar", nn.Parameter(w.clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        bar = m.weight_bar
        flat = bar.view(bar.shape[0], -1)
        m.weight_v.data = _unit(flat.data.t() @ m.weight_u.data)
        m.weight_u.data = _unit(flat.data @ m.weight_v.data)
        sigma = m.weight_u.dot(flat @ m.weight_v)
        m.weight = bar / sigma  # a plain attribute: nn.Module.__setattr__ keeps a non-Parameter in __dict__
        return m.forward(x)


def _wrap(kind: str, layer: nn.Module) -> nn.Module:
    if kind == "hand":
        return _HandSpectralNorm(layer)
    if kind == "old_spectral_norm":
        return torch.nn.utils.spectral_norm(layer)
    if kind == "old_weight_norm":
        with pytest.warns(FutureWarning):
            return torch.nn.utils.weight_norm(layer)
    return torch.nn.utils.parametrizations.spectral_norm(layer)


class _Discriminator(nn.Module):
    """A small SN-GAN discriminator: two LeakyReLU(0.1) convolutions and a linear critic."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.conv1 = _wrap(kind, nn.Conv2d(3, 16, 3, stride=2, padding=1))
        self.conv2 = _wrap(kind, nn.Conv2d(16, 32, 3, stride=2, padding=1))
        self.fc = _wrap(kind, nn.Linear(32 * 4 * 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x), 0.1)
        x = F.leaky_relu(self.conv2(x), 0.1)
        return self.fc(x.flatten(1))


class _Hinge(nn.Module):
    def __init__(self, d: nn.Module) -> None:
        super().__init__()
        self.d = d

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - self.d(real)).mean() + F.relu(1.0 + self.d(fake)).mean()


@pytest.mark.parametrize("kind", ["hand", "old_spectral_norm", "old_weight_norm", "parametrizations"])
@pytest.mark.parametrize("ran_before", [False, True])
def test_weights_computed_in_forward_are_measured_as_layers(kind: str, ran_before: bool) -> None:
    torch.manual_seed(0)
    model = _Hinge(_Discriminator(kind))
    real, fake = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    if ran_before:  # the wrapper's and the old hooks' weight is then a tensor with a history
        model(real, fake)
    params = [p for p in model.parameters() if p.requires_grad]
    doc = check_module(model, (real, fake), loss="sum", seeds=1,
                       optimizer=torch.optim.Adam(params, lr=2e-4, betas=(0.0, 0.9)))
    layers = {layer.name: layer for layer in doc.layers if layer.grad_norm is not None}
    names = sorted(layers)
    assert len(names) == 3, names
    for prefix, kind_of in (("d.conv1", "conv2d"), ("d.conv2", "conv2d"), ("d.fc", "linear")):
        (name,) = [n for n in names if n.startswith(prefix)]
        assert "weight_bar" not in name  # named after the layer, not its parameter
        assert layers[name].type == kind_of
        assert layers[name].grad_norm > 0
    assert doc.status == "healthy", [(f.code, f.severity, f.message) for f in doc.findings]


# --- 2. a module called many times per forward (a neural ODE's function) -------------------------


class _OdeFunc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 8)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(z)))))


class _OdeNet(nn.Module):
    """Encoder -> 50 Euler steps z += dt f(z) over [0, 1] -> decoder: the ODE function's layers
    are called 50 times, each call's output scaled by dt = 0.02."""

    STEPS = 50

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(16, 8)
        self.func = _OdeFunc()
        self.dec1, self.dec2 = nn.Linear(8, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.enc(x)
        dt = 1.0 / self.STEPS
        for _ in range(self.STEPS):
            z = z + dt * self.func(z)
        return self.dec2(torch.relu(self.dec1(z)))


def test_a_module_called_at_every_solver_step_is_no_vanishing_gradient() -> None:
    torch.manual_seed(0)
    model = _OdeNet()
    x = torch.randn(16, 16)
    # independently: the weight gradients of the ODE's layers against the decoder's first layer's,
    # from one plain backward pass of the same loss on the same batch
    model.zero_grad()
    model(x).sum().backward()
    plain = {n: float(m.weight.grad.norm()) for n, m in (("func.fc2", model.func.fc2), ("dec.fc1", model.dec1))}
    assert plain["func.fc2"] > 0.05 * plain["dec.fc1"]  # summed over the 50 calls, not vanishing
    # what one call's output gradient is against the decoder's: about dt of it (the vanishing reading)
    model.zero_grad()
    doc = check_module(model, x, loss="sum", seeds=1, verify=False)
    codes = [(f.code, f.severity) for f in doc.findings]
    assert "vanishing_gradient" not in [c for c, _ in codes], codes
    layers = {layer.name: layer for layer in doc.layers}
    assert layers["func.fc2"].output_grad_norm < 0.01 * layers["dec1"].output_grad_norm  # one call's, dt-scaled
    # the weight gradients the tool reports are what its weights get, the sum over the calls
    # (seed 0's batch is not x: compare the ratio, which the healthy net keeps near the plain one)
    tool = layers["func.fc2"].grad_norm / layers["dec1"].grad_norm
    assert tool > 0.05
    assert tool == pytest.approx(plain["func.fc2"] / plain["dec.fc1"], rel=1.0)
