"""Notes torch prints while the check runs a network, which concern the run, not the user's model's
gradients: silenced for the check's own runs (light: no torch import)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: torch's performance notes the check's simulations trigger. ``padding='same'`` with an even kernel
#: pads a copy of the input (torch warns once a process): the check's forwards (a spec's Conv1d, a
#: module run under the check's function tracer) printed it to the user's stderr from the check's
#: own files (peersweep19, a Keras Conv1D of kernel 4), and it says nothing of the gradients.
RUN_NOTES = (r"Using padding='same' with even kernel lengths",)


def quiet_run_notes(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn`` with :data:`RUN_NOTES` silenced while it runs (any other warning passes)."""
    @functools.wraps(fn)
    def quiet(*args: P.args, **kwargs: P.kwargs) -> T:
        with warnings.catch_warnings():
            for message in RUN_NOTES:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            return fn(*args, **kwargs)
    return quiet
