"""The losses a check backpropagates, named once (torch-free): a spec's ``loss.type``
(:data:`gradhealth.analysis.spec.LossType`, which a test holds equal to this), and every loss a
model file's check takes: the CLI's ``--loss``, the model route's ``loss`` field, and the ``loss=``
of ``check_onnx`` and ``check_keras``."""

from __future__ import annotations

#: cross_entropy over the last dimension (random classes), binary_cross_entropy against random 0/1
#: targets, mse / mae / huber against standard-normal targets (or a given range), sum of the outputs
LOSSES: tuple[str, ...] = ("cross_entropy", "binary_cross_entropy", "mse", "mae", "huber", "sum")


def loss_problem(loss: str) -> str | None:
    """Why ``loss`` is no loss the checks take (naming those they do), else None."""
    if loss in LOSSES:
        return None
    return f"use one of {', '.join(LOSSES)}, not {loss[:40]!r}{loss_hint(loss)}"


#: Other names of the losses (PyTorch's modules and functions, Keras', common shorthands), squashed
#: (lower case, no ``_``, ``-`` or spaces), each for one loss of :data:`LOSSES`: the did-you-mean of
#: every door (a spec's ``loss.type``, ``check_module``'s ``loss=``, the CLI's ``--loss``).
LOSS_ALIASES: dict[str, str] = {
    "ce": "cross_entropy", "crossentropy": "cross_entropy", "crossentropyloss": "cross_entropy",
    "categoricalcrossentropy": "cross_entropy", "sparsecategoricalcrossentropy": "cross_entropy",
    "nll": "cross_entropy", "nllloss": "cross_entropy",
    "bce": "binary_cross_entropy", "bcewithlogits": "binary_cross_entropy",
    "bcewithlogitsloss": "binary_cross_entropy", "binarycrossentropy": "binary_cross_entropy",
    "l2": "mse", "meansquarederror": "mse", "mseloss": "mse",
    "l1": "mae", "meanabsoluteerror": "mae", "l1loss": "mae",
    "smoothl1": "huber", "smoothl1loss": "huber", "huberloss": "huber",
}

#: The torch loss modules whose loss is one of :data:`LOSSES`, by class name, with the setting
#: (attribute, value) the check's loss computes: the others' values are said in a note, not
#: simulated. NLLLoss reads log-probabilities, which a cross-entropy (log_softmax again: the same
#: values) reads alike.
TORCH_LOSS_MODULES: dict[str, tuple[str, dict[str, object]]] = {
    "CrossEntropyLoss": ("cross_entropy", {"reduction": "mean", "weight": None, "label_smoothing": 0.0}),
    "NLLLoss": ("cross_entropy", {"reduction": "mean", "weight": None}),
    "BCEWithLogitsLoss": ("binary_cross_entropy", {"reduction": "mean", "weight": None, "pos_weight": None}),
    "MSELoss": ("mse", {"reduction": "mean"}),
    "L1Loss": ("mae", {"reduction": "mean"}),
    "HuberLoss": ("huber", {"reduction": "mean", "delta": 1.0}),
    "SmoothL1Loss": ("huber", {"reduction": "mean", "beta": 1.0}),
}


def _squash(text: str) -> str:
    return "".join(c for c in text.casefold() if c not in " _-")


def loss_hint(loss: str) -> str:
    """A did-you-mean for ``loss``, no loss of :data:`LOSSES`: the same spelling without case or
    ``_``, a well-known other name (:data:`LOSS_ALIASES`), else the nearest; '' for none."""
    import difflib

    key = _squash(loss)
    found = next((name for name in LOSSES if _squash(name) == key), None) or LOSS_ALIASES.get(key)
    if found is None:
        close = difflib.get_close_matches(key, [_squash(n) for n in LOSSES] + list(LOSS_ALIASES), n=1, cutoff=0.6)
        found = (LOSS_ALIASES.get(close[0]) or next(n for n in LOSSES if _squash(n) == close[0])) if close else None
    return f"; did you mean {found!r}?" if found else ""
