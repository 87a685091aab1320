"""Vanishing through time: a plain cell's is a failure, a gated cell's a note at default gates' factor
or better and a risk with gates shut (rules.GATED_CELLS, DEFAULT_GATE_PER_STEP; kerassweep13).

The gradient figures are read back from the document's own per-step series, which the simulation
records independently of the rule that judges them.
"""

from __future__ import annotations

import math

from gradhealth import check_architecture

STEPS = 100


def _spec(*layers: dict) -> dict:
    return {"input": {"shape": [STEPS, 8]}, "batch_size": 16, "seeds": 2,
            "layers": [*layers, {"type": "linear", "out_features": 3}]}


def _finding(doc, code="vanishing_through_time"):
    return next(f for f in doc.findings if f.code == code)


def _series(doc, layer: str) -> list[float]:
    return [s.output_grad_norm for s in doc.time_steps if s.layer == layer]


def test_a_default_lstm_is_a_note_with_its_memory_horizon() -> None:
    # was a warning over 50 steps or more; since kerassweep13 (h04: a default LSTM over 60 steps) a
    # gated cell at default gates' factor is a note at any length: the length says nothing of it
    doc = check_architecture(_spec({"type": "lstm", "hidden_size": 32}), verify=False)
    f = _finding(doc)
    assert f.severity == "info" and doc.status == "healthy"
    series = _series(doc, "layers[0].lstm")
    ratio = series[0] / series[STEPS - 2]
    assert ratio < 1e-4  # past the error threshold: default gates, not the ratio, make it a note
    per_step = ratio ** (1 / (STEPS - 2))
    assert math.isclose(f.evidence.per_step_factor, per_step, rel_tol=1e-6)
    # the gradient falls by e over the horizon: per_step ** horizon == 1/e
    assert math.isclose(per_step ** f.evidence.memory_horizon_steps, math.exp(-1), rel_tol=1e-9)
    assert f"{f.evidence.memory_horizon_steps:.3g} steps" in f.explanation


def test_an_lstm_with_its_forget_gate_shut_is_a_warning_and_chrono_fixes_it() -> None:
    # forget bias -5 (sigmoid 0.007): worse than default gates by a margin, the warning and its fix
    doc = check_architecture(_spec({"type": "lstm", "hidden_size": 32, "forget_bias": -5.0}))
    f = _finding(doc)
    assert f.severity == "warning" and doc.status == "warning"
    assert f.evidence.per_step_factor < 0.5
    chrono = next(r for r in f.remedies if r.id == "gated_recurrent_cell")
    assert chrono.verified is not None and chrono.verified.fixed


def test_a_plain_tanh_rnn_over_the_same_steps_is_an_error() -> None:
    doc = check_architecture(_spec({"type": "rnn", "hidden_size": 32}), verify=False)
    f = _finding(doc)
    assert f.severity == "error" and doc.status == "unhealthy"
    # a plain cell's horizon too (kerassweep11: a SimpleRNN at 0.661 a step reaches ~2.4 steps back)
    assert math.isclose(f.evidence.per_step_factor ** f.evidence.memory_horizon_steps, math.exp(-1), rel_tol=1e-9)


def test_a_plain_cell_behind_a_gated_one_still_fails_and_is_the_one_named() -> None:
    doc = check_architecture(_spec(
        {"type": "lstm", "hidden_size": 32, "output": "sequence"},
        {"type": "rnn", "hidden_size": 32}), verify=False)
    f = _finding(doc)
    assert f.severity == "error" and f.evidence.layers == ["layers[1].rnn"]
    plain = _series(doc, "layers[1].rnn")
    assert math.isclose(f.evidence.value, plain[0] / plain[STEPS - 2], rel_tol=1e-6)


def test_a_gru_is_gated_too() -> None:
    # a default GRU at default gates' factor: a note (was a warning over 50 steps, kerassweep13)
    doc = check_architecture(_spec({"type": "gru", "hidden_size": 32}), verify=False)
    severities = {f.severity for f in doc.findings if f.code == "vanishing_through_time"}
    assert severities <= {"info"}


def test_the_lstm_remedy_for_a_keras_gru_is_a_valid_spec_with_gates_that_can_open() -> None:
    # a Keras 2 GRU (reset before the product, hard-sigmoid gates) over 200 steps: the LSTM the
    # remedy proposes must drop reset_after (GRU only), or its patch is a spec the check refuses;
    # and its opened gates must be sigmoids (a hard sigmoid pinned by the bias passes nothing).
    # Its gates shut (every bias -5: the hard sigmoid's 0): with zero biases, default gates, it is
    # a note without remedies since kerassweep13
    doc = check_architecture({"name": "keras gru", "input": {"shape": [200, 16]}, "batch_size": 16, "layers": [
        {"type": "gru", "hidden_size": 64, "reset_after": False, "recurrent_activation": "hard_sigmoid",
         "recurrent_init": "orthogonal", "init": "xavier_uniform", "bias_init": {"scheme": "constant", "value": -5.0}},
        {"type": "linear", "out_features": 10}]})
    f = _finding(doc)
    gated = [r for r in f.remedies if r.id == "gated_recurrent_cell"]
    assert gated
    for r in gated:
        [op] = r.patch
        assert op["value"]["type"] == "lstm" and "reset_after" not in op["value"]
        assert op["value"]["recurrent_activation"] == "sigmoid" and "sigmoid gates" in r.change
        # simulated; its note, where any, names the bar its cell was judged by (newuser11)
        assert r.verified is not None and r.verified.after is not None
        assert r.verified.note is None or "gated cell" in r.verified.note
    assert any(r.verified.fixed for r in gated)


def test_an_lstm_is_offered_only_a_forget_gate_opened_wider_than_it_is() -> None:
    # at STEPS = 100 chrono is the first offer; an LSTM at chrono already is offered no weaker bias of 1.
    # Since kerassweep13 only gates worse than default warn (and get remedies): a forget bias of -5
    # is offered both; one of 1 is at least default gates, a note with no remedy at all
    def offers(forget_bias) -> list:
        layer = {"type": "lstm", "hidden_size": 32, "recurrent_init": {"scheme": "normal", "std": 0.05}}
        if forget_bias is not None:
            layer["forget_bias"] = forget_bias
        doc = check_architecture(_spec(layer), verify=False)
        found = [f for f in doc.findings if f.code == "vanishing_through_time"]
        return [r.patch[0]["value"]["forget_bias"] for f in found for r in f.remedies
                if r.id == "gated_recurrent_cell"]

    assert offers(-5.0) == ["chrono", 1.0]
    assert offers(1.0) == []
    # a chrono LSTM over 500 steps still loses its gradient (a warning): no bias of 1 is offered it
    spec = {"input": {"shape": [500, 4]}, "batch_size": 8, "seeds": 1,
            "layers": [{"type": "lstm", "hidden_size": 16, "forget_bias": "chrono"},
                       {"type": "linear", "out_features": 3}]}
    [f] = [f for f in check_architecture(spec, verify=False).findings if f.code == "vanishing_through_time"]
    assert "gated_recurrent_cell" not in {r.id for r in f.remedies}
