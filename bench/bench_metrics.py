"""Scrape cost of the job metrics at 1k and 100k finished jobs.

Builds a SQLite database per size the way an upgraded service has one: the job table filled at
migration 0003 (bulk inserts through SQLAlchemy core, not the API), then ``upgrade head``, whose
migration 0004 counts that history into the ``counters`` table. Then times ``/metrics``' job
collector (``generate_latest`` of a registry holding only it) against what the collector did
before the counters (read every finished job's kind and times and every finding list).

    .venv/bin/python bench/bench_metrics.py                 # 1,000 and 100,000 finished jobs
    .venv/bin/python bench/bench_metrics.py --sizes 1000,100000,300000 --repeat 30

``build_history`` is also what tests/api/test_metrics_scale.py builds its databases with.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

KINDS = ("architecture", "logs", "model")
ENDED = ("succeeded", "failed", "cancelled")
# One run time per duration bucket (0.1 ... 1800 s) and one past the last: every bucket is used.
RUN_S = (0.05, 0.2, 0.4, 0.8, 2.0, 4.0, 8.0, 20.0, 45.0, 100.0, 250.0, 500.0, 1000.0, 3000.0)
CODES = ("vanishing_gradient", "exploding_gradient,dead_relu", "", "loss_spike")
QUEUED, RUNNING = 5, 2


def finished_row(i: int, t0: datetime) -> dict[str, Any]:
    """Finished job ``i``: kind, status, run time and findings cycle so that any 504 consecutive
    jobs use every combination (3 kinds x 3 statuses x 14 run times x 4 finding lists)."""
    kind, status = KINDS[i % 3], ENDED[(i // 3) % 3]
    run_s, codes = RUN_S[(i // 9) % len(RUN_S)], CODES[(i // 126) % len(CODES)]
    started = t0 + timedelta(seconds=i)
    return dict(id=f"f{i:09d}", kind=kind, owner="bench", status=status, request={}, request_hash="h",
                progress=1.0, stage=status, attempts=1, max_attempts=3, time_limit_s=3600.0,
                cancel_requested=False, created_at=started, updated_at=started, started_at=started,
                finished_at=started + timedelta(seconds=run_s),
                finding_codes=codes if status == "succeeded" else None)


def active_row(i: int, status: str, t0: datetime) -> dict[str, Any]:
    return dict(id=f"a{i:09d}", kind=KINDS[i % 3], owner="bench", status=status, request={},
                request_hash="h", progress=0.0, stage=status, attempts=int(status == "running"),
                max_attempts=3, time_limit_s=3600.0, cancel_requested=False, created_at=t0,
                updated_at=t0, started_at=t0 if status == "running" else None, finished_at=None)


def alembic(url: str, action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    import gradhealth.db.engine as engine_module

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(engine_module.__file__).with_name("migrations")))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    getattr(command, action)(cfg, revision)


def build_history(url: str, finished: int, *, chunk: int = 20_000) -> None:
    """A fresh database at ``url`` with ``finished`` finished jobs, ``QUEUED`` queued and
    ``RUNNING`` running ones, migrated to head (the counters backfilled by migration 0004)."""
    from sqlalchemy import insert

    from gradhealth.db.engine import make_engine
    from gradhealth.db.models import JobRow

    alembic(url, "upgrade", "0003")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    engine = make_engine(url)
    try:
        table = JobRow.__table__
        for start in range(0, finished, chunk):
            with engine.begin() as conn:
                conn.execute(insert(table), [finished_row(i, t0) for i in range(start, min(finished, start + chunk))])
        with engine.begin() as conn:
            conn.execute(insert(table), [active_row(i, "queued", t0) for i in range(QUEUED)]
                         + [active_row(QUEUED + i, "running", t0) for i in range(RUNNING)])
    finally:
        engine.dispose()
    alembic(url, "upgrade", "head")


def scrape_counters(factory: Any) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    from gradhealth.api.metrics import JobCollector

    registry = CollectorRegistry()
    registry.register(JobCollector(factory))
    return generate_latest(registry)


def scrape_table(factory: Any) -> int:
    """What the job collector read before the counters (its queries, without the formatting)."""
    from sqlalchemy import func, select

    from gradhealth.db.models import JobRow

    with factory() as session:
        n = len(session.execute(select(JobRow.kind, JobRow.status, func.count())
                                .group_by(JobRow.kind, JobRow.status)).all())
        n += len(session.execute(select(JobRow.kind, JobRow.started_at, JobRow.finished_at).where(
            JobRow.status.in_(("succeeded", "failed")), JobRow.started_at.is_not(None))).all())
        n += len(session.scalars(select(JobRow.finding_codes).where(JobRow.finding_codes.is_not(None))).all())
    return n


def timed(fn: Any, repeat: int) -> tuple[float, float]:
    """(median, minimum) seconds of ``fn()`` over ``repeat`` calls after one warm-up call. On a
    shared machine the minimum is the steadier figure."""
    fn()  # warm: connection, statement cache, pages in the OS cache
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000", help="numbers of finished jobs")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    from gradhealth.db.engine import make_engine, make_sessionmaker

    print(f"{'finished jobs':>14} {'build s':>8} {'scrape ms median/min':>21} "
          f"{'before: table read ms median/min':>33}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            url = f"sqlite:///{tmp}/history_{n}.db"
            t = time.perf_counter()
            build_history(url, n)
            built = time.perf_counter() - t
            engine = make_engine(url)
            factory = make_sessionmaker(engine)
            new = timed(lambda f=factory: scrape_counters(f), args.repeat)
            old = timed(lambda f=factory: scrape_table(f), max(3, args.repeat // 5))
            engine.dispose()
            print(f"{n:>14,} {built:>8.1f} {new[0] * 1e3:>13.2f} / {new[1] * 1e3:>5.2f} "
                  f"{old[0] * 1e3:>24.1f} / {old[1] * 1e3:>6.1f}")


if __name__ == "__main__":
    main()
