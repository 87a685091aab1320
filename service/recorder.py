"""Record per-layer gradient norms from a PyTorch training loop, in Gradient Health's own log
format, for when your tools only log a total norm.

Needs only torch and the standard library (copy this one file into a project if you like)::

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

Each logged step writes JSON Lines in the long form of the native format::

    {"step": 120, "metric": "loss", "value": 3.41, "wall_time": 1718000000.0}
    {"step": 120, "metric": "grad_norm", "value": 0.27, "wall_time": 1718000000.0}
    {"step": 120, "metric": "lr", "value": 0.0006, "wall_time": 1718000000.0}
    {"step": 120, "layer": "encoder.0.weight", "kind": "grad_norm", "value": 0.013}

Overhead: on logged steps the training thread runs one fused norm over all gradients
(``torch._foreach_norm``) and, on CUDA, one non-blocking copy of the norms and the loss into
pinned host memory; nothing in it waits for the device. Reading the values, JSON encoding and
writing happen in a background thread, which takes what the training thread queued every
``flush_interval`` seconds. On other steps the cost is a counter.

Nothing is lost: the queue is bounded (``buffer`` logged steps; when it is full, ``step()`` waits
for the writer instead of dropping points), and everything queued is written and flushed (and the
file fsynced) by ``close()``, on leaving a ``with`` block and at interpreter exit.

Where the points go is pluggable: the writer hands each logged step, as a :class:`Record` with a
sequence number, to every :class:`Sink` (the JSON Lines file, plus any ``sinks=`` given).
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import operator
import os
import threading
import time
import urllib.request
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch


@dataclass(frozen=True, slots=True)
class Record:
    """One logged step, as the background writer hands it to the sinks.

    ``seq`` counts logged steps from 0 without gaps, so a sink that retries (a network one) can
    tell a duplicate from a new point. ``norms[i]`` is the L2 norm of the gradient of parameter
    ``layers[i]``; parameters without a gradient at that step are left out of both.
    """

    seq: int
    step: int
    wall_time: float
    loss: float | None
    lr: float | None
    layers: tuple[str, ...]
    norms: tuple[float, ...]

    @property
    def grad_norm(self) -> float:
        """Total L2 norm over the recorded parameters: sqrt(sum of squared per-layer norms)."""
        return math.sqrt(sum(v * v for v in self.norms)) if self.layers else math.nan

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
        """Flush and release; no call follows."""


# json.dumps writes non-finite floats as these (allow_nan=True, the default).
_JSON_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_float(v: float) -> str:
    r = float.__repr__(v)
    return _JSON_SPECIAL.get(r, r)


class FileSink:
    """JSON Lines, byte for byte what ``json.dumps(row)`` gives for each of :meth:`Record.rows`.

    Encodes by hand (names escaped once, not once per step) because the writer thread shares the
    interpreter lock with the training loop; a test pins the output against ``json.dumps``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        self._layer_part: dict[str, str] = {}

    def encode(self, record: Record) -> str:
        """The record's lines, newline-terminated."""
        head = '{"step": ' + json.dumps(record.step)
        out = []
        tail = ', "wall_time": ' + _json_float(record.wall_time) + "}\n"
        if record.loss is not None:
            out.append(head + ', "metric": "loss", "value": ' + _json_float(record.loss) + tail)
        if record.layers:
            out.append(head + ', "metric": "grad_norm", "value": '
                       + _json_float(record.grad_norm) + tail)
        if record.lr is not None:
            out.append(head + ', "metric": "lr", "value": ' + _json_float(record.lr) + tail)
        parts = self._layer_part
        for name, v in zip(record.layers, record.norms, strict=True):
            part = parts.get(name)
            if part is None:
                part = parts[name] = (', "layer": ' + json.dumps(name)
                                      + ', "kind": "grad_norm", "value": ')
            out.append(head + part + _json_float(v) + "}\n")
        return "".join(out)

    def write(self, records: Sequence[Record]) -> None:
        """Append the records' lines to the file."""
        self._file.write("".join(self.encode(r) for r in records))

    def flush(self) -> None:
        """Hand buffered lines to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Flush, fsync and close, so a crash right after loses nothing."""
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class _Writer:
    """The background thread: drains what ``step()`` queued, turns it into records, feeds sinks.

    The training thread only appends to a deque (atomic, no lock); it takes the lock to wake the
    thread only when the queue is half full, when it is full (and then it waits for room), and to
    ask for a flush or the close.
    """

    def __init__(self, sinks: Sequence[Sink], capacity: int, interval: float) -> None:
        self.sinks = list(sinks)
        self.capacity = capacity
        self.interval = interval
        # With no interval the thread sleeps until woken, so wake it for every item.
        self.wake_at = 1 if interval == 0 else max(1, capacity // 2)
        self.items: collections.deque[tuple[Any, ...]] = collections.deque()
        self.cond = threading.Condition()
        self.flush_requests: list[threading.Event] = []
        self.closing = False
        self.error: BaseException | None = None
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="gradhealth-recorder", daemon=True)
        self.thread.start()

    def put(self, item: tuple[Any, ...]) -> None:
        self.items.append(item)
        if len(self.items) >= self.wake_at:
            with self.cond:
                self.cond.notify()
                while len(self.items) >= self.capacity and self.thread.is_alive():
                    self.cond.wait(0.1)
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise RuntimeError("the gradient recorder's writer failed") from self.error

    def flush(self) -> None:
        done = threading.Event()
        with self.cond:
            self.flush_requests.append(done)
            self.cond.notify()
        while not done.wait(0.1):
            if not self.thread.is_alive():
                break
        self.raise_error()

    def close(self) -> None:
        if os.getpid() != self.pid:
            return  # a forked child: the parent owns the thread, the sinks and the queue
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.thread.join()
        if self.error is not None:
            for sink in self.sinks:  # best effort: keep what did reach the sinks
                with contextlib.suppress(Exception):  # the writer's error is the one to report
                    sink.close()
            self.raise_error()

    def _run(self) -> None:
        requests: list[threading.Event] = []
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
                    records = [_record(item) for item in batch]
                    for sink in self.sinks:
                        sink.write(records)
                # A batch comes at most once an interval (or when the queue is half full).
                if batch or requests or closing:
                    for sink in self.sinks:
                        sink.flush()
                for done in requests:
                    done.set()
                if closing and not self.items:
                    for sink in self.sinks:
                        sink.close()
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the training thread
            self.error = error
            with self.cond:
                self.cond.notify_all()
                requests += self.flush_requests
            for done in requests:
                done.set()


def _record(item: tuple[Any, ...]) -> Record:
    """Builds a record from what ``step()`` queued, reading device values where they landed."""
    seq, step, wall_time, layers, values, event, loss, lr = item
    if event is not None:
        event.synchronize()  # the non-blocking copy into pinned memory has landed
    if isinstance(values, list):  # CPU: the norms themselves (and the loss), already computed
        try:
            values = torch.stack(values)
        except RuntimeError:  # some on another device: this thread may wait for it
            values = torch.stack([t.cpu() for t in values])
    numbers = values.tolist() if values is not None else []
    if loss is _LOSS_IN_VALUES:
        loss = numbers.pop()
    return Record(seq, step, wall_time, loss, lr, layers, tuple(numbers))


_LOSS_IN_VALUES = object()


class GradientRecorder:
    """Writes gradient norms, loss and learning rate every ``every`` steps.

    ``buffer`` is how many logged steps may wait for the writer thread before ``step()`` waits
    too; ``flush_interval`` is how many seconds at most a point waits before it reaches the file
    (0: at once). Neither changes what is written. ``sinks`` receive the same records as the file.
    """

    def __init__(self, model: torch.nn.Module, path: str | Path, *, every: int = 1,
                 weights_only: bool = False, buffer: int = 4096, flush_interval: float = 1.0,
                 sinks: Sequence[Sink] = ()) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        if buffer < 1:
            raise ValueError("buffer must be >= 1")
        if not flush_interval >= 0:
            raise ValueError("flush_interval must be >= 0 seconds")
        self.path = Path(path)
        self.every = every
        self.params = [(name, p) for name, p in model.named_parameters()
                       if p.requires_grad and (not weights_only or p.dim() > 1)]
        self._names = tuple(name for name, _ in self.params)
        self._tensors = [p for _, p in self.params]
        self._count = 0
        self._seq = 0
        self._closed = False
        self._writer = _Writer([FileSink(self.path), *sinks], buffer, flush_interval)
        # Closes (and so flushes) at garbage collection or interpreter exit if close() was not
        # called; holds the writer, never the recorder or the model.
        self._finalizer = weakref.finalize(self, self._writer.close)

    def step(self, loss: torch.Tensor | float | None = None, *, lr: float | None = None,
             optimizer: torch.optim.Optimizer | None = None, step: int | None = None) -> None:
        """Call once per training step, after ``backward()``."""
        index = self._count if step is None else operator.index(step)
        self._count += 1
        if index % self.every:
            return
        if self._closed:
            raise ValueError("step() on a closed GradientRecorder")
        wall_time = time.time()
        maybe = [p.grad for p in self._tensors]
        names = self._names
        grads: list[torch.Tensor] = [g for g in maybe if g is not None]
        if len(grads) != len(maybe):
            names = tuple(n for n, g in zip(names, maybe, strict=True) if g is not None)
        with torch.no_grad():  # no graph, even for grads made with create_graph=True
            parts = list(torch._foreach_norm(grads)) if grads else []
            loss_out: object = None  # a float, or the marker: the loss travels with the norms
            if isinstance(loss, torch.Tensor):
                parts.append(loss.detach().reshape(()))
                loss_out = _LOSS_IN_VALUES
            elif loss is not None:
                loss_out = float(loss)
            values, event = _to_host(parts) if parts else (None, None)
        if lr is None and optimizer is not None:
            lr = float(optimizer.param_groups[0]["lr"])
        self._writer.put((self._seq, index, wall_time, names, values, event, loss_out, lr))
        self._seq += 1

    def flush(self) -> None:
        """Wait until everything recorded so far is written and flushed."""
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        """Write everything still queued, flush, fsync and close the file (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> GradientRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, server: str, *, api_key: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """Upload the log to a Gradient Health service; returns the job resource."""
        self.close()
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{self.path.name}\"\r\n"
                "Content-Type: application/x-ndjson\r\n\r\n").encode() + self.path.read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            server.rstrip("/") + "/v1/checks/logs?format=native", data=body, method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                     **({"X-API-Key": api_key} if api_key else {})})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own server
            return json.loads(response.read())


def _to_host(parts: list[torch.Tensor]) -> tuple[Any, Any]:
    """Starts moving 0-d tensors to the host without waiting for the device.

    CPU: returns the tensors themselves (computed already; the writer stacks them). CUDA: one
    stacked float64 tensor copied with ``non_blocking=True`` into pinned memory, and an event the
    writer waits on before reading it. Other devices: one ordinary (blocking) copy. Stacking
    promotes mixed float dtypes, which is exact, so values match per-tensor float64 conversion.
    """
    device = parts[0].device
    if device.type == "cpu":
        return parts, None
    try:
        stacked = torch.stack(parts)
    except RuntimeError:  # parameters (or the loss) on several devices
        stacked = torch.stack([t.to(device) for t in parts])
    stacked = stacked.to(torch.float64)
    if stacked.is_cuda and torch.cuda.is_available():
        host = torch.empty(stacked.shape, dtype=torch.float64, pin_memory=True)
        host.copy_(stacked, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(stacked.device))  # the copy's stream, after it
        return host, event
    return stacked.cpu(), None
