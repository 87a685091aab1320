"""Cost of appending to a live run, at 1,000 and at 1,000,000 points: the incremental diagnosis
must cost O(batch + the detectors' bounded series), not O(run length) (target: the time per
appended point at 1M within 2x of that at 1k).

For each size a run of a realistic shape is made (per step: loss, grad_norm, lr and ``--layers``
per-layer norms), filled to the size quickly through the store (bulk inserts, no diagnosis), then
one warm-up batch is appended (it rebuilds the run's state from its points once: a cache miss),
and ``--batches`` batches of about ``--batch`` points are timed through
:func:`gradhealth.live.diagnose.append`: the insert with its idempotency check, the state update,
the detectors and the compare-and-set commit of the new diagnosis, on SQLite in a temp dir.
Speed is measured, never asserted. Run from the repository root::

    .venv/bin/python bench/bench_runs.py
    .venv/bin/python bench/bench_runs.py --sizes 1000,100000 --batches 20
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.live import diagnose, store
from gradhealth.live.points import Point
from gradhealth.logs.thresholds import LogThresholds


def step_points(step: int, layers: int) -> list[Point]:
    """One training step's points: a noisy falling loss, a steady norm, a constant rate."""
    wobble = 1 + 0.1 * math.sin(step * 0.7)
    out = [Point("loss", step, 2.0 / (1 + step / 1000) * wobble), Point("grad_norm", step, 1.0 * wobble),
           Point("lr", step, 1e-3)]
    out += [Point(f"grad_norm/layers.{i}.weight", step, 0.1 * (i + 1) * wobble) for i in range(layers)]
    return out


def bench(size: int, *, layers: int, batch: int, batches: int, folder: Path) -> dict[str, float]:
    url = f"sqlite:///{folder}/runs-{size}.db"
    migrate(url)
    sessions = make_sessionmaker(make_engine(url))
    per_step = 3 + layers
    steps = max(1, size // per_step)
    with sessions() as session:
        run, _ = store.create(session, owner="bench", name=f"bench-{size}", config={})
        names = [p.metric for p in step_points(0, layers)]
        fill_started = time.perf_counter()
        chunk: list[Point] = []
        for s in range(steps):
            chunk += step_points(s, layers)
            if len(chunk) >= 50_000:
                store.bulk_points(session, run.id, chunk)
                chunk = []
        if chunk:
            store.bulk_points(session, run.id, chunk)
        store.compare_and_set(session, run.id, 0, dict(points=steps * per_step, series=names,
                                                       last_step=float(steps - 1)))
        session.commit()
        fill_s = time.perf_counter() - fill_started
        base = LogThresholds()
        steps_per_batch = max(1, batch // per_step)
        next_step = steps

        def append() -> tuple[float, int]:
            nonlocal next_step
            points = [p for s in range(next_step, next_step + steps_per_batch) for p in step_points(s, layers)]
            next_step += steps_per_batch
            started = time.perf_counter()
            done = diagnose.append(session, run.id, "bench", points, base=base, max_points=10**9,
                                   max_series=10_000)
            assert done.accepted == len(points)
            return time.perf_counter() - started, len(points)

        warm_s, _ = append()  # the cache miss: the state rebuilt from every stored point, once
        timed = [append() for _ in range(batches)]
    per_point = [t / n for t, n in timed]
    return {"size": size, "fill_s": fill_s, "rebuild_s": warm_s, "batch_points": timed[0][1],
            "median_us_per_point": statistics.median(per_point) * 1e6,
            "min_us_per_point": min(per_point) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,1000000", help="run sizes in points, comma-separated")
    parser.add_argument("--layers", type=int, default=7, help="per-layer norm series (with loss, grad_norm, lr)")
    parser.add_argument("--batch", type=int, default=100, help="points per appended batch (whole steps)")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f}; batches of ~{args.batch} points, {args.batches} timed per size")
    results = []
    with tempfile.TemporaryDirectory(prefix="gh-bench-runs-") as tmp:
        for size in sizes:
            r = bench(size, layers=args.layers, batch=args.batch, batches=args.batches, folder=Path(tmp))
            results.append(r)
            print(f"{size:>10,} points: {r['median_us_per_point']:8.1f} us/point median "
                  f"({r['min_us_per_point']:.1f} min) per batch of {r['batch_points']}; "
                  f"fill {r['fill_s']:.1f} s, first append (state rebuilt) {r['rebuild_s']:.2f} s")
    if len(results) > 1:
        ratio = results[-1]["median_us_per_point"] / results[0]["median_us_per_point"]
        verdict = "within" if ratio <= 2 else "OVER"
        print(f"ratio {results[-1]['size']:,} / {results[0]['size']:,} points: {ratio:.2f}x ({verdict} the 2x target)")


if __name__ == "__main__":
    main()
