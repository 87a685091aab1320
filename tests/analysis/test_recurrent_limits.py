"""Recurrent layers: the memory estimate counts each unrolled cell step's own cost, and the cell
steps of a check are limited (errsweep4 D7: an lstm of hidden_size 1, 50-100 layers over 512-1024
steps was admitted at 5-21 MiB and peaked at 0.86-2.5 GB, for minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradhealth.analysis.plan import Limits, make_plan
from gradhealth.analysis.spec import load_spec_text, parse_spec
from gradhealth.errors import LimitExceeded


def _lstm(layers: int, steps: int, *, hidden: int = 1, seeds: int = 1, bidirectional: bool = False,
          kind: str = "lstm") -> dict:
    return {"input": {"shape": [steps, 1]}, "batch_size": 1, "seeds": seeds,
            "layers": [{"type": kind, "hidden_size": hidden, "num_layers": layers,
                        "bidirectional": bidirectional},
                       {"type": "linear", "out_features": 2}]}


@pytest.mark.parametrize(("layers", "steps"), [(50, 512), (100, 1024), (400, 2048)])
def test_the_reported_specs_are_refused_by_the_cell_step_limit(layers: int, steps: int) -> None:
    with pytest.raises(LimitExceeded) as caught:
        make_plan(parse_spec(_lstm(layers, steps)))
    assert [p.pointer for p in caught.value.problems] == ["/layers/0"]
    message = caught.value.detail
    assert "GRADHEALTH_LIMITS__MAX_CELL_STEPS" in message and "24,576" in message, message
    assert f"{layers * steps:,} recurrent cell steps" in message, message


def test_seeds_and_directions_count_and_the_limit_is_a_setting() -> None:
    # A realistic stack: 4 layers over 1,000 steps, 3 seeds (12,000), bidirectional too (24,000).
    make_plan(parse_spec(_lstm(4, 1000, hidden=64, seeds=3)))
    make_plan(parse_spec(_lstm(4, 1000, hidden=64, seeds=3, bidirectional=True)))
    with pytest.raises(LimitExceeded, match=r"2 directions x 4 seeds is 32,000 recurrent cell steps"):
        make_plan(parse_spec(_lstm(4, 1000, hidden=64, seeds=4, bidirectional=True)))
    make_plan(parse_spec(_lstm(4, 1000, hidden=64, seeds=4, bidirectional=True)), Limits(max_cell_steps=32_000))


def test_several_recurrent_layers_add_up_and_the_one_going_over_is_named() -> None:
    spec = {"input": {"shape": [1000, 8]}, "batch_size": 2, "seeds": 3,
            "layers": [{"type": "gru", "hidden_size": 8, "num_layers": 4, "output": "sequence"},
                       {"type": "block", "layers": [{"type": "rnn", "hidden_size": 8, "num_layers": 2,
                                                     "output": "sequence"}],
                        "repeat": 3},
                       {"type": "linear", "out_features": 2}]}
    with pytest.raises(LimitExceeded) as caught:
        make_plan(parse_spec(spec))
    # 12,000 from the gru, then 6,000 per copy of the block's rnn: its second copy goes over
    assert [p.pointer for p in caught.value.problems] == ["/layers/1/layers/0"]
    assert "30,000 with the recurrent layers before it" in caught.value.detail, caught.value.detail


def test_the_bundled_examples_are_admitted() -> None:
    examples = sorted((Path(__file__).parents[2] / "service" / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        make_plan(parse_spec(load_spec_text(path.read_text())))


@pytest.mark.parametrize(("kind", "per_step"), [("lstm", 20_000), ("gru", 21_000), ("rnn", 10_500)])
def test_the_estimate_counts_each_cell_steps_own_cost(kind: str, per_step: int) -> None:
    # hidden_size 1: the tensors are nothing, the autograd records of each step are what costs
    plan = make_plan(parse_spec(_lstm(50, 512, kind=kind)), Limits(max_cell_steps=10**9))
    assert plan.memory_bytes >= 50 * 512 * per_step, (kind, plan.memory_bytes)
    assert plan.memory_bytes <= 2 * 50 * 512 * per_step, (kind, plan.memory_bytes)


def test_memory_mostly_per_step_is_refused_at_the_layer_not_the_batch() -> None:
    limits = Limits(max_cell_steps=10**9, max_activation_bytes=1 * 2**30)
    with pytest.raises(LimitExceeded) as caught:
        make_plan(parse_spec(_lstm(100, 1024)), limits)
    assert [p.pointer for p in caught.value.problems] == ["/layers/0"]
    assert "shorter sequence" in caught.value.detail and "batch_size" not in caught.value.detail


# Peak RSS growth of one simulation in a fresh process, as tests/analysis/test_plan_memory.py
# measures it; one tiny two-layer simulation first pays the process's one-off lazy imports
# (~40 MB: sympy/mpmath, loaded once whatever the spec), which are not the spec's.
PROBE = """
import json, sys
import torch
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.simulate import simulate
from gradhealth.analysis.spec import parse_spec
torch.set_num_threads(1)
def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
warm = dict(json.loads(sys.argv[1]), input={"shape": [4, 1]}, seeds=1)
warm["layers"] = [dict(warm["layers"][0], num_layers=2), warm["layers"][1]]
simulate(make_plan(parse_spec(warm)))
plan = make_plan(parse_spec(json.loads(sys.argv[1])))
before = peak()
simulate(plan)
print(peak() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize("seeds", [1, 2])
def test_the_estimate_is_within_2x_of_the_measured_peak_at_hidden_size_1(seeds: int) -> None:
    spec = _lstm(10, 128, seeds=seeds)
    plan = make_plan(parse_spec(spec))
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(spec)], capture_output=True, text=True,
                          timeout=120, check=True)
    measured = int(done.stdout.strip().splitlines()[-1])
    assert measured / 2 <= plan.memory_bytes <= 2 * measured, (measured, plan.memory_bytes)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_a_second_seed_does_not_hold_the_first_seeds_network() -> None:
    # each seed's unrolled steps go before the next seed's are built: three seeds peak as one does
    # (they held two networks at once: 1.45x one seed's peak, errsweep4 D7's follow-up)
    def measured(seeds: int) -> int:
        done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(_lstm(10, 256, seeds=seeds))],
                              capture_output=True, text=True, timeout=120, check=True)
        return int(done.stdout.strip().splitlines()[-1])

    one, three = measured(1), measured(3)
    assert three <= 1.2 * one, (one, three)


@pytest.mark.parametrize(("precision", "hinted"), [("float64", True), ("float32", False)])
def test_a_float64_spec_within_twice_the_limit_is_told_float32_halves_it(precision: str, hinted: bool) -> None:
    """specsweep15 u06: BERT-Base at sequence 128, batch 8 is 8.3 GiB per seed in float64, over
    the 8 GiB default; the refusal named only the batch and the input size."""
    spec = {"input": {"shape": [512]}, "batch_size": 64, "precision": precision,
            "layers": [{"type": "linear", "out_features": 512, "activation": "relu", "repeat": 8}]}
    need = make_plan(parse_spec(spec)).memory_bytes
    limits = Limits(max_activation_bytes=int(need * 0.75))
    with pytest.raises(LimitExceeded) as caught:
        make_plan(parse_spec(spec), limits)
    message = caught.value.detail
    assert "GRADHEALTH_LIMITS__MAX_ACTIVATION_BYTES" in message, message
    assert ("precision: float32, which halves it" in message) is hinted, message
    if hinted:  # and it does: the same spec in float32 is admitted under the same limit
        make_plan(parse_spec({**spec, "precision": "float32"}), limits)
