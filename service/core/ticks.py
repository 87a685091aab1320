"""Progress ticks from deep inside a long step that has no progress callback of its own.

A log's readers and rules loop over lines, records and points without a ``progress`` argument;
threading one through every reader would touch each of them. Instead the check sets a
:class:`Ticker` for the current thread with :func:`ticking`, and the loops call :func:`tick` (one
thread-local look-up and a ``None`` test where nothing is set). The hottest loops (a line, a
record) test :data:`armed` before calling :func:`tick` (``if ticks.armed: tick()``): an attribute
read, where a call per line would cost a log check as the CLI runs it (no ticker) about 5% of
its read (issue 12's whole-process bench). With a ticker
set, :func:`tick` calls the check's progress callback at most every :data:`TICK_S` seconds, so a
job's cancellation or time limit (which that callback raises) is met within a fraction of a second
of work wherever the check is, not only at its next stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: The longest stretch of work between two reports (and so two chances to stop).
TICK_S = 0.25

_local = threading.local()
_arming = threading.Lock()

#: How many :func:`ticking` blocks with a callback are open, in any thread: 0 where no job runs
#: (the CLI, a library call), so the hot loops skip :func:`tick` with one attribute read.
armed = 0


class Ticker:
    """Reports ``progress(fraction, stage)`` at most every :data:`TICK_S` when called."""

    __slots__ = ("progress", "fraction", "stage", "last", "low", "high")

    def __init__(self, progress: Callable[[float, str], None], fraction: float, stage: str,
                 until: float | None = None) -> None:
        self.progress, self.fraction, self.stage = progress, fraction, stage
        self.last = time.monotonic()
        #: the block's span of the bar: :meth:`advance` moves the fraction from ``low`` to ``high``
        self.low, self.high = fraction, fraction if until is None else max(until, fraction)

    def advance(self, part: float) -> None:
        """The block is ``part`` (0..1) done: its fraction that far into its span (never back),
        reported as a tick is (newuser15 #3: a 16 MB log sat at one fraction for a minute)."""
        at = self.low + min(max(part, 0.0), 1.0) * (self.high - self.low)
        if at > self.fraction:
            self.fraction = at
        self()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= TICK_S:
            self.last = now
            self.progress(self.fraction, self.stage)  # may raise: a cancelled or overdue job stops here

    def follow(self, fraction: float, stage: str) -> None:
        """Report ``(fraction, stage)`` now, and have later ticks repeat it."""
        self.fraction, self.stage, self.last = fraction, stage, time.monotonic()
        self.progress(fraction, stage)


@contextmanager
def ticking(progress: Callable[[float, str], None] | None, fraction: float,
            stage: str, until: float | None = None) -> Iterator[Callable[[float, str], None] | None]:
    """Within the block, :func:`tick` on this thread reports ``(fraction, stage)`` to ``progress``
    (nothing where ``progress`` is None). Nested blocks restore the outer ticker on leaving.

    Yields ``progress`` wrapped (None where it is None): the block's own reports through it also
    become what later ticks repeat, so a tick never shows an earlier fraction than the last report.
    ``until``: the end of the block's span of the bar, which :func:`advance` moves through."""
    global armed
    outer = getattr(_local, "ticker", None)
    ticker = Ticker(progress, fraction, stage, until) if progress is not None else None
    _local.ticker = ticker
    if ticker is not None:
        with _arming:
            armed += 1
    try:
        yield ticker.follow if ticker is not None else None
    finally:
        _local.ticker = outer
        if ticker is not None:
            with _arming:
                armed -= 1


def tick() -> None:
    """A point where a long loop may be stopped: reports progress when a :func:`ticking` block
    is active on this thread and :data:`TICK_S` has passed since its last report."""
    ticker = getattr(_local, "ticker", None)
    if ticker is not None:
        ticker()


@contextmanager
def share(low: float, high: float) -> Iterator[None]:
    """Within the block, :func:`advance` moves through parts ``low`` to ``high`` (0..1) of the active
    :func:`ticking` block's span: one file of a folder's, its bytes of the folder's (a second file's
    reader advancing from 0 would otherwise find the bar at the first one's end already)."""
    ticker = getattr(_local, "ticker", None)
    if ticker is None:
        yield
        return
    outer = ticker.low, ticker.high
    span = outer[1] - outer[0]
    ticker.low, ticker.high = outer[0] + low * span, outer[0] + high * span
    try:
        yield
    finally:
        ticker.low, ticker.high = outer


def advance(part: float) -> None:
    """:func:`tick`, where the long step knows how far it is: ``part`` (0..1) of the active
    :func:`ticking` block's work done (bytes read of a file's size, rules run of the rules)."""
    ticker = getattr(_local, "ticker", None)
    if ticker is not None:
        ticker.advance(part)
