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
