"""errsweep9 #10: an initializer with both ``raw_data`` (zeros) and ``float_data`` (ones) was taken
with no word, though ONNX says the typed fields must be empty when raw_data is used: which of the two
was read is not defined by the file. Refused, naming the initializer and both fields."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx_static import _tensor_problem
from tests.analysis.test_onnx_errsweep_fixes import _model, _refusal


@pytest.mark.parametrize(("data_type", "field", "values"), [
    (TensorProto.FLOAT, "float_data", [1.0] * 32),
    (TensorProto.INT64, "int64_data", [1] * 32),
])
def test_an_initializer_with_raw_data_and_a_typed_field_is_refused_by_name(data_type, field, values) -> None:
    width = 4 if data_type == TensorProto.FLOAT else 8
    w = TensorProto(name="W", data_type=data_type, dims=[8, 4])
    w.raw_data = b"\0" * (32 * width)  # exactly what the dims need: only the second field is wrong
    getattr(w, field).extend(values)
    exc = _refusal(_model(w))
    assert isinstance(exc, ModelError)
    assert f"initializer 'W': it holds both raw_data and {field}" in str(exc)


def test_raw_data_alone_and_a_typed_field_alone_still_pass() -> None:
    raw = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], np.zeros(32, np.float32).tobytes(), raw=True)
    typed = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], np.ones(32, np.float32))
    for w in (raw, typed):
        assert _tensor_problem(w) is None
