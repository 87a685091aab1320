"""Cost of appending to a live run, at 1,000 and at 1,000,000 points: the incremental diagnosis
must cost O(batch + the detectors' bounded series), not O(run length) (target: the time per
appended point at 1M within 2x of that at 1k).

Runs of a realistic shape (per step: loss, grad_norm, lr and ``--layers`` per-layer norms) are
filled quickly through the store (bulk inserts, no diagnosis): ``--batches`` runs of ``--small``
points and one of ``--large``. Each gets one warm-up batch (it rebuilds the run's state from its
points once: a cache miss, timed and printed for the large run). Then batches of about ``--batch``
points are timed through :func:`gradhealth.live.diagnose.append` (the insert with its idempotency
check, the state update, the detectors and the compare-and-set commit of the new diagnosis; SQLite
in a temp dir), alternating: one on the next small run (so each small append is measured at the
small size, not at a run grown by the batches before it), one on the large run, so that a change
in the machine's load weighs on both alike. Speed is measured, never asserted. From the
repository root::

    .venv/bin/python bench/bench_runs.py
    .venv/bin/python bench/bench_runs.py --large 100000 --batches 20
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.live import diagnose, store
from gradhealth.live.points import Point
from gradhealth.logs.thresholds import LogThresholds

BASE = LogThresholds()


def step_points(step: int, layers: int) -> list[Point]:
    """One training step's points: a noisy falling loss, a steady norm, a constant rate."""
    wobble = 1 + 0.1 * math.sin(step * 0.7)
    out = [Point("loss", step, 2.0 / (1 + step / 1000) * wobble), Point("grad_norm", step, 1.0 * wobble),
           Point("lr", step, 1e-3)]
    out += [Point(f"grad_norm/layers.{i}.weight", step, 0.1 * (i + 1) * wobble) for i in range(layers)]
    return out


class BenchRun:
    """A run filled to ``size`` points, with the step its next batch starts at."""

    def __init__(self, session: Session, size: int, layers: int, name: str) -> None:
        self.session, self.layers = session, layers
        per_step = 3 + layers
        steps = max(1, size // per_step)
        run, _ = store.create(session, owner="bench", name=name, config={})
        self.id = run.id
        chunk: list[Point] = []
        for s in range(steps):
            chunk += step_points(s, layers)
            if len(chunk) >= 50_000:
                store.bulk_points(session, run.id, chunk)
                chunk = []
        if chunk:
            store.bulk_points(session, run.id, chunk)
        names = [p.metric for p in step_points(0, layers)]
        store.compare_and_set(session, run.id, 0, dict(points=steps * per_step, series=names,
                                                       last_step=float(steps - 1)))
        session.commit()
        self.next_step = steps

    def append(self, batch: int) -> tuple[float, int]:
        """Seconds for one batch of about ``batch`` points (whole steps), and its points."""
        per_step = 3 + self.layers
        steps = range(self.next_step, self.next_step + max(1, batch // per_step))
        self.next_step = steps.stop
        points = [p for s in steps for p in step_points(s, self.layers)]
        started = time.perf_counter()
        done = diagnose.append(self.session, self.id, "bench", points, base=BASE, max_points=10**9,
                               max_series=10_000)
        elapsed = time.perf_counter() - started
        assert done.accepted == len(points)
        return elapsed, len(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="points in each small run")
    parser.add_argument("--large", type=int, default=1_000_000, help="points in the large run")
    parser.add_argument("--layers", type=int, default=7, help="per-layer norm series (with loss, grad_norm, lr)")
    parser.add_argument("--batch", type=int, default=100, help="points per appended batch (whole steps)")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gh-bench-runs-") as tmp:
        url = f"sqlite:///{Path(tmp)}/runs.db"
        migrate(url)
        with make_sessionmaker(make_engine(url))() as session:
            started = time.perf_counter()
            large = BenchRun(session, args.large, args.layers, "large")
            fill_s = time.perf_counter() - started
            rebuild_s, _ = large.append(args.batch)  # the cache miss: its state rebuilt from every point
            smalls = [BenchRun(session, args.small, args.layers, f"small-{i}") for i in range(args.batches)]
            for run in smalls:
                run.append(args.batch)
            times: dict[str, list[float]] = {"small": [], "large": []}
            for run in smalls:
                for label, target in (("small", run), ("large", large)):
                    seconds, n = target.append(args.batch)
                    times[label].append(seconds / n)
    print(f"load average {os.getloadavg()[0]:.2f}; batches of ~{args.batch} points, {args.batches} timed per "
          f"size, alternating")
    print(f"large run: filled with {args.large:,} points in {fill_s:.1f} s; first append (state rebuilt from "
          f"every point) {rebuild_s:.2f} s")
    for label, size in (("small", args.small), ("large", args.large)):
        t = times[label]
        print(f"{size:>10,} points: {statistics.median(t) * 1e6:8.1f} us/point median, {min(t) * 1e6:.1f} min")
    ratio = statistics.median(times["large"]) / statistics.median(times["small"])
    print(f"ratio {args.large:,} / {args.small:,} points: {ratio:.2f}x "
          f"({'within' if ratio <= 2 else 'OVER'} the 2x target)")


if __name__ == "__main__":
    main()
