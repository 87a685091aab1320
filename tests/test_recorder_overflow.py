"""A gradient whose norm is past its dtype's range although every element is finite is recorded
with its true norm, not Inf: float32's square sum overflows at a norm of about 1.8e19, float16's
at 65504, and an Inf in the log reads as NaN/Inf gradients (``nonfinite``) rather than as the
exploding, finite gradients they are. An Inf element still records Inf.

Expected values are computed here in closed form (n equal elements c: norm c * sqrt(n))."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.recorder import GradientRecorder


def _layer_norms(path: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["layer"]: float(r["value"]) for r in rows if r.get("kind") == "grad_norm"}


@pytest.mark.parametrize(("dtype", "element", "shape"), [
    (torch.float32, 1e20, (4, 4)),        # norm 4e20: float32's square sum overflows at ~1.8e19
    (torch.float16, 1000.0, (100, 100)),  # norm 1e5: past float16's 65504
])
def test_a_finite_gradient_past_its_dtypes_norm_range_is_recorded_with_its_norm(tmp_path, dtype, element, shape):
    layer = nn.Linear(shape[1], shape[0]).to(dtype)
    assert math.isinf(float(torch.linalg.vector_norm(torch.full(shape, element, dtype=dtype))))  # the trap
    layer.weight.grad = torch.full(shape, element, dtype=dtype)
    layer.bias.grad = torch.ones(shape[0], dtype=dtype)
    path = tmp_path / "run.jsonl"
    with GradientRecorder(layer, path) as rec:
        rec.step(loss=1.0)
    norms = _layer_norms(path)
    assert norms["weight"] == pytest.approx(element * math.sqrt(shape[0] * shape[1]), rel=1e-6)
    assert norms["bias"] == pytest.approx(math.sqrt(shape[0]), rel=1e-6)


def test_an_inf_element_is_still_recorded_as_inf(tmp_path):
    layer = nn.Linear(4, 4)
    layer.weight.grad = torch.ones(4, 4)
    layer.weight.grad[1, 2] = math.inf
    layer.bias.grad = torch.ones(4)
    path = tmp_path / "run.jsonl"
    with GradientRecorder(layer, path) as rec:
        rec.step(loss=1.0)
    assert math.isinf(_layer_norms(path)["weight"])


def test_the_log_check_reads_huge_finite_norms_as_exploding_not_nonfinite(tmp_path):
    """Twelve steps whose gradients grow 100x a step to 1e22: finite throughout, so the log holds
    no NaN/Inf finding, and the growth is judged as such."""
    layer = nn.Linear(8, 8)
    path = tmp_path / "run.jsonl"
    with GradientRecorder(layer, path) as rec:
        for step in range(12):
            layer.weight.grad = torch.full((8, 8), 10.0 ** (2 * step - 1))
            layer.bias.grad = torch.full((8,), 0.1)
            rec.step(loss=1.0 + step)
    codes = {f.code for f in gradhealth.check_logs(path).findings}
    assert "nonfinite" not in codes
    assert "exploding_gradient" in codes
