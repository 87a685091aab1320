"""A remedy's verdict never rests on nothing measured: a batch-1 file's dead layer (judged over the
seeds' samples pooled) is re-simulated over every seed, and a verdict its rule could not judge is
"not judged: too few samples", never FIXED with a dash (onnxsweep17 u04); and a note, which carries
no remedies, does not point at "the changes below" (peersweep11 h07)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.module_check import check_onnx
from gradhealth.core.document import Diagnosis
from gradhealth.report.text import render_text


def _dead_batch_one() -> bytes:
    # batch fixed at 1; inputs in [0, 1] and every first-layer weight negative, no bias: every unit
    # of the ReLU layer is 0 on every sample of every seed, while a He init makes it fire on some
    rng = np.random.default_rng(1)
    inits = {"w0": -np.abs(rng.standard_normal((32, 16))).astype(np.float32) * 0.3,
             "w1": rng.standard_normal((10, 32)).astype(np.float32) * 0.2}
    nodes = [helper.make_node("Gemm", ["x", "w0"], ["z0"], transB=1), helper.make_node("Relu", ["z0"], ["h0"]),
             helper.make_node("Gemm", ["h0", "w1"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def test_batch_one_remedies_are_judged_over_every_seed_or_said_not_judged() -> None:
    doc = check_onnx(_dead_batch_one(), input_range=(0.0, 1.0), seeds=3)
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    assert dead.severity == "error"
    verdicts = {r.id: r.verified for r in dead.remedies if r.verified is not None}
    assert verdicts
    for rid, v in verdicts.items():
        # FIXED never rests on a null after, unless no unit of the kind is left (leaky ReLU)
        if v.fixed and v.after is None:
            assert v.not_judged is None and "nothing this metric measures" in (v.note or ""), (rid, v)
        if v.not_judged is not None:
            assert not v.fixed and v.after is None and v.not_judged.startswith("too few samples"), (rid, v)
            assert v.seeds == 3, (rid, v)  # every seed's samples pooled, as the finding's were
    # the biases are already 0: zeroing them keeps every weight negative, still dead on every sample
    assert verdicts["zero_bias"].after == 1.0 and not verdicts["zero_bias"].fixed
    # He init lets units fire on some sample. A batch-1 file is run on further draws to 16 samples a
    # seed (onnxsweep27), so one seed's re-simulation judges the part of the layer left off: with
    # positive and negative weights a unit's pre-activation is positive for some of 16 inputs in
    # [0, 1] unless its weights are mostly negative, and under half the units are left off
    he = verdicts["he_init"]
    assert he.not_judged is None and he.fixed and he.after is not None and he.after < 0.5
    text = render_text(Diagnosis.model_validate(doc.model_dump()))
    assert "not judged: too few samples" not in text


def test_born_dead_note_does_not_point_at_remedies_it_does_not_carry() -> None:
    from gradhealth.analysis.rules import DeadUnits
    from gradhealth.analysis.thresholds import Thresholds

    rule = DeadUnits()
    t = Thresholds()

    import gradhealth.analysis.rules as R
    # a 6% share of draws born dead (a note) and a 20% share (a warning), through the rule's describe
    for k, severity in ((6, "info"), (20, "warning")):
        saved = (R.born_dead_share, R.born_dead, R.may_die)
        unit = type("U", (), {"name": "dense_2", "has_weights": False, "mean": lambda self, key: 1.0})()
        try:
            R.born_dead_share = lambda result, k=k: (k, 100, True)  # type: ignore[assignment]
            R.born_dead = lambda result, unit=unit: [(unit, [0])]  # type: ignore[assignment]
            R.may_die = lambda result: []  # type: ignore[assignment]
            result = type("S", (), {"seeds": 3, "units": [unit], "over_draws": lambda self: None,
                                    "batch_size": 64, "checkpoint": False})()
            rule._born_dead = lambda result, s=severity: s  # type: ignore[method-assign]
            det = R.DeadUnits.describe(rule, severity, 0.0, result, t)
        finally:
            R.born_dead_share, R.born_dead, R.may_die = saved
        assert ("below" in det.explanation) == (severity != "info"), det.explanation
