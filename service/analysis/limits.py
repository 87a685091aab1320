"""Resource limits checked before a simulation starts.

Its own light module (pydantic only) so that :mod:`gradhealth.settings`, which every process reads,
does not import the spec's and the planner's models: a log check never uses them (issue 12: 0.06 s
of a whole-process log check's start-up). :mod:`gradhealth.analysis.plan` re-exports :class:`Limits`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

#: The most seeds a check runs unless the operator raises ``GRADHEALTH_LIMITS__MAX_SEEDS``; the
#: spec's JSON Schema states it as ``seeds``' maximum.
DEFAULT_MAX_SEEDS = 16


class Limits(BaseModel):
    """Resource limits checked before a simulation starts."""

    max_parameters: int = Field(default=200_000_000, description="parameters of one model instance")
    max_activation_bytes: int = Field(
        default=8 * 2**30, description="estimated peak memory of one seed's simulation: activations and "
                                       "their gradients, weights and theirs (Plan.memory_bytes)"
    )
    max_units: int = Field(default=2_000, description="measured layers after expanding `repeat`")
    max_time_steps: int = Field(default=4_096, description="sequence length of recurrent/transformer inputs")
    max_seeds: int = Field(default=DEFAULT_MAX_SEEDS, ge=1, description="seeds per check")
    max_cell_steps: int = Field(
        default=24_576, ge=1, description="recurrent cell steps of a check: layers x time steps x directions "
                                          "of every rnn/lstm/gru layer, times the seeds"
    )
