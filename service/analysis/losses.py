"""The loss a simulated step takes, and how much of the batch it gives no gradient.

One place for the spec's networks (:mod:`gradhealth.analysis.simulate`) and the graph doors
(:mod:`gradhealth.analysis.graph`). Cross-entropy losses take logits unless ``from_logits`` is
false: then the output is taken for probabilities the way Keras takes them (its default,
``from_logits=False``), which is what a model without its softmax or sigmoid gets trained on.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

#: The losses taken against a standard-normal target of the output's shape.
REGRESSION = frozenset({"mse", "mae", "huber"})
#: Keras' ``backend.epsilon()``: the clip its probability losses apply to the outputs.
KERAS_EPSILON = 1e-7


#: The range of outputs each squashing activation leaves a loss on logits.
BOUNDS = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0), "hardtanh": (-1.0, 1.0),
          "hardsigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "hard_sigmoid_keras2": (0.0, 1.0),
          "softsign": (-1.0, 1.0)}


#: The range each bounded output activation holds a regression's prediction to, (low, high). A
#: softmax is not here: its outputs are one distribution, which mse on one-hot targets (a
#: classifier's) is fitted to; softplus and ELU are the open-ended outputs a positive target wants.
OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "relu": (0.0, math.inf),
    "sigmoid": BOUNDS["sigmoid"], "hardsigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0),
    "hard_sigmoid_keras2": (0.0, 1.0),
    "tanh": BOUNDS["tanh"], "hardtanh": BOUNDS["hardtanh"], "softsign": (-1.0, 1.0),
}


def _sigmoid(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(x / 2.0))  # (exact at +-inf, no overflow)


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


#: Each monotone non-decreasing activation as a function of one number (``params``: its own, as
#: :func:`.activations.activation_params` reads them): the image of an interval is the interval of
#: its ends' images, which composes a chain of them (a ReLU then a Sigmoid).
_MONOTONE: dict[str, Callable[[float, dict[str, float]], float]] = {
    "identity": lambda x, _: x, "linear": lambda x, _: x,
    "relu": lambda x, _: max(x, 0.0),
    "relu6": lambda x, _: min(max(x, 0.0), 6.0),
    "leaky_relu": lambda x, p: x if x >= 0 else p.get("negative_slope", 0.01) * x,
    "elu": lambda x, p: x if x > 0 else p.get("alpha", 1.0) * math.expm1(x),
    "selu": lambda x, _: 1.0507009873554805 * (x if x > 0 else 1.6732632423543772 * math.expm1(x)),
    "softplus": lambda x, _: _softplus(x),
    "sigmoid": lambda x, _: _sigmoid(x),
    "hardsigmoid": lambda x, _: min(max(x / 6.0 + 0.5, 0.0), 1.0),
    "hard_sigmoid": lambda x, _: min(max(0.2 * x + 0.5, 0.0), 1.0),
    "hard_sigmoid_keras2": lambda x, _: min(max(0.2 * x + 0.5, 0.0), 1.0),
    "tanh": lambda x, _: math.tanh(x),
    "hardtanh": lambda x, _: min(max(x, -1.0), 1.0),
    "softsign": lambda x, _: x / (1.0 + abs(x)) if math.isfinite(x) else math.copysign(1.0, x),
}


def activation_image(activation: str | None, bounds: tuple[float, float] | None = None,
                     params: dict[str, float] | None = None) -> tuple[float, float] | None:
    """The range of ``activation``'s outputs on inputs in ``bounds`` (None: any real number), for a
    monotone activation (:data:`_MONOTONE`): its ends' images. Composed along a chain (a ReLU's
    [0, inf) into a Sigmoid: [0.5, 1]) it is the chain's output range. None for an activation whose
    range is not composed so (a softmax, a GELU)."""
    f = _MONOTONE.get(activation or "")
    if f is None:
        return None
    low, high = bounds if bounds is not None else (-math.inf, math.inf)
    given = params or {}
    return float(f(low, given)), float(f(high, given))


def output_range(activation: str, composed: tuple[float, float] | None = None) -> tuple[float, float]:
    """The range a bounded output holds its predictions to: ``composed`` (a chain of activations'
    image, :func:`activation_image`) where known, else ``OUTPUT_RANGES[activation]``."""
    return composed if composed is not None else OUTPUT_RANGES[activation]


def unreachable_target_fraction(activation: str, target_range: tuple[float, float] | None = None,
                                bounds: tuple[float, float] | None = None) -> float:
    """The share of the regression targets outside ``bounds`` (the output's range, composed through a
    chain of activations; by default ``OUTPUT_RANGES[activation]``): of the simulated
    ones (standard normal, as :func:`loss_value` draws them), P(t < low) + P(t > high); of targets
    known to lie in ``target_range`` (the spec's ``loss.target_range``), the share of that range
    outside it, taking them as spread evenly over it."""
    low, high = output_range(activation, bounds)
    if target_range is not None:
        a, b = target_range
        inside = max(0.0, min(b, high) - max(a, low))
        return 1.0 - inside / (b - a)
    # Phi(low) + (1 - Phi(high)), each side from erfc (exact at +-inf)
    return 0.5 * math.erfc(-low / math.sqrt(2.0)) + 0.5 * math.erfc(high / math.sqrt(2.0))


def unreachable_fraction(squashed: str, loss_squash: str, classes: int,
                         bounds: tuple[float, float] | None = None) -> float:
    """The share of the chance-level loss a loss on logits can never remove when its inputs have
    been through ``squashed`` already, so lie in ``BOUNDS[squashed]`` = [a, b].

    ``loss_squash`` "softmax" (cross-entropy): the best the loss's own softmax can give the right
    class of ``classes`` is e^b / (e^b + (classes - 1) e^a), a floor of ln(1 + (classes - 1)
    e^-(b - a)) against ln(classes) at chance (a softmax or sigmoid output: ln(1 + (k - 1) / e);
    a tanh's: ln(1 + (k - 1) / e^2)). "sigmoid" (binary cross-entropy on logits): a 1-target
    bottoms out at ln(1 + e^-b), a 0-target at ln(1 + e^a), so with balanced targets their mean
    against ln 2 (a sigmoid output's: ln(1 + 1/e) and ln 2). ``bounds``: the output's range where it
    is known composed through a chain of activations (a ReLU then a tanh: [0, 1]), in place of
    ``BOUNDS[squashed]``."""
    a, b = bounds if bounds is not None else BOUNDS.get(squashed, (0.0, 1.0))
    if loss_squash == "sigmoid":
        return (math.log1p(math.exp(-b)) + math.log1p(math.exp(a))) / 2 / math.log(2)
    if classes < 2:
        return 1.0
    return math.log1p((classes - 1) * math.exp(-(b - a))) / math.log(classes)


def loss_value(kind: str, out: torch.Tensor, target: torch.Tensor | None, *, from_logits: bool = True,
               squashed: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss of ``out`` against ``target``, the fraction of samples it gives no gradient)

    ``cross_entropy`` is over the last dimension against class indices, ``binary_cross_entropy``
    elementwise against 0/1 targets, ``mse``, ``mae`` and ``huber`` against a target, anything
    else the plain sum. The fraction is 0 for those and for the cross-entropies on logits, which
    pass every sample a gradient. On probabilities (``from_logits=False``) Keras divides the
    outputs by their sum (cross-entropy) and clips them to [eps, 1 - eps]: a sample whose target
    probability lands outside that range (a negative or zero output, a sum near 0) is clipped, and
    the clip passes no gradient; for binary cross-entropy the fraction is of the clipped elements.
    ``squashed``: the output's own activation (softmax, sigmoid), applied again by a loss on logits
    whose output already went through it (Keras' ``from_logits=True`` on a softmax layer)."""
    if squashed == "softmax" and kind == "cross_entropy":
        out = torch.softmax(out, dim=-1)
    elif squashed == "sigmoid" and kind == "binary_cross_entropy":
        out = torch.sigmoid(out)
    if kind == "cross_entropy":
        assert target is not None
        logits = out.reshape(-1, out.shape[-1])
        labels = target.reshape(-1)
        if from_logits:
            return nn.functional.cross_entropy(logits, labels), logits.new_zeros(())
        ratio = logits / logits.sum(dim=-1, keepdim=True)
        picked = ratio.gather(1, labels[:, None]).squeeze(1)
        silent = ((picked <= KERAS_EPSILON) | (picked >= 1 - KERAS_EPSILON) | picked.isnan()).to(out.dtype).mean()
        p = ratio.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON).gather(1, labels[:, None]).squeeze(1)
        return -p.log().mean(), silent
    if kind == "binary_cross_entropy":
        assert target is not None
        t = target.to(out.dtype)
        if from_logits:
            return nn.functional.binary_cross_entropy_with_logits(out, t), out.new_zeros(())
        silent = ((out <= KERAS_EPSILON) | (out >= 1 - KERAS_EPSILON) | out.isnan()).to(out.dtype).mean()
        # Written out rather than torch's binary_cross_entropy, which raises on a NaN probability
        # ("all elements of input should be between 0 and 1"): an overflowed forward pass must reach the
        # nonfinite rule as NaN, not stop the check. Same value and gradient on finite input.
        p = out.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)
        return -(t * p.log() + (1 - t) * (1 - p).log()).mean(), silent
    if kind in REGRESSION:
        assert target is not None
        # every sample gets a gradient from these (an output exactly at its target aside)
        if kind == "mae":
            return nn.functional.l1_loss(out, target), out.new_zeros(())
        if kind == "huber":  # Keras' Huber and torch's agree at delta 1
            return nn.functional.huber_loss(out, target, delta=1.0), out.new_zeros(())
        return nn.functional.mse_loss(out, target), out.new_zeros(())
    return out.sum(), out.new_zeros(())
