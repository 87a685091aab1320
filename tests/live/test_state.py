"""The incremental state: exact while a series fits, bounded after, and never losing a spike or a
NaN to decimation; points in any order give the same state."""

from __future__ import annotations

import math
import random

import numpy as np

from gradhealth.live.points import Point, decode_special, encode_special, parse
from gradhealth.live.state import Bucket, RunState, SeriesState


def _fill(state: SeriesState, n: int, f=lambda i: 1.0 + (i % 7) * 0.1) -> None:  # noqa: ANN001
    for i in range(n):
        state.add(float(i), f(i))


def test_exact_while_the_series_fits():
    s = SeriesState("loss", tail_size=16, history_size=16)
    _fill(s, 32)
    steps, values = s.arrays()
    assert s.exact and steps.tolist() == list(range(32))
    assert values.tolist() == [1.0 + (i % 7) * 0.1 for i in range(32)]


def test_decimated_history_is_bounded_and_keeps_spikes_nan_and_the_ends():
    s = SeriesState("grad_norm", tail_size=16, history_size=16)
    spike, nan_at, low = 1234, 4321, 777
    _fill(s, 10_000, lambda i: 1e6 if i == spike else math.nan if i == nan_at else 1e-6 if i == low else 1.0)
    steps, values = s.arrays()
    assert not s.exact and s.count == 10_000
    assert len(steps) <= 4 * 16 + 16  # at most 4 points per bucket, plus the tail
    assert np.all(np.diff(steps) > 0)
    assert steps[0] == 0 and steps[-1] == 9999 and steps[-16:].tolist() == list(range(9984, 10_000))
    got = dict(zip(steps.tolist(), values.tolist(), strict=True))
    assert got[spike] == 1e6 and got[low] == 1e-6 and math.isnan(got[nan_at])
    # Bucket counts add up to every point the series had.
    assert sum(b.count for b in s.history) + len(s.steps) == 10_000
    assert sum(b.bad_count for b in s.history) == 1


def test_points_in_any_order_give_the_same_state():
    rng = random.Random(3)
    points = [Point("m", float(i), math.sin(i) + (50.0 if i == 600 else 0.0)) for i in range(1000)]
    shuffled = points[:]
    rng.shuffle(shuffled)
    a, b = RunState(tail_size=32, history_size=32), RunState(tail_size=32, history_size=32)
    a.add(points)
    b.add(shuffled)
    sa, sb = a.series["m"], b.series["m"]
    assert sa.count == sb.count == 1000
    # The shuffled state decimates differently, but both keep the spike and span the whole run.
    for s in (sa, sb):
        steps, values = s.arrays()
        assert steps[0] == 0 and steps[-1] == 999 and np.all(np.diff(steps) > 0)
        assert float(values[steps.tolist().index(600)]) == math.sin(600) + 50.0
    # In order and exact, any insertion order gives the same points.
    c, d = RunState(), RunState()
    c.add(points[:200])
    d.add(sorted(points[:200], key=lambda p: -p.step))
    assert np.array_equal(c.series["m"].arrays()[1], d.series["m"].arrays()[1])


def test_bucket_merge_keeps_extremes_and_first_nonfinite():
    a, b = Bucket.of(1, 5.0), Bucket.of(2, math.inf)
    b.add(3, -2.0)
    b.add(4, math.nan)
    m = a.merge(b)
    assert (m.first, m.last, m.count, m.bad_count) == (1, 4, 4, 2)
    assert m.points() == [(1, 5.0), (2, math.inf), (3, -2.0)]  # first (and highest), NaN/Inf, lowest


def test_run_log_roles_follow_the_native_reader():
    state = RunState()
    state.add([Point("grad_norm/fc1.weight", 1, 0.5), Point("loss", 1, 2.0), Point("lr", 1, 0.1)])
    log = state.run_log("r", {"max_grad_norm": "1.0"})
    assert [(s.name, s.role, s.layer) for s in log.series] == [
        ("grad_norm/fc1.weight", "layer_grad_norm", "fc1.weight"), ("loss", "loss", None),
        ("lr", "learning_rate", None)]


def test_special_values_round_trip_and_batches_parse_both_ways():
    for v in (math.nan, math.inf, -math.inf, 0.0, -1.5):
        back = decode_special(*encode_special(v))
        assert (math.isnan(back) and math.isnan(v)) or back == v
    rows = [{"step": 3, "layer": "fc", "kind": "grad_norm", "value": 0.5},
            {"step": 3, "metric": "loss", "value": "NaN", "wall_time": 1.0}]
    lines = "\n".join(__import__("json").dumps(r) for r in rows).encode()
    a = parse(lines, "application/x-ndjson", max_points=10)
    b = parse(__import__("json").dumps(rows).encode(), "application/json", max_points=10)
    assert [(p.metric, p.step) for p in a] == [(p.metric, p.step) for p in b] == [("grad_norm/fc", 3), ("loss", 3)]
    assert math.isnan(a[1].value) and a[0].value == 0.5


def test_history_has_one_resolution():
    s = SeriesState("m", tail_size=16, history_size=16)
    _fill(s, 10_000)
    counts = [b.count for b in s.history]
    assert len(set(counts[:-1])) == 1 and counts[-1] <= counts[0] == s.unit
    steps = np.arange(10_000, dtype=np.float64)
    whole = SeriesState.of("m", steps, np.array([1.0 + (i % 7) * 0.1 for i in range(10_000)]), 16, 16)
    assert whole.count == 10_000 and whole.steps == s.steps and whole.unit == s.unit
    assert [b.count for b in whole.history[:-1]] == counts[:len(whole.history) - 1]


def test_a_long_decimated_run_gets_the_findings_of_every_point():
    # 5,000 steps (beyond the exact size): a recovered spike at 1500, then growth into Inf.
    from gradhealth.logs.check import diagnose
    from gradhealth.logs.series import RunLog, make_series

    rng = np.random.default_rng(1)
    n = 5000
    loss = 2.0 / (1 + np.arange(n) / 500) * (1 + 0.05 * rng.standard_normal(n))
    norm = 1.0 + 0.1 * rng.standard_normal(n)
    norm[1500] = 40.0
    norm[-30:] = np.geomspace(20, 1e6, 30)
    norm[-3:] = np.inf
    loss[-3:] = np.nan
    state = RunState()
    state.add(Point(m, s, float(v)) for s in range(n) for m, v in (("loss", loss[s]), ("grad_norm", norm[s])))
    assert not state.exact and all(len(s.arrays()[0]) <= 4 * 128 + 256 for s in state.series.values())
    live = diagnose(state.run_log("r", {}))
    full = diagnose(RunLog("live", "r", [make_series("loss", np.arange(n), loss),
                                         make_series("grad_norm", np.arange(n), norm)]))

    def pin(doc):  # noqa: ANN001, ANN202
        return [(f.code, f.severity, f.evidence.steps) for f in doc.findings]

    assert pin(live) == pin(full)
    assert {c for c, _, _ in pin(full)} == {"nonfinite", "exploding_gradient", "gradient_spike"}
