"""errsweep5: a data range (a spec's ``input.range`` and ``loss.target_range``, ``check_module``'s
``input_range=``/``target_range=``, ``--input-range``/``--target-range``) is bounded by one rule,
|low|, |high| <= 1e6: ``[-1e308, 1e308]`` drew inputs whose width overflowed to inf, and the NaN
was blamed on the first layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import parse_target_range
from gradhealth.analysis.importers.onnx_static import parse_input_range
from gradhealth.analysis.spec import parse_spec
from gradhealth.core.numbers import MAX_RANGE, range_problem
from gradhealth.errors import ArgumentError, InputFormatError, SpecError

LAYERS = [{"type": "linear", "out_features": 3}]


def test_the_bound_keeps_drawn_inputs_and_their_squares_finite() -> None:
    # Independent of the code: the widest allowed range, drawn and squared in float32 over 2^20
    # values, stays finite; the sweep's range does not even have a finite width.
    x = np.random.default_rng(0).uniform(-MAX_RANGE, MAX_RANGE, 2**20).astype(np.float32)
    assert np.isfinite(np.sum(x.astype(np.float32) ** 2, dtype=np.float32))
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.float64(1e308) - np.float64(-1e308))


@pytest.mark.parametrize("pair", [(-1e308, 1e308), (0, 1_000_001), (-2e6, 0), (1, 0), (0, float("inf"))])
def test_range_problem_refuses(pair) -> None:
    message = range_problem(*pair)
    assert message is not None and "between -1000000 and 1000000" in message


@pytest.mark.parametrize("pair", [(0, 1), (0, 255), (0, 65535), (-1e6, 1e6)])
def test_range_problem_accepts_data_ranges(pair) -> None:
    assert range_problem(*pair) is None


def test_spec_input_range_is_refused_at_its_pointer() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"input": {"shape": [4], "range": [-1e308, 1e308]}, "seeds": 1, "layers": LAYERS})
    assert [p.pointer for p in err.value.problems] == ["/input/range"]
    assert "[-1e+308, 1e+308]" in str(err.value) and "too far from zero" in str(err.value)
    assert parse_spec({"input": {"shape": [4], "range": [0, 65535]}, "layers": LAYERS}).input.range == (0, 65535)


def test_spec_target_range_is_refused_at_its_pointer() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"input": {"shape": [4]}, "loss": {"type": "mse", "target_range": [0, 1e7]}, "layers": LAYERS})
    assert [p.pointer for p in err.value.problems] == ["/loss/target_range"]
    assert "[0, 10000000]" in str(err.value)


def test_check_module_ranges_are_bounded() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ArgumentError, match=r"input_range \[-1e\+308, 1e\+308\] is too far from zero"):
        gradhealth.check_module(model, torch.randn(8, 4), input_range=(-1e308, 1e308))
    with pytest.raises(ArgumentError, match=r"target_range \[0, 10000000\] is too far from zero"):
        gradhealth.check_module(model, torch.randn(8, 4), loss="mse", target_range=(0, 1e7))


@pytest.mark.parametrize(("parse", "error"), [(parse_input_range, ModelError), (parse_target_range, InputFormatError)])
def test_cli_range_options_are_bounded(parse, error) -> None:
    with pytest.raises(error, match="between -1000000 and 1000000") as err:
        parse("-1e308,1e308")
    assert "'-1e308,1e308'" in str(err.value)
    assert parse("0,65535") == (0.0, 65535.0)
