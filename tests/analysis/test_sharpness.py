"""large_updates from the loss's sharpness under SGD: lr x lambda_max(Hessian) against 2 (1 + momentum),
the bound past which gradient descent on a quadratic diverges (peersweep13: scalar-parameter regressions
were refused, and a one-layer least-squares fit at lr x lambda_max 0.23 got a false warning)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.sharpness import stability_bound, top_eigenvalue
from gradhealth.analysis.spec import OptimizerSpec

X4 = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)


def _quad_lambda(sum_reduced: bool = True) -> float:
    """lambda_max of the quadratic fit's Hessian, 2 Phi^T Phi (sum of squares), independently."""
    phi = torch.stack([X4 ** 2, X4, torch.ones_like(X4)], 1)
    return float(torch.linalg.eigvalsh(2 * phi.T @ phi).max())


class Quad(nn.Module):
    """y = A x^2 + B x + C on x = 0..3, y = x^2, A = B = C = 0, sum of squares (TF-Program-Bugs IPS-17)."""

    def __init__(self) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.zeros(1))
        self.B = nn.Parameter(torch.zeros(1))
        self.C = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(self.A.dtype)
        return ((self.A * xf ** 2 + self.B * xf + self.C - xf ** 2) ** 2).sum()


class QuadLinear(nn.Module):
    """The same fit through nn.Linear(2, 1), zero-initialised."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(self.lin.weight.dtype)
        return ((self.lin(torch.stack([xf ** 2, xf], 1)).squeeze(1) - xf ** 2) ** 2).sum()


def test_power_iteration_matches_least_squares_eigenvalue() -> None:
    # mean-reduced MSE of X w: the Hessian is 2 X^T X / n, so lambda_max = 2 lambda_max(X^T X) / n
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(32, 6, generator=gen, dtype=torch.float64) * torch.tensor([3.0, 1, 1, 0.5, 0.2, 0.1],
                                                                             dtype=torch.float64)
    y = torch.randn(32, generator=gen, dtype=torch.float64)
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    loss = ((X @ w - y) ** 2).mean()
    value, used, settled = top_eigenvalue(loss, [w])
    exact = 2 * float(torch.linalg.eigvalsh(X.T @ X).max()) / 32
    assert settled and used <= 20
    assert value == pytest.approx(exact, rel=0.02)


def test_power_iteration_on_scalar_quadratic_model() -> None:
    model = Quad().double()
    value, _, _ = top_eigenvalue(model(X4), list(model.parameters()))
    assert value == pytest.approx(_quad_lambda(), rel=0.02)  # 226.9: peersweep13's lambda_max = 227


def test_stability_bounds() -> None:
    assert stability_bound(OptimizerSpec(type="sgd", lr=0.1)) == 2
    assert stability_bound(OptimizerSpec(type="sgd", lr=0.1, momentum=0.9)) == pytest.approx(3.8)
    # Nesterov's: (1 - h)(1 + 2 beta) = -1
    assert stability_bound(OptimizerSpec(type="sgd", lr=0.1, momentum=0.9, nesterov=True)) == pytest.approx(3.8 / 2.8)


def _diverges(model: nn.Module, x: torch.Tensor, lr: float, momentum: float = 0.0, steps: int = 30) -> bool:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    first = float(model(x).detach())
    for _ in range(steps):
        opt.zero_grad()
        loss = model(x)
        loss.backward()
        opt.step()
    return not float(model(x).detach()) < first


@pytest.mark.parametrize("make", [Quad, QuadLinear])
def test_scalar_and_linear_fit_past_the_bound_is_an_error(make: type[nn.Module]) -> None:
    # lr 0.01: lr x lambda_max = 2.27 > 2; it diverges in plain torch (the label's replay)
    lam = _quad_lambda()
    assert _diverges(make().double(), X4, 0.01)
    doc = check_module(make(), torch.tensor([0, 1, 2, 3]), loss="sum", optimizer={"type": "sgd", "lr": 0.01})
    assert doc.status == "unhealthy"
    f = next(f for f in doc.findings if f.code == "large_updates")
    assert f.severity == "error"
    ev = f.evidence.model_dump()
    assert ev["sharpness"] == pytest.approx(lam, rel=0.02)
    assert ev["lr_times_sharpness"] == pytest.approx(0.01 * lam, rel=0.02)
    assert ev["stability_bound"] == 2
    rate = next(r for r in f.remedies if r.id == "lower_learning_rate")
    assert rate.params["suggested_learning_rate"] == pytest.approx(1 / lam, rel=0.03)  # 1/lambda_max
    assert rate.verified is not None and rate.verified.fixed


@pytest.mark.parametrize("make", [Quad, QuadLinear])
def test_fit_under_the_bound_is_healthy(make: type[nn.Module]) -> None:
    # lr 0.001: lr x lambda_max = 0.23; the loss falls (peersweep13 h02, the accepted fix). The
    # zero-weight rule called the nn.Linear rewrite's step 0.418 of a usual init: a false warning
    assert not _diverges(make().double(), X4, 0.001)
    doc = check_module(make(), torch.tensor([0, 1, 2, 3]), loss="sum", optimizer={"type": "sgd", "lr": 0.001})
    assert doc.status == "healthy", doc.summary
    assert not [f for f in doc.findings if f.code == "large_updates"]


def test_momentum_raises_the_bound() -> None:
    # lr 0.01 with momentum 0.5: 2.27 < 2 (1 + 0.5) = 3, stable (torch agrees); over half the bound: a note
    assert not _diverges(Quad().double(), X4, 0.01, momentum=0.5, steps=200)
    doc = check_module(Quad(), torch.tensor([0, 1, 2, 3]), loss="sum",
                       optimizer={"type": "sgd", "lr": 0.01, "momentum": 0.5})
    assert doc.status == "healthy", doc.summary
    assert [f.severity for f in doc.findings if f.code == "large_updates"] == ["info"]


class ScaledRegression(nn.Module):
    """x * W + B, mean squared error against a line (TF-Program-Bugs IPS-5), parameters used elementwise."""

    def __init__(self) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(1))
        self.B = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x * self.W + self.B - (-5.4 * x - 1.1)) ** 2).mean()


def test_layerless_model_is_checked_not_refused() -> None:
    doc = check_module(ScaledRegression(), torch.rand(8) * 16 - 8, loss="sum", input_range=(-8, 8),
                       optimizer={"type": "sgd", "lr": 0.1})
    f = next(f for f in doc.findings if f.code == "large_updates")
    assert f.severity == "error"
    ev = f.evidence.model_dump()
    # independently: 2/n Phi^T Phi with Phi = [x, 1] on the check's own batch
    assert ev["lr_times_sharpness"] > 2
    assert "no layer to measure" in doc.summary and "W, B" in doc.summary
    # under Adam the bound is not SGD's: no sharpness finding, the note says so
    adam = check_module(ScaledRegression(), torch.rand(8) * 16 - 8, loss="sum", input_range=(-8, 8),
                        optimizer={"type": "adam", "lr": 0.1})
    assert adam.status == "healthy" and "SGD only" in adam.summary


def test_layerless_nonfinite_loss_is_found() -> None:
    class LogModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W = nn.Parameter(torch.tensor([-1.0]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x * self.W).mean()

    doc = check_module(LogModel(), torch.rand(8) + 1, loss="sum", input_range=(1, 2),
                       optimizer={"type": "sgd", "lr": 0.01})
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings), doc.summary


def test_model_without_parameters_is_still_refused() -> None:
    class Nothing(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x ** 2).sum()

    with pytest.raises(ValueError, match="no parameters"):
        check_module(Nothing(), torch.randn(4, 3), loss="sum")


def test_least_squares_layer_sharpness_matches_eigvalsh() -> None:
    # one nn.Linear under mean-reduced MSE: lambda_max = 2 lambda_max([X 1]^T [X 1]) / (n outputs)
    torch.manual_seed(0)
    lin = nn.Linear(5, 1)
    x = torch.randn(16, 5)

    class Fit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = lin

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    doc = check_module(Fit(), x, loss="mse", optimizer={"type": "sgd", "lr": 1.0})
    f = next(f for f in doc.findings if f.code == "large_updates")
    ev = f.evidence.model_dump()
    # the check's batch is its own (seed 0's N(0, 1) draw): recompute lambda_max from that batch
    from gradhealth.analysis.graph import make_inputs
    from gradhealth.analysis.module_check import input_specs

    xs = make_inputs(input_specs(x, Fit()), 0)[0]
    phi = torch.cat([xs, torch.ones(len(xs), 1, dtype=torch.float64)], 1)
    exact = 2 * float(torch.linalg.eigvalsh(phi.T @ phi).max()) / len(xs)
    assert ev["sharpness"] == pytest.approx(exact, rel=0.02)
    assert f.severity == ("error" if exact > 2 else f.severity)
    assert math.isfinite(ev["lr_times_sharpness"])


def test_skipped_sharpness_keeps_a_one_layer_fit_off_the_deep_net_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sharpness alone judges a one-affine-layer model's SGD step. Where it is not estimated
    # (past MAX_PARAMETERS here; a double backward that fails), the step went silently back to
    # the per-layer ratio it replaced: peersweep13 h02 (lr x lambda_max 0.23, converges) read as a
    # warning, its zero weights moved 0.418 of a usual init's norm. Now a note, said so.
    from gradhealth.analysis import graph

    monkeypatch.setattr(graph, "SHARPNESS_MAX_PARAMETERS", 2)
    doc = check_module(QuadLinear(), torch.tensor([0, 1, 2, 3]), loss="sum", optimizer={"type": "sgd", "lr": 0.001})
    assert doc.status == "healthy", doc.summary
    f = next(f for f in doc.findings if f.code == "large_updates")
    assert f.severity == "info"
    # the zero weights' first step, independently: grad = 2 Phi^T (0 - y) = -(196, 72) on x = 0..3
    step_rms = 0.001 * math.sqrt((196 ** 2 + 72 ** 2) / 2)
    assert f.evidence.value == pytest.approx(step_rms / (0.5 / math.sqrt(2)), rel=1e-3)  # 0.418
    assert "3 trainable parameters" in f.evidence.model_dump()["sharpness_not_estimated"]
    assert "was not estimated" in f.summary
    assert doc.simulation is not None and any("sharpness was not estimated" in n for n in doc.simulation.notes)
    # a step past a layer's whole usual norm stays an error (lr 0.01: 4.18 of it; diverges)
    doc = check_module(QuadLinear(), torch.tensor([0, 1, 2, 3]), loss="sum", optimizer={"type": "sgd", "lr": 0.01})
    assert doc.status == "unhealthy"
    assert any(f.code == "large_updates" and f.severity == "error" for f in doc.findings)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_check_module_under_the_callers_no_grad(mode: type) -> None:
    # the caller's grad mode (an evaluation loop's no_grad) is not the check's: it was a
    # ModelRunError ("mat1 and mat2 must have the same dtype"), and a skipped sharpness would
    # hand the step to the per-layer ratios; the caller's mode is restored afterwards
    with mode():
        doc = check_module(QuadLinear(), torch.tensor([0, 1, 2, 3]), loss="sum",
                           optimizer={"type": "sgd", "lr": 0.001})
        assert not torch.is_grad_enabled()
    assert doc.status == "healthy", doc.summary
    assert doc.simulation is not None and not doc.simulation.notes
