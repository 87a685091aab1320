"""Real architectures through the live door: each timm model named, at timm's own
initialisation, checked with ``gradhealth.check_module`` in a process of its own.

Needs ``timm`` (and the torchvision it requires), which the project does not depend on. Prints one
JSON line per model: status, the findings (code, severity, summary) and the seconds it took, or the
error that stopped it. A finding on a standard architecture is a lead, not a verdict: look at its
layers (``--layers``) before calling it false. From the repository root::

    .venv/bin/python bench/sweep_timm.py resnet50 deit3_small_patch16_224:64 poolformer_s12
    .venv/bin/python bench/sweep_timm.py --layers focalnet_tiny_srf   # the per-layer table too

``name:SIZE`` sets the input's side (default 64; some models need their own size).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

ONE = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch, timm
from gradhealth import check_module
name, size, layers = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
torch.manual_seed(0)
try:
    model = timm.create_model(name, pretrained=False, num_classes=10, img_size=size)
except TypeError:  # a model without an img_size argument
    model = timm.create_model(name, pretrained=False, num_classes=10)
doc = check_module(model, torch.randn(8, 3, size, size), seeds=1, verify=False)
row = {"model": name, "status": doc.status, "layers": len(doc.layers),
       "findings": [[f.code, f.severity, f.summary] for f in doc.findings]}
if layers:
    row["table"] = [[u.name, u.type, u.activation, u.output_grad_norm, u.normalised] for u in doc.layers]
print(json.dumps(row))
"""


def main(argv: list[str] | None = None) -> int:
    """Check each model named and print a JSON line for it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="timm model names, each NAME or NAME:SIZE")
    parser.add_argument("--layers", action="store_true", help="add the per-layer table")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per model")
    args = parser.parse_args(argv)
    for spec in args.models:
        name, _, size = spec.partition(":")
        started = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-c", ONE, name, size or "64", "1" if args.layers else "0"],
                                  capture_output=True, text=True, timeout=args.timeout)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            row = json.loads(lines[-1]) if lines else {
                "model": name, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        except subprocess.TimeoutExpired:
            row = {"model": name, "error": f"over {args.timeout:g} s"}
        row["s"] = round(time.perf_counter() - started, 1)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
