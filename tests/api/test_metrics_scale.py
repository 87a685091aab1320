"""A scrape of the job metrics does the same work with 1,000 and with 100,000 finished jobs.

Not a timed assertion (timings on a shared machine prove little): the scrape's statements are
recorded with SQLAlchemy's ``before_cursor_execute`` and compared, the rows each returns are
counted by running it again, and SQLite's own work is measured by its progress handler (called
once per virtual-machine instruction, so it grows with every row or index entry visited). All
three must be equal at both sizes, and no statement may scan the job table. The histories are
built by bench/bench_metrics.py (bulk inserts at migration 0003, then migration 0004's backfill),
which also times the scrape (bench/README.md).
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from gradhealth.api.metrics import JobCollector
from gradhealth.db.engine import make_engine, make_sessionmaker

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_metrics.py"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_metrics", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_scrape(path: Path) -> dict[str, Any]:
    """Scrape once (after a warm-up scrape) and report what it cost and what it said."""
    engine = make_engine(f"sqlite:///{path}")
    statements: list[tuple[str, Any]] = []
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0  # go on

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        statements.append((statement, parameters))
        conn.connection.driver_connection.set_progress_handler(step, 1)

    registry = CollectorRegistry()
    registry.register(JobCollector(make_sessionmaker(engine)))
    try:
        generate_latest(registry)  # warm: the connection and its pragmas are not the scrape's cost
        event.listen(engine, "before_cursor_execute", record)
        text = generate_latest(registry).decode()
        event.remove(engine, "before_cursor_execute", record)
    finally:
        engine.dispose()
    raw = sqlite3.connect(path)
    try:
        rows = [len(raw.execute(sql, params).fetchall()) for sql, params in statements]
        plans = [" | ".join(r[-1] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params))
                 for sql, params in statements]
    finally:
        raw.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    return {"statements": [sql for sql, _ in statements], "rows": rows, "steps": steps[0],
            "plans": plans, "samples": samples}


@pytest.mark.parametrize("sizes", [(1_000, 100_000)])
def test_scrape_cost_is_the_same_at_1k_and_100k_finished_jobs(tmp_path, sizes):
    bench = _bench()
    small, large = sizes
    measured = {}
    for n in sizes:
        path = tmp_path / f"history_{n}.db"
        bench.build_history(f"sqlite:///{path}", n)
        measured[n] = measure_scrape(path)

    for n, m in measured.items():  # the figures are right, so the scrape really read the history
        finished = sum(v for (name, _), v in m["samples"].items()
                       if name == "gradhealth_jobs_finished_total")
        assert finished == n
        timed = sum(v for (name, labels), v in m["samples"].items()
                    if name == "gradhealth_job_duration_seconds_count")
        assert timed == sum(1 for i in range(n) if bench.ENDED[(i // 3) % 3] != "cancelled")
        assert m["samples"][("gradhealth_queue_depth", ())] == bench.QUEUED
        running = sum(v for (name, labels), v in m["samples"].items()
                      if name == "gradhealth_jobs" and ("status", "running") in labels)
        assert running == bench.RUNNING
        for plan in m["plans"]:  # indexed search or the small counters table, never the job table
            assert "SCAN jobs" not in plan, plan
    a, b = measured[small], measured[large]
    assert set(a["samples"]) == set(b["samples"])  # the same counter rows exist at both sizes
    assert a["statements"] == b["statements"] and len(a["statements"]) == 2
    assert a["rows"] == b["rows"]
    assert sum(a["rows"]) < 100  # a few rows per kind and code, not one per job
    assert a["steps"] == b["steps"], (a["steps"], b["steps"])
