"""A console captured with its terminal codes (Ultralytics 8.3 starts every progress row with the
erase code ``ESC[K`` after its carriage return) reads as the same console without them
(logsweep56: no row matched, and the log was "no loss found")."""

from __future__ import annotations

from pathlib import Path

from gradhealth.logs.load import read_log

HEADER = "      Epoch    GPU_mem   box_loss   seg_loss   cls_loss   dfl_loss  Instances       Size\n"
BAR = "\u2501" * 12


def _console(epochs: int) -> tuple[str, list[float]]:
    """Each epoch: the header, then progress rows joined by ``\\r ESC[K`` (the last is the epoch's
    figure); returns the text and each epoch's last box_loss."""
    out, last = [], []
    for e in range(1, epochs + 1):
        rows = []
        for b in range(4):
            box = round(1.5 / e - 0.01 * b, 4)
            rows.append(f"\r\x1b[K      {e}/{epochs}      1.54G     {box:.4g}      {3.4 / e:.4g}      "
                        f"{3.1 / e:.4g}      {1.2 / e:.4g}         94        640: {25 * b}% {BAR} {b}/4 1.6it/s")
        last.append(float(f"{1.5 / e - 0.03:.4g}"))
        out.append(HEADER + "".join(rows) + "\n")
    return "".join(out), last


def test_rows_behind_erase_codes_are_read(tmp_path: Path) -> None:
    text, expected = _console(12)
    path = tmp_path / "train.log"
    path.write_text(text)
    run = read_log(path)
    (box,) = [s for s in run.series if s.name.endswith("box_loss")]
    assert list(box.values) == expected          # the epoch's last row, one point per epoch
    assert list(box.steps) == list(range(1, 13))


def test_the_same_console_without_codes_reads_the_same(tmp_path: Path) -> None:
    text, _ = _console(12)
    (tmp_path / "a.log").write_text(text)
    (tmp_path / "b.log").write_text(text.replace("\x1b[K", ""))
    a, b = read_log(tmp_path / "a.log"), read_log(tmp_path / "b.log")
    assert {s.name: list(s.values) for s in a.series} == {s.name: list(s.values) for s in b.series}
