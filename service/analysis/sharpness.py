"""The loss's sharpness at the simulated initial point: the largest eigenvalue of its Hessian with
respect to every trainable parameter that is not scale-invariant (a weight a norm reads directly:
:func:`.graph.initial_sharpness`), for ``large_updates`` under SGD.

Gradient descent on a quadratic diverges exactly when lr * lambda_max(Hessian) > 2; with heavy-ball
momentum beta when lr * lambda_max > 2 (1 + beta), with Nesterov's when it passes 2 (1 + beta) /
(1 + 2 beta). A network's loss is not a quadratic, and past the bound it need not diverge: its
sharpest direction overshoots, the outputs grow, and the curvature there drops (a cross-entropy's
softmax saturates; a wide net's kernel changes), so the loss rises for a few steps and then falls
(the catapult phase, Lewkowycz et al. 2020), or training hovers at lr * lambda_max ~ 2 (the edge of
stability, Cohen et al. 2021). Past the bound the check therefore takes :data:`PROBE_STEPS` steps of
the user's SGD on the simulated batch (:class:`StepProbe`, :func:`diverges`) and calls the run
divergent only where that loss blows up. An adaptive optimizer (Adam, RMSprop, ...) divides each step
by its own gradient statistics, which changes the bound, so the figure is SGD's only.

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


#: Full-batch SGD steps the probe past the bound takes (:class:`StepProbe`): a quadratic's error
#: past the bound grows |1 - lr lambda| a step, so 20 steps take lr lambda = 2.5 (1.5x a step)
#: 3,000x up in the loss; a catapult rises and turns within its first few steps.
PROBE_STEPS = 20
#: A probe's loss rising past this many times its start has blown up: a catapult turns as soon as
#: the outputs' growth has lowered the curvature (a few to tens of times the start), while a
#: diverging run's loss grows without bound (a ReLU MLP's under cross-entropy at lr lambda 4 passes
#: 1e20 within 10 steps and leaves every unit dead; an MSE fit at 6 grows 25x a step).
DIVERGED_GROWTH = 100.0
#: ... and one still past this many times its start after the probe's last step has not come back: a
#: catapult ends below its start within a few steps, while a quadratic just past the bound climbs
#: slowly (1.21x a step at lr lambda 2.1) and a softmax regression summed over 500 samples at lr
#: lambda 8.5 sits at 3-13x its start for hundreds of steps.
CLIMBING_GROWTH = 2.0


def diverges(losses: Sequence[float]) -> bool:
    """Whether a probe's losses (its start first) blew up: one not finite, one past
    :data:`DIVERGED_GROWTH` times the start, or the last still past :data:`CLIMBING_GROWTH` times
    the start (sizes: a loss the model computes may be negative)."""
    if not losses or not all(math.isfinite(v) for v in losses):
        return True
    scale = max(abs(losses[0]), 1e-12)
    sizes = [abs(v) for v in losses]
    return max(sizes) > DIVERGED_GROWTH * scale or sizes[-1] > CLIMBING_GROWTH * scale


@dataclass(frozen=True)
class StepProbe:
    """:data:`PROBE_STEPS` steps of the run's SGD (its rate, momentum, Nesterov, weight decay and
    clipping) on seed 0's copy and batch, from the simulated initial point: what happens past the
    quadratic bound, measured instead of inferred."""

    #: the rate probed
    lr: float
    #: the loss before each step and after the last (``steps + 1`` figures; NaN/inf as met)
    losses: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.losses) - 1

    @property
    def initial(self) -> float:
        return self.losses[0]

    @property
    def final(self) -> float:
        return self.losses[-1]

    @property
    def peak(self) -> float:
        """The largest loss met (inf where one was not finite)."""
        return max((v if math.isfinite(v) else math.inf) for v in self.losses)

    @property
    def peak_step(self) -> int:
        return max(range(len(self.losses)), key=lambda k: self.losses[k] if math.isfinite(self.losses[k]) else math.inf)

    @property
    def diverged(self) -> bool:
        return diverges(self.losses)


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
    #: the scale-invariant trainable parameters it is not taken over (weights a norm reads directly,
    #: by name: :func:`.graph.initial_sharpness` says why)
    scale_invariant: tuple[str, ...] = ()


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


def stable_rate(opt: S.OptimizerSpec, sharpness: float, diverges: bool) -> float | None:
    """The learning rate SGD's stability bound asks for, one computation for a large_updates
    finding's evidence (``stable_learning_rate``), its sentence and its ``lower_learning_rate``
    remedy (modsweep44: the evidence said 1/lambda, 1.6e-10, the remedy 2/lambda, 3.19e-10): where
    the run diverges, 1 / (lambda_max + weight_decay), lr x sharpness 1, where the sharpest direction
    settles in one step; where it does not (the catapult or edge-of-stability regime), the largest
    rate under the bound, bound / (lambda_max + weight_decay). None without a positive curvature."""
    curvature = sharpness + opt.weight_decay
    if not (curvature > 0 and math.isfinite(curvature)):
        return None
    return (1.0 if diverges else stability_bound(opt)) / curvature


def clip_bound(opt: S.OptimizerSpec) -> float | None:
    """The most one SGD step can move every weight together where training clips the total gradient
    norm (``global_clip_norm`` c: lr x c, momentum's buffer aside); None where it does not."""
    c = opt.global_clip_norm
    return abs(opt.lr) * c if c is not None else None


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
