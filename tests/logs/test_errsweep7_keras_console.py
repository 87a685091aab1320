"""errsweep7 items 6 and 7: a Keras console's ``Epoch i/N`` headers are positions, never a metric
series (an out-of-range counter, ``Epoch 0/0`` or a 31-digit epoch, is skipped naming its line; a
log of headers or model summaries with no values is refused saying so), and fits appended one after
another, each after its own ``Model: "..."`` summary and counted from its first epoch to its total,
are each a run of their own however short (2-epoch fits were merged pairwise at both ends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError
from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log


def _summary(name: str) -> str:
    """A Keras 2 ``model.summary()`` of one Dense layer of 50,240 parameters."""
    return (f'Model: "{name}"\n' + "_" * 65 + "\n Layer (type)                Output Shape              Param #\n"
            + "=" * 65 + "\n dense (Dense)               (None, 64)                50240\n" + "=" * 65
            + "\nTotal params: 50,240\nTrainable params: 50,240\nNon-trainable params: 0\n" + "_" * 65 + "\n")


def _write(tmp_path: Path, text: str, name: str = "console.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- item 6: an epoch header is a position, never a series ---------------------------------------

def test_epoch_headers_out_of_range_are_skipped_naming_the_line_not_read_as_a_series(tmp_path: Path) -> None:
    # "Epoch 0/0": a total of 0 epochs counts none; each header is skipped, the losses under it read
    losses = [0.5, 0.4, 0.3]
    log = read_log(_write(tmp_path, "".join(f"Epoch 0/0\n1/1 - loss: {v}\n" for v in losses)))
    series = {s.name: s for s in log.series}
    assert list(series) == ["loss"]                       # no "Epoch" series
    assert np.allclose(series["loss"].values, losses)     # 3 points, one a loss line (not 6)
    assert list(series["loss"].steps) == [0, 1, 2]
    (note,) = [w for w in log.warnings if w.code == "skipped_line"]
    assert "line 1:" in note.message and "'Epoch 0/0'" in note.message and "2 more" in note.message


def test_a_31_digit_epoch_header_is_skipped_not_a_series_of_1e30(tmp_path: Path) -> None:
    losses = [1 / i for i in range(1, 6)]
    text = "".join(f"Epoch {10**30 + i}/{10**31}\n10/10 - loss: {v}\n" for i, v in enumerate(losses, 1))
    log = read_log(_write(tmp_path, text))
    series = {s.name: s for s in log.series}
    assert list(series) == ["loss"] and np.allclose(series["loss"].values, losses)
    assert len(series["loss"].steps) == len(losses)
    (note,) = [w for w in log.warnings if w.code == "skipped_line"]
    assert "line 1:" in note.message and "31 digits" in note.message and "4 more" in note.message


def test_epoch_headers_with_no_values_are_refused_saying_so(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"no values: .*Keras epoch headers \('Epoch i/N', line 1\).*no loss"):
        read_log(_write(tmp_path, "".join(f"Epoch {i}/5\n" for i in range(1, 6))))


def test_model_summaries_with_no_values_are_refused_not_a_params_series(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"no values: .*Keras model summaries \('Model: \"...\"', line 1\)"):
        read_log(_write(tmp_path, _summary("sequential") * 3))


def test_in_range_headers_still_place_their_epochs(tmp_path: Path) -> None:
    # (the common case, unchanged: each epoch's loss at its epoch)
    losses = [0.9, 0.7, 0.5, 0.4, 0.35, 0.3]
    log = read_log(_write(tmp_path, "".join(f"Epoch {e}/6\n10/10 - loss: {v}\n" for e, v in enumerate(losses, 1))))
    (loss,) = log.series
    assert loss.name == "loss" and list(loss.steps) == [1, 2, 3, 4, 5, 6] and np.allclose(loss.values, losses)


# --- item 7: fits after their own model summaries, however short ---------------------------------

def _fits(runs: int, epochs: int) -> tuple[str, list[list[float]]]:
    """``runs`` fits of ``epochs`` epochs each, each after its model summary, each its own losses."""
    text, losses = "", []
    for r in range(runs):
        loss = [round(1.0 / e + r, 4) for e in range(1, epochs + 1)]
        text += _summary(f"seq_{r}") + "".join(f"Epoch {e}/{epochs}\n1/1 - loss: {v}\n" for e, v in enumerate(loss, 1))
        losses.append(loss)
    return text, losses


@pytest.mark.parametrize(("runs", "epochs"), [(2, 2), (3, 2), (5, 2), (10, 2), (4, 1)])
def test_short_fits_each_after_its_model_summary_are_each_a_run(tmp_path: Path, runs: int, epochs: int) -> None:
    text, losses = _fits(runs, epochs)
    log = read_log(_write(tmp_path, text))
    assert log.runs == [f"run{k}" for k in range(1, runs + 1)]
    series = {s.name: s for s in log.series}
    for k, loss in enumerate(losses, 1):
        # each run's own epochs and values, never a neighbour's written over them
        assert list(series[f"run{k}/loss"].steps) == list(range(1, epochs + 1))
        assert np.allclose(series[f"run{k}/loss"].values, loss)
    assert not [n for n in series if n.endswith("params")]
    assert not [w for w in log.warnings if w.code == "overwritten_values"]
    (note,) = [w for w in log.warnings if w.code == "several_runs"]
    # each run starts at its summary: 10 summary lines, then 2 lines an epoch
    starts = [1 + k * (10 + 2 * epochs) for k in range(runs)]
    assert f"{runs} runs appended" in note.message
    assert all(f"run{k} (line {at})" in note.message for k, at in enumerate(starts, 1))


def test_short_fits_are_each_noted_too_short_to_judge(tmp_path: Path) -> None:
    text, _ = _fits(3, 2)
    doc = run_log_check(_write(tmp_path, text))
    short = sorted(f.evidence.metric for f in doc.findings if f.code == "insufficient_data")
    assert short == ["run1/loss", "run2/loss", "run3/loss"]
