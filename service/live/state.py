"""Incremental per-run state: per series, the recent points at full resolution (the tail) and a
bounded, decimated history, so appending a batch costs O(batch + bounded series), not O(run).

History buckets merge pairwise when there are too many. Each bucket keeps its first point (an
unbiased sample, and the run's true first step), its lowest and highest finite value (with their
steps), its first non-finite value and its count, so a one-step spike or NaN survives any amount of
decimation, as :func:`gradhealth.logs.check.downsample` keeps them in
charts. While a series has at most ``tail + history`` points every bucket holds one point and the
series is exact: the live diagnosis then equals the log check's.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from gradhealth.live.points import Point
from gradhealth.logs.readers.native import native_role
from gradhealth.logs.series import RunLog, make_series

#: Full-resolution points kept per series: well above the detectors' windows (25 by default).
TAIL = 256
#: History buckets per series before adjacent pairs are merged. With the tail, a series of up to 384
#: points is exact; beyond, the detectors read at most 4 x 128 + 256 = 768 points (typically ~600).
#: The detectors' cost grows with that length (~10 ms for 100 points a series, ~25 ms for 1,000),
#: and a run's first thousand points must cost within 2x of its millionth (bench/bench_runs.py).
HISTORY = 128


@dataclass(slots=True)
class Bucket:
    """Consecutive points of one series, reduced to what the detectors must not lose."""

    first: float
    last: float
    count: int
    first_value: float = math.nan   # the value at ``first``
    lo_step: float | None = None   # lowest finite value and its step
    lo: float = math.inf
    hi_step: float | None = None   # highest finite value and its step
    hi: float = -math.inf
    bad_step: float | None = None  # first non-finite value and its step
    bad: float = math.nan
    bad_count: int = 0

    @classmethod
    def of(cls, step: float, value: float) -> Bucket:
        b = cls(step, step, 0, value)
        b.add(step, value)
        return b

    def add(self, step: float, value: float) -> None:
        if step < self.first:
            self.first, self.first_value = step, value
        self.last = max(self.last, step)
        self.count += 1
        if math.isfinite(value):
            if value < self.lo or (value == self.lo and self.lo_step is not None and step < self.lo_step):
                self.lo, self.lo_step = value, step
            if value > self.hi or (value == self.hi and self.hi_step is not None and step < self.hi_step):
                self.hi, self.hi_step = value, step
        else:
            self.bad_count += 1
            if self.bad_step is None or step < self.bad_step:
                self.bad, self.bad_step = value, step

    def merge(self, other: Bucket) -> Bucket:
        head = self if self.first <= other.first else other
        out = Bucket(head.first, max(self.last, other.last), self.count + other.count, head.first_value,
                     bad_count=self.bad_count + other.bad_count)
        for b in (self, other):
            if b.lo_step is not None and (out.lo_step is None or b.lo < out.lo):
                out.lo, out.lo_step = b.lo, b.lo_step
            if b.hi_step is not None and (out.hi_step is None or b.hi > out.hi):
                out.hi, out.hi_step = b.hi, b.hi_step
            if b.bad_step is not None and (out.bad_step is None or b.bad_step < out.bad_step):
                out.bad, out.bad_step = b.bad, b.bad_step
        return out

    def points(self) -> list[tuple[float, float]]:
        """The (step, value) points that stand for the bucket, in step order."""
        found: dict[float, float] = {}
        for step, value in ((self.first, self.first_value), (self.lo_step, self.lo), (self.hi_step, self.hi),
                            (self.bad_step, self.bad)):
            if step is not None:
                found.setdefault(step, value)
        return sorted(found.items())


@dataclass(slots=True)
class SeriesState:
    """One series: decimated history, then the full-resolution tail (steps ascending).

    History buckets hold ``unit`` points each (the last one may hold fewer): points leaving the tail
    fill the last bucket, and when there are more than ``history_size`` buckets adjacent pairs merge
    and ``unit`` doubles, so the whole history has one resolution (the oldest part is not decimated
    more than the rest)."""

    name: str
    tail_size: int = TAIL
    history_size: int = HISTORY
    history: list[Bucket] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)    # the tail
    values: list[float] = field(default_factory=list)
    count: int = 0
    unit: int = 1
    # The points of the full history buckets (all but the last), kept between batches.
    _points: list[tuple[float, float]] = field(default_factory=list)
    _closed: int = 0  # buckets whose points are in _points

    def add(self, step: float, value: float) -> None:
        """Add a point (any step order; each (series, step) once: the store drops repeats)."""
        self.count += 1
        if not self.steps or step > self.steps[-1]:
            self.steps.append(step)
            self.values.append(value)
        elif not self.history or step > self.history[-1].last:
            i = bisect.bisect_left(self.steps, step)
            self.steps.insert(i, step)
            self.values.insert(i, value)
        else:  # older than the tail: into the bucket that covers it, or a new one between two
            i = bisect.bisect_right([b.first for b in self.history], step) - 1
            if i >= 0 and step <= self.history[i].last:
                self.history[i].add(step, value)
            else:
                self.history.insert(i + 1, Bucket.of(step, value))
            self._forget_points()
            self._compact()
        if len(self.steps) > self.tail_size:
            cut = len(self.steps) - self.tail_size
            for s, v in zip(self.steps[:cut], self.values[:cut], strict=True):
                last = self.history[-1] if self.history else None
                if last is not None and last.count < self.unit:
                    last.add(s, v)
                else:
                    self.history.append(Bucket.of(s, v))
                    self._compact()
            del self.steps[:cut], self.values[:cut]

    def _forget_points(self) -> None:
        self._points, self._closed = [], 0

    def _compact(self) -> None:
        while len(self.history) > self.history_size:
            h = self.history
            merged = [h[i].merge(h[i + 1]) for i in range(0, len(h) - 1, 2)]
            if len(h) % 2:
                merged.append(h[-1])
            self.history = merged
            self.unit *= 2
            self._forget_points()

    @property
    def exact(self) -> bool:
        """Whether every point is still kept as it came."""
        return self.count == len(self.history) + len(self.steps)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The bounded series the detectors read: the history's points, then the tail."""
        full = max(0, len(self.history) - 1)
        for b in self.history[self._closed:full]:
            self._points += b.points()
        self._closed = full
        points = self._points + (self.history[-1].points() if self.history else [])
        n, t = len(points), len(self.steps)
        steps, values = np.empty(n + t), np.empty(n + t)
        if n:
            steps[:n], values[:n] = np.asarray(points, dtype=np.float64).T
        steps[n:], values[n:] = self.steps, self.values
        return steps, values

    @classmethod
    def of(cls, name: str, steps: np.ndarray, values: np.ndarray, tail_size: int = TAIL,
           history_size: int = HISTORY) -> SeriesState:
        """The state of a whole series at once (steps ascending and unique), vectorised: rebuilding a
        run of a million points from the database must not take a Python call per point."""
        steps = np.asarray(steps, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        state = cls(name, tail_size, history_size, count=len(steps))
        cut = max(0, len(steps) - tail_size)
        state.steps, state.values = steps[cut:].tolist(), values[cut:].tolist()
        if not cut:
            return state
        size = 1  # points per bucket: the power of two the pairwise merges would reach
        while -(-cut // size) > history_size:
            size *= 2
        state.unit = size
        starts = range(0, cut, size)
        hs, hv = steps[:cut], values[:cut]
        finite = np.isfinite(hv)
        lo_v, hi_v = np.where(finite, hv, np.inf), np.where(finite, -hv, np.inf)
        for start in starts:
            stop = min(cut, start + size)
            b = Bucket(float(hs[start]), float(hs[stop - 1]), int(stop - start), float(hv[start]))
            part = finite[start:stop]
            if part.any():
                i, j = start + int(np.argmin(lo_v[start:stop])), start + int(np.argmin(hi_v[start:stop]))
                b.lo, b.lo_step, b.hi, b.hi_step = float(hv[i]), float(hs[i]), float(hv[j]), float(hs[j])
            if not part.all():
                i = start + int(np.argmax(~part))
                b.bad, b.bad_step, b.bad_count = float(hv[i]), float(hs[i]), int((~part).sum())
            state.history.append(b)
        return state

    def approx_bytes(self) -> int:
        """About the memory the series holds (measured with tracemalloc: a tail point's two floats in
        lists ~64 bytes, a history bucket ~350, a cached history point ~110), for the state cache's
        byte budget: O(1), whatever the series' length."""
        return 600 + 64 * len(self.steps) + 350 * len(self.history) + 110 * len(self._points)

    def latest(self) -> tuple[float, float] | None:
        return (self.steps[-1], self.values[-1]) if self.steps else None


@dataclass
class RunState:
    """Every series of a run, in first-seen order (the order the log reader lists them)."""

    series: dict[str, SeriesState] = field(default_factory=dict)
    tail_size: int = TAIL
    history_size: int = HISTORY

    def add_series(self, names: Iterable[str]) -> None:
        """Series known to exist, in the order the run first saw them."""
        for name in names:
            if name not in self.series:
                self.series[name] = SeriesState(name, self.tail_size, self.history_size)

    def add(self, points: Iterable[Point]) -> None:
        for p in points:
            s = self.series.get(p.metric)
            if s is None:
                s = self.series[p.metric] = SeriesState(p.metric, self.tail_size, self.history_size)
            s.add(float(p.step), float(p.value))

    @property
    def exact(self) -> bool:
        return all(s.exact for s in self.series.values())

    def approx_bytes(self) -> int:
        """About the memory the run's state holds (the state cache evicts by it as well as by count)."""
        return 200 + sum(100 + s.approx_bytes() for s in self.series.values())

    def run_log(self, name: str, params: dict[str, str],
                param_sources: dict[str, str] | None = None) -> RunLog:
        """The bounded RunLog the log check's detectors read (``param_sources``: :attr:`RunLog.param_sources`)."""
        out = []
        for s in self.series.values():
            steps, values = s.arrays()
            role, layer = native_role(s.name)
            out.append(make_series(s.name, steps, values, role=role, layer=layer))
        return RunLog(format="live", source=name, series=out, params=dict(params),
                      param_sources=dict(param_sources or {}))
