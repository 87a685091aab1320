"""Record per-layer gradient norms from a PyTorch training loop, in Gradient Health's own log
format, for when your tools only log a total norm, and (live mode) stream them to a service.

Needs only torch and the standard library (copy this one file into a project if you like; live
mode needs httpx too)::

    from gradhealth.recorder import GradientRecorder

    recorder = GradientRecorder(model, "run/gradients.jsonl", every=10)
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        recorder.step(loss=loss, optimizer=optimizer)   # after backward, before clipping / step
        optimizer.step()
    recorder.close()
    print(recorder.send("http://localhost:8000")["links"]["self"])   # or: gradhealth check run/gradients.jsonl

Live mode sends the same points to a run of a Gradient Health service while training goes on
(``GET /v1/runs/{id}`` is the current diagnosis; ``path`` may be left out)::

    recorder = GradientRecorder(model, "run/gradients.jsonl", server="http://localhost:8000",
                                run="resnet-lr3e-4", api_key=os.environ.get("GRADHEALTH_API_KEY"))

Each logged step writes JSON Lines in the long form of the native format::

    {"step": 120, "metric": "loss", "value": 3.41, "wall_time": 1718000000.0}
    {"step": 120, "metric": "grad_norm", "value": 0.27, "wall_time": 1718000000.0}
    {"step": 120, "metric": "lr", "value": 0.0006, "wall_time": 1718000000.0}
    {"step": 120, "layer": "encoder.0.weight", "kind": "grad_norm", "value": 0.013}

between a first line ``{"gradhealth_recorder": "start", "params": {...}}`` (the run's ``config``
as log params, e.g. ``max_grad_norm``) and a last one, ``{"gradhealth_recorder": "end", ...}``,
that only a clean close writes: a file without it was cut off (the log check says
``truncated_log``). A close is clean unless training stopped on an exception: one out of the
``with`` block, or the interpreter exiting on an unhandled one; then the live run is not finished
either (see :class:`HttpSink`). A refusal of the service (a deleted or finished run, a rotated
key) never stops training unless asked to: it is logged once and streaming stops
(``on_refused="raise"`` raises it in the loop as :class:`RunRefused` instead).

Overhead: on logged steps the training thread runs one fused norm over all gradients
(``torch._foreach_norm``) and detaches the loss; nothing in it waits for the device, copies,
walks the module tree or builds a record. On CUDA the norms stay on the device until the
background thread reads them, after waiting for the device (a pinned non-blocking copy with an
event per step, tried first, cost the training thread twice as much on an H200: every launch
there is some 30 microseconds of CPU). Reading the values, building records, JSON encoding,
writing and sending happen in that background thread, which takes what the training thread queued every ``flush_interval``
seconds. (Taking steps as they come, a record at a time, was tried and measured slower: the
interpreter lock then changes hands around every kernel of the training step.) On other steps
the cost is a counter. The parameter list is cached; the background thread re-reads it at most
once a second, so a parameter added, replaced, frozen or unfrozen is picked up within about a
second without the training thread paying for the check.

Nothing is lost: the queue is bounded (``buffer`` logged steps; when it is full, ``step()`` waits
for the writer instead of dropping points), and everything queued is written and flushed (and the
file fsynced) by ``close()``, on leaving a ``with`` block and at interpreter exit. In live mode the
network never holds up the writer: see :class:`HttpSink` for what happens while the service is
down or slow.

Where the points go is pluggable: the writer hands each logged step, as a :class:`Record` with a
sequence number, to every :class:`Sink` (the JSON Lines file, the service in live mode, plus any
``sinks=`` given).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import numbers
import operator
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

try:  # the package's error types; this file copied into a project alone has its own below
    from gradhealth.errors import ArgumentError, ArgumentTypeError
except ImportError:  # pragma: no cover - the package is installed wherever the tests run

    class ArgumentError(ValueError):  # type: ignore[no-redef]  # the package's, where installed
        """A bad argument (``gradhealth.errors.ArgumentError`` where the package is installed)."""

    class ArgumentTypeError(ArgumentError, TypeError):  # type: ignore[no-redef]  # as above
        """An argument of the wrong type (``gradhealth.errors.ArgumentTypeError``)."""

try:  # the local file's lock (P7 of newuser4); without fcntl (Windows) files are not locked
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms CI runs
    fcntl = None  # type: ignore[assignment]  # no fcntl module here: files are not locked

log = logging.getLogger(__name__)

# Bound once: step() calls these without attribute look-ups.
_foreach_norm = torch._foreach_norm
_is_grad_enabled = torch._C.is_grad_enabled
_set_grad_enabled = torch._C._set_grad_enabled


@dataclass(frozen=True, slots=True)
class Record:
    """One logged step, as the background writer hands it to the sinks.

    ``seq`` counts logged steps from 0 without gaps, so a sink that retries (a network one) can
    tell a duplicate from a new point. ``norms[i]`` is the L2 norm of the gradient of parameter
    ``layers[i]``; parameters without a gradient at that step are left out of both.
    ``loss_scale``: a mixed-precision ``GradScaler``'s scale at that step (None: none given); the
    norms are already divided by it (see :meth:`GradientRecorder.step`).
    """

    seq: int
    step: int
    wall_time: float
    loss: float | None
    lr: float | None
    layers: tuple[str, ...]
    norms: tuple[float, ...]
    loss_scale: float | None = None
    metrics: tuple[tuple[str, float], ...] = ()  # the caller's own (``metrics=``, :meth:`GradientRecorder.log`)
    #: written by :meth:`GradientRecorder.log`: figures only, not a training step, so neither a
    #: logged step nor one without gradients in the file's end record (newuser9 P1)
    from_log: bool = False

    @property
    def grad_norm(self) -> float:
        """Total L2 norm over the recorded parameters: sqrt(sum of squared per-layer norms)."""
        return math.sqrt(sum(map(operator.mul, self.norms, self.norms))) if self.layers else math.nan

    def rows(self) -> list[dict[str, Any]]:
        """The step's rows in the native long form, in file order."""
        rows: list[dict[str, Any]] = []
        if self.loss is not None:
            rows.append({"step": self.step, "metric": "loss", "value": self.loss,
                         "wall_time": self.wall_time})
        if self.layers:
            rows.append({"step": self.step, "metric": "grad_norm", "value": self.grad_norm,
                         "wall_time": self.wall_time})
        if self.lr is not None:
            rows.append({"step": self.step, "metric": "lr", "value": self.lr,
                         "wall_time": self.wall_time})
        if self.loss_scale is not None:
            rows.append({"step": self.step, "metric": "loss_scale", "value": self.loss_scale,
                         "wall_time": self.wall_time})
        rows += [{"step": self.step, "metric": name, "value": v, "wall_time": self.wall_time}
                 for name, v in self.metrics]
        rows += [{"step": self.step, "layer": name, "kind": "grad_norm", "value": v}
                 for name, v in zip(self.layers, self.norms, strict=True)]
        return rows


class Sink(Protocol):
    """Where records go. Called from the writer thread only, records in ``seq`` order."""

    def write(self, records: Sequence[Record]) -> None:
        """Take a batch of records (may buffer them)."""

    def flush(self) -> None:
        """Deliver whatever ``write`` buffered."""

    def close(self) -> None:
        """Flush and release; no call follows.

        A sink may also have an ``interrupted()`` method: the writer calls it just before
        ``close()`` when training stopped with an exception (an exception out of a ``with`` block,
        or the interpreter exiting on an unhandled one), so the sink can tell a cut-off run from a
        finished one (:class:`FileSink` then writes no end record; :class:`HttpSink` does not
        finish the run).
        """


# json.dumps writes non-finite floats as these (allow_nan=True, the default).
_JSON_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_float(v: float) -> str:
    r = float.__repr__(v)
    return _JSON_SPECIAL.get(r, r)


class _Encoder:
    """JSON Lines, byte for byte what ``json.dumps(row)`` gives for each of :meth:`Record.rows`.

    Encodes by hand because the writer thread shares the interpreter lock with the training loop:
    the per-layer lines of a set of names are one %-template (names escaped once, not once per
    step), filled with all the norms by one ``%`` (``%r`` of a finite float is what ``json.dumps``
    writes); a test pins the output against ``json.dumps``.
    """

    def __init__(self) -> None:
        self._layer_part: dict[str, str] = {}
        self._templates: dict[tuple[str, ...], str] = {}
        self._last: tuple[tuple[str, ...], str] = ((), "")

    def _template(self, names: tuple[str, ...]) -> str:
        last_names, template = self._last
        if names is last_names:
            return template
        found = self._templates.get(names)
        if found is None:
            if len(self._templates) > 64:  # the names change every step: keep it bounded
                self._templates.clear()
            found = self._templates[names] = "".join(
                '{"step": \x00, "layer": ' + json.dumps(n).replace("%", "%%")
                + ', "kind": "grad_norm", "value": %r}\n' for n in names)
        self._last = (names, found)
        return found

    def encode(self, record: Record) -> str:
        """The record's lines, newline-terminated."""
        step = record.step
        step_text = int.__repr__(step) if type(step) is int else json.dumps(step)
        head = '{"step": ' + step_text
        out = []
        tail = ', "wall_time": ' + _json_float(record.wall_time) + "}\n"
        if record.loss is not None:
            out.append(head + ', "metric": "loss", "value": ' + _json_float(record.loss) + tail)
        if record.layers:
            out.append(head + ', "metric": "grad_norm", "value": '
                       + _json_float(record.grad_norm) + tail)
        if record.lr is not None:
            out.append(head + ', "metric": "lr", "value": ' + _json_float(record.lr) + tail)
        if record.loss_scale is not None:
            out.append(head + ', "metric": "loss_scale", "value": ' + _json_float(record.loss_scale) + tail)
        for name, v in record.metrics:
            out.append(head + ', "metric": ' + json.dumps(name) + ', "value": ' + _json_float(v) + tail)
        norms = tuple(record.norms)
        if len(norms) != len(record.layers):
            raise ValueError("a record needs one norm per layer")
        if norms and math.isfinite(sum(norms)):  # all finite: the template, in one call
            out.append(self._template(record.layers).replace("\x00", step_text) % norms)
        else:  # NaN and infinities are written as json.dumps writes them
            parts = self._layer_part
            for name, v in zip(record.layers, norms, strict=True):
                part = parts.get(name)
                if part is None:
                    part = parts[name] = (', "layer": ' + json.dumps(name)
                                          + ', "kind": "grad_norm", "value": ')
                out.append(head + part + _json_float(v) + "}\n")
        return "".join(out)


#: Logged steps after which trained parameters that never got a gradient are named (once).
_NO_GRAD_STEPS = 5

#: The key of the recorder's own records in its file: the first line (``"start"``, with the run's
#: params) and, written by a clean ``close()`` only, the last (``"end"``). Gradient Health's log
#: reader reads the params, and reports a file that has the start record but not the end one as
#: cut off (``truncated_log``): the training script crashed or was killed before it closed.
RECORDER_KEY = "gradhealth_recorder"


def config_params(config: dict[str, Any] | None) -> dict[str, str]:
    """The log params a live run's ``config`` stands for (``clip_threshold`` is ``max_grad_norm``),
    as the service maps a run's config."""
    config = config or {}
    params = {str(k): str(v) for k, v in (config.get("params") or {}).items()}
    if config.get("clip_threshold") is not None:
        params["max_grad_norm"] = str(config["clip_threshold"])
    if config.get("num_classes") is not None:
        params["num_classes"] = str(config["num_classes"])
    return params


class FileSink(_Encoder):
    """The JSON Lines file: :meth:`encode` gives each record's lines.

    The file opens with a start record (``{"gradhealth_recorder": "start", "params": {...}}``: the
    run's ``config`` as log params, e.g. ``max_grad_norm``) and a clean :meth:`close` ends it with
    ``{"gradhealth_recorder": "end", "logged_steps": n}``; without the end record the log check
    reports the file as cut off (``truncated_log``).

    The file is locked (``flock``) while it is written: a second recorder given the same path while
    the first still writes it (two training processes started with one run name, newuser4 P7: the
    two wrote over each other's lines) writes ``<stem>.<pid>[-n]<suffix>`` next to it instead,
    with a warning; :attr:`path` is the file actually written. A file that already holds a
    recorder's log (a training script restarted after a crash) is appended to, never emptied, with a
    warning; :attr:`appended` says what it held (see :class:`Appended`). A file holding anything else
    is written beside, as a locked one is.
    """

    def __init__(self, path: str | Path, *, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.path, self._file, self.appended = _open_exclusive(Path(path))
        if self.appended is not None:
            a = self.appended
            log.warning(
                "gradhealth recorder: %s already holds a recorder's log (%d bytes, last step %s, %s)%s; "
                "this run is appended after it, nothing is overwritten. The log check reads a run whose "
                "steps start again as a run of its own (run1, run2); a resumed run continues the step "
                "axis by passing step= (recorder.appended.last_step is the file's last step); another "
                "path starts a file of its own", self.path, a.size, a.last_step,
                "closed cleanly" if a.ended else "cut off: no end record, the process crashed or was killed",
                f"; {a.dropped} bytes of its cut-off last line removed" if a.dropped else "")
        self._file.write(json.dumps({RECORDER_KEY: "start", "params": config_params(config)}) + "\n")
        self._file.flush()  # a file that holds the start record and no end record was cut off
        self._logged = 0  # training steps logged (step() calls, not log() calls)
        self._without_gradients = 0  # logged steps at which no parameter had a gradient
        self._clean = True

    def write(self, records: Sequence[Record]) -> None:
        """Append the records' lines to the file."""
        self._write_lines(records, [self.encode(r) for r in records])

    def _write_lines(self, records: Sequence[Record], texts: Sequence[str]) -> None:
        """:meth:`write`, with each record's lines already encoded by the writer thread."""
        self._file.write("".join(texts))
        # figures of log() are not training steps: counted neither as logged steps nor as steps
        # without gradients (newuser9 P1: every val_loss read as a step() before backward())
        steps = [r for r in records if not r.from_log]
        self._logged += len(steps)
        self._without_gradients += sum(1 for r in steps if not r.layers)

    def flush(self) -> None:
        """Hand buffered lines to the operating system."""
        self._file.flush()

    def interrupted(self) -> None:
        """Training stopped with an exception: :meth:`close` writes no end record."""
        self._clean = False

    def close(self) -> None:
        """Write the end record (unless :meth:`interrupted`), flush, fsync and close, so a crash
        right after loses nothing."""
        if self._file.closed:
            return
        if self._clean:
            end: dict[str, Any] = {RECORDER_KEY: "end", "logged_steps": self._logged}
            if self._without_gradients:  # step() before backward or after zero_grad (newuser5 P3)
                end["steps_without_gradients"] = self._without_gradients
            self._file.write(json.dumps(end) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


#: How much of an existing file's end is read for its last step (see :func:`_existing_log`).
_TAIL_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class Appended:
    """What a recorder's file held before this recorder appended to it (newuser8 P4: a restarted
    training script emptied the log of the run it restarted). ``last_step``: the highest step of
    the file's last 64 KiB (None: none there); ``ended``: its last record is the recorder's end
    record (the earlier recorder closed cleanly); ``dropped``: bytes of a cut-off last line (a
    process killed mid-write) removed so that the appended lines parse."""

    path: Path
    size: int
    last_step: int | float | None
    ended: bool
    dropped: int = 0


def _recorder_file(fd: int) -> bool:
    """Whether the open file ``fd`` starts with the recorder's start record."""
    head = os.pread(fd, 4096, 0).split(b"\n", 1)[0]
    try:
        first = json.loads(head)
    except ValueError:
        return False
    return isinstance(first, dict) and first.get(RECORDER_KEY) == "start"


def _existing_log(fd: int, path: Path, size: int) -> Appended:
    """The recorder's log already in ``fd`` (``size`` bytes): its last step, whether it ended, and
    a cut-off last line (no newline) removed."""
    start = max(0, size - _TAIL_BYTES)
    tail = os.pread(fd, size - start, start)
    dropped = 0
    if not tail.endswith(b"\n"):
        keep = tail.rfind(b"\n") + 1  # 0: no whole line in the tail (one line longer than 64 KiB)
        if keep or start == 0:
            dropped = len(tail) - keep
            os.ftruncate(fd, size - dropped)
            tail = tail[:keep]
        else:  # a cut-off line longer than the tail read: ended, so the next line stands apart
            os.write(fd, b"\n")
    last_step: int | float | None = None
    ended = False
    lines = tail.splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # may begin mid-line
    for i, line in enumerate(reversed(lines)):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if i == 0 and obj.get(RECORDER_KEY) == "end":
            ended = True
        step = obj.get("step")
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            last_step = step if last_step is None else max(last_step, step)
    return Appended(path, size - dropped, last_step, ended, dropped)


def _open_exclusive(path: Path) -> tuple[Path, Any, Appended | None]:
    """``path`` opened for appending and locked, or, when another recorder holds its lock or it
    holds something other than a recorder's log, the first free ``<stem>.<pid>[-n]<suffix>``
    beside it (with a warning). An existing recorder log is never emptied (newuser8 P4: a training
    script restarted after a crash lost the first process's steps): the new run is appended after
    it (what it held is returned, else None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wanted = path
    why = ""
    for attempt in range(100):
        if attempt:
            tag = f"{os.getpid()}" if attempt == 1 else f"{os.getpid()}-{attempt - 1}"
            path = wanted.with_name(f"{wanted.stem}.{tag}{wanted.suffix}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another recorder (of this process or another one)
            os.close(fd)
            why = why or "is being written by another recorder (another training process with the same path?)"
            continue
        appended = None
        try:
            size = os.fstat(fd).st_size
            if size and not _recorder_file(fd):
                os.close(fd)
                why = why or "holds something other than a gradient recorder's log"
                continue
            if size:
                appended = _existing_log(fd, path, size)
        except BaseException:
            os.close(fd)
            raise
        if path != wanted:
            log.warning("gradhealth recorder: %s %s; this one writes %s instead", wanted, why, path)
        return path, open(fd, "a", encoding="utf-8"), appended  # noqa: SIM115 - FileSink.close closes it
    raise OSError(f"{wanted}: 100 recorders write files of this name at once")


class _Params:
    """The recorded parameters, cached so that ``step()`` never walks the module tree.

    The training thread reads ``current`` (names, tensors) once a step; the writer thread calls
    :meth:`refresh`, which re-reads the model at most once a ``period`` and swaps in a new pair
    (one attribute store, so a step sees the old pair or the new one, never a mix) when a
    parameter was added, replaced, frozen or unfrozen. Holds the model weakly.
    """

    def __init__(self, model: torch.nn.Module, weights_only: bool, period: float = 1.0) -> None:
        self._model = weakref.ref(model)
        self._weights_only = weights_only
        self._period = period
        self.current = self._read(model)
        self._checked = time.monotonic()

    def _read(self, model: torch.nn.Module) -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
        pairs = [(name, p) for name, p in model.named_parameters()
                 if p.requires_grad and (not self._weights_only or p.dim() > 1)]
        return tuple(n for n, _ in pairs), tuple(p for _, p in pairs)

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._period:
            return
        self._checked = now
        model = self._model()
        if model is None:
            return
        try:
            names, tensors = self._read(model)
        except RuntimeError:  # the training thread changed a module's dict meanwhile: next time
            return
        old_names, old_tensors = self.current
        if names != old_names or any(a is not b for a, b in zip(tensors, old_tensors,
                                                                 strict=True)):
            self.current = (names, tensors)


class _Writer:
    """The background thread: drains what ``step()`` queued, turns it into records, feeds sinks.

    The training thread only appends to a deque (atomic, no lock); it takes the lock to wake the
    thread only when the queue is half full, when it is full (and then it waits for room), and to
    ask for a flush or the close.
    """

    def __init__(self, sinks: Sequence[Sink], capacity: int, interval: float,
                 on_wake: Any = None) -> None:
        self.sinks = list(sinks)
        self.capacity = capacity
        self.interval = interval
        self.on_wake = on_wake
        # With no interval the thread sleeps until woken, so wake it for every item.
        self.wake_at = 1 if interval == 0 else max(1, capacity // 2)
        self.items: collections.deque[tuple[Any, ...]] = collections.deque()
        self.cond = threading.Condition()
        self.flush_requests: list[threading.Event] = []
        self.closing = False
        self.clean = True  # False: training stopped with an exception (see Sink.close)
        self.error: BaseException | None = None
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="gradhealth-recorder", daemon=True)
        self.thread.start()

    def put(self, item: tuple[Any, ...]) -> None:
        self.items.append(item)
        if len(self.items) >= self.wake_at or self.error is not None:
            self.wake()

    def wake(self) -> None:
        """Wakes the thread; waits while the queue is full; raises the thread's error."""
        with self.cond:
            self.cond.notify()
            while len(self.items) >= self.capacity and self.thread.is_alive():
                self.cond.wait(0.1)
        self.raise_error()

    def raise_error(self) -> None:
        error = self.error
        if error is None:
            return
        if isinstance(error, RunRefused):  # what the service refused: catchable as RunRefused
            raise RunRefused(f"the gradient recorder's writer failed: {error}") from error
        raise RuntimeError(f"the gradient recorder's writer failed: {type(error).__name__}: "
                           f"{error}") from error

    def _close_sinks(self, best_effort: bool = False) -> None:
        for sink in self.sinks:
            with contextlib.suppress(*((Exception,) if best_effort else ())):
                if not self.clean:
                    interrupted = getattr(sink, "interrupted", None)
                    if interrupted is not None:
                        interrupted()
                sink.close()

    def flush(self) -> None:
        done = threading.Event()
        with self.cond:
            self.flush_requests.append(done)
            self.cond.notify()
        while not done.wait(0.1):
            if not self.thread.is_alive():
                break
        self.raise_error()

    def close(self, clean: bool = True) -> None:
        """Drain the queue and close the sinks; ``clean`` False: training stopped with an
        exception (see :meth:`Sink.close`)."""
        if os.getpid() != self.pid:
            return  # a forked child: the parent owns the thread, the sinks and the queue
        with self.cond:
            self.clean = clean
            self.closing = True
            self.cond.notify()
        self.thread.join()
        if self.error is not None:
            # Best effort: keep what did reach the sinks (the writer's error is the one to report),
            # marked as cut off: what was queued after the error was not written.
            self.clean = False
            self._close_sinks(best_effort=True)
            self.raise_error()

    def _run(self) -> None:
        requests: list[threading.Event] = []
        encoder = _Encoder()  # one encoding of each record, whatever the number of sinks
        try:
            while True:
                with self.cond:
                    if not (len(self.items) >= self.wake_at or self.closing
                            or self.flush_requests):
                        self.cond.wait(self.interval or None)
                    closing = self.closing
                    requests, self.flush_requests = self.flush_requests, []
                    # Taken after the requests: whatever was queued before a flush() is in here.
                    batch = [self.items.popleft() for _ in range(len(self.items))]
                    self.cond.notify_all()  # room for a waiting put()
                if batch:
                    records = _records(batch)
                    texts: list[str] | None = None
                    for sink in self.sinks:
                        write_lines = getattr(sink, "_write_lines", None)
                        if write_lines is None:
                            sink.write(records)
                            continue
                        if texts is None:
                            texts = [encoder.encode(r) for r in records]
                        write_lines(records, texts)
                # A batch comes at most once an interval (or when the queue is half full).
                if batch or requests or closing:
                    for sink in self.sinks:
                        sink.flush()
                for done in requests:
                    done.set()
                if closing and not self.items:
                    self._close_sinks()
                    return
                if self.on_wake is not None:
                    self.on_wake()
        except BaseException as error:  # noqa: BLE001 - handed to the training thread
            self.error = error
            with self.cond:
                self.cond.notify_all()
                requests += self.flush_requests
            for done in requests:
                done.set()


def _records(batch: list[tuple[Any, ...]]) -> list[Record]:
    """Records from what ``step()`` queued.

    Norms (and a loss) still on a CUDA device are read here, after one wait per device for the
    work queued before it (``torch.cuda.synchronize``: every stream's, so a training loop on a
    stream of its own is covered too); the training thread queued only the fused norm and never
    waits, copies or records anything for them. The wait releases the interpreter lock.
    """
    waited: set[torch.device] = set()
    for item in batch:
        values = item[4]
        if values and isinstance(values[0], torch.Tensor) and values[0].is_cuda and values[0].device not in waited:
            waited.add(values[0].device)
            torch.cuda.synchronize(values[0].device)
    return [_record(item) for item in batch]


def _record(item: tuple[Any, ...]) -> Record:
    """Builds a record from what ``step()`` queued (device values: see :func:`_records`)."""
    seq, step, wall_time, layers, values, loss, lr, scale, divide, metrics, from_log = item
    numbers: list[Any] = []
    if values and isinstance(values[0], float):  # CPU: read by step() already (_cpu_norms)
        numbers = list(values)
    elif values:  # on an accelerator: one stack (the loss with it) and one copy
        parts = list(values)
        with_loss = isinstance(loss, torch.Tensor) and loss.device == parts[0].device
        if with_loss:
            parts.append(loss.reshape(()))
        try:
            numbers = torch.stack(parts).tolist()  # promotes mixed float dtypes, exactly
        except RuntimeError:  # on several devices
            numbers = torch.stack([t.cpu() for t in parts]).tolist()
        if with_loss:
            loss = numbers.pop()
    if isinstance(loss, torch.Tensor):
        loss = float(loss)
    if isinstance(scale, torch.Tensor):  # a copy of a CUDA scaler's scale, taken at step()
        scale = float(scale)
    if divide and scale:  # the gradients carried the loss scale: the norms of the true gradients
        numbers = [x / scale for x in numbers]
    return Record(seq, step, wall_time, loss, lr, layers, tuple(numbers), scale,
                  tuple((name, float(v)) for name, v in metrics), from_log)


def _unhandled() -> BaseException | None:
    """The exception the interpreter last reported as unhandled (``sys.last_exc``), if any."""
    return getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)


def _finalize(writer: _Writer, before: int) -> None:
    """A recorder's close when ``close()`` was not called: at garbage collection or interpreter
    exit. It is not a clean close when an exception went unhandled since the recorder started
    (``before``: the id of the one reported before, held by id so that the finalizer keeps no
    traceback alive): the interpreter is exiting on it, the training script crashed or was
    interrupted."""
    last = _unhandled()
    writer.close(clean=last is None or id(last) == before)


def _norms_present(names: tuple[str, ...], grads: list[Any]) -> tuple[tuple[str, ...], Any]:
    """The slow path of ``step()``: some parameters have no gradient (or they sit on several
    devices); their names are left out."""
    keep = [i for i, g in enumerate(grads) if g is not None]
    present = [grads[i] for i in keep]
    names = tuple(names[i] for i in keep)
    if not present:
        return names, ()
    try:
        return names, _foreach_norm(present)
    except RuntimeError:  # on several devices
        return names, tuple(torch.linalg.vector_norm(g) for g in present)


def _cpu_norms(grads: list[Any], norms: Any) -> tuple[float, ...]:
    """CPU norms as floats, each that overflowed in its gradient's own dtype taken again in float64.

    A fused norm is reduced in the gradient's dtype, whose square sum overflows although every
    element is finite: float32's at a norm of about 1.8e19, float16's at 65504. Such a norm read
    Inf, and the log check called the run's finite (if exploding) gradients NaN/Inf. Those are
    taken again in float64 scaled by their largest |element| m, m ||g / m||, which no element can
    overflow (as the simulation's ``figures.rescaled_norm``; written out here so that this file
    still works copied into a project alone); an Inf or NaN element keeps the norm as it was.
    Read here, where it waits for nothing (the writer thread would read them anyway, and the
    gradients are gone by then); on an accelerator the check would wait for the device on the
    training thread, so there the fused norms stand."""
    values = tuple(map(float, norms))
    if math.isfinite(sum(values)):
        return values
    out = list(values)
    for i, (grad, value) in enumerate(zip(grads, values, strict=True)):
        if not math.isinf(value):
            continue
        m = float(torch.maximum(grad.amax(), -grad.amin()).double())  # no copy of grad for its abs()
        if math.isfinite(m) and m > 0:
            out[i] = m * float(torch.linalg.vector_norm(grad.double() / m))
    return tuple(out)


def _check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; TypeError (not an integer: a float, a bool, text) or
    ValueError naming the argument and the value."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {value!r} "
                        f"({type(value).__name__})")
    number = operator.index(value)  # type: ignore[arg-type]  # has __index__, checked above
    if number < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {number!r}")
    return number


def _check_seconds(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a finite float of seconds, >= 0 (> 0 when ``positive``) and no more than a
    thread can wait (``threading.TIMEOUT_MAX``); TypeError or ValueError naming the argument."""
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number of seconds {bound}, got {value!r} "
                        f"({type(value).__name__})")
    seconds = float(value)
    if not (math.isfinite(seconds) and (seconds > 0 if positive else seconds >= 0)
            and seconds <= threading.TIMEOUT_MAX):
        raise ArgumentError(f"{name} must be a finite number of seconds {bound}"
                         f"{f' (at most {threading.TIMEOUT_MAX:.0f})' if seconds > 0 else ''}, "
                         f"got {value!r}")
    return seconds


def _check_live(server: object, run: object, api_key: object, config: object) -> None:
    """Live mode's settings, refused here rather than retried for ``close_timeout`` on the sending
    thread (errsweep2 N10): the server an http(s) URL with a host, the run name text, the API key
    printable ASCII without spaces (an HTTP header value), the config JSON with finite numbers."""
    if not isinstance(server, str):
        raise ArgumentTypeError(f"server must be a URL (text), got {type(server).__name__}")
    if any(c.isspace() or not c.isprintable() for c in server):
        raise ArgumentError(f"server must be an http:// or https:// URL without spaces or control "
                         f"characters, got {server!r}")
    parts = urllib.parse.urlsplit(server)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as error:
        raise ArgumentError(f"server {server!r} is not a valid URL: {error}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ArgumentError(f"server must be an http:// or https:// URL with a host "
                         f"(e.g. http://127.0.0.1:8000), got {server!r}")
    if not isinstance(run, str):
        raise ArgumentTypeError(f"run must be a name (text), got {type(run).__name__}")
    if api_key is not None:
        if not isinstance(api_key, str):
            raise ArgumentTypeError(f"api_key must be text, got {type(api_key).__name__}")
        for i, c in enumerate(api_key):
            if not "!" <= c <= "~":  # the key itself is a secret: only the culprit is shown
                raise ArgumentError(f"api_key must be printable ASCII without spaces or control "
                                 f"characters (it is sent as an HTTP header); character {i + 1} "
                                 f"of {len(api_key)} is {c!r}")
    _check_config(config)


#: A run's config, as the service's RunConfig takes it (service/live/diagnose.py; kept here so that
#: this file needs only torch): any other key is refused, with or without a server (newuser5 P13:
#: a misspelt ``clip`` was dropped from the file's params without a word).
_CONFIG_KEYS = ("clip_threshold", "num_classes", "params", "thresholds")


def _check_config(config: object) -> None:
    """The run's ``config``: a dict of :data:`_CONFIG_KEYS`, JSON with finite numbers, a
    ``clip_threshold`` > 0, ``num_classes`` an integer >= 2, ``params`` and ``thresholds`` dicts.
    Checked whether or not a server is given, before the file is opened."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise ArgumentTypeError(f"config must be a dict, got {type(config).__name__}")
    try:
        json.dumps({"config": config}, allow_nan=False)
    except ValueError as error:  # NaN or an infinity
        raise ArgumentError(f"config must be JSON with finite numbers ({error}): {config!r}") from None
    except (TypeError, RecursionError) as error:
        raise ArgumentTypeError(f"config must be JSON-serialisable: {error}") from None
    unknown = [k for k in config if k not in _CONFIG_KEYS]
    if unknown:
        import difflib

        hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
            str(k), _CONFIG_KEYS, n=1, cutoff=0.5) or [c for c in _CONFIG_KEYS if c.startswith(str(k))])
            else repr(k) for k in unknown]
        raise ArgumentError(f"config has no key {', '.join(hints)}; its keys are {', '.join(_CONFIG_KEYS)} "
                            "(other hyper-parameters go in config['params'])")
    clip = config.get("clip_threshold")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not float(clip) > 0):
        raise ArgumentError(f"config['clip_threshold'] must be a number > 0 (the clipping max_norm), got {clip!r}")
    classes = config.get("num_classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int)
                                or not 2 <= classes <= 1_000_000):
        raise ArgumentError(f"config['num_classes'] must be an integer from 2 to 1000000, got {classes!r}")
    for key in ("params", "thresholds"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise ArgumentTypeError(f"config[{key!r}] must be a dict, got {type(config[key]).__name__}")


#: The names the recorder writes itself: figures of the caller's may not take them.
_OWN_METRICS = frozenset({"loss", "grad_norm", "lr", "loss_scale"})


def _check_metrics(metrics: object) -> tuple[tuple[str, Any], ...]:
    """``metrics=``/``log()``'s figures as (name, value) pairs: names non-empty text without control
    characters and not one the recorder writes; values numbers or one-element tensors (detached,
    read on the writer thread as the loss is)."""
    if metrics is None:
        return ()
    if not isinstance(metrics, Mapping):
        raise ArgumentTypeError(f"metrics must be a mapping of names to numbers, got {type(metrics).__name__}")
    out: list[tuple[str, Any]] = []
    for name, value in metrics.items():
        if not isinstance(name, str) or not name.strip() or any(ord(c) < 32 for c in name) or len(name) > 200:
            raise ArgumentError(f"metrics: a name must be text of 1-200 characters without control "
                                f"characters, got {name!r}")
        if name in _OWN_METRICS:
            raise ArgumentError(f"metrics: {name!r} is written by the recorder itself (pass the loss as "
                                "loss=, the rate as lr= or optimizer=); use another name")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or value.is_complex():
                raise ArgumentError(f"metrics[{name!r}] must be one number, got a tensor of shape "
                                    f"{tuple(value.shape)}")
            out.append((name, value.detach()))
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ArgumentTypeError(f"metrics[{name!r}] must be a number, got {value!r} ({type(value).__name__})")
        else:
            out.append((name, float(value)))
    return tuple(out)


def _check_step(step: object) -> int:
    """``step()``'s ``step``: a non-negative integer (a bool, a float or text is refused, naming it)."""
    if isinstance(step, bool) or not hasattr(type(step), "__index__"):
        raise ArgumentTypeError(f"step must be an integer (the training step's number), got {step!r} "
                                f"({type(step).__name__})")
    index = operator.index(step)  # type: ignore[arg-type]  # has __index__, checked above
    if index < 0:  # the service's points route refuses it too (newuser13 #5)
        raise ArgumentError(f"step must be a non-negative integer (the training step's number), got {index}")
    return index


def _check_lr(lr: object) -> float:
    """``step()``'s ``lr`` as a float: a real number or a one-element real tensor, not text (newuser5
    P12: ``lr='0.1'`` was taken while ``loss='abc'`` was refused)."""
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1 or lr.is_complex():
            raise ArgumentError(f"lr must be one real number, got a tensor of shape {tuple(lr.shape)} "
                                f"and dtype {lr.dtype}")
        return float(lr)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise ArgumentTypeError(f"lr must be a number, got {lr!r} ({type(lr).__name__})")
    return float(lr)


def _optimizer_lr(optimizer: object) -> float:
    """The learning rate of ``optimizer``'s first parameter group."""
    groups = getattr(optimizer, "param_groups", None)
    if not groups or not isinstance(groups[0], dict) or "lr" not in groups[0]:
        raise ArgumentTypeError(f"optimizer must be a torch.optim optimizer (its param_groups[0]['lr'] is "
                                f"recorded), got {type(optimizer).__name__}; or give lr= instead")
    return _check_lr(groups[0]["lr"])


def _check_scaler(scaler: object) -> Any:
    """A ``torch.amp.GradScaler`` (or one like it: ``get_scale()`` gives the scale)."""
    if not callable(getattr(scaler, "get_scale", None)):
        raise ArgumentTypeError(f"scaler must be a torch.amp.GradScaler (an object with get_scale()), "
                                f"got {type(scaler).__name__}")
    return scaler


def _scaler_state(scaler: Any, optimizer: object) -> tuple[float | torch.Tensor | None, bool]:
    """(the loss scale now, whether the gradients still carry it). The scale is None for a disabled
    scaler; the gradients no longer carry it once ``scaler.unscale_(optimizer)`` (or
    ``scaler.step``) ran for the optimizer this step: torch marks that optimizer's state UNSCALED
    (or STEPPED) in ``scaler._per_optimizer_states`` until ``update()``. Without ``optimizer`` any
    optimizer so marked counts. A CUDA scale is copied on the device (``update()`` changes it in
    place; the writer thread reads the copy), so nothing here waits for the device."""
    is_enabled = getattr(scaler, "is_enabled", None)
    if callable(is_enabled) and not is_enabled():
        return None, False
    states = getattr(scaler, "_per_optimizer_states", None)
    unscaled = False
    if isinstance(states, Mapping):  # a defaultdict: looked up, never added to
        picked = ([states[id(optimizer)]] if id(optimizer) in states else []) if optimizer is not None \
            else list(states.values())
        unscaled = any(getattr(state.get("stage"), "name", None) in ("UNSCALED", "STEPPED")
                       for state in picked if isinstance(state, dict))
    raw = getattr(scaler, "_scale", None)
    if isinstance(raw, torch.Tensor) and raw.numel() == 1:
        scale: float | torch.Tensor = float(raw) if raw.is_cpu else raw.detach().clone()
    else:
        got = scaler.get_scale()
        try:
            scale = float(got)
        except (TypeError, ValueError):  # (apisweep4 D12: a bare ValueError that named nothing)
            raise ArgumentTypeError(f"scaler.get_scale() must give the loss scale as a number, got {got!r}: pass "
                                    "a torch.amp.GradScaler as scaler=") from None
    return scale, not unscaled


def _check_model(model: object) -> None:
    """The recorder's ``model``: a ``torch.nn.Module`` (it is held weakly and its parameters read
    by name); a list of parameters or an optimizer is refused, saying what to pass."""
    if isinstance(model, torch.nn.Module):
        return
    if isinstance(model, torch.optim.Optimizer):
        hint = "; pass the model, and the optimizer to step(optimizer=...)"
    elif isinstance(model, (list, tuple)) or hasattr(model, "__next__"):
        hint = "; pass the module itself, not its parameters (the norms are recorded by parameter name)"
    else:
        hint = ""
    raise ArgumentTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}{hint}")


def _bad_loss(loss: object) -> Exception:
    """The error of a loss that is not one number."""
    if isinstance(loss, torch.Tensor):
        if loss.is_complex():
            return ArgumentTypeError(f"loss must be a real number, got a tensor of dtype {loss.dtype}")
        return ArgumentError(f"loss must be a scalar (a 0-d or 1-element tensor, or a number), got a "
                          f"tensor of shape {tuple(loss.shape)}")
    return ArgumentTypeError(f"loss must be a number or a 0-d or 1-element tensor, got {loss!r} "
                     f"({type(loss).__name__})")


class GradientRecorder:
    """Writes gradient norms, loss and learning rate every ``every`` steps.

    ``buffer`` is how many logged steps may wait for the writer thread before ``step()`` waits
    too; ``flush_interval`` is how many seconds at most a point waits before it reaches the file
    (0: at once). Neither changes what is written. ``sinks`` receive the same records as the file.

    Live mode: with ``server`` (a service's base URL) and ``run`` (the run's name) the points go to
    that run too (``POST /v1/runs``, then batches to ``/v1/runs/{id}/points``; a recorder started
    again under the same name re-attaches to the run while it is active). ``path`` is then
    optional. ``config`` is the run's config (e.g. the clip threshold; the file's start record
    holds it as params too); ``api_key`` goes in the
    ``X-API-Key`` header; ``finish_on_close`` marks the run finished once everything is sent
    (by the last live recorder of this process on that run, and only on a clean close);
    ``close_timeout`` bounds how long ``close()`` waits for the service; ``spill`` is the file
    that holds what the service has not taken yet when more than ``buffer`` logged steps wait
    (default: next to ``path``, else in the temporary folder). ``on_refused`` is what a refusal
    no retry fixes does (a run deleted in the web UI, a rotated API key, a run finished
    elsewhere): ``"warn"`` (the default) logs one warning, stops streaming and lets training go
    on with the file still written; ``"raise"`` raises :class:`RunRefused` from the next
    ``step()``. See :class:`HttpSink`.

    ``path`` is locked while it is written: given a path another recorder is writing, the
    recorder writes ``<stem>.<pid><suffix>`` beside it instead (see :class:`FileSink`), and
    :attr:`path` names it. An earlier recorder's log at ``path`` is appended to, never emptied
    (:attr:`appended`). ``take_over=True`` (live mode) takes the run from another process that
    still holds it (``POST /v1/runs?take_over=true``: a script restarted after a crash need not
    wait for the dead process's writer lease); that process then stops streaming.

    ``config`` is checked with or without a server (its keys are ``clip_threshold``,
    ``num_classes``, ``params`` and ``thresholds``; numbers finite). ``scaler``: a mixed-precision
    ``torch.amp.GradScaler`` whose scale is divided out of every logged step's norms (see
    :meth:`step`). A bad argument raises :class:`gradhealth.errors.ArgumentError` (a ValueError;
    :class:`~gradhealth.errors.ArgumentTypeError`, a TypeError, for a wrong type) naming it,
    before the file is opened.
    """

    def __init__(self, model: torch.nn.Module, path: str | Path | None = None, *,
                 every: int = 1, weights_only: bool = False, buffer: int = 4096,
                 flush_interval: float = 1.0, sinks: Sequence[Sink] = (),
                 server: str | None = None, run: str | None = None,
                 api_key: str | None = None, config: dict[str, Any] | None = None,
                 finish_on_close: bool = True, close_timeout: float = 30.0,
                 spill: str | Path | None = None, on_refused: str = "warn",
                 scaler: Any = None, take_over: bool = False) -> None:
        # Every setting is checked here, before a file or a thread exists: a NaN passes `< 1`
        # and would record nothing, an infinity would kill the writer thread (errsweep2 N9); a
        # bad model or config no longer leaves the file open behind its error (newuser5 P6, P13).
        _check_model(model)
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ArgumentTypeError(f"path must be a file path (str or pathlib.Path), got {path!r} "
                                    f"({type(path).__name__})")
        if scaler is not None:
            _check_scaler(scaler)
        _check_config(config)
        every = _check_int("every", every, 1)
        buffer = _check_int("buffer", buffer, 1)
        flush_interval = _check_seconds("flush_interval", flush_interval)
        close_timeout = _check_seconds("close_timeout", close_timeout)
        on_refused = _check_on_refused(on_refused)
        take_over = _check_take_over(take_over)
        if take_over and server is None:
            raise ArgumentError("take_over=True needs live mode (server= and run=)")
        if path is None and server is None:
            raise ArgumentError("give a path, a server, or both")
        if server is not None and not run:
            raise ArgumentError("live mode needs a run name: run='...'")
        if server is not None:
            _check_live(server, run, api_key, config)
        self.path = Path(path) if path is not None else None
        self.every = every
        self._params = _Params(model, weights_only)
        self._count = 0
        self._seq = 0
        self._closed = False
        # trained parameters without a gradient at every logged step so far (None: none seen yet);
        # said once, after _NO_GRAD_STEPS logged steps (they are not recorded)
        self._no_grad: set[str] | None = None
        self._said_no_grad = False
        # a logged step that records no gradient at all is said once (see _watch_no_gradient)
        self._said_no_gradient = False
        self._zero_checks = 0
        self._zero_steps = 0
        self._scaler = scaler
        self.live: HttpSink | None = None
        #: What :attr:`path` held before this recorder appended to it (None: a new file).
        self.appended: Appended | None = None
        all_sinks: list[Sink] = []
        file_sink: FileSink | None = None
        if self.path is not None:
            file_sink = FileSink(self.path, config=config)
            self.path = file_sink.path  # another one, when another recorder writes this path
            self.appended = file_sink.appended
            all_sinks.append(file_sink)
        try:
            if server is not None:
                assert run is not None
                if spill is None and self.path is not None:
                    spill = self.path.with_name(self.path.stem + ".unsent.jsonl")
                self.live = HttpSink(server, run, api_key=api_key, config=config, buffer=buffer,
                                     spill=spill, finish_on_close=finish_on_close,
                                     close_timeout=close_timeout, on_refused=on_refused,
                                     take_over=take_over)
                all_sinks.append(self.live)
            all_sinks += sinks
            self._writer = _Writer(all_sinks, buffer, flush_interval, self._params.refresh)
        except BaseException:  # no recorder: its file is not left open (nor locked) behind the error
            if file_sink is not None:
                file_sink.interrupted()
                file_sink.close()
            raise
        # Closes (and so flushes) at garbage collection or interpreter exit if close() was not
        # called; holds the writer, never the recorder or the model. At an exit on an unhandled
        # exception the close is not a clean one (see _finalize).
        self._finalizer = weakref.finalize(self, _finalize, self._writer, id(_unhandled()))

    @property
    def params(self) -> list[tuple[str, torch.Tensor]]:
        """The (name, parameter) pairs recorded now."""
        names, tensors = self._params.current
        return list(zip(names, tensors, strict=True))

    def step(self, loss: torch.Tensor | float | None = None, *, lr: float | None = None,
             optimizer: torch.optim.Optimizer | None = None, step: int | None = None,
             scaler: Any = None, metrics: Mapping[str, Any] | None = None) -> None:
        """Call once per training step, after ``backward()`` and before ``optimizer.zero_grad()``
        (and before clipping and ``optimizer.step()``, so the norms are the pre-clip ones).

        ``loss``: a number or a one-element tensor; ``lr`` a number, else read from
        ``optimizer.param_groups[0]`` (the first group's rate only); ``step`` the training step's
        number (an integer; default: the calls counted from 0); the ones ``every`` divides are
        logged. ``metrics``: more figures of this step, by name (``{"val_loss": v, "acc": a}``:
        numbers or one-element tensors), written beside the loss; :meth:`log` writes figures of a
        step that is not logged (an evaluation every epoch).

        Mixed precision: with a ``torch.amp.GradScaler`` the gradients after
        ``scaler.scale(loss).backward()`` are multiplied by the loss scale (2^16 at first), and so
        would their norms be. Give the scaler (``scaler=``, here or to the constructor) and the
        recorded norms are divided by its scale, unless ``scaler.unscale_(optimizer)`` already
        unscaled them (torch tracks that per optimizer: pass ``optimizer=`` too when several share
        the scaler); the scale is recorded too (metric ``loss_scale``). A step whose gradients
        overflowed is recorded with its Inf/NaN norms, as the scaler skips it and lowers the
        scale (which the log check reads as a skipped step, not a diverged run)."""
        if self._closed:  # whether or not this step is logged (newuser5 P12)
            raise ArgumentError("step() on a closed GradientRecorder")
        index = self._count if step is None else _check_step(step)
        self._count += 1
        if index % self.every:
            return
        wall_time = time.time()
        names, tensors = self._params.current
        grads = [p.grad for p in tensors]
        enabled = _is_grad_enabled()
        if enabled:  # no graph, even for grads made with create_graph=True
            _set_grad_enabled(False)
        norms: tuple[Any, ...]  # tensors; floats once read (CPU)
        try:
            try:
                norms = _foreach_norm(grads)  # type: ignore[arg-type]  # a None raises TypeError
                present: list[Any] = grads
                if not self._said_no_grad:
                    self._no_grad = set()
            except (TypeError, RuntimeError):  # a parameter without a gradient, or no parameter
                if not self._said_no_grad:
                    self._watch_no_grad(names, grads)
                names, norms = _norms_present(names, grads)
                present = [g for g in grads if g is not None]
            if not self._said_no_gradient:
                self._watch_no_gradient(names, norms)
            if norms and all(t.is_cpu for t in norms):  # read now: nothing to wait for
                norms = _cpu_norms(present, norms)
            # The loss detached: a reference to its values, not to the graph or the gradients.
            # On an accelerator the norms and the loss stay there, queued: the writer thread
            # reads them (see _records), so this thread never waits for the device.
            # Checked here, not on the writer thread: a loss of several values is the caller's
            # error (numel and is_complex read metadata only; nothing waits for the device).
            loss_out: object
            if isinstance(loss, torch.Tensor):
                if loss.numel() != 1 or loss.is_complex():
                    raise _bad_loss(loss)
                loss_out = loss.detach()
            elif loss is None:
                loss_out = None
            else:
                if isinstance(loss, (str, bytes, bytearray, complex)):
                    raise _bad_loss(loss)
                try:
                    loss_out = float(loss)
                except (TypeError, ValueError):
                    raise _bad_loss(loss) from None
            scaler = self._scaler if scaler is None else _check_scaler(scaler)
            scale, divide = _scaler_state(scaler, optimizer) if scaler is not None else (None, False)
        finally:
            if enabled:
                _set_grad_enabled(True)
        if lr is None and optimizer is not None:
            lr = _optimizer_lr(optimizer)
        elif lr is not None and type(lr) is not float:
            lr = _check_lr(lr)  # an int or a tensor, here rather than on the writer thread
        writer = self._writer
        items = writer.items
        items.append((self._seq, index, wall_time, names, norms, loss_out, lr, scale, divide,
                      _check_metrics(metrics), False))
        self._seq += 1
        if len(items) >= writer.wake_at or writer.error is not None:
            writer.wake()

    def log(self, metrics: Mapping[str, Any], *, step: int | None = None) -> None:
        """Write figures of your own at ``step`` (default: the last step() call's), whether or not
        ``every`` logs that step: a validation loss or accuracy from an evaluation, a loss scale,
        a reward. Names and values as ``step(metrics=...)`` takes them; the log check reads
        ``val_loss`` as the validation loss (``validation_divergence``), ``*_acc`` as accuracies,
        and so on, as in any log."""
        if self._closed:
            raise ArgumentError("log() on a closed GradientRecorder")
        index = max(self._count - 1, 0) if step is None else _check_step(step)
        values = _check_metrics(metrics)
        if not values:
            return
        self._writer.put((self._seq, index, time.time(), (), (), None, None, None, False, values, True))
        self._seq += 1

    def _watch_no_gradient(self, names: tuple[str, ...], norms: Any) -> None:
        """Say once (a RuntimeWarning) when a logged step records no gradient at all: no trained
        parameter had one (``step()`` before ``backward()``, or after ``zero_grad()``, which sets
        them to None), or every one was exactly zero at each of the first :data:`_NO_GRAD_STEPS`
        logged steps (after ``zero_grad(set_to_none=False)``). The file then holds only the loss
        and the rate, and nothing said why (newuser5 P3: a loop calling ``step()`` last)."""
        if not names:
            self._said_no_gradient = True
            if not self._params.current[0]:
                why = ("the model has no parameter that requires a gradient (no weights, or all "
                       "frozen), so only the loss and the learning rate are recorded")
            else:
                why = ("no parameter had a gradient at this logged step: step() ran before "
                       "loss.backward(), or after optimizer.zero_grad() cleared them, so no "
                       "gradient norm is recorded")
            warnings.warn(f"GradientRecorder: {why}. Call recorder.step() after loss.backward() "
                          "and before optimizer.zero_grad() (and optimizer.step()).",
                          RuntimeWarning, stacklevel=3)
            return
        if self._zero_checks >= _NO_GRAD_STEPS:
            self._said_no_gradient = True  # the early steps had gradients: nothing more to watch
            return
        self._zero_checks += 1
        # The first few logged steps only: one read of the norms (a wait on an accelerator).
        try:
            zero = not bool(torch.stack(list(norms)).any())
        except RuntimeError:  # on several devices
            zero = not any(bool(t) for t in norms)
        self._zero_steps += zero
        if self._zero_checks == _NO_GRAD_STEPS and self._zero_steps == _NO_GRAD_STEPS:
            self._said_no_gradient = True
            warnings.warn(
                f"GradientRecorder: every gradient was exactly zero at each of the first {_NO_GRAD_STEPS} "
                "logged steps: step() runs after optimizer.zero_grad(set_to_none=False) cleared them? "
                "Call recorder.step() after loss.backward() and before optimizer.zero_grad().",
                RuntimeWarning, stacklevel=3)

    def _watch_no_grad(self, names: tuple[str, ...], grads: list[Any]) -> None:
        """Say once (a RuntimeWarning) which trained parameters got no gradient at any of the first
        :data:`_NO_GRAD_STEPS` logged steps: they are not recorded, so a branch cut off from the
        loss (``.detach()``, ``torch.no_grad``) or left out of the forward would go unseen in the
        log (livesweep: a detached encoder)."""
        missing = {n for n, g in zip(names, grads, strict=True) if g is None}
        self._no_grad = missing if self._no_grad is None else self._no_grad & missing
        if self._seq + 1 < _NO_GRAD_STEPS or not self._no_grad or len(self._no_grad) == len(names):
            return  # (none at all: step() before backward or after zero_grad(set_to_none=True))
        self._said_no_grad = True
        shown = sorted(self._no_grad)
        warnings.warn(
            f"GradientRecorder: {len(shown)} trained parameter(s) got no gradient at any of the first "
            f"{_NO_GRAD_STEPS} logged steps ({', '.join(shown[:5])}{' ...' if len(shown) > 5 else ''}); "
            "they are not recorded. Cut off from the loss (.detach(), torch.no_grad) or unused in forward? "
            "Freeze them (requires_grad_(False)) if that is meant.", RuntimeWarning, stacklevel=3)

    def flush(self) -> None:
        """Wait until everything recorded so far is written and flushed (in live mode: queued
        for sending; :meth:`HttpSink.wait_sent` waits for the service)."""
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        """Write everything still queued, flush, fsync and close the file (with its end record);
        in live mode send what is left (for at most ``close_timeout`` seconds) and finish the run
        (idempotent)."""
        self._close(clean=True)

    def _close(self, clean: bool) -> None:
        self._closed = True
        if self._finalizer.detach() is not None:  # the first close only
            self._writer.close(clean)

    def __enter__(self) -> GradientRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # An exception out of the block stopped training: the file gets no end record and the
        # live run is left unfinished (see close()).
        self._close(clean=exc_type is None)

    def diagnose(self, *, settings: Any = None) -> Any:  # noqa: ANN401 - the package's Settings and Diagnosis
        """The log check of what this recorder has written so far, in this process (no service):
        the same :class:`~gradhealth.core.document.Diagnosis` as ``gradhealth check`` of its file,
        except that while the recorder is open the run is in progress, so its missing end record is
        not reported as a cut-off file. Call it every N steps to act on the findings in the
        training loop (stop on an error, lower the learning rate). ``settings``: a
        ``gradhealth.settings.Settings`` (thresholds, limits); default the environment's.
        :class:`ArgumentError` for a recorder without a file (live mode only)."""
        if self.path is None:
            raise ArgumentError("diagnose() reads the recorder's file: this recorder has no path (live mode "
                                "only: GET /v1/runs/{id} has the run's diagnosis)")
        from gradhealth.logs.check import diagnose as diagnose_run  # the package's log check
        from gradhealth.logs.load import read_log
        from gradhealth.settings import Settings, get_settings

        if settings is None:
            settings = get_settings()
        elif not isinstance(settings, Settings):  # (apisweep4 D12: an AttributeError)
            raise ArgumentTypeError(f"settings must be a gradhealth.settings.Settings, got {type(settings).__name__}")
        in_progress = not self._closed
        self.flush()
        if not self._seq:  # (apisweep4 D12: "empty.jsonl is not in the native format")
            raise ArgumentError("diagnose(): nothing recorded yet; call it after recorder.step() has logged a step")
        run = read_log(self.path, format="native", limits=settings.read_limits())
        if in_progress:  # (newuser5 P4: every check during training said truncated_log)
            run.warnings = [w for w in run.warnings
                            if not (w.code == "truncated_log" and "no end record" in w.message)]
        return diagnose_run(run, settings.log_thresholds)

    def send(self, server: str, *, api_key: str | None = None, timeout: float = 60.0,
             wait: float = 0.0) -> dict[str, Any]:
        """Upload the log to a Gradient Health service (``POST /v1/checks/logs``); returns the job
        resource as the service answers the upload: ``queued`` (the check runs on its workers; poll
        ``GET /v1/jobs/{id}`` for the ``result``), or, with ``wait`` seconds (the endpoint's
        ``?wait=``), finished when the check is done within them. ``timeout`` bounds the request,
        and is raised to ``wait`` + 30 s when shorter."""
        if self.path is None:
            raise ArgumentError("send() uploads the file: this recorder has no path")
        if not (isinstance(wait, int | float) and not isinstance(wait, bool) and math.isfinite(wait) and wait >= 0):
            raise ArgumentError(f"send(wait=...) takes seconds >= 0, not {wait!r}")
        self.close()
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{self.path.name}\"\r\n"
                "Content-Type: application/x-ndjson\r\n\r\n").encode() + self.path.read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            server.rstrip("/") + "/v1/checks/logs?format=native" + (f"&wait={wait:g}" if wait else ""),
            data=body, method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                     **({"X-API-Key": api_key} if api_key else {})})
        with urllib.request.urlopen(request, timeout=max(timeout, wait + 30.0)) as response:  # noqa: S310 - the user's own server
            return json.loads(response.read())


class RunRefused(RuntimeError):
    """The service refused the run or its points in a way no retry fixes (a bad key, a deleted
    or finished run, a run over its size limit). ``status`` is the HTTP status (None: no answer
    came, the request could not be sent)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _BatchTooLarge(RunRefused):
    """A 413, or the service's 422 for a batch over ``GRADHEALTH_RUN_MAX_BATCH_POINTS``: the same
    points in smaller batches are taken. ``limit``: the service's limit, when its answer says it."""

    def __init__(self, message: str, status: int, limit: int | None) -> None:
        super().__init__(message, status)
        self.limit = limit


# The service's 422 for a batch over its limit: "more than 500 points in one batch
# (GRADHEALTH_RUN_MAX_BATCH_POINTS)" (service/live/points.py; newuser4 P2).
_BATCH_LIMIT = re.compile(r"more than ([\d,]+) points in one batch")
_RUN_TOO_LARGE = re.compile(r"run[-_]too[-_]large")  # the service's 413 for the run's total


def _refusal_reason(error: BaseException) -> str:
    """What a refusal means for the run, in words (the log line of ``on_refused="warn"``)."""
    status = getattr(error, "status", None)
    if status == 404:
        return ("the run no longer exists on the service (deleted in the web UI or by DELETE "
                "/v1/runs/{id}, or the API key no longer sees it)")
    if status in (401, 403):
        return "the service refused the API key (rotated or revoked?)"
    if status == 409 and _TAKEN_OVER.search(str(error)):
        return ("another process took the run over (a recorder of the same run name, started with "
                "the run's name while this one sent nothing for the service's writer lease, or with "
                "?take_over=true)")
    if status == 409:
        return ("the run is finished on the service (by POST /v1/runs/{id}/finish, or by another "
                "recorder writing the same run name)")
    return "the service refused the points"


def _free_spill(path: Path) -> Path:
    """``path``, or where an earlier process left unsent steps in it (a crashed or timed-out run of
    the same script), the first free ``<name>.<n>.jsonl`` beside it: those steps are never
    overwritten (newuser8 P4)."""
    wanted = path
    n = 0
    while path.exists() and path.stat().st_size > 0:
        n += 1
        path = wanted.with_name(f"{wanted.stem}.{n}{wanted.suffix}")
    if path != wanted:
        log.warning("gradhealth recorder: %s holds logged steps an earlier recorder could not send "
                    "(POST /v1/runs/{id}/points takes it as application/x-ndjson); this one spills "
                    "to %s", wanted, path)
    return path


_ON_REFUSED = ("warn", "raise")


def _check_take_over(value: object) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"take_over must be True or False, got {value!r}")
    return value


def _check_on_refused(value: object) -> str:
    if value not in _ON_REFUSED:
        raise ArgumentError(f"on_refused must be 'warn' (log, stop streaming, training goes on) or "
                         f"'raise' (RunRefused from the next step()), got {value!r}")
    return str(value)


# Live sinks of this process attached to each run, by (server, API key, run name): two recorders
# of one process writing one run finish it when the last of them closes, not the first.
_ATTACHED: collections.Counter[tuple[str, str | None, str]] = collections.Counter()
_ATTACHED_LOCK = threading.Lock()

# Statuses worth retrying: the service is restarting, overloaded or rate limiting (and any 5xx:
# see _retryable). Any other answer that is not a 2xx is a refusal (RunRefused).
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _retryable(status: int) -> bool:
    return status in _RETRY_STATUS or 500 <= status < 600


_NONCE = uuid.uuid4().hex[:16]


def _writer_id() -> str:
    """This process's id as a run's writer (X-Gradhealth-Writer): one per process, so that the
    recorders of one process share their run, while a forked or second process is told apart from
    the process writing the run (newuser4 P7)."""
    return f"{_NONCE}-{os.getpid()}"


_RUN_IN_USE = re.compile(r"run[-_]in[-_]use")
_TAKEN_OVER = re.compile(r"run[-_]taken[-_]over")


def _in_use_ended(words: str, url: str, answer: Any) -> str:
    """How a run the service refused as in use (409 run_in_use, its ``words``) came to take this
    process's request at ``url`` (its ``answer``): the run it names re-attached (the other writer's
    lease ran out, or take_over), a new run of the name (the other writer finished it), or, for
    points, the run taking them again."""
    held = re.search(r"\brun ([0-9a-f]{32})\b", words)
    if url == "/v1/runs" and isinstance(answer, dict) and answer.get("id"):
        if held is not None and str(answer["id"]) == held.group(1):
            return f"re-attached to run {answer['id']} (the other writer's lease ran out or it was taken over)"
        return f"went on as a new run {answer['id']} of that name (the other writer's run had finished)"
    return "the run takes this process's points again"


def _in_use(status: int, text: str) -> bool:
    """The service's 409 for a run name another live process writes: waited out (that process
    may have died: after the writer lease a restart re-attaches), not a refusal."""
    return status == 409 and _RUN_IN_USE.search(text) is not None


class HttpSink:
    """Live mode's sink: sends each logged step's rows to a run of a Gradient Health service.

    ``write()`` runs on the recorder's writer thread and only encodes the rows and queues them;
    a thread of its own sends them, so neither the training step nor the file waits on the
    network. At most ``buffer`` logged steps wait in memory; past that they are appended to the
    ``spill`` file (JSON Lines, the same rows as the recorder's file) and read back in order once
    the service has taken what came before, so a long outage costs disk, never points or the
    step's time. Nothing is dropped.

    Each batch stays queued until the service acknowledges it (a 2xx answer); while the service
    is down, slow or answering 408/429/5xx the same batch is sent again after an exponential
    backoff with jitter (``backoff`` = first delay, cap; ``Retry-After`` respected). The service
    keeps one point per (step, metric), so a batch sent again after a lost answer adds nothing
    twice, and a restarted service loses nothing it acknowledged. ``sent`` counts acknowledged
    logged steps and ``last_seq`` is the highest acknowledged :attr:`Record.seq`.

    ``close()`` sends what is left for at most ``close_timeout`` seconds, then finishes the run
    (``finish_on_close``) unless another live sink of this process still writes to the same run
    (same server, key and name: the last of them to close finishes it) or training stopped with an
    exception (:meth:`interrupted`: the run is left active, so a recorder started again under the
    same name resumes it). What it could not send is left in ``unsent_path`` (the spill file,
    JSON Lines: ``gradhealth check`` reads it, and ``POST /v1/runs/{id}/points`` takes it as
    ``application/x-ndjson``) and logged as a warning. A batch over the service's size limit (a
    413, or the 422 of ``GRADHEALTH_RUN_MAX_BATCH_POINTS``) is sent again in smaller batches (the
    limit the answer names, else halves, down to one point), and later batches keep to it.

    A refusal no retry fixes (a 4xx other than 408/429: 401/403 a rotated key, 404 a deleted run,
    409 a finished run, 422), or a request that cannot succeed however often it is sent (a URL
    httpx cannot use, a header it cannot send, a body it cannot encode), is a monitoring-side
    problem, and monitoring never stops training by default (``on_refused="warn"``): one warning
    names the reason, streaming stops (:attr:`refused` holds the refusal), the recorder's file
    goes on, and what was not sent (with every later step) is kept in the spill file, which
    ``close()`` leaves as ``unsent_path`` without raising. ``on_refused="raise"`` raises it from
    the next ``step()`` as :class:`RunRefused`, and again from ``close()``. A 404 or 409 to the
    final ``/finish`` (another process finished or deleted the run) is logged, never raised.

    Only a failure to reach the service (connection refused or reset, a timeout, the connection
    closed mid-answer) and the statuses above are retried; the first failure of a series is logged
    as one warning (with the backlog and the spill file), the recovery as one info line. The
    server URL, the key and the config are checked when the sink is made
    (``ValueError``/``TypeError``).

    After ``heartbeat`` seconds (20; 0: never) without an answer from the service, the sink says
    the process is alive (``POST /v1/runs/{id}/heartbeat``): the service's writer lease
    (``GRADHEALTH_RUN_WRITER_LEASE_S``, 60 s) then counts from it, so a training step slower than
    the lease does not let another process take the run over.
    """

    def __init__(self, server: str, run: str, *, api_key: str | None = None,
                 config: dict[str, Any] | None = None, buffer: int = 4096,
                 spill: str | Path | None = None, batch_points: int = 5000,
                 timeout: float = 10.0, close_timeout: float = 30.0,
                 finish_on_close: bool = True, backoff: tuple[float, float] = (0.25, 30.0),
                 on_refused: str = "warn", heartbeat: float = 20.0,
                 take_over: bool = False) -> None:
        import httpx  # only live mode needs it

        from gradhealth.client import retry_after  # seconds or an HTTP date, as the client reads it

        self._retry_after = retry_after
        self.on_refused = _check_on_refused(on_refused)
        self.take_over = _check_take_over(take_over)

        buffer = _check_int("buffer", buffer, 1)
        batch_points = _check_int("batch_points", batch_points, 1)
        timeout = _check_seconds("timeout", timeout, positive=True)
        close_timeout = _check_seconds("close_timeout", close_timeout)
        self.heartbeat = _check_seconds("heartbeat", heartbeat)
        if not (isinstance(backoff, tuple) and len(backoff) == 2):
            raise ArgumentTypeError(f"backoff must be a (first delay, cap) pair of seconds, got {backoff!r}")
        backoff = (_check_seconds("backoff[0]", backoff[0]), _check_seconds("backoff[1]", backoff[1]))
        _check_live(server, run, api_key, config)
        self._httpx = httpx
        self.server = server.rstrip("/")
        self.run = run
        self.config = dict(config or {})
        self.buffer = buffer
        self.batch_points = batch_points
        self.close_timeout = close_timeout
        self.finish_on_close = finish_on_close
        self.backoff = backoff
        if spill is None:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run)[:60]
            spill = Path(tempfile.gettempdir()) / (
                f"gradhealth-{safe}-{os.getpid()}-{uuid.uuid4().hex[:8]}.unsent.jsonl")
        self.spill_path = _free_spill(Path(spill))
        self.run_id: str | None = None
        self.sent = 0
        self.last_seq = -1
        self.retries = 0
        #: Points the service kept another value for (``conflicts`` in its answers), in all.
        self.conflicts = 0
        self.spilled = 0  # logged steps that went through the spill file, in all
        self.finished = False
        self.error: BaseException | None = None  # on_refused="raise": raised by write(), close()
        self.refused: BaseException | None = None  # on_refused="warn": logged, streaming stopped
        self._failing_since: float | None = None  # the first failed try of the current outage
        self._last_failure: object = None  # why the last try failed (None: it did not)
        # (the service's words, seconds it asked to wait, when) of the last 409 run_in_use: another
        # process is the run's writer (newuser8 P5: close() said "did not answer in time")
        self._in_use: tuple[str, float, float] | None = None
        self.unsent_path: Path | None = None
        self.clean = True
        self._attached: tuple[str, str | None, str] | None = None
        self._encoder = _Encoder()
        # (seq, rows as JSON Lines, line count) in seq order; the head is the batch in flight.
        self._mem: collections.deque[tuple[int, str, int]] = collections.deque()
        # (seq, line count) of each logged step in the spill file not yet read back, in order.
        self._spill_index: collections.deque[tuple[int, int]] = collections.deque()
        self._spill_w: Any = None
        self._spill_r: Any = None
        self._cond = threading.Condition()
        self._closing = False
        self._closed = False
        self._deadline = math.inf
        self._nudge = threading.Event()  # cuts a backoff short when close() starts
        self._request_timeout = timeout
        self._last_answer = time.monotonic()  # the service's last 2xx answer (heartbeats count from it)
        headers = {"X-Gradhealth-Writer": _writer_id()}
        if api_key:
            headers["X-API-Key"] = api_key
        self._client = httpx.Client(base_url=self.server, timeout=timeout, headers=headers)
        self._thread = threading.Thread(target=self._run, name="gradhealth-recorder-live",
                                        daemon=True)
        self._attached = (self.server, api_key, run)
        with _ATTACHED_LOCK:
            _ATTACHED[self._attached] += 1
        self._thread.start()

    # -- the writer thread's side ------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        """Queue the records for sending (memory, or the spill file when memory is full)."""
        self._write_lines(records, [self._encoder.encode(r) for r in records])

    def _write_lines(self, records: Sequence[Record], texts: Sequence[str]) -> None:
        """:meth:`write`, with each record's lines already encoded by the recorder's writer."""
        encoded = [(r.seq, text, text.count("\n")) for r, text in zip(records, texts, strict=True)
                   if text]
        with self._cond:
            for item in encoded:
                # Once something is spilled, later steps follow it there: the order is kept.
                if self._spill_index or len(self._mem) >= self.buffer:
                    self._spill(item)
                else:
                    self._mem.append(item)
            self._cond.notify_all()
        if self.error is not None:
            raise RunRefused(f"{self.error} (the points not sent are kept in {self.spill_path})") \
                from self.error

    def flush(self) -> None:
        """Nothing to wait for: the sending thread sends as soon as it can."""
        if self._spill_w is not None:
            with self._cond:
                if self._spill_w is not None:
                    self._spill_w.flush()

    def wait_sent(self, seq: int, timeout: float) -> bool:
        """Wait until the service acknowledged the logged step ``seq`` (and all before)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.last_seq < seq and self.error is None and self.refused is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return self.last_seq >= seq

    def interrupted(self) -> None:
        """Training stopped with an exception: :meth:`close` sends what is left but leaves the
        run active (not finished, so not taken for a completed run)."""
        self.clean = False

    def _leave(self) -> bool:
        """Detach from the run (once); True when no other live sink of this process is attached."""
        with _ATTACHED_LOCK:
            key, self._attached = self._attached, None
            if key is None:
                return False
            _ATTACHED[key] -= 1
            if _ATTACHED[key] > 0:
                return False
            del _ATTACHED[key]
            return True

    def close(self) -> None:
        """Send what is left for at most ``close_timeout`` seconds, finish the run (see the
        class), keep what could not be sent in ``unsent_path``."""
        with self._cond:
            if self._closed:
                return
            self._closed = self._closing = True
            self._deadline = time.monotonic() + self.close_timeout
            self._cond.notify_all()
        self._nudge.set()
        self._thread.join(min(threading.TIMEOUT_MAX,
                              self.close_timeout + 2 * self._request_timeout + 1))
        self._leave()  # if the sending thread did not
        with self._cond:
            if self._mem or self._spill_index:
                self._keep_unsent()
            else:
                self._drop_spill()
        self._client.close()
        if self.unsent_path is not None:
            # After a refusal its warning said so already: the file's name is worth an info line.
            log.log(logging.INFO if self.refused is not None else logging.WARNING,
                    "gradhealth recorder: %s could not be sent to %s run %r (%s); they are "
                    "kept in %s", "some logged steps", self.server, self.run,
                    self.error or self.refused or self._unsent_reason(), self.unsent_path)
        if (not self.clean and self.finish_on_close and self.run_id is not None
                and self.error is None and self.refused is None):
            # (Not after a refusal: a deleted run is not "left active", newuser4 P1.)
            log.warning("gradhealth recorder: training stopped with an exception; %s run %r is "
                        "left active, not finished (a recorder started again under that name "
                        "resumes it; POST /v1/runs/%s/finish finishes it)", self.server, self.run,
                        self.run_id)
        if isinstance(self.error, RunRefused):
            raise self.error
        if self.error is not None:  # not transient either (those are retried): no retry fixes it
            raise RunRefused(f"{type(self.error).__name__}: {self.error} (the points not sent are "
                             f"kept in {self.unsent_path or self.spill_path})") from self.error

    def _unsent_reason(self) -> str:
        """Why ``close()`` ran out of time: the service's refusal of the run as in use by another
        writer, or no answer (with the last failure)."""
        if self._in_use is not None and self._last_failure is not None:
            words, wait, when = self._in_use
            left = max(0.0, wait - (time.monotonic() - when))
            return (f"the service refused the run: another process is its writer (409 run_in_use: "
                    f"{words}); close_timeout={self.close_timeout:g} s ended first, the other "
                    f"writer's lease has about {left:.0f} s left. Pass a close_timeout longer than "
                    f"that to wait it out, take_over=True to take the run at once (the other process, "
                    f"if alive, then stops streaming), or another run name")
        if self._last_failure is not None:
            return f"the service did not answer in time; the last try: {self._last_failure}"
        return "the service did not answer in time"

    # -- the spill file (the lock held) -------------------------------------------------------

    def _spill(self, item: tuple[int, str, int]) -> None:
        if self._spill_w is None:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            self._spill_w = self.spill_path.open("w", encoding="utf-8")
            self._spill_r = self.spill_path.open("r", encoding="utf-8")
        seq, text, lines = item
        self._spill_w.write(text)
        self._spill_index.append((seq, lines))
        self.spilled += 1

    def _load(self) -> None:
        """Reads spilled steps back into memory (memory is empty)."""
        self._spill_w.flush()
        while self._spill_index and len(self._mem) < self.buffer:
            seq, lines = self._spill_index.popleft()
            self._mem.append((seq, "".join(self._spill_r.readline() for _ in range(lines)), lines))
        if not self._spill_index:
            self._drop_spill()

    def _drop_spill(self) -> None:
        for f in (self._spill_w, self._spill_r):
            if f is not None:
                f.close()
        if self._spill_w is not None:
            self.spill_path.unlink(missing_ok=True)
        self._spill_w = self._spill_r = None

    def _keep_unsent(self) -> None:
        """Everything not acknowledged, in order, into the spill file (fsynced)."""
        part = self.spill_path.with_name(self.spill_path.name + ".part")
        with part.open("w", encoding="utf-8") as out:
            out.write("".join(text for _, text, _ in self._mem))
            if self._spill_w is not None:
                self._spill_w.flush()
                shutil.copyfileobj(self._spill_r, out)  # the spilled lines not read back yet
            out.flush()
            os.fsync(out.fileno())
        for f in (self._spill_w, self._spill_r):
            if f is not None:
                f.close()
        self._spill_w = self._spill_r = None
        os.replace(part, self.spill_path)
        self.unsent_path = self.spill_path

    # -- the sending thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._stream()
        except Exception as error:
            if self.on_refused == "raise":
                self.error = error
            else:
                self._refuse(error)
            with self._cond:
                self._cond.notify_all()
        except BaseException as error:  # noqa: BLE001 - reported by write() and close()
            self.error = error
            with self._cond:
                self._cond.notify_all()

    def _refuse(self, error: BaseException) -> None:
        """``on_refused="warn"``: say why once, stop streaming; training and the file go on."""
        self.refused = error
        self._leave()
        log.warning("gradhealth recorder: stopped streaming to %s run %r: %s (%s: %s). Training "
                    "goes on and the recorder's file is still written; the logged steps not sent "
                    "are kept in %s (pass on_refused='raise' to stop training instead)",
                    self.server, self.run, _refusal_reason(error), type(error).__name__,
                    str(error)[:300], self.spill_path)

    def _stream(self) -> None:
        """The sending loop, then the finish (see the class)."""
        while True:
            with self._cond:
                while not (self._mem or self._spill_index or self._closing):
                    due = self._heartbeat_due()
                    if due is not None and due <= 0:
                        break
                    self._cond.wait(due)
                idle = not (self._mem or self._spill_index or self._closing)
            if idle:
                self._beat()
                continue
            with self._cond:
                if not self._mem and self._spill_index:
                    self._load()
                if not self._mem:
                    break  # closing, and everything sent
                batch: list[tuple[int, str, int]] = []
                lines = 0
                for item in self._mem:
                    if batch and lines + item[2] > self.batch_points:
                        break
                    batch.append(item)
                    lines += item[2]
            if not self._send(batch):
                return  # close() gave up waiting
            with self._cond:
                for _ in batch:
                    self._mem.popleft()
                self.sent += len(batch)
                self.last_seq = batch[-1][0]
                self._cond.notify_all()
        last = self._leave()
        if self.finish_on_close and self.clean and last and self.run_id is not None:
            try:
                self.finished = self._call("POST",
                                           f"/v1/runs/{self.run_id}/finish") is not None
            except RunRefused as error:
                if error.status not in (404, 409):
                    raise
                # Finished or deleted meanwhile (another process on the same run name,
                # newuser4 P7): everything was sent; nothing to stop a script for.
                log.warning("gradhealth recorder: could not finish %s run %r: %s (%s)",
                            self.server, self.run, _refusal_reason(error), error)

    def _heartbeat_due(self) -> float | None:
        """Seconds until a heartbeat is due (<= 0: now); None while none is sent (off, no run yet)."""
        if self.heartbeat <= 0 or self.run_id is None:
            return None
        return self._last_answer + self.heartbeat - time.monotonic()

    def _beat(self) -> None:
        """Say this process is alive on the run, so a training step slower than the service's writer
        lease does not let another process take the run (``POST /v1/runs/{id}/heartbeat``). A
        service from before heartbeats answers 404: heartbeats stop; a deleted run's 404 is left
        to the next batch to find."""
        try:
            self._call("POST", f"/v1/runs/{self.run_id}/heartbeat")
        except RunRefused as error:
            if error.status not in (404, 405):
                raise
            log.debug("gradhealth recorder: %s takes no heartbeats (%s); none sent", self.server, error)
            self.heartbeat = 0.0

    def _send(self, batch: list[tuple[int, str, int]]) -> bool:
        if self.run_id is None:
            run = self._call("POST", "/v1/runs", json={"name": self.run, "config": self.config},
                             params={"take_over": "true"} if self.take_over else None)
            if run is None:
                return False
            self.run_id = str(run["id"])
        lines = "".join(text for _, text, _ in batch).splitlines(keepends=True)
        # One step with more rows than a batch may carry goes in several requests.
        start = 0
        while start < len(lines):
            size = self.batch_points
            body = "".join(lines[start:start + size]).encode()
            try:
                answer = self._call("POST", f"/v1/runs/{self.run_id}/points", content=body,
                                    headers={"Content-Type": "application/x-ndjson"})
            except _BatchTooLarge as error:
                size = min(size, len(lines) - start)
                if size <= 1:
                    raise
                # The service takes fewer points a batch (newuser4 P2: a limit of 500 below the
                # 5000 here killed training): its limit when the answer names it, else halves.
                # The same points again, in smaller batches; the service keeps one point per
                # (step, metric), so nothing already taken counts twice.
                limit = error.limit if error.limit is not None and error.limit < size else 0
                self.batch_points = max(1, limit or size // 2)
                log.info("gradhealth recorder: %s refused a batch of %d points as too large; "
                         "sending batches of at most %d", self.server, size, self.batch_points)
                continue
            if answer is None:
                return False
            self._conflicted(answer)
            start += size
        return True

    def _conflicted(self, answer: Any) -> None:
        """Count the points the service kept another value for; warn at the first (newuser7: a
        script restarted from step 0 under the same run name lost its new early points silently)."""
        count = answer.get("conflicts") if isinstance(answer, dict) else None
        if not isinstance(count, int) or count <= 0:
            return
        if self.conflicts == 0:
            first = (answer.get("conflicting") or [{}])[0]
            log.warning("gradhealth recorder: run %r (%s) already holds %d of these points with other "
                        "values, e.g. %s at step %s: %s kept, %s sent; the service keeps the first value "
                        "of each (step, metric). A script restarted from step 0 should start a new run "
                        "(another run name) or resume from the run's last step; this is said once",
                        self.run, self.run_id, count, first.get("metric"), first.get("step"),
                        first.get("kept"), first.get("sent"))
        self.conflicts += count

    def _backlog(self) -> int:
        """Logged steps not acknowledged yet (an estimate: read without the lock)."""
        return len(self._mem) + len(self._spill_index)

    def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any] | None:
        """One request, retried with backoff until it succeeds; None when close() gave up."""
        first, cap = self.backoff
        attempt = 0
        while True:
            retry_after = 0.0
            httpx = self._httpx
            try:
                response = self._client.request(method, url, **kwargs)
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL,
                    UnicodeError) as error:
                # Nothing reached the service and nothing would on a retry (a URL or header
                # httpx cannot use): a refusal, not an outage (errsweep2 N10).
                raise RunRefused(f"{method} {url}: {type(error).__name__}: {error}") from error
            except httpx.TransportError as error:  # unreachable, reset, timed out: transient
                why: object = error
            else:
                if response.status_code < 300:
                    self._last_answer = time.monotonic()
                    in_use, self._last_failure, self._in_use = self._in_use, None, None
                    answer = response.json() if response.content else {}
                    if self._failing_since is not None:
                        waited = time.monotonic() - self._failing_since
                        if in_use is not None:
                            # not an outage: the service answered all along, refusing the run's name
                            # while another process wrote it (newuser11 #12)
                            log.warning("gradhealth recorder: run %r was in use by another process for %.0f s "
                                        "(409 run_in_use); %s; sending the %d logged steps waiting", self.run,
                                        waited, _in_use_ended(in_use[0], url, answer), self._backlog())
                        else:
                            log.warning("gradhealth recorder: %s answers again after %.0f s; sending "
                                        "the %d logged steps waiting", self.server, waited, self._backlog())
                        self._failing_since = None
                    return answer
                if not _retryable(response.status_code) and not _in_use(response.status_code, response.text):
                    message = f"{method} {url}: {response.status_code} {response.text[:300]}"
                    too_large = _BATCH_LIMIT.search(response.text)
                    # A 413 of a proxy (its body size limit) is the batch's size; the service's
                    # own 413 (run-too-large: GRADHEALTH_RUN_MAX_POINTS) is the run's, a refusal.
                    if (response.status_code == 413
                            and not _RUN_TOO_LARGE.search(response.text)) \
                            or (response.status_code == 422 and too_large):
                        raise _BatchTooLarge(message, response.status_code, int(
                            too_large.group(1).replace(",", "")) if too_large else None)
                    raise RunRefused(message, response.status_code)
                why = response.status_code
                retry_after = self._retry_after(response) or 0.0
                if _in_use(response.status_code, response.text):  # say who holds the run
                    words = response.text[:300]
                    with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
                        words = str(response.json()["detail"])
                    why = (f"409 run_in_use: {words}; the recorder waits for the other writer's lease "
                           f"to run out (take_over=True takes the run at once)")
                    self._in_use = (words, retry_after, time.monotonic())
                else:
                    self._in_use = None
            self._last_failure = why
            self.retries += 1
            if self._failing_since is None:
                # Once an outage, not once a retry (newuser4 P16: silent until close before).
                self._failing_since = time.monotonic()
                log.warning("gradhealth recorder: %s %s%s failed (%s); retrying with backoff, "
                            "training goes on: %d logged steps wait to be sent (past %d in "
                            "memory they are kept in %s)", method, self.server, url, why,
                            self._backlog(), self.buffer, self.spill_path)
            # Exponential backoff with jitter, so many recorders do not come back in step.
            delay = min(cap, first * 2 ** min(attempt, 30))
            delay = max(min(cap, retry_after), random.uniform(delay / 2, delay))  # noqa: S311
            attempt += 1
            log.debug("gradhealth recorder: %s %s failed (%s); again in %.2f s", method, url,
                      why, delay)
            if time.monotonic() + delay > self._deadline:
                if time.monotonic() >= self._deadline:
                    return None
                delay = self._deadline - time.monotonic()
            if self._nudge.wait(delay):
                self._nudge.clear()  # close() started: one try at once, then the backoff again
