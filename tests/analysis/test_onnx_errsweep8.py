"""errsweep8 #7: a STRING graph input was accepted at submission and failed in the job as
"element type 8 is not a number type"; a 2^62 input dimension was told to raise the memory limit to
590295810358705651712 bytes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError, onnx_static
from gradhealth.analysis.importers.onnx_static import read_header
from gradhealth.errors import LimitExceeded

IMPOSSIBLE_BYTES = getattr(onnx_static, "IMPOSSIBLE_BYTES", 2**50)


def _model(elem: int, dims: list[int]) -> bytes:
    w = numpy_helper.from_array(np.ones((dims[-1], 3), np.float32) if dims[-1] < 10**6 else np.ones((4, 3), np.float32),
                                "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", elem, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


@pytest.mark.parametrize(("elem", "name"), [(TensorProto.STRING, "STRING"), (TensorProto.COMPLEX64, "COMPLEX64")])
def test_an_input_of_no_number_type_is_refused_before_a_job_by_its_type_name(elem: int, name: str) -> None:
    with pytest.raises(ModelError) as refused:
        read_header(_model(elem, [2, 4]))  # the submission's check (the API's, torch-free)
    assert f"x ({name})" in str(refused.value) and "element type 8" not in str(refused.value)


def test_an_impossibly_large_input_is_not_told_to_raise_the_limit() -> None:
    with pytest.raises(LimitExceeded) as refused:
        read_header(_model(TensorProto.FLOAT, [16, 2**62]))
    said = str(refused.value)
    # 16 x 2^62 float64 values, and their gradients: far past IMPOSSIBLE_BYTES
    assert IMPOSSIBLE_BYTES < 16 * 2**62 * 8
    assert "more memory than any machine has" in said and "x [16, 4611686018427387904]" in said
    assert "raise the limit" not in said


def test_a_large_but_possible_input_still_gets_the_raised_limit() -> None:
    with pytest.raises(LimitExceeded) as refused:
        read_header(_model(TensorProto.FLOAT, [1, 2**31 - 1]), batch_size=1)  # tens of GiB with gradients
    assert "GRADHEALTH_LIMITS__MAX_ACTIVATION_BYTES=" in str(refused.value)
