"""What ``GradientRecorder.step`` costs a training loop: plain step against recorded step.

For each model (a 12x256 MLP at batch 64, a small CNN, a small Transformer encoder; on CUDA also
two large ones, a 12x4096 MLP at batch 512 and a 6-layer d_model 1024 Transformer) and each
``every`` (1 and 10), one model and one SGD optimizer are built and trained in blocks of
``--block`` steps (default 20), alternating a plain block (forward, ``zero_grad``, backward,
``optimizer.step``) with a recorded block (the same plus ``recorder.step(loss=loss,
optimizer=optimizer)`` after backward). Each recorded block ends with ``recorder.flush()``, inside
its timing, so that the background writer's work never spills into the next plain block: the
figure is an upper bound on what recording costs. The order inside a pair alternates (plain
first, then recorded first) so that drift hits both alike. Printed per case: the median seconds
per step of each and the median over ``--pairs`` pairs (default 15) of recorded / plain, against
the target of 1.05x from issue 16. Also printed: the median time per step spent inside
``recorder.step()`` on the training thread, and 1 + that / the plain step: the cost that is the
recorder's alone, which a busy machine blurs less than the difference of two timings; and the
median time per step spent waiting in that ``flush()`` (the writer's work, plus, on a loaded
machine, the wait for the writer thread to be scheduled at all). Speed is measured, never asserted.

Runs on CUDA when a GPU is there (``--device cpu`` to force the CPU); there the clock is read
after ``torch.cuda.synchronize()``. On CPU, ``torch.set_num_threads(--threads)`` (default 1).
From the repository root::

    .venv/bin/python bench/bench_recorder.py            # ~2 minutes on a 2-core CPU
    .venv/bin/python bench/bench_recorder.py --quick    # a few seconds: fewer, shorter pairs
    .venv/bin/python bench/bench_recorder.py --models mlp --every 1 --json
    .venv/bin/python bench/bench_recorder.py --clock cpu  # on a busy shared CPU
    .venv/bin/python bench/bench_recorder.py --repeat 5   # median of 5 runs of each case

On a CPU shared with other work wall-clock ratios swing by far more than the 5 % measured (the
load average is printed); ``--clock cpu`` times the process's CPU time instead (all threads, so the
background writer's work is charged too), which time-slicing by other processes barely moves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gradhealth.recorder import GradientRecorder  # noqa: E402

TARGET = 1.05
SMALL = ("mlp", "cnn", "transformer")
#: Large models, where a GPU's step is bound by its arithmetic rather than by kernel launches;
#: measured by default on CUDA only (a CPU takes seconds per step of these).
LARGE = ("mlp-wide", "transformer-wide")


def _mlp(width: int, batch: int, g: torch.Generator) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """12 Linear(width, width) + ReLU and a 10-way head, with a batch of ``batch``."""
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return (nn.Sequential(*layers, nn.Linear(width, 10)), torch.randn(batch, width, generator=g),
            torch.randint(0, 10, (batch,), generator=g))


def _transformer(d: int, heads: int, ff: int, layers: int, tokens: int, batch: int, g: torch.Generator
                 ) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A Post-LN encoder of ``layers`` over ``tokens`` tokens, flattened into a 10-way head."""
    layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=ff, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    return (nn.Sequential(encoder, nn.Flatten(), nn.Linear(tokens * d, 10)),
            torch.randn(batch, tokens, d, generator=g), torch.randint(0, 10, (batch,), generator=g))


def build(name: str, device: torch.device) -> tuple[nn.Module, Callable[[], torch.Tensor]]:
    """A model and a closure computing its loss on a fixed batch."""
    g = torch.Generator().manual_seed(0)
    if name == "mlp":  # the case: 12 Linear(256, 256) + ReLU, batch 64
        model, x, y = _mlp(256, 64, g)
    elif name == "mlp-wide":  # large: 12 Linear(4096, 4096) + ReLU, batch 512
        model, x, y = _mlp(4096, 512, g)
    elif name == "cnn":  # three conv blocks on 32x32 RGB, batch 32
        model = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
        x = torch.randn(32, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (32,), generator=g)
    elif name == "transformer":  # 2 encoder layers, d_model 128, 4 heads, 32 tokens, batch 16
        model, x, y = _transformer(128, 4, 256, 2, 32, 16, g)
    elif name == "transformer-wide":  # large: 6 layers, d_model 1024, 16 heads, 256 tokens, batch 16
        model, x, y = _transformer(1024, 16, 4096, 6, 256, 16, g)
    else:
        raise SystemExit(f"unknown model {name!r}: choose from {', '.join(SMALL + LARGE)}")
    model = model.to(device)
    x, y = x.to(device), y.to(device)
    return model, lambda: nn.functional.cross_entropy(model(x), y)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, every: int, device: torch.device, pairs: int, block: int,
            out_dir: Path, clock: Callable[[], float] = time.perf_counter,
            ) -> dict[str, float | int | str]:
    """Median plain and recorded seconds per step, and the median of per-pair ratios."""
    model, loss_fn = build(name, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    recorder = GradientRecorder(model, out_dir / f"{name}-{every}.jsonl", every=every)

    inside: list[float] = []  # per recorded block: seconds per step spent inside step()
    flushing: list[float] = []  # per recorded block: seconds per step spent waiting in flush()

    def run(recorded: bool) -> float:
        _sync(device)
        start = clock()
        spent = 0.0
        for _ in range(block):
            loss = loss_fn()
            optimizer.zero_grad()
            loss.backward()
            if recorded:
                t0 = time.perf_counter()
                recorder.step(loss=loss, optimizer=optimizer)
                spent += time.perf_counter() - t0
            optimizer.step()
        if recorded:
            t0 = time.perf_counter()
            recorder.flush()  # the writer's backlog is charged to the block that made it
            flushing.append((time.perf_counter() - t0) / block)
            inside.append(spent / block)
        _sync(device)
        return (clock() - start) / block

    run(False), run(True)  # warm-up: allocator, kernels, the writer thread
    inside.clear()
    flushing.clear()
    plain, recorded, ratios = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            p = run(False)
            r = run(True)
        else:
            r = run(True)
            p = run(False)
        plain.append(p)
        recorded.append(r)
        ratios.append(r / p)
    recorder.close()
    return {"model": name, "every": every, "device": device.type, "pairs": pairs, "block": block,
            "plain_ms": 1e3 * statistics.median(plain),
            "recorded_ms": 1e3 * statistics.median(recorded),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "in_step_ms": 1e3 * statistics.median(inside),
            "in_step_ratio": 1 + statistics.median(inside) / statistics.median(plain),
            "flush_ms": 1e3 * statistics.median(flushing)}


def combine(rows: list[dict[str, float | int | str]]) -> dict[str, Any]:
    """One case measured several times: the median of each figure, the extremes of the pairs,
    and each run's ratio under ``runs``."""
    out: dict[str, Any] = dict(rows[0])
    for key in ("plain_ms", "recorded_ms", "ratio", "in_step_ms", "in_step_ratio", "flush_ms"):
        out[key] = statistics.median(float(r[key]) for r in rows)
    out["ratio_min"] = min(float(r["ratio_min"]) for r in rows)
    out["ratio_max"] = max(float(r["ratio_max"]) for r in rows)
    out["runs"] = [float(r["ratio"]) for r in rows]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one line per model and ``every``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help=f"comma-separated (default {','.join(SMALL)}, and on CUDA "
                             f"{','.join(LARGE)} too)")
    parser.add_argument("--every", default="1,10", help="comma-separated values of every")
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--block", type=int, default=20, help="steps per timed block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="5 pairs of 5-step blocks")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the process's CPU time (all its threads, so the writer's work "
                             "counts too); steadier than wall time on a busy shared CPU, "
                             "meaningless on CUDA")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each case this many times (fresh model each) and print "
                             "the median of the runs' figures, with the runs' ratios")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.block = 5, 5
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.models is None:
        args.models = ",".join(SMALL + (LARGE if device.type == "cuda" else ()))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"# torch {torch.__version__} on {device.type} ({where or platform.machine()}), "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch thread(s), "
          f"load average {os.getloadavg()[0]:.2f}; {args.pairs} pairs of {args.block} steps, "
          f"{args.clock} clock")
    if not args.json:
        print(f"{'model':<12} {'every':>5} {'plain ms':>9} {'recorded ms':>12} {'ratio':>7} "
              f"{'(min-max)':>13} {'in step() ms':>12} {'1+in/plain':>10} {'flush ms':>8}  "
              f"target <= {TARGET}x")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for every in (int(e) for e in args.every.split(",")):
                row = combine([measure(name, every, device, args.pairs, args.block, Path(tmp),
                                       clock) for _ in range(args.repeat)])
                if args.json:
                    print(json.dumps(row))
                else:
                    verdict = "ok" if row["ratio"] <= TARGET else "over"
                    print(f"{name:<12} {every:>5} {row['plain_ms']:>9.3f} "
                          f"{row['recorded_ms']:>12.3f} {row['ratio']:>6.3f}x "
                          f"({row['ratio_min']:.3f}-{row['ratio_max']:.3f}) "
                          f"{row['in_step_ms']:>12.3f} {row['in_step_ratio']:>9.3f}x "
                          f"{row['flush_ms']:>8.3f}  {verdict}"
                          + (f"  runs: {' '.join(f'{r:.3f}' for r in row['runs'])}"
                             if args.repeat > 1 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
