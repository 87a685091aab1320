"""Cost of the ONNX path: one instrumented step of the converted graph against the original
module's bare forward + backward, on the same batch, in the same precision (float64).

For each model (an MLP, a CNN with BatchNorm and pooling, an LSTM) the module is exported with
``torch.onnx.export``, imported with :func:`gradhealth.analysis.importers.onnx.import_onnx` and
prepared as the check prepares a seed's copy; both paths are warmed up, then ``--repeat`` steps of
each are timed, alternating, so drift on a shared machine affects both alike. It prints the median
time per step, the ratio converted-instrumented / original-bare and whether it is within the
target of 1.3x. Speed is measured, not asserted.

    .venv/bin/python bench/bench_onnx.py
    .venv/bin/python bench/bench_onnx.py --repeat 30 --threads 1 --json
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from gradhealth.analysis.graph import (
    GraphRun,
    _copy_for_seed,
    instrumented_step,
    loss_of,
    make_inputs,
)
from gradhealth.analysis.importers.onnx import OnnxModule, import_onnx

TARGET = 1.3


class _Seq(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(32, 64, batch_first=True)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def _mlp() -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(8):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mlp": (_mlp, (64, 256)), "cnn": (_cnn, (32, 3, 32, 32)), "lstm": (_Seq, (32, 50, 32)),
}


def _export(model: nn.Module, x: torch.Tensor, train: bool) -> bytes:
    # Training mode keeps BatchNorm on batch statistics; the LSTM's weights need constant folding.
    kwargs = {"training": torch.onnx.TrainingMode.TRAINING, "do_constant_folding": False} if train else {}
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, **kwargs)
    return f.getvalue()


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench(name: str, repeat: int, device: torch.device) -> dict[str, float | str | bool]:
    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = build().train()
    imported = import_onnx(_export(model, torch.randn(*shape), train=name == "cnn"))
    names = (lambda net: net.module_names() if isinstance(net, OnnxModule) else {})  # noqa: E731
    run = GraphRun(imported.module, imported.inputs, "cross_entropy", 1, None, names)
    converted = _copy_for_seed(run, 0, device)
    original = copy.deepcopy(model).to(device=device, dtype=torch.float64).train()
    xs = [x.to(device) for x in make_inputs(imported.inputs, 0)]

    def bare() -> None:
        original.zero_grad(set_to_none=True)
        loss_of("cross_entropy", original(*xs), 0).backward()

    def instrumented() -> None:
        instrumented_step(run, converted, xs, 0)

    for _ in range(3):
        bare()
        instrumented()
    b: list[float] = []
    i: list[float] = []
    for _ in range(repeat):
        b.append(_timed(bare, device))
        i.append(_timed(instrumented, device))
    tb, ti = statistics.median(b), statistics.median(i)
    return {"model": name, "device": device.type, "bare_ms": tb * 1e3, "instrumented_ms": ti * 1e3,
            "ratio": ti / tb, "within_target": ti / tb <= TARGET}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    rows = [bench(name, args.repeat, device) for name in args.models.split(",")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'model':6s} {'device':6s} {'bare ms':>9s} {'onnx+probes ms':>15s} {'ratio':>6s}  target {TARGET}x")
    for r in rows:
        print(f"{r['model']:6s} {r['device']:6s} {r['bare_ms']:9.2f} {r['instrumented_ms']:15.2f} "
              f"{r['ratio']:6.2f}  {'ok' if r['within_target'] else 'OVER'}")


if __name__ == "__main__":
    main()
