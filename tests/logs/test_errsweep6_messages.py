"""errsweep6 #8, log messages that were Python's own or wrong:

- a JSON Lines value of 6,000 digits said "Exceeds the limit (4300 digits) for integer string
  conversion ...; use sys.set_int_max_str_digits() to increase the limit", advice for the service's
  operator: now "an integer of 6000 digits, too long to be read as a number", at which line and column;
- a gzip holding another gzip (20 nested) said "not a readable tar archive (truncated header)": now
  that its content is compressed again; a short lone ``.csv.gz`` (under a tar header's 512 bytes)
  is a lone file, not a truncated tar.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from gradhealth.errors import LogError
from gradhealth.logs import load

ROWS = b"".join(b'{"step": %d, "loss": %f}\n' % (i, 1 / (i + 1)) for i in range(1, 30))


@pytest.mark.parametrize("where", ["step", "loss"])
def test_a_number_too_long_says_so_and_where(tmp_path: Path, where: str) -> None:
    big = "9" * 6000
    first = f'{{"step": {big}, "loss": 1.0}}' if where == "step" else f'{{"step": 0, "loss": {big}}}'
    path = tmp_path / "bigint.jsonl"
    path.write_bytes(first.encode() + b"\n" + ROWS)
    with pytest.raises(LogError) as err:
        load.read_log(path)
    message = str(err.value)
    assert "set_int_max_str_digits" not in message and "Exceeds the limit" not in message
    assert "line 1" in message and "an integer of 6000 digits, too long to be read as a number" in message
    assert "at most 4,300 digits) at column" in message


def test_a_gzip_inside_a_gzip_says_what_it_is(tmp_path: Path) -> None:
    data = b"step,loss\n" + b"".join(b"%d,%f\n" % (i, 1 / (i + 1)) for i in range(50))
    for _ in range(20):
        data = gzip.compress(data)
    path = tmp_path / "gz20.csv.gz"
    path.write_bytes(data)
    with pytest.raises(LogError) as err:
        load.read_log(path)
    message = str(err.value)
    assert "not a readable tar archive" not in message
    assert "compressed again (gzip)" in message


def test_a_short_lone_gzip_is_read_as_its_file(tmp_path: Path) -> None:
    path = tmp_path / "small.csv.gz"
    path.write_bytes(gzip.compress(b"step,loss\n1,2.0\n2,1.9\n3,1.8\n"))  # 30 bytes: under a tar header's 512
    run = load.read_log(path)
    assert [s.values.tolist() for s in run.series if s.name == "loss"] == [[2.0, 1.9, 1.8]]
