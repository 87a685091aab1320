"""newuser11 #6: a remedy snippet shows its numbers as short Python literals (the lower_learning_rate
code for a rate cut from 0.4 to 0.01 read ``group["lr"] * 0.024999999999999998``)."""

from __future__ import annotations

import ast

import numpy as np

from gradhealth.core import remedies as R


def test_a_computed_factor_reads_as_its_short_literal() -> None:
    factor = 0.01 / 0.4
    assert repr(factor) == "0.024999999999999998"  # what the snippet printed
    r = R.lower_learning_rate(factor, learning_rate=0.4, at_step=150)
    assert 'group["lr"] = group["lr"] * 0.025' in r.snippet and repr(factor) not in r.snippet
    assert r.params["factor"] == factor  # the document keeps the exact figure
    raised = R.raise_learning_rate(1.1 * 3, learning_rate=0.01)
    assert raised.snippet.endswith('group["lr"] = group["lr"] * 3.3') and repr(1.1 * 3) == "3.3000000000000003"
    ast.parse(r.snippet)  # still Python


def test_every_float_parameter_of_a_snippet_is_short() -> None:
    clip = R.make_remedy("gradient_clipping", "clip", max_norm=np.float64(0.7) * 3)
    assert "max_norm=2.1)" in clip.snippet  # not 2.0999999999999996
    assert R.make_remedy("weight_decay", "wd", weight_decay=1e-5).snippet.endswith("= 1e-05")
    assert R.snippet_number(7) == 7 and R.snippet_number("x") == "x" and R.snippet_number(2.0) == "2.0"
