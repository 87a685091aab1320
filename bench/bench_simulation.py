"""Cost of one instrumented simulation step against a bare forward + backward.

For each of four models (an MLP, a CNN, an LSTM and a Transformer) and each
precision (float64, the spec's default, and float32) this builds the model and
its synthetic batch once with :func:`gradhealth.analysis.simulate.prepare`, warms up
both paths, then times ``--repeat`` steps of each, alternating bare and
instrumented so that drift (other processes, CPU frequency) affects both alike:

* bare: :func:`~gradhealth.analysis.simulate.bare_step`, a plain forward + backward
  (fused ``nn.LSTM`` and so on, no probes);
* instrumented: :func:`~gradhealth.analysis.simulate.instrumented_step`, the same
  forward + backward with every layer probed and all figures read back to the host.

It prints the median time per step of each, the ratio instrumented / bare and
whether the ratio is within the target of 1.3x. Speed is measured, not asserted:
the script never fails because a ratio is over the target.

Run it from the repository root::

    .venv/bin/python bench/bench_simulation.py
    .venv/bin/python bench/bench_simulation.py --repeat 20 --models lstm,transformer --json
    .venv/bin/python bench/bench_simulation.py --threads 1   # steadier when other work shares the CPU

On a machine with CUDA the device is picked as ``pick_device("auto")`` does
(``--device cpu`` forces the CPU); the clock is read after ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.simulate import bare_step, instrumented_step, pick_device, prepare
from gradhealth.analysis.spec import parse_spec

TARGET = 1.3
WARMUP = 2
SEED = 0

#: Moderately sized models: the whole run takes well under a minute on 2 CPU cores.
MODELS: dict[str, dict[str, Any]] = {
    "mlp": {
        "name": "bench MLP 784->512x8 relu",
        "input": {"shape": [784]},
        "batch_size": 128,
        "layers": [
            {"type": "linear", "out_features": 512, "activation": "relu", "init": "kaiming_normal",
             "repeat": 8},
            {"type": "linear", "out_features": 10},
        ],
    },
    "cnn": {  # service/examples/small_cnn.yaml
        "name": "bench small CNN",
        "input": {"shape": [3, 32, 32]},
        "batch_size": 32,
        "layers": [
            {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1, "activation": "relu",
             "init": "kaiming_normal", "norm": "batchnorm"},
            {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1, "activation": "relu",
             "init": "kaiming_normal", "norm": "batchnorm"},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1, "activation": "relu",
             "init": "kaiming_normal", "norm": "batchnorm"},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 128, "activation": "relu", "init": "kaiming_normal"},
            {"type": "linear", "out_features": 10},
        ],
    },
    "lstm": {  # service/examples/lstm_long.yaml over 50 steps
        "name": "bench LSTM 128 over 50 steps",
        "input": {"shape": [50, 32]},
        "batch_size": 32,
        "layers": [
            {"type": "lstm", "hidden_size": 128, "forget_bias": "chrono"},
            {"type": "linear", "out_features": 10},
        ],
    },
    "transformer": {  # service/examples/transformer_pre_ln.yaml with 4 layers
        "name": "bench Pre-LN Transformer d128 h4 ff512 x4",
        "input": {"tokens": {"vocab_size": 1000, "seq_len": 64}},
        "batch_size": 16,
        "layers": [
            {"type": "embedding", "embedding_dim": 128},
            {"type": "transformer_encoder", "d_model": 128, "heads": 4, "ff_width": 512,
             "norm_first": True, "num_layers": 4},
            {"type": "pool", "mode": "mean"},
            {"type": "linear", "out_features": 10},
        ],
    },
}

PRECISIONS = ("float64", "float32")


def _timer(device: torch.device) -> Callable[[], float]:
    if device.type == "cuda":
        def now() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()
        return now
    return time.perf_counter


def bench_one(model: str, precision: str, device: torch.device, repeat: int) -> dict[str, Any]:
    """Time ``repeat`` alternating bare / instrumented steps of one model in one precision."""
    plan = make_plan(parse_spec({**MODELS[model], "precision": precision}))
    net, x, target = prepare(plan, SEED, device)
    now = _timer(device)
    for _ in range(WARMUP):
        bare_step(net, x, target)
        instrumented_step(net, x, target)
    bare: list[float] = []
    instrumented: list[float] = []
    for _ in range(repeat):
        t0 = now()
        bare_step(net, x, target)
        t1 = now()
        instrumented_step(net, x, target)
        t2 = now()
        bare.append(t1 - t0)
        instrumented.append(t2 - t1)
    bare_ms = statistics.median(bare) * 1e3
    inst_ms = statistics.median(instrumented) * 1e3
    ratio = inst_ms / bare_ms
    return {
        "model": model,
        "precision": precision,
        "parameters": plan.parameters,
        "units": len(net.units()),
        "repeat": repeat,
        "bare_ms": bare_ms,
        "instrumented_ms": inst_ms,
        "bare_min_ms": min(bare) * 1e3,
        "instrumented_min_ms": min(instrumented) * 1e3,
        "ratio": ratio,
        "within_target": ratio <= TARGET,
    }


def _csv(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown {what} {bad or value!r}; choose from {','.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=10, help="timed steps of each path (default 10)")
    parser.add_argument("--models", default=",".join(MODELS),
                        type=lambda v: _csv(v, tuple(MODELS), "model"),
                        help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        type=lambda v: _csv(v, PRECISIONS, "precision"),
                        help="comma-separated subset of float64,float32")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own); 1 is steadier on a shared machine")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)

    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}   torch {torch.__version__}   threads {torch.get_num_threads()}   "
          f"repeat {args.repeat} (median of each, alternating)")
    print(f"{'model':<12} {'precision':<10} {'bare ms':>9} {'instrumented ms':>16} {'ratio':>6}  "
          f"target<={TARGET}x")
    sys.stdout.flush()
    rows: list[dict[str, Any]] = []
    for model in args.models:
        for precision in args.precisions:
            r = bench_one(model, precision, device, args.repeat)
            rows.append(r)
            print(f"{model:<12} {precision:<10} {r['bare_ms']:>9.2f} {r['instrumented_ms']:>16.2f} "
                  f"{r['ratio']:>6.2f}  {'yes' if r['within_target'] else 'no'}", flush=True)
    if args.json:
        summary = {
            "device": name,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "target_ratio": TARGET,
            "results": rows,
        }
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
