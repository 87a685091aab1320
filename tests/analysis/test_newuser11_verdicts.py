"""newuser11 #3: two remedies of tanh_rnn_long at about the same first-to-last ratio get opposite
verdicts (an LSTM with forget bias 1 fixed at 5.5e-8, orthogonal init not fixed at 4.4e-8), which is
right (a gated cell's vanishing through time is a note on its memory horizon: its gates learn to keep
memory longer; a plain cell's tanh Jacobian cannot), and each verdict now names the bar it was judged by."""

from __future__ import annotations

import math

from gradhealth.report.text import render_text


def test_each_through_time_verdict_names_its_cells_bar(checked) -> None:
    doc = checked("tanh_rnn_long")
    f = next(f for f in doc.findings if f.code == "vanishing_through_time")
    fb1 = next(r for r in f.remedies if r.id == "gated_recurrent_cell" and r.params.get("forget_bias") == 1.0)
    ortho = next(r for r in f.remedies if r.id == "orthogonal_init")
    assert fb1.verified.fixed and not ortho.verified.fixed
    # both still under 1e-2 over 98 steps, at nearly the same factor a step: only the cell differs
    for r in (fb1, ortho):
        assert r.verified.after < 1e-2
        per_step = r.verified.after ** (1 / 98)
        assert 0.8 < per_step < 0.9
        assert f"({per_step:.3g} a step" in r.verified.note
        assert f"memory horizon of {-1 / math.log(per_step):.3g} steps" in r.verified.note
    assert "is a gated cell" in fb1.verified.note and "note on its horizon" in fb1.verified.note
    assert "is a plain cell" in ortho.verified.note and "under the error threshold 0.0001" in ortho.verified.note
    # the chrono LSTM, over the plain bar, needs no word on it
    chrono = next(r for r in f.remedies if r.id == "gated_recurrent_cell" and r.params.get("forget_bias") == "chrono")
    assert chrono.verified.after > 1e-2 and chrono.verified.note is None
    text = render_text(doc)
    assert f"       verdict: {fb1.verified.note}" in text and f"       verdict: {ortho.verified.note}" in text
