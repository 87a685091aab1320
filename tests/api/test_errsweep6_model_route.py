"""errsweep6 #7 at the model route: what a job could only fail on (with a torch internal, or a wrong
message) is refused before a job exists, naming the node or entry:

- a graph with no weights (an If on a constant folded to ``Relu(x)``: "element 0 of tensors does not
  require grad") is 422 "the model has no weights";
- a sparse initializer is read as the dense tensor it stands for (it was "'W', which is not
  defined"), and one whose dims are over the limits is refused by name;
- a Gather of a stored table at a constant index past its axis is 422 naming the index and the table
  (it was "'W': NoneType" inside the job);
- a Resize the importer cannot simulate is 422 naming the node (it was refused in the job, as "node ?");
- a ``.keras`` zip bomb is refused by its declared sizes and ratio, before a byte is decompressed, and
  an external link inside ``model.weights.h5`` at upload.
"""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import MAX_ZIP_RATIO, vet_keras_archive
from gradhealth.analysis.importers.onnx_static import check_has_weights, read_header
from gradhealth.errors import LimitExceeded
from tests.analysis.test_keras_import import _sigmoid_stack
from tests.api.helpers import Api

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
W = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")


def _model(nodes, inits=(), inputs=(X,), sparse=(), opset=17) -> bytes:
    graph = helper.make_graph(nodes, "g", list(inputs), [Y], initializer=list(inits))
    graph.sparse_initializer.extend(sparse)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return model.SerializeToString()


def _post(api: Api, data: bytes):
    return api.post("/v1/checks/model?seeds=1", content=data, headers={"Content-Type": "application/onnx"})


def _if_on_a_constant() -> bytes:
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])])
    other = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    return _model([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                  [numpy_helper.from_array(np.array(True), "c")])


def _sparse_w(dims, values, indices) -> object:
    return helper.make_sparse_tensor(numpy_helper.from_array(np.asarray(values, np.float32), "W"),
                                     numpy_helper.from_array(np.asarray(indices, np.int64), "idx"), dims)


# --- no weights ---------------------------------------------------------------------------------

def test_a_graph_without_weights_is_refused_naming_the_folded_if() -> None:
    header = read_header(_if_on_a_constant())   # (read_header itself reads weightless graphs)
    with pytest.raises(ModelError, match=r"the model has no weights.*Relu, after 1 If node"):
        check_has_weights(header.model.graph, header.folded_ifs)


def test_a_graph_without_weights_is_422_before_a_job(idle_api: Api) -> None:
    r = _post(idle_api, _if_on_a_constant())
    assert r.status_code == 422, r.text
    assert "no weights" in r.json()["detail"] and "grad_fn" not in r.json()["detail"]


# --- sparse initializers ----------------------------------------------------------------------------

def test_a_sparse_initializer_is_read_dense() -> None:
    # W[4, 3] with 2.0 at (0, 1) and -1.0 at (3, 2): linear positions 1 and 11
    header = read_header(_model([helper.make_node("MatMul", ["x", "W"], ["y"])],
                                sparse=[_sparse_w([4, 3], [2.0, -1.0], [1, 11])]))
    (w,) = [t for t in header.model.graph.initializer if t.name == "W"]
    expected = np.zeros((4, 3), np.float32)
    expected[0, 1], expected[3, 2] = 2.0, -1.0
    np.testing.assert_array_equal(numpy_helper.to_array(w), expected)
    assert header.parameters == 12


def test_coordinate_indices_are_read_too() -> None:
    header = read_header(_model([helper.make_node("MatMul", ["x", "W"], ["y"])],
                                sparse=[_sparse_w([4, 3], [5.0], [[2, 0]])]))
    (w,) = header.model.graph.initializer
    assert numpy_helper.to_array(w)[2, 0] == 5.0 and float(np.abs(numpy_helper.to_array(w)).sum()) == 5.0


@pytest.mark.parametrize(("dims", "values", "indices", "error", "words"), [
    ([4, 2**40], [1.0], [0], LimitExceeded, "sparse initializer 'W' (dims [4, 1099511627776]) declares 4398046511104"),
    ([4, 3], [1.0], [12], ModelError, "an index lies outside its 12 values"),
    ([4, 3], [1.0, 2.0], [1], ModelError, "1 indices for 2 values"),
    ([4, 3], [1.0, 2.0], [1, 1], ModelError, "a position is given twice"),
])
def test_a_bad_sparse_initializer_is_refused_by_name(dims, values, indices, error, words) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_header(_model([helper.make_node("MatMul", ["x", "W"], ["y"])], sparse=[_sparse_w(dims, values, indices)]))


def test_a_sparse_initializer_model_is_accepted_at_the_route(idle_api: Api) -> None:
    r = _post(idle_api, _model([helper.make_node("MatMul", ["x", "W"], ["y"])],
                               sparse=[_sparse_w([4, 3], [2.0, -1.0], [1, 11])]))
    assert r.status_code == 202, r.text


# --- Gather out of range ----------------------------------------------------------------------------

def _gather(indices) -> bytes:
    return _model([helper.make_node("Gather", ["W", "ix"], ["g"]), helper.make_node("MatMul", ["x", "g"], ["y"])],
                  [W, numpy_helper.from_array(np.asarray(indices, np.int64), "ix")])


def test_a_gather_past_its_table_is_422_naming_index_and_table(idle_api: Api) -> None:
    r = _post(idle_api, _gather([10**12, 0, 1, 2]))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "node #0 (Gather): index 1000000000000 of 'ix' is outside axis 0 of 'W' [4, 3]" in detail
    assert "NoneType" not in detail


def test_negative_gather_indices_within_the_axis_pass() -> None:
    read_header(_gather([-4, 0, 1, 3]))
    with pytest.raises(ModelError, match="index -5 of 'ix'"):
        read_header(_gather([-5, 0, 1, 2]))


# --- Resize --------------------------------------------------------------------------------------

def test_a_resize_the_check_cannot_simulate_is_422_naming_the_node(idle_api: Api) -> None:
    x4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    conv = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "k")
    data = _model([helper.make_node("Conv", ["x", "k"], ["c"]),
                   helper.make_node("Resize", ["c", "", "sc"], ["r"], mode="nearest"),  # ONNX's default modes
                   helper.make_node("Flatten", ["r"], ["y"])],
                  [conv, numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")], inputs=(x4,), opset=13)
    r = _post(idle_api, data)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "Resize (node #1 (Resize): mode=nearest, coordinate_transformation_mode=half_pixel" in detail
    assert "node ?" not in detail


# --- .keras archives -----------------------------------------------------------------------------

def _keras(weights: bytes | None = None, compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        zf.writestr("config.json", json.dumps(_sigmoid_stack()))
        if weights is not None:
            zf.writestr("model.weights.h5", weights)
    return buf.getvalue()


def test_a_keras_zip_bomb_is_refused_by_its_ratio_before_decompressing(monkeypatch) -> None:
    data = _keras(b"\0" * (8 * 2**20))   # 8 MB of zeros deflate about 1000 to 1
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("model.weights.h5")
    assert info.file_size / info.compress_size > MAX_ZIP_RATIO
    read = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: read.append(a) or pytest.fail("decompressed"))
    with pytest.raises(LimitExceeded, match=r"model.weights.h5 declares 8,388,608 bytes from [\d,]+ compressed, "
                                            r"a ratio over 200"):
        vet_keras_archive(data)


def test_a_keras_zip_bomb_is_413_or_422_at_upload(idle_api: Api) -> None:
    r = idle_api.post("/v1/checks/model", files={"file": ("m.keras", _keras(b"\0" * (8 * 2**20)))})
    assert r.status_code in (413, 422), r.text
    assert "ratio over 200" in r.json()["detail"]


def _h5_with_external_link(tmp_path) -> bytes:
    other = tmp_path / "secret.h5"
    with h5py.File(other, "w") as f:
        f["w"] = np.ones(3)
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(other), "w")
    return path.read_bytes()


def test_an_external_link_inside_keras_weights_is_refused_at_upload(idle_api: Api, tmp_path) -> None:
    r = idle_api.post("/v1/checks/model", files={"file": ("m.keras", _keras(_h5_with_external_link(tmp_path)))})
    assert r.status_code in (400, 422), r.text
    assert "model.weights.h5 refers to other files" in r.json()["detail"]
    assert "external link" in r.json()["detail"]


# --- #8: a webhook secret's length is said in characters -------------------------------------------

@pytest.mark.parametrize(("secret", "words"), [("a" * 256, "String should have at most 255 characters"),
                                               ("a" * 3, "String should have at least 16 characters")])
def test_a_webhook_secret_of_the_wrong_length_is_said_in_characters(idle_api: Api, secret: str, words: str) -> None:
    r = idle_api.post("/v1/webhooks", json={"url": "https://93.184.216.34/hook", "secret": secret})
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["pointer"] == "/secret" and words in error["detail"] and "items" not in error["detail"]
