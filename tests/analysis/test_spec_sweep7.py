"""What the seventh spec sweep found: a Post-LN stack split across spec entries was not one stack."""

from __future__ import annotations

import pytest

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds


def _encoder(layers: int, norm_first: bool = False) -> dict:
    return {"type": "transformer_encoder", "d_model": 32, "heads": 4, "ff_width": 64, "num_layers": layers,
            "norm_first": norm_first}


def _spec(*middle: dict) -> dict:
    return {"input": {"tokens": {"vocab_size": 200, "seq_len": 16}}, "batch_size": 8, "seeds": 1,
            "layers": [{"type": "embedding", "embedding_dim": 32}, *middle, {"type": "pool", "mode": "mean"},
                       {"type": "linear", "out_features": 5, "activation": "identity"}]}


def _post_ln(spec: dict) -> list[str]:
    doc = run_architecture_check(spec, CheckOptions(Thresholds(), Limits(), verify=False))
    return [layer for f in doc.findings if f.code == "post_ln_depth_risk" for layer in f.evidence.layers]


@pytest.mark.parametrize("split", [
    [_encoder(3), _encoder(3)],
    [{"type": "block", "layers": [_encoder(3), _encoder(3)]}],
    [_encoder(2), _encoder(2), _encoder(2)],
])
def test_consecutive_post_ln_entries_are_one_stack(split: list[dict]) -> None:
    whole = _post_ln(_spec(_encoder(6)))
    assert len(whole) > 0  # the six-layer stack in one entry: flagged, as before
    assert len(_post_ln(_spec(*split))) == len(whole)


def test_a_layer_between_or_a_pre_ln_stack_ends_the_stack() -> None:
    between = {"type": "linear", "out_features": 32, "activation": "relu"}
    assert _post_ln(_spec(_encoder(3), between, _encoder(3))) == []
    assert _post_ln(_spec(_encoder(3), _encoder(3, norm_first=True), _encoder(3))) == []
