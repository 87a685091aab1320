"""A spec's recurrent layer with ``num_layers`` k > 1 is k stacked layers (specsweep13 problem 2,
gnmt_lstm8_stacked): its vanishing gradient read "(2 layers, one step)", a per-layer factor of the
whole stack, and it had no remedy. The depth now counts the stack's k Jacobians, and
residual_connections splits the stack into k layers of one with skips (GNMT's residual stack,
Wu et al. 2016 Sec. 3.1), verified by re-simulation."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from gradhealth.library import check_architecture


def _stacked(num_layers: int, *, width: int = 32, hidden: int = 32, output: str = "sequence") -> dict[str, Any]:
    small = {"scheme": "uniform", "bound": 0.1}
    return {"name": "stacked", "input": {"tokens": {"vocab_size": 50, "seq_len": 8}}, "batch_size": 8,
            "layers": [{"type": "embedding", "embedding_dim": width, "init": small},
                       {"type": "lstm", "hidden_size": hidden, "num_layers": num_layers, "output": output,
                        "init": small, "recurrent_init": small},
                       {"type": "linear", "out_features": 50}],
            "optimizer": {"type": "adam", "lr": 0.001}}


def test_the_depth_of_a_stacked_recurrent_layer_counts_its_layers() -> None:
    doc = check_architecture(_stacked(6), verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    ev = f.evidence.model_extra
    # the ratio of the embedding's output gradient to the LSTM's, as the layer table has them
    emb, lstm = doc.layers[0], doc.layers[1]
    ratio = emb.output_grad_norm / lstm.output_grad_norm
    assert f.evidence.value == pytest.approx(ratio, rel=1e-6)
    # 6 Jacobians between the two outputs: 7 layers, 6 steps, the per-step factor the 6th root
    assert ev["depth"] == 7 and ev["stacked_layers"] == {"layers[1].lstm": 6}
    assert ev["per_layer_factor"] == pytest.approx(ratio ** (1 / 6), rel=1e-6)
    assert "(7 layers, 6 steps," in f.summary and "one step" not in f.summary
    assert "a stack of 6 lstm layers" in f.explanation


def test_residual_connections_split_a_stacked_recurrent_layer_and_are_verified() -> None:
    spec = _stacked(6)
    doc = check_architecture(spec)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    r = next(r for r in f.remedies if r.id == "residual_connections")
    assert r.verified is not None and r.verified.fixed and r.recommended
    patched = jsonpatch.apply_patch(spec, [p.model_dump() if hasattr(p, "model_dump") else p for p in r.patch])
    [res] = [layer for layer in patched["layers"] if layer["type"] == "residual"]
    assert res["repeat"] == 6 and res["layers"][0]["num_layers"] == 1


def test_a_stack_that_changes_width_and_reads_its_last_state_keeps_those_layers_plain() -> None:
    from gradhealth.analysis import spec as S
    from gradhealth.analysis.remedies import _stacked_residual
    layer = S.RecurrentLayer(type="gru", hidden_size=16, num_layers=5, output="last")
    raw = {"type": "gru", "hidden_size": 16, "num_layers": 5, "output": "last"}
    ops = _stacked_residual("/layers/1", raw, layer, (8, 32))
    values = [op["value"] for op in ops]
    # the first (32 -> 16 features) and the last (the final state) plain, the 3 between wrapped
    assert [v["type"] for v in values] == ["gru", "residual", "gru"]
    assert values[1]["repeat"] == 3 and values[0]["output"] == "sequence" and values[2]["output"] == "last"
    assert [op["path"] for op in ops] == ["/layers/1", "/layers/2", "/layers/3"]
    assert _stacked_residual("/layers/1", {**raw, "num_layers": 2}, S.RecurrentLayer(
        type="gru", hidden_size=16, num_layers=2, output="last"), (8, 32)) == []
