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
    max_verify_seconds: float = Field(
        default=60.0, ge=0, description="time the remedies' re-simulations of one check may take: each is "
                                        "estimated from the check's own simulation (its time per seed) before it "
                                        "starts, and one that would pass this is skipped and marked over_budget")
    simulation_seconds: float = Field(
        default=180.0, ge=0, description="time a model file's simulation is estimated to take at the check's "
                                         "own defaults, from its multiply-adds: past it, the batch and seeds "
                                         "the user did not set are lowered (to batch 4 and 2 seeds at the "
                                         "least) and the report says so; a batch or seeds given are kept"
    )
    max_cell_steps: int = Field(
        default=24_576, ge=1, description="recurrent cell steps of a check: layers x time steps x directions "
                                          "of every rnn/lstm/gru layer, times the seeds"
    )


#: The setting that raises :attr:`Limits.max_parameters`, named in every refusal over it (kerassweep26:
#: the parameter refusal named none, where the memory refusals name theirs).
PARAMETERS_SETTING = "GRADHEALTH_LIMITS__MAX_PARAMETERS"

#: The setting that raises :attr:`Limits.max_verify_seconds`, named wherever a remedy is skipped for it.
VERIFY_BUDGET_SETTING = "GRADHEALTH_LIMITS__MAX_VERIFY_SECONDS"

#: The setting of :attr:`Limits.simulation_seconds`, named wherever the batch or seeds are lowered for it.
TIME_BUDGET_SETTING = "GRADHEALTH_LIMITS__SIMULATION_SECONDS"


class OverBudget(Exception):
    """A remedy's re-simulation would pass the verification budget (:attr:`Limits.max_verify_seconds`)."""


def over_budget(spent: float, per_seed: float, seeds: int, limit: float) -> bool:
    """Whether ``seeds`` more seeds at ``per_seed`` seconds each (the check's own simulation's time
    per seed: a remedy changes a network's cost little) would take the re-simulations past ``limit``
    seconds, ``spent`` already."""
    return spent + per_seed * max(seeds, 1) > limit


def budget_note(skipped: int, simulated: int, per_seed: float, limit: float) -> str:
    """The summary's note when remedies were left unverified for the budget."""
    return (f"{skipped} remedy re-simulation(s) skipped ({simulated} run): one seed of this network takes "
            f"about {per_seed:.3g} s, and re-simulating more would pass the {limit:g} s budget for remedy "
            f"re-simulations; those remedies are marked over_budget, not verified ({VERIFY_BUDGET_SETTING} "
            f"raises the budget; --no-verify skips them all)")
