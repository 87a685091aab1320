"""Lines of one shape read from learnt spans (gradhealth.logs.readers.shapes) give exactly what a
full parse of each line gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gradhealth.logs.readers import text
from gradhealth.logs.readers.shapes import CONFIRM, ShapeCache, shape_of

DATA = Path(__file__).resolve().parents[2] / "data" / "logs"


class Counting:
    """The full parse, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, line: str) -> tuple[list[tuple[str, str]], float | None]:
        self.calls += 1
        return text._parsed(line)


def _same_as_full(lines: list[str]) -> Counting:
    """Feed ``lines`` through a fresh cache, asserting each answer equals the line's full parse."""
    full = Counting()
    cache = ShapeCache(full)
    for line in lines:
        assert cache(line) == text._parsed(line), line
    return full


def test_shape_keeps_zeros_and_lengths() -> None:
    assert shape_of("step 120 | loss 3.4102") == "step 111 | loss 1.1111"
    assert shape_of("tokens 8,388,608 step 120") == "tokens 1,111,101 step 111"  # [1-9] before a group
    assert shape_of("12:05:07,103 loss 0.5") == "11:11:01,101 loss 1.1"
    assert len(shape_of("x 987654321")) == len("x 987654321")


def test_repeated_shape_is_read_from_spans_after_confirmation() -> None:
    rng = random.Random(3)
    lines = [f"step {100 + i} | loss {rng.uniform(1, 9):.4f} | grad_norm {rng.uniform(1, 9):.3f} | lr 6.000e-04"
             for i in range(200)]
    full = _same_as_full(lines)
    # the first line learns, CONFIRM more check the recipe; the rest are slices
    assert full.calls == 1 + CONFIRM


def test_value_found_twice_is_told_apart_by_later_lines() -> None:
    # lr and wd print the same number on the first lines: which span is lr's is learnt when they differ
    lines = ["step 1 lr: 0.001 wd: 0.001 loss 2.5", "step 2 lr: 0.001 wd: 0.001 loss 2.4",
             "step 3 lr: 0.002 wd: 0.001 loss 2.3", "step 4 lr: 0.003 wd: 0.005 loss 2.2",
             "step 5 lr: 0.004 wd: 0.006 loss 2.1", "step 6 lr: 0.007 wd: 0.008 loss 2.0"]
    _same_as_full(lines)
    cache = ShapeCache(text._parsed)
    got = [dict(cache(ln)[0]) for ln in lines]
    assert [g["lr"] for g in got] == ["0.001", "0.001", "0.002", "0.003", "0.004", "0.007"]
    assert [g["wd"] for g in got] == ["0.001", "0.001", "0.001", "0.005", "0.006", "0.008"]


def test_computed_epoch_positions_are_parsed_in_full() -> None:
    # mmdet's "Epoch [1][50/500]": the fractional epoch is computed, never a span of the line
    lines = [f"Epoch [{e}][{i}/500]\tlr: 1.000e-02, loss: {1 / (e * 500 + i):.5f}"
             for e in range(1, 4) for i in range(50, 501, 50)]
    full = _same_as_full(lines)
    assert full.calls == len(lines)
    epochs = [float(dict(text.line_values(ln)[0])["epoch"]) for ln in lines]
    assert epochs == sorted(epochs) and epochs[0] == pytest.approx(1.1)


def test_an_evaluation_s_last_batch_is_not_dropped_like_the_others() -> None:
    # "Test: [i/n]": only the pass's last report carries its figures; the branch reads i against n
    # (the others are marked as part way through the pass, for the reader to keep the last printed)
    lines = [f"Test: [{i:>3}/48]  Loss: {0.5 + i / 100:.4f} ({0.6:.4f})" for i in range(48)]
    _same_as_full(lines)
    cache = ShapeCache(text._parsed)
    kept = [ln for ln in lines if cache(ln)[0] and cache(ln)[0][0][0] != text._PASS_KEY]
    assert kept == [lines[-1]]
    assert [cache(ln)[0][0][1] for ln in lines[:3]] == ["0", "1", "2"]
    assert [ln for ln in lines if text.line_values(ln)[0]] == [lines[-1]]


def test_names_with_digits_are_not_taken_from_another_line_s_shape() -> None:
    # "top1" and "top5" have one shape: the name must come from the line itself
    lines = [f"eval top{k}: 0.{k}{i}" for i in range(1, 6) for k in (1, 5)]
    _same_as_full(lines)


def test_grouped_thousands() -> None:
    lines = [f"step {i} tokens: {8_388_608 + i * 1_048_576:,} loss: {3 - i / 100:.3f}" for i in range(1, 30)]
    full = _same_as_full(lines)
    assert full.calls < len(lines)


@pytest.mark.parametrize("path", sorted(p for p in DATA.rglob("*") if p.suffix in (".log", ".txt")),
                         ids=lambda p: p.parent.name)
def test_real_logs_line_by_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    assert lines
    _same_as_full(lines)


def test_a_count_out_of_zero_is_parsed_in_full() -> None:
    # "5/0" has the shape of "5/9": the parser takes no total and a total of 0 alike
    # (with no total the parser reads the bracketed epoch: "Iter [3/0]" adds epoch 2 to the line)
    lines = [f"Epoch[2] Iter [{i}/{n}] loss: 0.{i}{n}" for n in (9, 8, 7, 0, 6, 0) for i in range(1, 6)]
    assert dict(text._parsed(lines[-1])[0]).get("epoch") == "2"
    _same_as_full(lines)
