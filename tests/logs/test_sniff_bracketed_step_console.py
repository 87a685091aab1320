"""A console whose lines open with a bracketed step (``[0]\\tloss: 0.69\\tacc: 0.51``) is a console,
not a JSON array of bare numbers: ``[0]`` is a whole JSON array, but a JSON file is one value and text
follows it on the line. A real JSON array of numbers (one line, indented, or longer than the head a
sniff sees) is still read by the numbers reader."""

from __future__ import annotations

import json
import math

import pytest

from gradhealth.logs.load import read_log
from gradhealth.logs.readers.numbers import READER, number_array

_LOSSES = [0.69 * math.exp(-i / 20) + 0.05 for i in range(60)]
_ACCS = [0.51 + 0.4 * (1 - math.exp(-i / 15)) for i in range(60)]


def _console(fmt: str) -> str:
    return "".join(fmt.format(i=i, loss=loss, acc=acc) for i, (loss, acc) in enumerate(zip(_LOSSES, _ACCS, strict=True)))


_FORMATS = ["[{i}]\tloss: {loss:.4f}\tacc: {acc:.4f}\n", "[{i}] loss: {loss:.4f} acc: {acc:.4f}\n",
            "[{i}]\tloss={loss:.4f}\tacc={acc:.4f}\n"]


@pytest.mark.parametrize("fmt", _FORMATS)
def test_a_bracketed_step_then_text_is_no_json_array(fmt):
    head = _console(fmt).encode()
    assert not number_array(head)
    assert not number_array(head[:64])                   # the CLI's short look at a file
    assert READER.near_miss("train.log", head) is None    # not refused as "a JSON array of bare numbers"


@pytest.mark.parametrize("name", ["train.log", "loss.txt"])   # loss.txt: a name the numbers reader takes
@pytest.mark.parametrize("fmt", _FORMATS)
def test_a_bracketed_step_console_is_read_as_text_with_its_values(tmp_path, fmt, name):
    path = tmp_path / name
    path.write_text(_console(fmt))
    log = read_log(path)
    assert log.format != "numbers"
    series = {s.name.lower(): s for s in log.series}
    assert [round(v, 4) for v in series["loss"].values] == [round(v, 4) for v in _LOSSES]
    assert [round(v, 4) for v in series["acc"].values] == [round(v, 4) for v in _ACCS]
    assert list(series["loss"].steps) == list(range(len(_LOSSES)))


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("n", [60, 2000])      # 2000 values: longer than the head a sniff checks
def test_a_json_array_of_numbers_is_still_read_as_numbers(tmp_path, indent, n):
    values = [2.3 * math.exp(-i / 80) + 0.1 for i in range(n)]
    text = json.dumps(values, indent=indent) + "\n"
    assert (len(text) > 4096) == (n == 2000)
    assert number_array(text.encode())
    path = tmp_path / "loss.json"
    path.write_text(text)
    log = read_log(path)
    assert log.format == "numbers"
    (loss,) = [s for s in log.series if s.name == "loss"]
    assert loss.values.tolist() == values
    assert number_array(b"[0.5]\n\n  ") and number_array(b"[1, 2, NaN]")


# --- a count out of its total in brackets of its own: the line's step, and the run's planned length ---

_COUNTED = ["[{i}/3000] loss: {loss:.4f} lr: 1e-3\n", "[{i:5d}/ 3000] loss: {loss:.4f} lr: 1e-3\n",
            "[{i}/3000]\tloss={loss:.4f}\n", "[2024-01-02 10:00:01] [{i}/3000] loss: {loss:.4f}\n",
            "INFO:root:[{i}/3000] loss: {loss:.4f}\n"]


@pytest.mark.parametrize("fmt", _COUNTED)
def test_a_bracketed_count_is_the_step_out_of_the_planned_total(tmp_path, fmt):
    # "[110/3000] loss: 0.532": step 110 of a run planned for 3000, as "Iter 110/3000" is (it was read
    # by line, steps 0-59, with no planned length)
    steps = [110 + 10 * k for k in range(len(_LOSSES))]
    path = tmp_path / "train.log"
    path.write_text("".join(fmt.format(i=i, loss=loss) for i, loss in zip(steps, _LOSSES, strict=True)))
    log = read_log(path)
    loss = {s.name: s for s in log.series}["loss"]
    assert list(loss.steps) == steps
    assert [round(v, 4) for v in loss.values] == [round(v, 4) for v in _LOSSES]
    assert log.planned_steps == 3000 and log.planned_unit == "step"
    assert not [w for w in log.warnings if w.code == "running_index"]


@pytest.mark.parametrize("fmt", ["[{e}/5] step {i} loss: {loss:.4f}\n", "[{e}/5] iter: {i}, loss: {loss:.4f}\n"])
def test_a_bracketed_epoch_count_beside_a_named_step_is_not_the_step(tmp_path, fmt):
    steps = [10 * k for k in range(len(_LOSSES))]
    path = tmp_path / "train.log"
    path.write_text("".join(fmt.format(e=1 + k // 12, i=i, loss=loss)
                            for k, (i, loss) in enumerate(zip(steps, _LOSSES, strict=True))))
    log = read_log(path)
    assert list({s.name: s for s in log.series}["loss"].steps) == steps
    assert log.planned_steps != 5           # 5 epochs is no planned length in steps


@pytest.mark.parametrize("fmt", ["[12/05/2020 10:00:{s:02d}] loss: {loss:.4f}\n", "[12/05] 10:00:{s:02d} loss: {loss:.4f}\n",
                                 "[192.168.1.{s}] loss: {loss:.4f}\n", "[10:00:{s:02d}] loss: {loss:.4f}\n",
                                 "[{s}/60][{s}/1583]\tloss: {loss:.4f}\n"])
def test_bracketed_dates_times_addresses_and_pairs_are_no_step(tmp_path, fmt):
    # read by line as before (DCGAN's "[epoch/N][batch/M]" pair is a position within epochs, not this rule)
    path = tmp_path / "train.log"
    path.write_text("".join(fmt.format(s=k % 60, loss=loss) for k, loss in enumerate(_LOSSES)))
    log = read_log(path)
    assert log.planned_steps is None
    loss = {s.name: s for s in log.series}["loss"]
    assert [round(v, 4) for v in loss.values] == [round(v, 4) for v in _LOSSES]
    assert list(loss.steps) != [110 + 10 * k for k in range(len(_LOSSES))] and 1583 not in list(loss.steps)
