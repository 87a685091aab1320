"""Guards that keep an operation's input inside its domain, and where a forward calls an operation.

A log, a square root, a division, an arc cosine are finite only on part of the real line, and
their derivatives are infinite at its edge (sqrt at 0): a norm without an eps, the log of a ReLU's
zeros or a cosine similarity of a zero vector gives NaN or Inf from finite numbers. The fix is an
eps guard at that one call (``x.clamp(min=1e-12)``, as ``F.normalize`` and LayerNorm do), and a
check verifies it by running the forward with the guard applied at that call site
(:class:`DomainGuards`), the user's code unchanged.
"""

from __future__ import annotations

import linecache
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch

#: The eps of a guard against 0 (``F.normalize``'s): small enough to leave every ordinary value as it
#: is, and a normal number in float32.
EPS = 1e-12
#: The eps of a guard inside (-1, 1) or above 1: 1 - 1e-7 still differs from 1 in float32.
EDGE_EPS = 1e-7

#: Each guardable operation (its torch name, without underscores) -> (how its input is guarded, the
#: index of the argument guarded). ``positive``: clamped at EPS from below (log, sqrt; a fractional
#: power); ``divisor``: moved at least EPS away from 0, its sign kept; ``unit``: inside (-1, 1);
#: ``above_one``: at least 1; ``above_minus_one``: above -1; ``probability``: inside (0, 1).
DOMAINS: dict[str, tuple[str, int]] = {
    "log": ("positive", 0), "log2": ("positive", 0), "log10": ("positive", 0),
    "sqrt": ("positive", 0), "rsqrt": ("positive", 0),
    "lgamma": ("positive", 0), "digamma": ("positive", 0), "polygamma": ("positive", 1),
    "xlogy": ("positive", 1), "pow": ("positive", 0),
    "log1p": ("above_minus_one", 0),
    "div": ("divisor", 1), "true_divide": ("divisor", 1), "truediv": ("divisor", 1),
    "itruediv": ("divisor", 1), "floor_divide": ("divisor", 1), "fmod": ("divisor", 1),
    "remainder": ("divisor", 1), "rtruediv": ("divisor", 0), "rdiv": ("divisor", 0),
    "reciprocal": ("divisor", 0),
    "acos": ("unit", 0), "asin": ("unit", 0), "atanh": ("unit", 0), "erfinv": ("unit", 0),
    "acosh": ("above_one", 0), "logit": ("probability", 0),
}
#: Operations whose backward can turn finite gradients into NaN or Inf (besides :data:`DOMAINS`):
#: looked for when a NaN first appears on the way back, and named, though no guard is offered.
BACKWARD_MAKERS = frozenset(DOMAINS) | {"atan2", "norm", "vector_norm", "cdist", "pdist", "std", "var", "exp"}

_WORDS = {
    "positive": "{op}(x.clamp(min=1e-12))",
    "above_minus_one": "{op}(x.clamp(min=-1 + 1e-7))",
    "divisor": "a / d.clamp(min=1e-12)",
    "unit": "{op}(x.clamp(-1 + 1e-7, 1 - 1e-7))",
    "above_one": "{op}(x.clamp(min=1 + 1e-7))",
    "probability": "torch.logit(p, eps=1e-7)",
}
_POWER_WORDS = "x.clamp(min=1e-12) ** p"


def op_name(func: Any) -> str:
    """The name of a torch function as the checks report it: ``Tensor.__truediv__`` -> truediv."""
    return str(getattr(func, "__name__", None) or func).strip("_")


def guard_note(op: str) -> str:
    """What the guarded call assumes, where it assumes something (a divisor that cannot be negative)."""
    if DOMAINS[op.lower()][0] == "divisor":
        return "where d can be negative, keep its sign: d + 1e-12 * torch.where(d < 0, -1.0, 1.0)"
    return ""


def guardable(op: str) -> bool:
    """Whether an eps guard on its input keeps ``op`` finite (:data:`DOMAINS`)."""
    return op.lower() in DOMAINS


def guarded_code(op: str) -> str:
    """The guarded call, as code a user would write."""
    kind = DOMAINS[op.lower()][0]
    return _POWER_WORDS if op.lower() == "pow" else _WORDS[kind].format(op=f"torch.{op.lower()}")


_SKIP = (str(Path(torch.__file__).parent) + "/", str(Path(__file__).parent.parent) + "/")


def user_frame() -> FrameType | None:
    """The innermost frame outside torch and this package: the user's forward making the call (the
    frames walked, not formatted: it runs at every call a guard sees)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_SKIP) and not name.startswith("<"):
            return frame
        frame = frame.f_back
    return None


def frame_site(frame: FrameType) -> str:
    """``file:line (code)`` of ``frame``."""
    name = frame.f_code.co_filename
    line = linecache.getline(name, frame.f_lineno).strip()
    return f"{Path(name).name}:{frame.f_lineno}" + (f" ({line})" if line else "")


def caller() -> str | None:
    """``file:line (code)`` of :func:`user_frame`: where the user's forward made the call."""
    frame = user_frame()
    return None if frame is None else frame_site(frame)


@dataclass(frozen=True)
class Guard:
    """An eps guard on the input of ``op`` at the call site ``where`` (:func:`caller`'s text; None:
    at every call of ``op``, as in an imported graph whose calls are the check's own)."""

    op: str
    where: str | None


def _away_from_zero(d: torch.Tensor) -> torch.Tensor:
    eps = torch.full_like(d, EPS)
    return torch.where(d.abs() < EPS, torch.where(d < 0, -eps, eps), d)


def _guard(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "positive":
        return x.clamp(min=EPS)
    if kind == "divisor":
        return _away_from_zero(x)
    if kind == "unit":
        return x.clamp(-1 + EDGE_EPS, 1 - EDGE_EPS)
    if kind == "above_one":
        return x.clamp(min=1 + EDGE_EPS)
    if kind == "above_minus_one":
        return x.clamp(min=-1 + EDGE_EPS)
    return x.clamp(EDGE_EPS, 1 - EDGE_EPS)  # probability


def _fractional(exponent: Any) -> bool:
    if isinstance(exponent, torch.Tensor):
        return bool(exponent.is_floating_point() and (exponent != exponent.round()).any())
    return isinstance(exponent, float) and not exponent.is_integer()


def guarded_args(op: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` of a call of ``op`` with the guarded argument kept in its domain. A power is guarded
    only where its exponent is fractional (a root) or negative (a division); the others always."""
    kind, index = DOMAINS[op.lower()]
    if index >= len(args) or not isinstance(args[index], torch.Tensor) or not args[index].is_floating_point():
        return args
    if op.lower() == "pow":
        exponent = args[1] if len(args) > 1 else None
        negative = isinstance(exponent, int | float) and exponent < 0
        if negative:
            kind = "divisor"
        elif not _fractional(exponent):
            return args
    return (*args[:index], _guard(kind, args[index]), *args[index + 1:])


class DomainGuards(torch.overrides.TorchFunctionMode):
    """Applies ``guards`` to the calls they name while active: the forward of a remedy's check."""

    def __init__(self, guards: tuple[Guard, ...]) -> None:
        super().__init__()
        self.by_op: dict[str, list[Guard]] = {}
        for g in guards:
            self.by_op.setdefault(g.op.lower(), []).append(g)

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        raw = getattr(func, "__name__", "")
        name = op_name(func).lower()
        wanted = self.by_op.get(name)
        # an in-place call on its own input (x.sqrt_()) is left as it is: its guard would be a copy
        if wanted and not (raw.endswith("_") and not raw.startswith("__") and DOMAINS[name][1] == 0):
            site = caller() if any(g.where is not None for g in wanted) else None
            if any(g.where is None or g.where == site for g in wanted):
                args = guarded_args(name, args)
        return func(*args, **(kwargs or {}))
