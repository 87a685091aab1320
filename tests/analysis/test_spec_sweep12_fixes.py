"""specsweep12: a spec's batch norms report the values per channel they normalise over, so a tiny
batch is small_batch_statistics for specs as for live modules; a Pre-LN stack's layers are not
exempt from large_updates as scale-invariant (their weights scale their own branch only)."""

from __future__ import annotations

import pytest

from gradhealth.library import check_architecture


def _bn_mlp(batch: int) -> dict:
    return {"input": {"shape": [32]}, "batch_size": batch, "seeds": 1,
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "norm": "batchnorm", "repeat": 6},
                       {"type": "linear", "out_features": 10}]}


@pytest.mark.parametrize("batch,severity", [(2, "error"), (4, "warning"), (16, None)])
def test_a_spec_batch_norm_over_a_tiny_batch_is_small_batch_statistics(batch: int, severity: str | None) -> None:
    # a vector's batch norm normalises each feature over the batch alone: 2 values make it +-1
    doc = check_architecture(_bn_mlp(batch), verify=False)
    found = [f for f in doc.findings if f.code == "small_batch_statistics"]
    assert [f.severity for f in found] == ([severity] if severity else [])
    if found:
        assert found[0].evidence.value == batch and len(found[0].evidence.layers) == 6


def test_a_convolutional_batch_norm_counts_the_positions_too() -> None:
    spec = {"input": {"shape": [3, 8, 8]}, "batch_size": 2, "seeds": 1,
            "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "activation": "relu",
                        "norm": "batchnorm"},
                       {"type": "flatten"}, {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec, verify=False)
    assert not [f for f in doc.findings if f.code == "small_batch_statistics"]  # 2 x 64 positions


def _pre_ln(lr: float) -> dict:
    return {"input": {"tokens": {"vocab_size": 100, "seq_len": 16}}, "batch_size": 8, "seeds": 1,
            "optimizer": {"type": "adam", "lr": lr},
            "layers": [{"type": "embedding", "embedding_dim": 64},
                       {"type": "transformer_encoder", "d_model": 64, "heads": 4, "ff_width": 128, "num_layers": 4,
                        "norm_first": True},
                       {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 10}]}


def test_a_pre_ln_stack_at_a_rate_far_too_large_is_large_updates() -> None:
    # Adam's first step is about lr per weight: 1e-2 against encoder weights of rms ~0.1 is ~0.1-0.3
    doc = check_architecture(_pre_ln(1e-2), verify=False)
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    assert any("transformer_encoder" in name for name in f.evidence.layers), f.evidence.layers


def test_a_pre_ln_stack_at_a_usual_rate_is_not() -> None:
    doc = check_architecture(_pre_ln(1e-4), verify=False)
    assert not [f for f in doc.findings if f.code == "large_updates"]
