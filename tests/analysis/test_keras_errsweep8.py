"""errsweep8 #1-#3: a Keras activation in a form Keras does not write (a number, an object with no
``class_name``) was read as linear and the model reported healthy; a layer with no ``config`` key
was an internal error (KeyError: 'units', HTTP 500); the refusal of an unknown activation quoted
its normalised name ('nonexistentact' for "nonexistent_act")."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest

from gradhealth.analysis.importers.keras import SUPPORTED, keras_to_spec
from gradhealth.analysis.importers.keras_graph import GRAPH_LAYERS, plan_keras_graph
from gradhealth.errors import GradHealthError, InputFormatError
from gradhealth.library import check_keras


def _model(activation: Any, hidden: dict[str, Any] | None = None) -> dict[str, Any]:
    dense: dict[str, Any] = {"class_name": "Dense", "config": {"name": "d1", "units": 4, "activation": activation}}
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "in"}},
        hidden if hidden is not None else dense,
        {"class_name": "Dense", "config": {"name": "d2", "units": 3, "activation": "softmax"}}]}}


#: every form Keras serialises tanh in: a name (Keras 2 and 3), Keras 3's function object, and
#: Keras 3's function object of a file saved with its module left out
_TANH = ["tanh", {"module": "keras.activations", "class_name": "function", "config": "tanh",
                  "registered_name": "tanh"},
         {"class_name": "function", "config": "tanh"}]


@pytest.mark.parametrize("form", _TANH)
def test_every_serialised_form_of_an_activation_is_read_as_that_activation(form: Any) -> None:
    spec = keras_to_spec(_model(form))
    assert spec["layers"][0]["activation"] == "tanh"
    graph = plan_keras_graph(_model(form))
    from gradhealth.analysis.importers.keras_graph import _activation

    assert _activation(graph.nodes[1].cfg["activation"]) == "tanh"


def test_an_activation_layer_object_as_keras_2_writes_it_is_read() -> None:
    # Keras 2: Dense(activation=LeakyReLU()) -> {"class_name": "LeakyReLU", "config": {...}}
    spec = keras_to_spec(_model({"class_name": "LeakyReLU", "config": {"name": "lr"}}))
    assert spec["layers"][0]["activation"] == "leaky_relu"


@pytest.mark.parametrize("form", [5, 0.5, True, {"x": [1]}, ["relu"], {"class_name": "function", "config": {"a": 1}},
                                  {"config": "relu"}, {"class_name": 7, "config": {}}])
def test_an_activation_in_no_form_keras_writes_is_refused_naming_the_layer_and_value(form: Any) -> None:
    with pytest.raises(GradHealthError) as refused:
        check_keras(_model(form), seeds=1, verify=False)
    detail = str(refused.value.detail)
    assert "d1" in detail and repr(form)[:20] in detail and "not an activation as Keras writes one" in detail
    for door in (keras_to_spec, plan_keras_graph):  # each door on its own, never read as linear
        with pytest.raises((GradHealthError, ValueError)) as refused_here:
            door(_model(form))
        assert repr(form)[:20] in str(refused_here.value)


@pytest.mark.parametrize(("form", "written"), [
    ("nonexistent_act", "'nonexistent_act'"),
    ({"module": None, "class_name": "function", "config": "custom_act", "registered_name": "Custom>custom_act"},
     "'custom_act'"),
    ("My_Swish", "'My_Swish'")])
def test_an_unknown_activation_is_quoted_as_the_file_writes_it(form: Any, written: str) -> None:
    with pytest.raises(GradHealthError) as refused:
        check_keras(_model(form), seeds=1, verify=False)
    assert f"activation {written} is not supported" in str(refused.value.detail)
    with pytest.raises(GradHealthError) as spec_door:
        keras_to_spec(_model(form))
    assert f"activation {written} is not supported" in str(spec_door.value.detail)


@pytest.mark.parametrize(("cls", "key"), [("Dense", "units"), ("Conv1D", "filters"), ("LSTM", "units"),
                                          ("Embedding", "input_dim")])
def test_a_layer_with_no_config_is_refused_at_its_required_key(cls: str, key: str) -> None:
    with pytest.raises(InputFormatError) as refused:
        check_keras(_model(None, hidden={"class_name": cls}), seeds=1, verify=False)
    pointers = [p.pointer for p in refused.value.problems]
    assert f"/config/layers/1/config/{key}" in pointers
    assert "no `config` object" in refused.value.detail


def test_no_layer_kind_with_no_or_an_empty_config_is_an_internal_error() -> None:
    """Every class either door reads, with no config and with an empty one, on a sequence input:
    a refusal in the service's terms or a check, never a KeyError or TypeError."""
    for cls in sorted((set(SUPPORTED) | set(GRAPH_LAYERS)) - {"InputLayer"}):
        for layer in ({"class_name": cls}, {"class_name": cls, "config": {"name": "x"}}):
            model = _model(None, hidden=copy.deepcopy(layer))
            model["config"]["layers"][0]["config"]["batch_shape"] = [None, 6, 8]
            model["config"]["layers"].insert(2, {"class_name": "Flatten", "config": {"name": "f"}})
            with contextlib.suppress(GradHealthError):
                check_keras(model, seeds=1, verify=False, batch_size=4)
