"""kerassweep26 boston_attention_json: a hidden softmax swapped for a ReLU read "FIXED: min_softmax_gain
0.0502 -> -", the verdict "the changed network has nothing this metric measures". A remedy that removes
every unit the finding's metric counts leaves nothing measured that the problem is gone: its verdict is
``not measured`` (``Verified.not_measured``), never fixed, in every door (a spec, a model file's graph)."""

from __future__ import annotations

from typing import Any

from gradhealth.report.text import render_text
from tests.analysis.test_kerassweep26_fixes import _attention, _hidden_softmax


def _tanh_spec(activation: str = "tanh") -> dict[str, Any]:
    # three tanh layers at std 1 over 64 inputs: pre-activations of std 8, most units in the flat tails
    return {"name": "sat", "input": {"shape": [64]}, "batch_size": 64,
            "layers": [{"type": "linear", "out_features": 64, "activation": activation,
                        "init": {"scheme": "normal", "std": 1.0}, "repeat": 3},
                       {"type": "linear", "out_features": 4}], "loss": {"type": "mse"}}


def test_a_spec_remedy_that_removes_every_saturating_unit_is_not_measured_not_fixed() -> None:
    from gradhealth.library import check_architecture

    doc = check_architecture(_tanh_spec(), seeds=1)
    [sat] = [f for f in doc.findings if f.code == "saturation"]
    ids = [r.id for r in sat.remedies]
    swap = sat.remedies[ids.index("relu_family_activation")]
    v = swap.verified
    assert v is not None and v.metric == "max_saturated_fraction"
    # a ReLU network has no unit with a flat tail: nothing for the share to be measured on
    assert v.after is None and not v.fixed and v.not_measured and "nothing max_saturated_fraction measures" \
        in v.not_measured
    assert swap.recommended  # nothing measured against it either, as an unverified remedy
    # a remedy that measured its fix (Xavier keeps the tanh units, now out of the tails) stays fixed, and first
    xavier = sat.remedies[ids.index("xavier_init")]
    assert xavier.verified is not None and xavier.verified.fixed and xavier.verified.not_measured is None
    assert xavier.verified.after is not None and xavier.verified.after < 0.1
    assert ids.index("xavier_init") < ids.index("relu_family_activation")
    text = render_text(doc)
    line = next(ln for ln in text.splitlines() if "relu_family_activation" in ln and "saturation" not in ln
                and "[" in ln)
    assert "[not measured: max_saturated_fraction" in line and "FIXED" not in line


def test_units_of_the_kind_left_under_the_bar_are_a_reading_not_an_empty_one() -> None:
    # a hardtanh under the 52% it is judged from, or the output layer: the measure is nan, but units
    # with the fraction remain, so a remedy leaving them is measured (healthy), not "not measured"
    from types import SimpleNamespace

    from gradhealth.analysis.rules import rule

    part = rule("saturation").architecture
    kept = SimpleNamespace(units=[SimpleNamespace(values={"saturated_fraction": [0.4]})])
    gone = SimpleNamespace(units=[SimpleNamespace(values={"output_grad_norm": [1.0]})])
    assert part.remains(kept, "max_saturated_fraction")  # type: ignore[arg-type]  # a stand-in result
    assert not part.remains(gone, "max_saturated_fraction")  # type: ignore[arg-type]  # a stand-in result
    assert not part.remains(kept, "min_softmax_gain")  # type: ignore[arg-type]  # no hidden softmax there


def test_a_model_files_hidden_softmax_swapped_for_a_relu_is_not_measured() -> None:
    from gradhealth.analysis.importers.keras import check_keras

    doc = check_keras(_attention(False), loss="mse", seeds=1)
    swap = next(r for f in _hidden_softmax(doc) for r in f.remedies if r.id == "relu_family_activation")
    v = swap.verified
    assert v is not None and v.metric == "min_softmax_gain" and v.before is not None and v.before < 0.25
    assert v.after is None and not v.fixed
    assert v.not_measured and "nothing min_softmax_gain measures" in v.not_measured
    assert "[not measured: min_softmax_gain" in render_text(doc)
