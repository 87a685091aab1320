"""GradientRecorder: what it writes does not depend on its buffering, survives the process dying
right after close(), and never keeps a step's gradients alive (issue 16).

The values are pinned against norms computed here with ``torch.linalg.vector_norm`` on the same
model and gradients; the file's bytes against ``json.dumps``.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn

from gradhealth.recorder import FileSink, GradientRecorder, Record

#: Every test taking ``device`` runs on the CPU, and on CUDA where a GPU is there (the recorder's
#: device path: the norms and the loss left on the device, read by the writer thread).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))]


class _Branchy(nn.Module):
    """An MLP with a side branch used on even steps only, so some steps lack some gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 1))
        self.side = nn.Linear(6, 1)
        self.use_side = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + self.side(x) if self.use_side else out


def _train(model: _Branchy, steps: int, recorder: GradientRecorder | None,
           device: str = "cpu") -> list[dict]:
    """Trains with SGD; returns the rows the recorder should have written, computed here."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.5)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g).to(device), torch.randn(40, 1, generator=g).to(device)
    expected: list[dict] = []
    for step in range(steps):
        model.use_side = step % 2 == 0
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        total = torch.linalg.vector_norm(torch.cat([g.double().flatten() for _, g in named]))
        lr = optimizer.param_groups[0]["lr"]
        expected += [{"step": step, "metric": "loss", "value": loss.item()},
                     {"step": step, "metric": "grad_norm", "value": total.item()},
                     {"step": step, "metric": "lr", "value": lr}]
        expected += [{"step": step, "layer": n, "kind": "grad_norm",
                      "value": torch.linalg.vector_norm(g).item()} for n, g in named]
        if recorder is not None:
            recorder.step(loss=loss, optimizer=optimizer)
        optimizer.step()
        scheduler.step()
    return expected


def _rows(path: Path) -> list[dict]:
    """The file's points: its rows between the recorder's start and end records."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["gradhealth_recorder"] == "start"
    rows = [row for row in rows[1:] if row.get("gradhealth_recorder") != "end"]
    for row in rows:
        if "metric" in row:
            assert list(row) == ["step", "metric", "value", "wall_time"]
            assert row.pop("wall_time") == pytest.approx(time.time(), abs=600)
        else:
            assert list(row) == ["step", "layer", "kind", "value"]
    return rows


def _assert_close(rows: list[dict], expected: list[dict]) -> None:
    assert [{k: v for k, v in r.items() if k != "value"} for r in rows] == \
        [{k: v for k, v in r.items() if k != "value"} for r in expected]
    for got, want in zip(rows, expected, strict=True):
        assert got["value"] == pytest.approx(want["value"], rel=1e-6), (got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_the_file_is_the_same_whatever_the_buffering(tmp_path, device):
    torch.manual_seed(0)
    initial = _Branchy().to(device)
    files = []
    for i, (buffer, interval) in enumerate([(1, 0.0), (3, 0.001), (4096, 60.0)]):
        model = copy.deepcopy(initial)
        path = tmp_path / f"run{i}.jsonl"
        with GradientRecorder(model, path, buffer=buffer, flush_interval=interval) as rec:
            expected = _train(model, 23, rec, device)
        rows = _rows(path)
        _assert_close(rows, expected)
        files.append(rows)
    # Same model, same data, single process: the values are bit for bit the same too.
    assert files[0] == files[1] == files[2]
    assert {r["layer"] for r in files[0] if r.get("step") == 1 and "layer" in r} == \
        {"body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"}  # no side branch


def test_every_and_sequence_numbers(tmp_path):
    class Collect:
        def __init__(self) -> None:
            self.records: list[Record] = []
            self.closed = False

        def write(self, records):  # noqa: ANN001, ANN202
            self.records += records

        def flush(self):  # noqa: ANN202
            pass

        def close(self):  # noqa: ANN202
            self.closed = True

    sink = Collect()
    model = _Branchy()
    with GradientRecorder(model, tmp_path / "e.jsonl", every=3, sinks=[sink]) as rec:
        _train(model, 10, rec)
    assert sink.closed
    assert [r.seq for r in sink.records] == [0, 1, 2, 3]
    assert [r.step for r in sink.records] == [0, 3, 6, 9]
    # The extra sink saw exactly what the file holds.
    assert _rows(tmp_path / "e.jsonl") == [
        {k: v for k, v in row.items() if k != "wall_time"}
        for r in sink.records for row in r.rows()]


def test_the_file_encoder_writes_what_json_dumps_writes(tmp_path):
    sink = FileSink(tmp_path / "x.jsonl")
    records = [
        Record(0, 12, 1718000000.125, 3.5, 1e-3, ("a.weight", 'quote"d', "ünï\ncode"),
               (0.1, math.nan, math.inf)),
        Record(1, 10**12, 1.0, None, None, ("b",), (-math.inf,)),
        Record(2, 13, 2.0, math.nan, 0.1, (), ()),
        Record(3, 14, 3.0, None, None, (), ()),
        # All finite: the per-layer lines come from one %-template (a "%" in a name included).
        Record(4, 15, 4.5, 0.25, None, ("50%.w", 'q"%s', "ü%%d\t"), (1e-300, 0.1 + 0.2, 7.0)),
        Record(5, 16, 5.0, None, 2.0, ("50%.w", 'q"%s', "ü%%d\t"), (1e16, 3.0, 1 / 3)),
        Record(6, 17, 6.0, None, None, ("a.weight",), (1.5e-45,)),
        # the caller's own figures (metrics=, log()): names that need escaping, non-finite values
        Record(7, 18, 7.0, 0.5, None, ("a.weight",), (1.0,), 1024.0,
               (("val_loss", 0.75), ('q"%s\n', math.nan), ("ünï", -math.inf))),
        Record(8, 19, 8.0, None, None, (), (), None, (("val_acc", 0.9),)),
    ]
    for record in records:
        assert sink.encode(record) == "".join(json.dumps(r) + "\n" for r in record.rows())
    assert math.isnan(records[2].grad_norm) and records[0].grad_norm != records[0].grad_norm
    sink.close()


_CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    from torch import nn
    from gradhealth.recorder import GradientRecorder

    mode, path = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 5), torch.randn(32, 1)
    # Nothing would reach the file before close() on its own: a minute's interval, a big buffer.
    rec = GradientRecorder(model, path, buffer=100000, flush_interval=60)
    expected = []
    for step in range(300):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        expected.append([step, loss.item()] + [torch.linalg.vector_norm(p.grad).item()
                                               for p in model.parameters()])
        rec.step(loss=loss, optimizer=opt)
        opt.step()
    print(json.dumps(expected), flush=True)
    if mode == "exit_without_close":
        sys.exit(0)  # the interpreter's exit flushes
    rec.close()
    if mode == "os_exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("mode", ["os_exit", "sigkill", "exit_without_close"])
def test_a_process_that_dies_right_after_close_has_lost_nothing(tmp_path, mode):
    path = tmp_path / "run.jsonl"
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == {"os_exit": 3, "sigkill": -9, "exit_without_close": 0}[mode], \
        done.stderr
    expected = json.loads(done.stdout)
    rows = _rows(path)
    assert len(rows) == 300 * (3 + 4)
    losses = [r["value"] for r in rows if r.get("metric") == "loss"]
    layers = [r["value"] for r in rows if "layer" in r]
    assert [r["step"] for r in rows if r.get("metric") == "loss"] == list(range(300))
    assert losses == pytest.approx([e[1] for e in expected], rel=1e-6)
    assert layers == pytest.approx([v for e in expected for v in e[2:]], rel=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_the_recorder_keeps_no_gradient_alive(tmp_path, device):
    release = threading.Event()

    class Stuck:  # a sink that cannot keep up: everything stays queued in the recorder
        def write(self, records):  # noqa: ANN001, ANN202
            release.wait(30)

        def flush(self):  # noqa: ANN202
            pass

        def close(self):  # noqa: ANN202
            pass

    model = _Branchy().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(8, 6, device=device)
    rec = GradientRecorder(model, tmp_path / "g.jsonl", flush_interval=0, sinks=[Stuck()])
    try:
        for _ in range(5):
            loss = model(x).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            rec.step(loss=loss, optimizer=optimizer)
            grads = [weakref.ref(p.grad) for p in model.parameters()]
            loss_ref = weakref.ref(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            del loss
            gc.collect()
            assert all(r() is None for r in grads)
            assert loss_ref() is None
    finally:
        release.set()
        rec.close()
    assert len({r["step"] for r in _rows(tmp_path / "g.jsonl")}) == 5


def test_a_failing_writer_stops_the_training_loop_with_its_error(tmp_path):
    class Broken:
        def write(self, records):  # noqa: ANN001, ANN202
            raise OSError("disk full")

        def flush(self):  # noqa: ANN202
            pass

        def close(self):  # noqa: ANN202
            pass

    model = _Branchy()
    rec = GradientRecorder(model, tmp_path / "b.jsonl", flush_interval=0, sinks=[Broken()])
    with pytest.raises(RuntimeError, match="writer failed") as raised:  # noqa: PT012
        for _ in range(200):
            _train(model, 1, rec)
            time.sleep(0.01)
    assert isinstance(raised.value.__cause__, OSError)
    with pytest.raises(RuntimeError, match="writer failed"):
        rec.close()
    rec.close()  # once is enough


def test_points_reach_the_file_within_the_flush_interval(tmp_path):
    model = _Branchy()
    path = tmp_path / "live.jsonl"
    rec = GradientRecorder(model, path, flush_interval=0.05)
    _train(model, 3, rec)
    deadline = time.monotonic() + 10
    while len({r["step"] for r in _rows(path)}) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {r["step"] for r in _rows(path)} == {0, 1, 2}
    rec.close()
    with pytest.raises(ValueError, match="closed"):
        _train(model, 1, rec)


@pytest.mark.parametrize("kwargs", [{"every": 0}, {"buffer": 0}, {"flush_interval": -1.0},
                                    {"flush_interval": math.nan}])
def test_bad_settings_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GradientRecorder(_Branchy(), tmp_path / "r.jsonl", **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_values_match_the_cpu_computation(tmp_path):
    torch.manual_seed(0)
    model = _Branchy().cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(40, 6, device="cuda"), torch.randn(40, 1, device="cuda")
    expected = []
    with GradientRecorder(model, tmp_path / "cuda.jsonl") as rec:
        for _ in range(20):
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            rec.step(loss=loss, optimizer=optimizer)
            expected.append([loss.item()] + [torch.linalg.vector_norm(p.grad.cpu()).item()
                                             for p in model.parameters()])
            optimizer.step()
    rows = _rows(tmp_path / "cuda.jsonl")
    assert [r["value"] for r in rows if r.get("metric") == "loss"] == \
        pytest.approx([e[0] for e in expected], rel=1e-6)
    assert [r["value"] for r in rows if "layer" in r] == \
        pytest.approx([v for e in expected for v in e[1:]], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss_kind", ["0-d", "shape [1]", "float", "none"])
def test_cuda_mixed_dtypes_and_loss_shapes_over_many_steps(tmp_path, loss_kind):
    """A half-precision layer (its norms cannot share the float32 ones' buffer: the stacked path),
    each kind of loss, and more steps than the pinned buffers kept for reuse."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 1)).cuda()
    model[2].half()
    x, y = torch.randn(40, 6, device="cuda"), torch.randn(40, 1, device="cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    expected = []
    with GradientRecorder(model, tmp_path / "mixed.jsonl", buffer=7) as rec:
        for _ in range(150):
            out = model[2](model[1](model[0](x)).half()).float()
            loss = nn.functional.mse_loss(out, y)
            optimizer.zero_grad()
            loss.backward()
            given = {"0-d": loss, "shape [1]": loss.reshape(1), "float": loss.item(),
                     "none": None}[loss_kind]
            rec.step(loss=given, optimizer=optimizer)
            expected.append([loss.item()] + [torch.linalg.vector_norm(p.grad.double()).item()
                                             for p in model.parameters()])
            optimizer.step()
    rows = _rows(tmp_path / "mixed.jsonl")
    losses = [r["value"] for r in rows if r.get("metric") == "loss"]
    assert losses == ([] if loss_kind == "none" else
                      pytest.approx([e[0] for e in expected], rel=1e-6))
    assert [r["value"] for r in rows if "layer" in r] == \
        pytest.approx([v for e in expected for v in e[1:]], rel=2e-3)  # float16 norms


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_on_a_stream_of_its_own_is_read_after_its_work(tmp_path):
    """The writer reads the norms on its own thread and stream: it must wait for the training
    stream's work, here held back behind a long matrix product queued before each step."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 1)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(40, 6, device="cuda"), torch.randn(40, 1, device="cuda")
    big = torch.randn(4096, 4096, device="cuda")
    stream = torch.cuda.Stream()
    expected = []
    with torch.cuda.stream(stream), \
            GradientRecorder(model, tmp_path / "stream.jsonl", flush_interval=0) as rec:
        for _ in range(10):
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            for _ in range(5):
                big = torch.tanh(big @ big)  # tens of milliseconds ahead of the norms
            rec.step(loss=loss, optimizer=optimizer)
            expected.append([loss.item()] + [torch.linalg.vector_norm(p.grad).item()
                                             for p in model.parameters()])
            optimizer.step()
    rows = _rows(tmp_path / "stream.jsonl")
    assert [r["value"] for r in rows if r.get("metric") == "loss"] == \
        pytest.approx([e[0] for e in expected], rel=1e-6)
    assert [r["value"] for r in rows if "layer" in r] == \
        pytest.approx([v for e in expected for v in e[1:]], rel=1e-5)


def test_a_parameter_unfrozen_or_added_is_picked_up_without_the_step_walking_the_model(tmp_path):
    model = _Branchy()
    model.side.requires_grad_(False)
    path = tmp_path / "u.jsonl"
    rec = GradientRecorder(model, path, flush_interval=0)
    rec._params._period = 0.0  # re-read the model at every wake of the writer, not once a second
    _train(model, 2, rec)  # steps 0, 1: the side branch is frozen
    rec.flush()
    model.side.requires_grad_(True)
    model.extra = nn.Linear(1, 1)  # registered, never used: no gradient, so never recorded
    rec.flush()  # the writer wakes and re-reads the model
    assert [n for n, _ in rec.params] == ["body.0.weight", "body.0.bias", "body.2.weight",
                                          "body.2.bias", "side.weight", "side.bias",
                                          "extra.weight", "extra.bias"]
    expected = _train(model, 3, rec)  # recorded as steps 2, 3, 4: side used on 2 and 4
    rec.close()
    rows = _rows(path)
    assert {r["layer"] for r in rows if r["step"] < 2 and "layer" in r} == {
        "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"}  # frozen: not recorded
    _assert_close(rows[2 * 7:], [{**r, "step": r["step"] + 2} for r in expected])
    assert {r["layer"] for r in rows if r["step"] == 4 and "layer" in r} >= {"side.weight"}
