"""errsweep2 N2, N6 and N14 on live runs.

N2: concurrent appends to one run waited for its lock inside the API's shared threadpool, so they
held every thread and another caller's request waited (51.7 s behind 80 appends). Now they queue on
the run's own worker, which folds the batches queued meanwhile into one diagnosis, and past
``MAX_PENDING`` queued batches the run answers 429 with Retry-After.
N6: finishing a run built a Python object per stored point; now each series is read into arrays.
N14: the run-state cache was bounded by count alone, and lock entries of finished runs leaked.
"""

from __future__ import annotations

import asyncio
import math
import time
import tracemalloc
from typing import Any

import anyio
import numpy as np
import pytest

from gradhealth.live import diagnose, store
from gradhealth.live.points import Point
from gradhealth.live.state import RunState
from tests.api.helpers import Api, running_app, settings_for

SLOW_S = 0.5  # each diagnosis, made slow: what a run of 10,000 series costs


def _rows(steps: range, metric: str = "loss") -> list[dict]:
    return [{"step": i, "metric": metric, "value": 1.0 / (i + 1)} for i in steps]


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every diagnosis takes SLOW_S; returns the list that counts them."""
    calls: list[int] = []
    real = diagnose._document

    def document(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(SLOW_S)
        return real(*args, **kwargs)

    monkeypatch.setattr(diagnose, "_document", document)
    return calls


@pytest.fixture
def small_pool(tmp_path):  # noqa: ANN001, ANN201 - an app whose threadpool has 8 threads, not 40
    with running_app(settings_for(tmp_path, workers=0)) as api:
        async def shrink() -> None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = 8

        api.portal.call(shrink)
        yield api


def _concurrently(api: Api, run_id: str, batches: int, *, then: str = "/v1/runs?limit=1",
                  method: str = "GET") -> tuple[list[Any], Any, float]:
    """``batches`` appends of 10 new steps each at once; 0.2 s later, another request, timed."""
    async def scenario() -> tuple[list[Any], Any, float]:
        posts = [asyncio.ensure_future(api.client.post(f"/v1/runs/{run_id}/points",
                                                       json=_rows(range(100 + 10 * k, 110 + 10 * k))))
                 for k in range(batches)]
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        other = await api.client.request(method, then)
        elapsed = time.perf_counter() - started
        return list(await asyncio.gather(*posts)), other, elapsed

    return api.portal.call(scenario)


def test_appends_to_one_run_hold_no_thread_that_another_request_needs(small_pool, slow):
    api = small_pool
    run = api.post("/v1/runs", json={"name": "flooded"}).json()
    assert api.post(f"/v1/runs/{run['id']}/points", json=_rows(range(10))).status_code == 200
    slow.clear()
    # 12 appends > 8 threads: before, 8 of them waited for the run's lock on every thread, and the
    # GET waited for one to be released (about (12 - 8 + 1) x 0.5 s)
    answers, other, elapsed = _concurrently(api, run["id"], 12)
    assert other.status_code == 200 and elapsed < 1.0, elapsed
    assert [r.status_code for r in answers] == [200] * 12
    assert [r.json()["accepted"] for r in answers] == [10] * 12
    assert [r.json()["duplicates"] for r in answers] == [0] * 12
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["points"] == 130 and got["last_step"] == 219
    # the batches queued behind the first diagnosis were stored and diagnosed together
    assert len(slow) <= 3, len(slow)
    assert max(r.json()["points"] for r in answers) == 130


def test_a_run_with_too_many_batches_waiting_answers_429_with_retry_after(small_pool, slow, monkeypatch):
    api = small_pool
    monkeypatch.setattr(diagnose, "MAX_PENDING", 2)
    run = api.post("/v1/runs", json={"name": "busy"}).json()
    answers, other, elapsed = _concurrently(api, run["id"], 8)
    assert other.status_code == 200 and elapsed < 1.0, elapsed
    codes = [r.status_code for r in answers]
    assert set(codes) == {200, 429}, codes  # one being diagnosed, at most 2 waiting: the rest refused
    busy = next(r for r in answers if r.status_code == 429)
    assert busy.headers["Retry-After"] == "1" and busy.headers["content-type"].startswith("application/problem")
    assert "retry" in busy.json()["detail"]
    stored = sum(r.json()["accepted"] for r in answers if r.status_code == 200)
    assert api.get(f"/v1/runs/{run['id']}").json()["points"] == stored
    # a refused batch taken again later is stored (what the recorder does with a 429)
    retry = api.post(f"/v1/runs/{run['id']}/points", content=busy.request.content,
                     headers={"content-type": "application/json"})
    assert retry.status_code == 200 and retry.json()["accepted"] == 10


def test_finish_waits_for_the_batches_queued_before_it_without_holding_a_thread(small_pool, slow):
    api = small_pool
    run = api.post("/v1/runs", json={"name": "finish-behind"}).json()
    answers, finished, _ = _concurrently(api, run["id"], 10, then=f"/v1/runs/{run['id']}/finish", method="POST")
    assert [r.status_code for r in answers] == [200] * 10  # none came after the finish (409)
    assert finished.status_code == 200 and finished.json()["status"] == "finished"
    assert finished.json()["points"] == 100
    deadline = time.monotonic() + 5  # the worker removes the run's queue just after answering
    while run["id"] in diagnose._queues and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run["id"] not in diagnose._run_locks and run["id"] not in diagnose._queues  # nothing left behind


def test_a_batch_that_fails_does_not_fail_the_batches_stored_with_it(small_pool, slow, monkeypatch):
    api = small_pool
    real = store.insert_points

    def insert(session: Any, run_id: str, points: list[Point]) -> list[Point]:
        if any(p.metric == "poison" for p in points):
            raise RuntimeError("this batch breaks the database")
        return real(session, run_id, points)

    monkeypatch.setattr(store, "insert_points", insert)
    run = api.post("/v1/runs", json={"name": "poisoned-group"}).json()

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(api.client.post(f"/v1/runs/{run['id']}/points", json=_rows(range(5))))
        await asyncio.sleep(0.2)  # the others queue behind its diagnosis, and are taken together
        bodies = [_rows(range(10, 15)), _rows(range(20, 25), "poison"), _rows(range(30, 35))]
        rest = [api.client.post(f"/v1/runs/{run['id']}/points", json=b) for b in bodies]
        return list(await asyncio.gather(first, *rest, return_exceptions=True))

    answers = api.portal.call(scenario)
    assert isinstance(answers[2], RuntimeError)  # the ASGI transport raises the app's error (a 500)
    assert [answers[k].status_code for k in (0, 1, 3)] == [200, 200, 200]
    assert api.get(f"/v1/runs/{run['id']}").json()["points"] == 15


# --- N6: finishing reads arrays --------------------------------------------------------------------


def test_full_log_reads_columns_not_a_point_object_per_row(tmp_path, monkeypatch):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        run_id = api.post("/v1/runs", json={"name": "columns"}).json()["id"]
        values = {"b": [1.0, math.nan, math.inf, -math.inf, 2.5], "a": [0.5, 0.25, 0.125, -1.0, 3.0]}
        with api.app.state.sessions() as session:
            for name in ("b", "a", "c"):  # out of metric order; "c" is listed but has no point
                pts = [Point(name, s, v) for s, v in zip((7, 3, 5, 1, 9), values.get(name, ()), strict=False)]
                store.insert_points(session, run_id, pts)
            store.compare_and_set(session, run_id, 0, dict(points=10, series=["b", "a", "c"]))
            session.commit()
            run = store.get(session, run_id, None)
            assert run is not None
            # chunks of 3 rows: series span chunks, and chunks span series
            chunked = {n: (s.tolist(), v.tolist()) for n, s, v in store.run_arrays(session, run_id, chunk=3)}
            monkeypatch.setattr(store, "iter_points", lambda *a, **k: pytest.fail("a Point per stored row"))
            log = diagnose.full_log(session, run)
        assert [s.name for s in log.series] == ["b", "a", "c"]  # the run's first-seen order
        b, a, c = log.series
        assert b.steps.tolist() == [1, 3, 5, 7, 9] and a.steps.tolist() == [1, 3, 5, 7, 9] and len(c.steps) == 0
        assert np.array_equal(b.values, [-math.inf, math.nan, math.inf, 1.0, 2.5], equal_nan=True)
        assert a.values.tolist() == [-1.0, 0.25, 0.125, 0.5, 3.0]
        assert chunked["a"][0] == [1, 3, 5, 7, 9] and np.array_equal(chunked["b"][1], b.values, equal_nan=True)


def test_full_log_memory_grows_by_about_the_arrays(tmp_path):
    def peak(api: Api, n: int) -> float:
        run_id = api.post("/v1/runs", json={"name": f"big-{n}"}).json()["id"]
        with api.app.state.sessions() as session:
            store.bulk_points(session, run_id, [Point(f"s{i % 3}", i // 3, 0.5) for i in range(n)])
            store.compare_and_set(session, run_id, 0, dict(points=n, series=["s0", "s1", "s2"]))
            session.commit()
            run = store.get(session, run_id, None)
            assert run is not None
            tracemalloc.start()
            log = diagnose.full_log(session, run)
            top = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert sum(len(s.values) for s in log.series) == n
        return top

    with running_app(settings_for(tmp_path, workers=0)) as api:
        small, large = peak(api, 30_000), peak(api, 150_000)
    # 16 bytes a point for the arrays (a chunk's rows cost the same at any size); a Point per row
    # took ~85 bytes a point more
    assert (large - small) / 120_000 < 40, (large - small) / 120_000


# --- N14: the state cache's byte budget, and lock entries ------------------------------------------


def _state(points: int) -> RunState:
    state = RunState()
    state.add(Point(f"s{i % 4}", i // 4, 1.0) for i in range(points))
    return state


def test_the_state_cache_evicts_by_size_as_well_as_by_count(monkeypatch):
    monkeypatch.setattr(diagnose, "_cache", type(diagnose._cache)())
    monkeypatch.setattr(diagnose, "_cache_size", 0)
    monkeypatch.setattr(diagnose, "_run_locks", {})
    big = _state(1000)
    size = big.approx_bytes()
    assert size > 50_000  # 4 tails of 250 points: tens of kilobytes
    assert _state(100).approx_bytes() < size / 5
    monkeypatch.setattr(diagnose, "CACHE_BYTES", int(2.5 * size))
    for k in range(4):
        diagnose._remember(f"r{k}", 1, _state(1000))
    assert list(diagnose._cache) == ["r2", "r3"]  # within about 2.5 states' bytes, least recent out
    assert diagnose._cache_size == sum(entry[2] for entry in diagnose._cache.values()) <= 2.5 * size
    monkeypatch.setattr(diagnose, "CACHE_BYTES", size // 2)
    diagnose._remember("huge", 1, _state(1000))
    assert list(diagnose._cache) == ["huge"]  # the newest stays, even alone over the budget
    diagnose.forget("huge")
    assert not diagnose._cache and diagnose._cache_size == 0


def test_lock_entries_go_with_the_run(monkeypatch):
    monkeypatch.setattr(diagnose, "_cache", type(diagnose._cache)())
    monkeypatch.setattr(diagnose, "_cache_size", 0)
    monkeypatch.setattr(diagnose, "_run_locks", {})
    with diagnose._lock("run-a"):
        diagnose._remember("run-a", 1, _state(10))
    assert "run-a" in diagnose._run_locks  # cached: its lock stays for the next batch
    with diagnose._lock("run-a"):
        diagnose.forget("run-a")  # finished while held: kept until released
        assert "run-a" in diagnose._run_locks
    assert "run-a" not in diagnose._run_locks
    with diagnose._lock("run-b"):
        pass
    assert "run-b" not in diagnose._run_locks  # never cached (a batch of duplicates): nothing kept
    diagnose._remember("run-c", 1, _state(10))
    with diagnose._lock("run-c"):
        pass
    diagnose.forget("run-c")  # deleted
    assert diagnose._run_locks == {}


def test_finished_and_deleted_runs_leave_no_lock_entry(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        ids = [api.post("/v1/runs", json={"name": f"gone-{k}"}).json()["id"] for k in range(2)]
        for run_id in ids:
            assert api.post(f"/v1/runs/{run_id}/points", json=_rows(range(5))).status_code == 200
            assert run_id in diagnose._run_locks
        assert api.post(f"/v1/runs/{ids[0]}/finish").status_code == 200
        assert api.delete(f"/v1/runs/{ids[1]}").status_code == 204
        assert not set(ids) & set(diagnose._run_locks)
