"""newuser15 #3: an architecture check's progress bar is shared by the work that will run. A healthy
spec (nothing to verify) had its simulation at 0..40% and then jumped to done, the other 60% kept
for remedy re-simulations that never ran; now the simulation takes the whole bar. A spec with
remedies to verify keeps a monotone bar whose verification steps share the rest equally."""

from __future__ import annotations

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.limits import Limits
from gradhealth.analysis.thresholds import Thresholds

SEEDS = 3
HEALTHY = {"name": "small healthy mlp", "input": {"shape": [32]}, "batch_size": 32, "seeds": SEEDS,
           "layers": [{"type": "linear", "out_features": 32, "activation": "relu", "init": "kaiming_normal",
                       "bias_init": "zeros", "repeat": 3}, {"type": "linear", "out_features": 4}]}
VANISHING = {"name": "deep sigmoid mlp", "input": {"shape": [32]}, "batch_size": 32, "seeds": SEEDS,
             "layers": [{"type": "linear", "out_features": 32, "activation": "sigmoid",
                         "init": {"scheme": "normal", "std": 0.05}, "repeat": 12}, {"type": "linear", "out_features": 4}]}


def _run(raw, verify=True):
    seen: list[tuple[float, str]] = []
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), verify=verify),
                                 progress=lambda f, stage: seen.append((f, stage)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions), seen  # never backwards
    assert seen[-1] == (1.0, "done")
    return doc, seen


def _simulation_end(seen):
    return next(f for f, stage in seen if stage == "simulation done")


def test_a_healthy_spec_s_simulation_takes_the_whole_bar():
    doc, seen = _run(HEALTHY)
    assert doc.status == "healthy" and doc.simulation.remedies_simulated == 0, doc.summary
    assert _simulation_end(seen) == 1.0, seen
    # each seed its third of the bar: seed k of 3 starts at (k-1)/3
    for k in (1, 2, 3):
        first = next(f for f, stage in seen if stage.startswith(f"simulating seed {k} of {SEEDS}"))
        assert abs(first - (k - 1) / SEEDS) < 1e-9, (k, first, seen)


def test_without_verification_the_simulation_takes_the_whole_bar():
    _, seen = _run(VANISHING, verify=False)
    assert _simulation_end(seen) == 1.0, seen


def test_remedies_to_verify_share_the_rest_of_the_bar_in_equal_steps():
    doc, seen = _run(VANISHING)
    assert doc.status != "healthy", doc.summary
    end = _simulation_end(seen)
    assert 1 / SEEDS < end < 1.0, seen
    steps = [f for f, stage in seen if stage.startswith("verifying ") and ": " in stage and "(" in stage
             and stage.endswith(")") and "/" in stage.rsplit("(", 1)[1]]
    distinct = sorted(set(steps))
    total = int(next(stage for f, stage in seen if f == distinct[0] and stage.startswith("verifying "))
                .rsplit("/", 1)[1].rstrip(")"))
    # the first seed (a third) told the n patches to come, one seed each: the other 2 seeds and
    # those n share the rest of the bar in proportion (a spec this clear shows its findings on one seed)
    assert abs(end - (1 / SEEDS + (1 - 1 / SEEDS) * (SEEDS - 1) / (SEEDS - 1 + total))) < 1e-9, (end, total)
    # step i of n starts at end + (1 - end) * i / n
    for i, f in enumerate(distinct):
        assert abs(f - (end + (1 - end) * i / total)) < 1e-9, (i, f, end, total)


def test_a_model_file_checked_without_verification_fills_the_bar_with_its_simulation():
    import gradhealth
    from tests.analysis.test_onnx_sweep14_fixes import _brain

    seen: list[tuple[float, str]] = []
    gradhealth.check_onnx(_brain(), seeds=1, verify=False, progress=lambda f, stage: seen.append((f, stage)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions), seen
    # the simulation's own 1.0 is the bar's 1.0: no share kept for re-simulations that do not run
    assert any(f == 1.0 and not stage.startswith(("proposing", "done")) for f, stage in seen), seen
