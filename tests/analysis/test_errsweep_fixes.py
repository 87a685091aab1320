"""Specs that validation let through and the check then failed on (the bad-input sweep): each is now
refused with a pointer before any work, or checked to the end."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits, make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.document import pow10
from gradhealth.errors import LimitExceeded, SpecError


def _linear(**kw: Any) -> dict[str, Any]:
    return {"type": "linear", **kw}


def _refused(raw: dict[str, Any], error: type[SpecError] = SpecError) -> tuple[str, str]:
    with pytest.raises(error) as info:
        make_plan(parse_spec(raw), Limits())
    problem = info.value.problems[0]
    return problem.pointer, problem.message


def test_a_single_output_under_the_default_loss_gets_a_patch_that_applies() -> None:
    # the binary-loss remedy replaced /loss, which a spec leaving the loss at its default has not got
    raw = {"input": {"shape": [8]}, "seeds": 1, "layers": [_linear(out_features=1)]}
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
    [finding] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    [remedy] = [r for r in finding.remedies if r.patch]
    assert remedy.patch == [{"op": "add", "path": "/loss", "value": {"type": "binary_cross_entropy"}}]
    assert remedy.verified is not None and remedy.verified.fixed


@pytest.mark.parametrize("loss", ["cross_entropy", {"type": "cross_entropy", "from_logits": True}])
def test_the_loss_patch_keeps_what_the_spec_wrote(loss: Any) -> None:
    raw = {"input": {"shape": [8]}, "seeds": 1, "loss": loss, "layers": [_linear(out_features=1)]}
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
    [remedy] = [r for f in doc.findings for r in f.remedies if r.patch]
    if isinstance(loss, dict):  # the field the spec wrote, replaced; the rest kept
        assert remedy.patch == [{"op": "replace", "path": "/loss/type", "value": "binary_cross_entropy"}]
    else:  # a name alone becomes an object
        assert remedy.patch == [{"op": "add", "path": "/loss", "value": {"type": "binary_cross_entropy"}}]
    assert remedy.verified is not None and remedy.verified.fixed


def test_a_predicted_ratio_past_the_largest_float_is_reported_not_raised() -> None:
    assert pow10(400.0) == math.inf and pow10(-400.0) == 0.0 and pow10(2.0) == 100.0
    assert math.isnan(pow10(math.nan))
    # 200 tanh layers at std 100: the mean-field prediction is 10^(hundreds); the check completes
    raw = {"input": {"shape": [16]}, "seeds": 1, "precision": "float32",
           "layers": [_linear(out_features=16, activation="tanh", init={"scheme": "normal", "std": 100}, repeat=200),
                      _linear(out_features=2)]}
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
    assert doc.status == "unhealthy"


@pytest.mark.parametrize("num_layers", [50_000, 2**53 - 1])
def test_a_recurrent_stack_counts_its_layers_against_the_limit(num_layers: int) -> None:
    raw = {"input": {"shape": [10, 8]}, "seeds": 1,
           "layers": [{"type": "gru", "hidden_size": 8, "num_layers": num_layers}, _linear(out_features=2)]}
    pointer, message = _refused(raw, LimitExceeded)
    assert pointer == "/layers/0/num_layers" and "2000 layers" in message


@pytest.mark.parametrize(("kind", "num_layers", "bidirectional"),
                         [("lstm", 1, False), ("lstm", 3, True), ("gru", 4, False), ("rnn", 2, True)])
def test_a_recurrent_stacks_parameters_are_torchs(kind: str, num_layers: int, bidirectional: bool) -> None:
    raw = {"input": {"shape": [10, 6]}, "seeds": 1,
           "layers": [{"type": kind, "hidden_size": 5, "num_layers": num_layers, "bidirectional": bidirectional},
                      _linear(out_features=2)]}
    plan = make_plan(parse_spec(raw), Limits())
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
    module = cls(6, 5, num_layers=num_layers, bidirectional=bidirectional)
    assert plan.units[0].parameters == sum(p.numel() for p in module.parameters())


def test_batch_norm_over_one_value_per_channel_is_refused_at_the_batch_size() -> None:
    raw = {"input": {"shape": [8]}, "seeds": 1, "batch_size": 1, "layers": [_linear(out_features=4, norm="batchnorm")]}
    pointer, message = _refused(raw)
    assert pointer == "/batch_size" and "at least 2" in message
    # over an image a batch of one still has a value per pixel and channel
    image = {"input": {"shape": [1, 4, 4]}, "seeds": 1, "batch_size": 1,
             "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 1, "norm": "batchnorm"},
                        {"type": "flatten"}, _linear(out_features=2)]}
    make_plan(parse_spec(image), Limits())


def test_a_network_without_parameters_is_refused() -> None:
    raw = {"input": {"shape": [8]}, "seeds": 1, "layers": [{"type": "activation", "activation": "relu"}]}
    pointer, message = _refused(raw)
    assert pointer == "/layers" and "no trainable parameters" in message


def test_a_stride_past_the_input_is_refused_at_the_stride() -> None:
    raw = {"input": {"shape": [1, 4, 4]}, "seeds": 1,
           "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 1},
                      {"type": "maxpool2d", "kernel_size": 2, "stride": 2**31}, {"type": "flatten"},
                      _linear(out_features=2)]}
    pointer, message = _refused(raw)
    assert pointer == "/layers/1/stride" and "at most 4" in message
    raw["layers"][0]["stride"] = 2**40
    assert _refused(raw)[0] == "/layers/0/stride"
