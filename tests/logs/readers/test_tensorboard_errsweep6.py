"""errsweep6 #8, TensorBoard event files: the step bound and negative steps, and tensors whose
declared shape does not fit their data.

- ``Event.step`` is an int64: the varint of 2^64 - 1 is -1 (as TensorBoard reads it). It was read
  as -1 after steps 0-49 without a word; now a ``step_order`` note names the tag, the record and the
  unsigned number the writer wrote, and the point is left out, as every reader leaves out a negative
  step among steps from 0 (read at -1 it came before step 0, as W&B's run file's did). A step from 2^53 on is refused as the text and CSV readers
  refuse it.
- TensorShapeProto's ``dim`` is field 2: it was read as field 1, so no declared shape was ever seen
  (a [2^40, 2^40] tensor with one value was read as a scalar). A scalar-plugin tensor whose shape
  does not fit its data is left out with a ``skipped_values`` note naming the tag.
"""

from __future__ import annotations

import struct

import pytest

from gradhealth.errors import LogError
from tests.logs.readers.test_tensorboard import (
    file_version_event,
    read,
    scalar_event,
    series,
    tensor_event,
    write_records,
)


def _base() -> list[bytes]:
    return [file_version_event()] + [scalar_event("loss", 2 - i * 0.01, i) for i in range(50)]


def test_step_2_64_minus_1_is_minus_1_left_out_with_a_note_naming_it(tmp_path):
    # tensorboard's own proto writes step=-1 as the 10-byte varint of 2^64 - 1, as a uint64 writer would.
    # (It was kept at -1, before step 0; W&B's run file left its -1 out: one rule now, the point is left out.)
    run = read(write_records(tmp_path / "events.out.tfevents.u", _base() + [scalar_event("loss", 1.0, -1)]))
    loss = series(run, "loss")
    assert loss.steps.tolist() == list(range(50)) and 1.0 not in loss.values.tolist()
    notes = [w for w in run.warnings if w.code == "step_order"]
    assert len(notes) == 1, run.warnings
    assert "'loss'" in notes[0].message and "18,446,744,073,709,551,615" in notes[0].message
    assert "record 51" in notes[0].message and "left out" in notes[0].message


def test_all_negative_steps_get_no_such_note(tmp_path):
    run = read(write_records(tmp_path / "events.out.tfevents.n",
                             [file_version_event()] + [scalar_event("loss", 1.0, -5 - i) for i in range(10)]))
    assert not any("signed int64" in w.message for w in run.warnings)


@pytest.mark.parametrize("step", [2**53, 2**60, -(2**60)])
def test_a_step_past_2_53_is_refused_naming_tag_and_record(tmp_path, step):
    with pytest.raises(LogError, match=rf"'loss' has a point at step {step:,} \(record 51\): from 2\^53 on"):
        read(write_records(tmp_path / "events.out.tfevents.b", _base() + [scalar_event("loss", 1.0, step)]))


def test_a_step_just_below_2_53_is_read(tmp_path):
    run = read(write_records(tmp_path / "events.out.tfevents.ok", _base() + [scalar_event("loss", 1.0, 2**53 - 1)]))
    assert series(run, "loss").steps.max() == 2**53 - 1


@pytest.mark.parametrize(("kw", "words"), [
    ({"float_val": [1.0], "dims": (2**40, 2**40)}, "declares shape [2^40, 2^40]"),
    ({"dtype": 2, "content": b"\0" * 8, "dims": (1_000_000,)},
     "declares shape [1000000] (1,000,000 elements, 8,000,000 bytes) but its tensor_content holds 8 bytes"),
    ({"float_val": [1.0, 2.0, 3.0], "dims": (2,)}, "declares shape [2] (2 elements) but holds 3 values"),
])
def test_a_tensor_whose_shape_does_not_fit_its_data_is_left_out_with_a_note(tmp_path, kw, words):
    run = read(write_records(tmp_path / "events.out.tfevents.t", _base() + [tensor_event("loss", 60, **kw)]))
    assert len(series(run, "loss").steps) == 50   # the tensor is no point
    notes = [w.message for w in run.warnings if w.code == "skipped_values"]
    assert len(notes) == 1 and "'loss'" in notes[0] and words in notes[0], run.warnings


def test_shapes_that_fit_are_read_or_skipped_quietly(tmp_path):
    records = _base() + [tensor_event("loss", 60, float_val=[0.5], dims=(1,)),              # a scalar
                         tensor_event("loss", 61, content=struct.pack("<f", 0.25), dims=()),
                         tensor_event("vec", 0, float_val=[1.0, 2.0], dims=(2,)),          # fits, not a scalar
                         tensor_event("fill", 0, float_val=[0.0], dims=(3,))]               # TF's fill shorthand
    run = read(write_records(tmp_path / "events.out.tfevents.f", records))
    assert series(run, "loss").values.tolist()[-2:] == [0.5, 0.25]
    assert run.warnings == []


def test_a_negative_step_gets_one_note_in_the_readers_words(tmp_path):
    # the series leaves the point out (the rule every reader shares); the note is TensorBoard's, naming the
    # record, and only that one: no second, generic note for the same points
    run = read(write_records(tmp_path / "events.out.tfevents.o", _base() + [scalar_event("loss", 1.0, -3),
                                                                         scalar_event("loss", 1.0, -1)]))
    notes = [w.message for w in run.warnings if w.code == "step_order"]
    assert len(notes) == 1 and "2 point(s) at a negative step among 50" in notes[0] and "record 51" in notes[0]
