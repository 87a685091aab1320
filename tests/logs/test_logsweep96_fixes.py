"""logsweep96: Jupyter notebooks read by their cells' outputs, a loss named with one letter glued before
it (LLaMA2-Accessory's ``closs``), a validation blow-up over a flat training loss said as such, and a
stuck validation accuracy judged against the training accuracy's level, not its noisy last points."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gradhealth.errors import LogError
from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.registry import formats
from gradhealth.logs.series import classify
from gradhealth.logs.sniff import detect
from tests.logs.helpers import write


def _keras(losses: list[float], val: list[float] | None = None) -> str:
    n = len(losses)
    lines = []
    for e, x in enumerate(losses, 1):
        lines.append(f"Epoch {e}/{n}\n")
        tail = f" - val_loss: {val[e - 1]:.4f}" if val else ""
        lines.append(f"363/363 [==============================] - 1s 2ms/step - loss: {x:.4f}{tail}\n")
    return "".join(lines)


def _notebook(cells: list[dict]) -> str:
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3"}},
                       "nbformat": 4, "nbformat_minor": 4}, indent=1)


def _code(count: int, outputs: list[dict]) -> dict:
    return {"cell_type": "code", "execution_count": count, "metadata": {}, "source": ["model.fit(X, y)\n"],
            "outputs": outputs}


def _stream(text: str, name: str = "stdout") -> dict:
    # a notebook keeps a stream's text as a list of lines, each with its newline
    return {"output_type": "stream", "name": name, "text": text.splitlines(keepends=True)}


# --- notebooks (problem 2) --------------------------------------------------------------------------


def _two_runs_notebook() -> str:
    exploding = [0.76, 8.16e9, 3.1, 2.9, 2.5, 2.4, 2.6, 2.5, 2.4, 2.7, 2.5, 2.6, 2.4, 2.5, 2.6, 2.5]
    healthy = [1.0 * 0.85 ** e for e in range(16)]
    return _notebook([
        {"cell_type": "markdown", "metadata": {}, "source": ["# Training\n"]},
        _code(1, [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                   "data": {"text/plain": ["'2.4.1'"]}}]),
        _code(2, [_stream(_keras(exploding), "stderr")]),
        _code(3, [_stream(_keras(healthy))]),
    ])


def test_a_notebook_is_read_cell_by_cell_each_cell_a_run(tmp_path: Path) -> None:
    path = write(tmp_path, "explode.ipynb", _two_runs_notebook())
    assert detect(path).name == "notebook"
    log = read_log(path)
    assert log.format == "notebook"
    # cells 2 and 3 (their index in the notebook) printed training; the version string in cell 1 is no run
    assert log.runs == ["cell2", "cell3"]
    names = {s.name for s in log.series}
    assert names == {"cell2/loss", "cell3/loss"}  # no execution_count, nbformat, ... read out of the JSON
    doc = diagnose(log)
    # the exploding run is judged on its own, not hidden behind the healthy run after it, and the
    # finding names the cell it came from
    bad = [f for f in doc.findings if f.severity != "info"]
    assert bad and all(f.evidence.metric.startswith("cell2/") for f in bad)


def test_a_notebooks_cell_outputs_keep_their_order_and_text_results(tmp_path: Path) -> None:
    from gradhealth.logs.readers.notebook import cell_outputs

    nb = json.loads(_notebook([
        _code(1, [_stream("a\n"), {"output_type": "execute_result", "data": {"text/plain": "b"}},
                  {"output_type": "display_data", "data": {"text/plain": ["<Figure>"]}},
                  {"output_type": "stream", "name": "stderr", "text": "c\n"}]),
        {"cell_type": "raw", "source": ["loss: 1\n"]},
        _code(2, []),
    ]))
    assert cell_outputs(nb) == [(0, "a\nb\nc\n")]


def test_a_notebook_with_no_training_output_is_refused_as_a_notebook(tmp_path: Path) -> None:
    path = write(tmp_path, "plots.ipynb", _notebook([_code(1, [_stream("hello\n")])]))
    with pytest.raises(LogError, match="Jupyter notebook"):
        read_log(path)


def test_the_notebook_format_is_registered() -> None:
    assert "notebook" in formats()


# --- a loss glued to one letter (problem 3) -----------------------------------------------------------


@pytest.mark.parametrize(("name", "role"), [
    ("closs", "loss"), ("tloss", "loss"), ("vloss", "val_loss"),
    # a word that only contains "loss", and GAN players' losses, are not the training loss
    ("glossary", "metric"), ("colossal", "metric"), ("lossless", "metric"), ("gloss", "metric"),
    ("dloss", "metric"), ("floss_rate", "metric"),
])
def test_one_letter_glued_before_loss_names_the_loss(name: str, role: str) -> None:
    assert classify(name)[0] == role


def test_a_rising_closs_is_a_diverging_loss(tmp_path: Path) -> None:
    # LLaMA2-Accessory's MetricLogger: closs (the causal LM loss) with its running average in brackets
    lines = [f"[05:10:06] Epoch: [2]  [{10 * i}/1504]  lr: 0.000012  closs: {0.92 * 1.25 ** i:.4f} "
             f"({0.92 * 1.25 ** i:.4f})  grad_norm: 0.2695 (0.3902)  time: 4.5800\n" for i in range(30)]
    doc = diagnose(read_log(write(tmp_path, "train.log", "".join(lines))))
    assert "loss_divergence" in {f.code for f in doc.findings if f.severity != "info"}


# --- a validation blow-up beside a flat training loss (problem 5) ------------------------------------


def _valloss_run(tmp_path: Path, train_end: float) -> tuple[str, str]:
    n = 40
    # the training loss falls to 0.33 by epoch 20, then goes on to train_end; the validation loss
    # follows it to its best at epoch 30 and blows up 6x
    train = [1.0 - 0.67 * min(e, 20) / 20 for e in range(20)]
    train += [0.33 + (train_end - 0.33) * (e - 20) / (n - 21) for e in range(20, n)]
    val = [1.1 - 0.75 * min(e, 30) / 30 for e in range(30)] + [0.35 * 1.25 ** (e - 29) for e in range(30, n)]
    doc = diagnose(read_log(write(tmp_path, "cell.txt", _keras(train, val))))
    f = next(f for f in doc.findings if f.code == "validation_divergence")
    return f.summary, f.explanation


def test_a_validation_blowup_over_a_flat_training_loss_does_not_say_it_fell(tmp_path: Path) -> None:
    summary, why = _valloss_run(tmp_path, 0.329)  # 0.33 -> 0.329: 0.3 %, a flat loss
    assert "fell" not in summary and "held" in summary
    assert "memorises" not in why


def test_a_validation_rise_over_a_falling_training_loss_is_still_memorising(tmp_path: Path) -> None:
    summary, why = _valloss_run(tmp_path, 0.2)  # 0.33 -> 0.2: a training loss still falling
    assert "fell" in summary
    assert "memorises" in why


# --- a stuck validation accuracy against a noisy training accuracy (pairnorm_maint) -------------------

# the training accuracy of a late excerpt: noisy around 0.82, two high draws near its end
_NOISY_TRAIN = [0.779, 0.843, 0.807, 0.821, 0.800, 0.736, 0.821, 0.850, 0.800, 0.793, 0.814, 0.850, 0.864,
                0.814, 0.871, 0.871, 0.836]
_FLAT_VAL = [0.588, 0.610, 0.626, 0.630, 0.636, 0.636, 0.636, 0.638, 0.626, 0.626, 0.626, 0.624, 0.618, 0.610,
             0.610, 0.606, 0.602]


def _accuracy_console(first_epoch: int, train: list[float], val: list[float]) -> str:
    return "".join(f"Epoch {first_epoch + i}: train loss {0.9 - 0.001 * i:.3f} train acc: {a:.3f}, "
                   f"val loss: {1.1 + 0.001 * i:.3f} val acc {v:.3f}.\n"
                   for i, (a, v) in enumerate(zip(train, val, strict=True)))


def _stuck(tmp_path: Path, text: str) -> list:
    doc = diagnose(read_log(write(tmp_path, "paste.txt", text)))
    return [f for f in doc.findings if f.code == "loss_plateau" and "acc" in (f.evidence.metric or "")]


def test_an_excerpt_whose_training_accuracy_did_not_climb_is_no_stuck_validation(tmp_path: Path) -> None:
    # epochs 223-239: the training accuracy's quarters' medians are 0.814 and 0.854, a climb of 0.04,
    # within its noise; its last three points' median (0.871) is no level
    assert _stuck(tmp_path, _accuracy_console(223, _NOISY_TRAIN, _FLAT_VAL)) == []


def test_a_stuck_validation_accuracy_beside_a_climbing_training_one_is_still_found(tmp_path: Path) -> None:
    n = 17
    train = [0.35 + 0.6 * i / (n - 1) for i in range(n)]  # 0.35 -> 0.95 from the run's start
    found = _stuck(tmp_path, _accuracy_console(1, train, _FLAT_VAL))
    assert len(found) == 1
    f = found[0]
    # the levels are the quarters' medians (4 points each), computed here independently
    q = max(3, n // 4)
    early = sum(sorted(train[:q])[q // 2 - 1:q // 2 + 1]) / 2
    late = sum(sorted(train[-q:])[q // 2 - 1:q // 2 + 1]) / 2
    evidence = f.evidence.model_dump()
    assert math.isclose(evidence["train_final"], late, abs_tol=1e-3)  # (the console prints 3 decimals)
    assert math.isclose(evidence["train_first"], early, abs_tol=1e-3)
    # the validation accuracy's course is said: its first, best and last values
    assert "0.59 at first, 0.64 at best" in f.summary and "0.60 at the last" in f.summary
    assert f"climbed from {early:.2f} to {late:.2f}" in f.summary
