"""The time a model's simulation is estimated to take, and the batch and seeds that fit a budget.

Shared by every door that simulates a model the user did not size for time: an ONNX file, a Keras
file and an architecture spec. Each counts the multiply-adds of one forward at its own inputs
(:func:`.importers.onnx_static.multiply_adds`, :func:`.importers.keras_graph.graph_multiply_adds`,
:func:`.plan.multiply_adds`); :func:`fit_time` turns them into seconds at an assumed rate and,
past :attr:`.limits.Limits.simulation_seconds`, lowers the batch and seeds the user did not set.
Torch-free."""

from __future__ import annotations

import dataclasses

from gradhealth.analysis.limits import TIME_BUDGET_SETTING

#: A forward and its backward (the gradients of the inputs and of the weights: two products each)
#: cost about three forwards; the simulation runs one such step per seed, and the check one
#: forward more before the seeds (the output's loss).
PASSES_PER_SEED = 3.0

#: Multiply-adds a second the simulation is assumed to reach in float64 on a CPU, on the slow side:
#: a 537k-parameter U-Net at 4x224x224 (4.5e9 multiply-adds a sample) ran at batch 4 and 2 seeds,
#: 1.27e11 multiply-adds by :func:`simulation_seconds`' count, in 41 s on a 2-core machine running a
#: test suite beside it (3.1e9 a second), and one seed of batch 2 in 63 s with eight other jobs on
#: the two cores (5.8e8). Half the first, as a CI runner is often shared: a model whose check fits
#: the budget is not cut for an estimate six times too slow. Float32 and a GPU are faster; the
#: estimate keeps the CPU's float64 rate for float32 and takes a GPU as 50 times faster.
CPU_MULTIPLY_ADDS_PER_S = 1.5e9
GPU_SPEEDUP = 50.0

#: The seeds a model file is simulated over when the user gives none (and its time allows: fit_time).
DEFAULT_SEEDS = 3

#: The least batch and seeds :func:`fit_time` lowers the defaults to for time: 4 samples still give a
#: batch norm its statistics and a ReLU unit four chances to fire (a convolution's every position more),
#: and 2 seeds still tell a draw's accident from the network's design.
TIME_FLOOR_BATCH = 4
TIME_FLOOR_SEEDS = 2

#: The estimate after which the spec and Keras doors say it before the simulation (the CLI's notice
#: for a check still running says so after as long): a check of a second or two says nothing.
SAY_AFTER_S = 15.0

#: How a model file's user sets the batch and seeds (the CLI's flags); a spec says its own fields.
FLAGS = "--batch-size and --seeds"


def simulation_seconds(multiply_adds_per_sample: float, batch: int, seeds: int, device: str | None = None
                       ) -> float:
    """The estimated seconds of a check's simulation: ``seeds`` forward-and-backward steps of ``batch``
    samples of ``multiply_adds_per_sample`` each, and one forward, at the assumed rate."""
    rate = CPU_MULTIPLY_ADDS_PER_S * (GPU_SPEEDUP if device is not None and device.startswith("cuda") else 1.0)
    return multiply_adds_per_sample * batch * (PASSES_PER_SEED * seeds + 1) / rate


@dataclasses.dataclass
class Timing:
    """What :func:`fit_time` chose: the batch and seeds to simulate, the estimate at them, and the
    note for the report where it lowered the defaults."""

    batch: int
    seeds: int
    seconds: float
    budget: float
    lowered: bool = False
    note: str | None = None
    #: how the user sets the batch and seeds: the CLI's flags, or a spec's fields
    how: str = FLAGS

    @property
    def worth_saying(self) -> bool:
        """Whether a door that says its estimate only when it matters (a spec, a Keras file) says it:
        the defaults were lowered, the estimate is over the budget, or it passes :data:`SAY_AFTER_S`."""
        return self.lowered or self.seconds > self.budget or self.seconds >= SAY_AFTER_S

    def start_line(self, name: str) -> str:
        """The one line said on stderr before the simulation starts: the estimate and, where it is over
        the budget at a batch or seeds the user gave, how to shorten it."""
        line = (f"checking {name}: ~{self.seconds:,.0f} s estimated (batch {self.batch}, {self.seeds} "
                f"seed{'s' if self.seeds != 1 else ''})")
        if self.seconds > self.budget:
            line += f"; {self.how} shorten it (time scales with both)"
        return line


def fit_time(multiply_adds: int, batch: int, seeds: int, *, batch_free: bool, seeds_free: bool,
             device: str | None, budget: float, floor_batch: int = TIME_FLOOR_BATCH,
             how: str = FLAGS) -> Timing:
    """The batch and seeds to simulate a model at within ``budget`` seconds
    (:attr:`.limits.Limits.simulation_seconds`), from its ``multiply_adds`` for one forward at ``batch``
    (:func:`simulation_seconds`): where the estimate is over the budget, the batch (when
    ``batch_free``, the check's choice) and then the seeds (``seeds_free``) are lowered, to
    ``floor_batch`` and :data:`TIME_FLOOR_SEEDS` at the least, never raised; a batch or seeds the
    user gave are kept. ``how``: how the user sets them, said in the note and the start line."""
    per_sample = multiply_adds / max(batch, 1)
    first = simulation_seconds(per_sample, batch, seeds, device)
    new_batch, new_seeds = batch, seeds
    if first > budget and batch_free and batch > floor_batch:
        fits = int(batch * budget / first)
        new_batch = max(floor_batch, min(batch, fits))
    if simulation_seconds(per_sample, new_batch, new_seeds, device) > budget and seeds_free and seeds > TIME_FLOOR_SEEDS:
        while new_seeds > TIME_FLOOR_SEEDS and simulation_seconds(per_sample, new_batch, new_seeds, device) > budget:
            new_seeds -= 1
    seconds = simulation_seconds(per_sample, new_batch, new_seeds, device)
    if (new_batch, new_seeds) == (batch, seeds):
        return Timing(batch, seeds, seconds, budget, how=how)
    what = " and ".join(w for w in (f"batch {new_batch}" if new_batch != batch else "",
                                    f"{new_seeds} seeds" if new_seeds != seeds else "") if w)
    defaults = " and ".join(w for w in (f"batch {batch}" if new_batch != batch else "",
                                        f"{seeds} seeds" if new_seeds != seeds else "") if w)
    note = (f"simulated at {what}, not the default {defaults}: at the defaults the simulation was estimated "
            f"at about {first:,.0f} s ({per_sample:.3g} multiply-adds a sample, forward and backward, on "
            f"{device or 'cpu'}), over the time budget of {budget:,.0f} s ({TIME_BUDGET_SETTING}); now about "
            f"{seconds:,.0f} s. Fewer samples and seeds judge dead or saturated units less surely "
            f"({how} set them)")
    return Timing(new_batch, new_seeds, seconds, budget, True, note, how)
