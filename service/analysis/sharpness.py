"""The loss's sharpness at the simulated initial point: the largest eigenvalue of its Hessian with
respect to every trainable parameter, for ``large_updates`` under SGD.

Gradient descent on a quadratic diverges exactly when lr * lambda_max(Hessian) > 2; with heavy-ball
momentum beta when lr * lambda_max > 2 (1 + beta), with Nesterov's when it passes 2 (1 + beta) /
(1 + 2 beta). Beyond the quadratic case this is the edge of stability (Cohen et al. 2021, "Gradient
Descent on Neural Networks Typically Occurs at the Edge of Stability"): a run that starts past it is
unstable from its first step. An adaptive optimizer (Adam, RMSprop, ...) divides each step by its own
gradient statistics, which changes the bound, so the figure is SGD's only.

lambda_max is found by power iteration with Hessian-vector products (double backward:
``torch.autograd.grad(..., create_graph=True)``), in float64, at most :data:`ITERATIONS` products,
stopping once the Rayleigh quotient settles to :data:`SETTLED`; only where the trainable parameters
number at most :data:`MAX_PARAMETERS`, and never where double backward fails (skipped, with a note).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gradhealth.analysis import spec as S

#: Hessian-vector products at most per power iteration.
ITERATIONS = 20
#: The power iteration stops once the Rayleigh quotient changes by under this share between steps.
SETTLED = 0.01
#: The sharpness is estimated only up to this many trainable parameters (each Hessian-vector
#: product costs about two backward passes; 20 of them on a 100,000-parameter model on the check's
#: small batch take well under a second on a CPU).
MAX_PARAMETERS = 100_000


@dataclass(frozen=True)
class Sharpness:
    """The loss Hessian's largest eigenvalue at the simulated initial point (seed 0's copy and batch)."""

    #: lambda_max; None where it was not estimated (``note`` says why)
    value: float | None
    #: Hessian-vector products used
    iterations: int = 0
    #: the trainable parameters it is taken over
    parameters: int = 0
    #: why it was not estimated, or a caveat (it did not settle)
    note: str | None = None
    #: the model is one affine layer holding every trainable parameter (linear or logistic
    #: regression: a convex problem), or has no layer the check measures (scalar parameters used
    #: elementwise): the sharpness bound alone judges its step, not the per-layer update ratios
    decides: bool = False
    #: trainable parameters that no measured layer holds (what per-layer figures leave out)
    unmeasured: tuple[str, ...] = ()


def stability_bound(opt: S.OptimizerSpec) -> float:
    """The largest lr * lambda at which ``opt`` (SGD) is stable on a quadratic: 2 (1 + beta) for
    heavy-ball momentum beta (2 without), 2 (1 + beta) / (1 + 2 beta) for Nesterov's. The
    characteristic root of x_(k+1) = (1 + beta - h) x_k - beta x_(k-1) (h = lr lambda) reaches -1
    at h = 2 (1 + beta); Nesterov's, x_(k+1) = (1 - h)((1 + beta) x_k - beta x_(k-1)), at
    (1 - h)(1 + 2 beta) = -1."""
    beta = opt.momentum
    if opt.nesterov and beta > 0:
        return 2 * (1 + beta) / (1 + 2 * beta)
    return 2 * (1 + beta)


def lr_times_sharpness(opt: S.OptimizerSpec, sharpness: float) -> float:
    """lr * (lambda_max + weight_decay): SGD's L2 term adds weight_decay to every curvature."""
    return opt.lr * (sharpness + opt.weight_decay)


def _hvp(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor],
         v: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """H v, H the Hessian whose first derivatives are ``grads`` (None, or one that no longer depends
    on the parameters: a part of the loss linear in them, whose block of H is 0)."""
    live = [(g, v[i]) for i, g in enumerate(grads) if g is not None and g.requires_grad]
    out = [torch.zeros_like(p) for p in params]
    if not live:
        return out
    got = torch.autograd.grad([g for g, _ in live], list(params), grad_outputs=[x for _, x in live],
                              retain_graph=True, allow_unused=True)
    return [g.detach() if g is not None else o for g, o in zip(got, out, strict=True)]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum(float((x * y).sum()) for x, y in zip(a, b, strict=True)))


def _power(hvp: Callable[[list[torch.Tensor]], list[torch.Tensor]], params: Sequence[torch.Tensor],
           shift: float, iterations: int, settled: float, seed: int) -> tuple[float, int, bool]:
    """(the dominant eigenvalue of H - shift I, products used, settled) by power iteration."""
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype) for p in params]
    norm = math.sqrt(_dot(v, v))
    v = [x / norm for x in v]
    last = math.nan
    for k in range(1, iterations + 1):
        hv = hvp(v)
        if shift:
            hv = [h - shift * x for h, x in zip(hv, v, strict=True)]
        rayleigh = _dot(v, hv)
        size = math.sqrt(_dot(hv, hv))
        if not math.isfinite(rayleigh) or not math.isfinite(size):
            raise FloatingPointError("the Hessian-vector product is not finite")
        if size == 0:
            return 0.0, k, True  # H v = 0: the curvature along every direction tried is 0
        if k > 1 and abs(rayleigh - last) <= settled * abs(rayleigh):
            return rayleigh, k, True
        last = rayleigh
        v = [h / size for h in hv]
    return last, iterations, False


def top_eigenvalue(loss: torch.Tensor, params: Sequence[torch.Tensor], *, iterations: int = ITERATIONS,
                   settled: float = SETTLED, seed: int = 0) -> tuple[float, int, bool]:
    """(lambda_max of the Hessian of ``loss`` w.r.t. ``params``, Hessian-vector products used,
    whether it settled). Power iteration finds the eigenvalue largest in size; where that one is
    negative (a saddle's), a second run on H - lambda I finds the largest one above it. Raises what
    autograd raises where double backward is not supported."""
    grads = torch.autograd.grad(loss, list(params), create_graph=True, allow_unused=True)

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        return _hvp(grads, params, v)

    value, used, ok = _power(hvp, params, 0.0, iterations, settled, seed)
    if value < 0:
        shifted, more, ok = _power(hvp, params, value, iterations, settled, seed + 1)
        value, used = shifted + value, used + more
    return max(value, 0.0), used, ok
