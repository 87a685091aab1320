"""Cost of finishing a live run: reading every stored point into the RunLog the full log check reads
(:func:`gradhealth.live.diagnose.full_log`), at ``--points`` points (default 1M).

errsweep2 N6: the row-wise read (one Python ``Point`` per stored row, appended to per-series lists)
took 4.9 s and +95 MB at 1M points and 110 s and +1 GB at 10M. The columnar read fetches each
chunk of rows into numpy arrays. Both are timed here on the same SQLite run (the row-wise one is
kept below as it was, for the comparison), then their peak Python allocations (tracemalloc, in a
second pass so that tracing does not weigh on the times), and then the whole ``finish`` (the read
plus the log check's detectors over every point). From the repository root::

    .venv/bin/python bench/bench_live_finish.py
    .venv/bin/python bench/bench_live_finish.py --points 200000 --layers 30
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.db.models import RunRow
from gradhealth.live import diagnose, store
from gradhealth.live.points import Point
from gradhealth.logs.readers.native import native_role
from gradhealth.logs.series import RunLog, make_series
from gradhealth.logs.thresholds import LogThresholds


def rowwise_full_log(session: Session, run: RunRow) -> RunLog:
    """The read before the fix: a Python Point per stored row (kept here to compare against)."""
    data: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in run.series or []}
    for p in store.iter_points(session, run.id):
        steps, values = data.setdefault(p.metric, ([], []))
        steps.append(p.step)
        values.append(p.value)
    series = []
    for name, (steps, values) in data.items():
        role, layer = native_role(name)
        series.append(make_series(name, np.asarray(steps), np.asarray(values), role=role, layer=layer))
    return RunLog(format="live", source=run.name, series=series, params=diagnose.params_of(run.config or {}))


def fill(session: Session, points: int, layers: int) -> str:
    run, _ = store.create(session, owner="bench", name="finish", config={})
    per_step = 3 + layers
    steps = points // per_step
    names = ["loss", "grad_norm", "lr"] + [f"grad_norm/layers.{i}.weight" for i in range(layers)]
    chunk: list[Point] = []
    for s in range(steps):
        wobble = 1 + 0.1 * math.sin(s * 0.7)
        chunk += [Point("loss", s, 2.0 / (1 + s / 1000) * wobble), Point("grad_norm", s, wobble),
                  Point("lr", s, 1e-3)]
        chunk += [Point(n, s, 0.1 * i * wobble if s != steps // 2 else math.nan) for i, n in enumerate(names[3:])]
        if len(chunk) >= 50_000:
            store.bulk_points(session, run.id, chunk)
            chunk = []
    if chunk:
        store.bulk_points(session, run.id, chunk)
    store.compare_and_set(session, run.id, 0, dict(points=steps * per_step, series=names, last_step=float(steps - 1)))
    session.commit()
    return run.id


def timed(read: Callable[[Session, RunRow], RunLog], session: Session, run: RunRow) -> tuple[float, RunLog]:
    gc.collect()
    started = time.perf_counter()
    log = read(session, run)
    return time.perf_counter() - started, log


def peak_mb(read: Callable[[Session, RunRow], RunLog], session: Session, run: RunRow) -> float:
    gc.collect()
    tracemalloc.start()
    log = read(session, run)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del log
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points in the run")
    parser.add_argument("--layers", type=int, default=7, help="per-layer norm series (with loss, grad_norm, lr)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gh-bench-finish-") as tmp:
        url = f"sqlite:///{Path(tmp)}/runs.db"
        migrate(url)
        with make_sessionmaker(make_engine(url))() as session:
            started = time.perf_counter()
            run_id = fill(session, args.points, args.layers)
            fill_s = time.perf_counter() - started
            run = store.get(session, run_id, None)
            assert run is not None
            old_s, old = timed(rowwise_full_log, session, run)
            new_s, new = timed(diagnose.full_log, session, run)
            for a, b in zip(old.series, new.series, strict=True):  # the same log, point for point
                assert a.name == b.name and np.array_equal(a.steps, b.steps)
                assert np.array_equal(a.values, b.values, equal_nan=True)
            del old, new
            old_mb = peak_mb(rowwise_full_log, session, run)
            new_mb = peak_mb(diagnose.full_log, session, run)
            started = time.perf_counter()
            done = diagnose.finish(session, run_id, "bench", base=LogThresholds())
            finish_s = time.perf_counter() - started
    print(f"load average {os.getloadavg()[0]:.2f}; {run.points:,} points in {len(run.series or [])} series "
          f"(filled in {fill_s:.1f} s)")
    print(f"row-wise read (before): {old_s:6.2f} s, peak {old_mb:7.1f} MB allocated")
    print(f"columnar read (after):  {new_s:6.2f} s, peak {new_mb:7.1f} MB allocated "
          f"({new_mb * 2**20 / max(1, run.points):.1f} bytes/point)")
    print(f"ratio before/after: time {old_s / new_s:.1f}x, memory {old_mb / new_mb:.1f}x")
    print(f"finish (columnar read + the log check over every point): {finish_s:.2f} s, status {done.status}")


if __name__ == "__main__":
    main()
