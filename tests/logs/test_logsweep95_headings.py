"""logsweep95 mmdet_cascade_nan_readme: a README's Markdown heading ``### error log (loss NAN)`` gave a NaN loss
value. A heading of level 2-6 is a document's words, never values; a ``#`` comment line still holds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write

LOSSES = [2.0 / (1 + 0.1 * i) for i in range(30)]


def _console() -> str:
    """Two epochs of 750 iterations, a line every 50."""
    return "".join(f"Epoch [{1 + i // 15}][{50 * (i % 15 + 1)}/750]\tlr: 1.0e-03, loss: {v:.4f}\n"
                   for i, v in enumerate(LOSSES))


def test_a_heading_naming_a_nan_loss_gives_no_value(tmp_path: Path) -> None:
    text = "# Cascade R-CNN\n\n### error log (loss NAN)\n```shell script\n" + _console() + "```\n"
    run = read_log(write(tmp_path, "train.log", text))
    loss = by_name(run)["loss"]
    np.testing.assert_allclose(loss.values, np.round(LOSSES, 4))
    assert not [f for f in diagnose(run).findings if f.code == "nonfinite"]


def test_the_nan_reported_is_the_logged_one_not_the_headings(tmp_path: Path) -> None:
    # the README's shape: a NaN run under "### error log (loss NAN)" cut short in its first epoch, then the fixed
    # run started again and judged: the NaN reported from the run cut short is its console's, not the heading's
    first = _console().splitlines()[:10] + ["Epoch [1][550/750]\tlr: 1.0e-03, loss: nan"]
    text = "\n".join(["# Cascade R-CNN", "", "### error log (loss NAN)", "```", *first, "```", "", "### fixed", "```",
                      *_console().splitlines(), "```"]) + "\n"
    nan_line = 5 + len(first) - 1  # the console's NaN line (the heading is line 3)
    found = [f for f in diagnose(read_log(write(tmp_path, "README.md", text))).findings if f.code == "nonfinite"]
    assert found and all("line 3:" not in f.summary for f in found)
    assert f"line {nan_line}:" in found[0].summary


def test_a_comment_line_still_holds_values(tmp_path: Path) -> None:
    text = "".join(f"# step {i} loss: {v:.4f}\n" for i, v in enumerate(LOSSES))
    loss = by_name(read_log(write(tmp_path, "train.log", text)))["loss"]
    np.testing.assert_allclose(loss.values, np.round(LOSSES, 4))
