"""Facts about activation functions and recurrent cells, each written down once.

Torch-free on purpose: the spec, the planner, the theory and the log check read these
facts without loading torch. The torch modules of each name live in
:mod:`gradhealth.analysis.model`, the mean-field formulas in :mod:`gradhealth.analysis.theory`.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ACTIVATIONS",
    "ALIASES",
    "Activation",
    "CANONICAL_ACTIVATIONS",
    "GATES",
    "SATURATING",
    "BOUNDED",
    "MEASURED_SATURATING",
    "NO_THEORY",
    "canonical",
]

#: Every activation name the spec accepts (aliases included).
Activation = Literal[
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu",
    "gelu", "silu", "swish", "softplus", "hardtanh", "exponential",
    "hard_sigmoid", "hard_sigmoid_keras2", "softsign", "mish",
]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)

#: Other spellings of the same function: swish is SiLU, x * sigmoid(x) (Ramachandran et al. 2017).
ALIASES: dict[str, str] = {"swish": "silu"}

#: One name per function, in the spec's order.
CANONICAL_ACTIVATIONS: tuple[str, ...] = tuple(a for a in ACTIVATIONS if a not in ALIASES)

#: The activations the mean-field theory (:mod:`gradhealth.analysis.theory`) has no map for. Keras'
#: ``exponential`` has closed forms (E[exp(sqrt(q) z)^2] = E[exp'(sqrt(q) z)^2] = exp(2q)), but its
#: variance map q' = sigma_w^2 exp(2q) + sigma_b^2 has no fixed point once sigma_w^2 > 1/(2e) (He's 2,
#: LeCun's 1): q grows as a tower of exponentials and overflows within a few layers, which
#: the simulation measures directly (peersweep23 #3: the spec refused what the other doors simulate).
NO_THEORY: frozenset[str] = frozenset({"exponential"})

#: The activations with flat tails, where the derivative goes to zero; they are also exactly the
#: bounded ones (|phi| stays finite), which the mean-field theory relies on. Keras' hard sigmoids
#: (``hard_sigmoid``: relu6(x + 3) / 6, torch's ``Hardsigmoid`` and Keras 3's; ``hard_sigmoid_keras2``:
#: clip(0.2 x + 0.5, 0, 1), Keras 2's) are flat past their clips (|x| >= 3, >= 2.5) and ``softsign``,
#: x / (1 + |x|), has derivative 1 / (1 + |x|)^2 -> 0: a stack of them vanishes as a sigmoid's does.
#: ``mish`` (x tanh(softplus(x))) is unbounded above like silu and gelu, so not here.
SATURATING: frozenset[str] = frozenset({"sigmoid", "tanh", "hardtanh", "hard_sigmoid", "hard_sigmoid_keras2",
                                        "softsign"})

#: The saturating activations whose flat tails a simulation measures: the spec's, and the hard
#: sigmoid clip(a x + b, 0, 1) that only an imported graph or a live module has (nn.Hardsigmoid,
#: ONNX's HardSigmoid, MobileNetV3's gates), and the GLU a * sigmoid(b) (nn.GLU, F.glu: TabNet's,
#: gated convolutions'), whose sigmoid gate saturates.
MEASURED_SATURATING: frozenset[str] = SATURATING | {"hardsigmoid", "glu"}

#: The activations whose output stays within a bound whatever their input: the saturating ones,
#: the hard sigmoids (ours, Keras 2's 0.2x + 0.5), softsign and relu6. A recurrent cell's own
#: activation (an LSTM's on its candidate and cell state, a GRU's candidate, a plain RNN's) bounds
#: the state it carries from step to step only if it is one of these: with relu, elu, linear... an
#: LSTM's h = o * act(c) passes on a cell state c = f * c + i * act(g) that sums its input over the
#: sequence (Keras' ``LSTM(activation="relu")``).
BOUNDED: frozenset[str] = MEASURED_SATURATING - {"glu"} | {
    "hard_sigmoid", "hard_sigmoid_keras2", "softsign", "relu6"}

#: Gate blocks per recurrent cell type: torch stacks this many [hidden, fan_in] blocks in each
#: weight (LSTM: input, forget, cell, output; GRU: reset, update, new; plain RNN: one).
GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}


def canonical(name: str) -> str:
    """The one name of an activation (``swish`` -> ``silu``); other names are returned as they are."""
    return ALIASES.get(name, name)
