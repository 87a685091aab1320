"""What the ninth spec sweep found in the remedies: a ResNet written as a repeated block of a
residual and a ReLU (how a spec gets ResNet's ReLU after the add) was never offered scaled residual
branches, and a deep plain net with batch norm, whose gradient grows by the norm's own gain, was
told its weights were too large and offered nothing that changes the architecture."""

from __future__ import annotations

from gradhealth.library import check_architecture


def _resnet(blocks: int) -> dict:
    conv = {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "init": "kaiming_normal"}
    return {"input": {"shape": [3, 8, 8]}, "batch_size": 8, "seeds": 1,
            "loss": {"type": "cross_entropy", "classes": 10},
            "layers": [{**conv, "activation": "relu"},
                       {"type": "block", "repeat": blocks, "layers": [
                           {"type": "residual", "layers": [{**conv, "activation": "relu"}, conv]},
                           {"type": "activation", "activation": "relu"}]},
                       {"type": "flatten"}, {"type": "linear", "out_features": 10}]}


def test_residuals_repeated_by_an_enclosing_block_are_scaled_by_their_count() -> None:
    doc = check_architecture(_resnet(16))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    [fix] = [r for r in f.remedies if r.id == "scaled_residual"]
    assert fix.patch == [{"op": "add", "path": "/layers/1/layers/0/scale", "value": 0.25}]   # 1/sqrt(16)
    assert fix.verified is not None and fix.verified.fixed


def test_a_plain_batch_normed_stack_is_told_where_its_growth_comes_from_and_offered_skips() -> None:
    conv = {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False,
            "norm": "batchnorm", "activation": "relu", "init": "kaiming_normal"}
    spec = {"input": {"shape": [3, 8, 8]}, "batch_size": 16, "seeds": 1, "loss": {"type": "cross_entropy", "classes": 10},
            "layers": [{**conv, "repeat": 60}, {"type": "flatten"}, {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec)
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert f.severity == "error" and f.evidence.model_dump()["normalisation_gain"] is True
    assert "absorbed_by_normalisation" not in f.evidence.model_dump()   # past the error level: not absorbed
    assert "normalisation itself" in f.explanation and "weights too large" not in f.explanation
    [skip] = [r for r in f.remedies if r.id == "residual_connections"]
    assert skip.verified is not None and skip.verified.fixed
