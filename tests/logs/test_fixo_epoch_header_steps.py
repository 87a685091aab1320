"""An ``Epoch N/M`` header in a console whose lines name their steps is a position, never a metric
series (closing35 notes, left by fixK/fixN: ``Epoch 2/10`` above ``step 100 loss 2.31`` lines
became an ``Epoch`` series of 1, 2, 3 ...)."""

from __future__ import annotations

from gradhealth.logs.load import read_log


def _write(tmp_path, lines: list[str]):
    p = tmp_path / "train.log"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_header_above_named_steps_is_no_series(tmp_path):
    lines, step = [], 0
    for e in range(1, 6):
        lines.append(f"Epoch {e}/5")
        for _ in range(4):
            step += 100
            lines.append(f"step {step} loss {3.0 / step:.6f}")
    log = read_log(_write(tmp_path, lines))
    assert [s.name for s in log.series] == ["loss"]
    loss = log.series[0]
    assert loss.steps.tolist() == list(range(100, 2001, 100))
    assert loss.values.tolist() == [round(3.0 / s, 6) for s in range(100, 2001, 100)]


def test_header_with_colon_pairs_and_a_header_before_the_first_step(tmp_path):
    # the first header is above the first stepped line (it would sit at the step before the first)
    lines, step = [], 0
    for e in range(1, 4):
        lines.append(f"Epoch {e}/3")
        for _ in range(5):
            step += 1
            lines.append(f"step: {step}, loss: {1 / step:.4f}")
    log = read_log(_write(tmp_path, lines))
    assert {s.name.lower() for s in log.series} == {"loss"}
    assert log.series[0].steps.tolist() == list(range(1, 16))


def test_header_still_sets_the_epoch_axis_where_the_step_starts_again(tmp_path):
    # "step 10 .. step 50" again under each header: positions within the epoch, e + step / length,
    # the length being the largest step plus the usual gap between lines (50 + 10)
    lines = []
    for e in range(1, 4):
        lines.append(f"Epoch {e}/3")
        for k in range(1, 6):
            lines.append(f"step {k * 10} loss {1.0 / (e * 10 + k):.6f}")
    log = read_log(_write(tmp_path, lines))
    assert {s.name.lower() for s in log.series} == {"loss"}
    loss = log.series[0]
    assert loss.step_unit == "epoch"
    expected = [round(e + k * 10 / 60, 6) for e in range(1, 4) for k in range(1, 6)]
    assert loss.steps.tolist() == expected
