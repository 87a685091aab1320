"""logsweep84: a late climb hidden by a start far above the run's end, swings over orders of magnitude
with no finding, three wordings that contradicted their code, and a term of the loss that rose 1.5e8x
never named (items pina_v21_osc, pina_v61_stuck, pl_km_deepracer, grpo_chaos)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose
from tests.logs.test_detectors_real_runs import found, run_of
from tests.logs.test_logsweep78_rlhf import _codes, _grpo_state, _noisy_flat

#: the item's tail (pina_v21_osc): settled at 0.1, then up at every point to 72 at the end of the log
_TAIL = [0.1] * 20 + [0.15, 0.25, 0.5, 1.7, 6.0, 19.0, 72.0]


def _behind(start: float) -> np.ndarray:
    """The same tail behind a fall from ``start``, halving a point down to 0.1."""
    fall = [start / 2 ** k for k in range(int(math.log2(start / 0.1)) + 1) if start / 2 ** k > 0.1]
    return np.array(fall + _TAIL)


def test_a_late_climb_is_a_divergence_whatever_the_start() -> None:
    # repro/a.csv (start 1e8) was only a loss_spike warning; b.csv (start 1) and c.csv (start 100) errors
    for start in (1.0, 100.0, 1e8, 1e12):
        [f] = found(diagnose(run_of(loss=_behind(start))), "loss_divergence")
        assert f.severity == "error", start
        # judged against its own lowest level: the running median's lowest is the 0.1 it held
        assert f.evidence.model_dump()["minimum"] == 0.1
        assert f.evidence.value >= 1.5 * 10  # far beyond the 1.5x factor from 0.1


def test_a_noisy_floor_far_below_the_start_is_still_no_divergence() -> None:
    # the exemption the climb must not undo (ls19): a loss fitted to ~0 wandering at its floor has
    # no trend, however far above its lowest running median it wanders
    rng = np.random.default_rng(3)
    rng.normal(0, 0.02, 125)  # (the draws of test_a_noisy_per_batch_loss_wandering_at_its_floor)
    floor = np.concatenate([np.geomspace(1.79, 1e-5, 200), np.abs(rng.normal(0, 0.01, 300)) + 1e-6])
    assert not found(diagnose(run_of(loss=floor)), "loss_divergence")
    # the same floor behind a start at 1e8 instead of 1.79
    floor_high = np.concatenate([np.geomspace(1e8, 1e-5, 200), floor[200:]])
    assert not found(diagnose(run_of(loss=floor_high)), "loss_divergence")


#: pina_v21_osc's first 57 points (repro/v21_head.csv, mean_loss of a PINN), waves over 7 decades
_HEAD = [277621856.0, 139389328.0, 1663604736.0, 18736277504.0, 158061568.0, 10792032.0, 1107558016.0,
         7607041536.0, 34058808.0, 278105120.0, 2944762880.0, 16991753216.0, 28379432960.0, 95924822016.0,
         246122315776.0, 15374533.0, 47081136.0, 9111948.0, 27055904.0, 1427963.125, 61056748.0, 194210032.0,
         4825410.5, 263969056.0, 197519296.0, 287625376.0, 1255764480.0, 5960451072.0, 4217337344.0,
         57917604.0, 862902208.0, 8422556.0, 211094.703125, 32427.162109375, 13238.1494140625,
         10395.173828125, 13219.9453125, 24426.193359375, 61066.0859375, 194377.28125, 371742.90625,
         1938363.125, 9684646.0, 51751352.0, 282855456.0, 1503693312.0, 7569380864.0, 19264149504.0,
         13729521664.0, 21776236544.0, 3135668.5, 55161672.0, 53905048.0, 31136660.0, 12569325.0,
         2009332.75, 91426.0390625]


def test_swings_over_orders_of_magnitude_are_an_oscillation() -> None:
    # the head alone was HEALTHY, no finding at all
    [f] = found(diagnose(run_of(loss=np.array(_HEAD))), "loss_oscillation")
    assert f.severity == "warning" and f.evidence.value == 3
    # every leg it lists moved the 3-point running median 100x or more, up and down in turn
    legs = f.evidence.model_dump()["swings"]
    assert all(r >= 100 or r <= 1 / 100 for _, _, r in legs)
    assert all((a[2] > 1) != (b[2] > 1) for a, b in zip(legs, legs[1:], strict=False))


def test_swings_are_read_on_a_log_scale_whatever_the_level() -> None:
    from gradhealth.logs.detectors.oscillation import swings

    # a synthetic wave: up 4 decades over 4 points and back down (3 on its 3-point medians), three
    # times, at three levels
    wave = [1.0, 10.0, 100.0, 1e3, 1e4, 1e3, 100.0, 10.0, 1.0] * 3
    for level in (1e-6, 1.0, 1e9):
        v = level * np.array(wave)
        assert len(swings(v)) == 6
        assert found(diagnose(run_of(loss=v)), "loss_oscillation")
    # one such wave is a divergence and recovery, not an oscillation; a decade is not a swing
    assert not found(diagnose(run_of(loss=np.array([1.0] * 5 + wave[:9] + [1.0] * 5))), "loss_oscillation")
    assert len(swings(np.array([1.0, 3.0, 10.0, 3.0, 1.0] * 4))) == 0
    # a noisy per-batch loss scattered around its level (single low batches included) is none
    rng = np.random.default_rng(0)
    assert not swings(np.abs(rng.normal(0, 0.01, 300)) + 1e-6)


def test_a_loss_on_an_enormous_scale_from_the_start_is_not_said_undiverged_and_names_the_term_that_rose() -> None:
    # pina_v61_stuck: "loss_divergence (error)" said "on an enormous scale from the start, not blown up
    # during training"; its data_loss rose 4.98e9 -> 7.5e17 (1.5e8x) and was never named
    n = 40
    physics = np.full(n, 1.49e18) * np.linspace(1.0, 0.51, n)
    data = np.geomspace(5e9, 7.5e17, n)
    total = physics + data
    [f] = found(diagnose(run_of(mean_loss=total, physics_loss=physics, data_loss=data)), "loss_divergence")
    assert f.severity == "error" and f.evidence.model_dump()["from_start"] is True
    assert "not blown up" not in f.summary
    terms = f.evidence.model_dump()["rising_terms"]
    assert terms[0]["metric"] == "data_loss"
    assert math.isclose(terms[0]["rise"], 7.5e17 / 5e9, rel_tol=1e-9)
    assert "data_loss rose 1.5e+08x" in f.summary


def test_a_climbing_total_names_its_terms_that_rose_most() -> None:
    tail = np.array(_TAIL)
    data = tail * 0.9
    reg = np.full(len(tail), 0.1 * 0.1)
    [f] = found(diagnose(run_of(loss=data + reg, data_loss=data, reg_loss=reg)), "loss_divergence")
    terms = f.evidence.model_dump()["rising_terms"]
    assert [t["metric"] for t in terms] == ["data_loss"]  # reg_loss did not rise
    assert math.isclose(terms[0]["rise"], 72.0 / 0.1, rel_tol=1e-9)


def test_a_late_rise_short_of_a_divergence_is_named_a_rise() -> None:
    # pl_km_deepracer: "loss_plateau (info): train_loss rose 19.00% over the last half of the run (after
    # falling 45% before)": a rise read as a plateau
    rng = np.random.default_rng(1)
    v = np.concatenate([np.linspace(1.0, 0.55, 8), 0.55 * np.linspace(1.0, 1.19, 8)]) * (1 + 0.02 * rng.standard_normal(16))
    [f] = found(diagnose(run_of(train_loss=v)), "loss_plateau")
    assert f.severity == "info" and f.evidence.value < 0
    late = float(np.median(v[-3:]))  # (about +18%: the rise it names, whatever the trend's exact figure)
    assert late > 1.1 * float(np.median(v[6:9]))
    assert f.summary.startswith("train_loss rose ") and f.summary.endswith(
        "before): it stopped improving and crept back up, a late rise short of a divergence")


def test_the_grpo_reward_note_reads_as_one_sentence(tmp_path: Path) -> None:
    # grpo_chaos: "reward (50 points, under the 200 logged means a return that never rose is judged over:
    # each point an RLHF trainer's mean over one update's batch of scored completions)"
    n = 50
    note = _codes(_grpo_state(tmp_path, _noisy_flat(n), np.linspace(0.0, 0.06, n)))["insufficient_data"]
    assert note.summary == (
        "rewards not judged for a return that never rose: reward (50 points, each an RLHF trainer's mean over "
        "one update's batch of scored completions; a return that never rose is judged only from 200 logged "
        "means on)")
