"""specsweep12 h07/p3: a designed zero readout (Fixup's, DiT's final layer) leaves every hidden
layer's gradient exactly 0 at initialisation. Healthy is right (the readout learns at the first step),
but the report says the depth checks measured nothing there: a vanishing_gradient note naming it."""

from __future__ import annotations

from gradhealth.library import check_architecture


def _mlp(hidden_init: str = "kaiming_normal", zero_hidden: bool = False) -> dict:
    hidden = {"type": "linear", "out_features": 64, "activation": "relu", "init": hidden_init,
              "bias_init": "zeros", "repeat": 6}
    layers = [hidden, {"type": "linear", "out_features": 10, "init": "zeros", "bias_init": "zeros"}]
    if zero_hidden:
        layers.insert(1, {**hidden, "repeat": 1, "init": "zeros"})
    return {"input": {"shape": [64]}, "batch_size": 32, "seeds": 2, "layers": layers}


def test_a_zero_readout_is_a_note_that_the_depth_was_not_measured() -> None:
    doc = check_architecture(_mlp(), verify=False)
    assert doc.status == "healthy"
    hidden = [layer for layer in doc.layers if layer.name != "layers[1].linear"]
    assert all(layer.grad_norm == 0 for layer in hidden)  # what the note is about
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_gradient", "info")
    ev = f.evidence.model_extra
    assert ev["depth_unmeasured"] is True and ev["zero_init"] is True
    assert ev["zero_weights"] == ["layers[1].linear"]
    assert "layers[1].linear starts at zero on purpose" in f.summary
    assert "measured no gradient at initialisation" in f.summary
    assert "note: vanishing_gradient" in doc.summary


def test_fixup_zero_branch_ends_and_readout_are_one_designed_zero_init() -> None:
    # Fixup (Zhang et al. 2019): each residual branch's last conv at 0 and the classifier at 0; the
    # skip goes around each zero branch end, so none is behind another zero layer
    branch = {"type": "residual", "layers": [
        {"type": "linear", "out_features": 32, "activation": "relu", "init": {"scheme": "normal", "std": 0.05}},
        {"type": "linear", "out_features": 32, "init": "zeros", "bias_init": "zeros"}]}
    spec = {"input": {"shape": [32]}, "batch_size": 16, "seeds": 2,
            "layers": [{"type": "linear", "out_features": 32, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "block", "repeat": 4, "layers": [branch, {"type": "activation", "activation": "relu"}]},
                       {"type": "linear", "out_features": 10, "init": "zeros", "bias_init": "zeros"}]}
    doc = check_architecture(spec, verify=False)
    assert doc.status == "healthy"
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_gradient", "info")
    assert f.evidence.model_extra["depth_unmeasured"] is True
    assert len(f.evidence.model_extra["zero_weights"]) == 5  # four branch ends and the readout


def test_a_zero_hidden_layer_before_it_stays_an_error() -> None:
    doc = check_architecture(_mlp(zero_hidden=True), verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "error"
