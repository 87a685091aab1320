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
    return f"use one of {', '.join(LOSSES)}, not {loss[:40]!r}"
