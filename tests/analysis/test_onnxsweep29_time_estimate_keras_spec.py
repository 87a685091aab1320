"""onnxsweep29 #1 follow-up: the ONNX door estimates its simulation's time from the model's
multiply-adds and lowers the batch and seeds the user did not set past the time budget
(GRADHEALTH_LIMITS__SIMULATION_SECONDS); the Keras door and the architecture spec did not (a large Keras
U-Net was still a slow, silent run). Both now count their multiply-adds (the spec's plan, the Keras
graph) and share the ONNX door's rate and cut (gradhealth.analysis.timing)."""

from __future__ import annotations

from typing import Any

from gradhealth.analysis.importers.keras import MIN_DEFAULT_BATCH, check_keras
from gradhealth.analysis.importers.keras_graph import plan_keras_graph
from gradhealth.analysis.limits import Limits
from gradhealth.analysis.plan import make_plan, multiply_adds
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.timing import TIME_FLOOR_BATCH, TIME_FLOOR_SEEDS, fit_time
from gradhealth.library import check_architecture
from gradhealth.settings import Settings


def _by_hand(side: int, c: int = 8, out: int = 5) -> int:
    """Multiply-adds of one sample through conv 3->c k3 pad 1, conv c->c k3 stride 2 pad 1, a
    transposed conv c->4 k2 stride 2 (keras only) and a linear layer to ``out``, from the layers'
    definitions: a convolution's each output value is in_channels x kernel products, a transposed
    convolution's each input value scatters out_channels x kernel, a linear output its in_features."""
    half = side // 2
    conv1 = (c * side * side) * (3 * 3 * 3)
    conv2 = (c * half * half) * (c * 3 * 3)
    deconv = (c * half * half) * (4 * 2 * 2)
    return conv1 + conv2 + deconv + out * (4 * side * side)


def _spec(side: int, c: int = 8, **top: Any) -> dict[str, Any]:
    """The spec language's version of :func:`_by_hand`'s net, less the transposed convolution (a
    linear layer from the strided convolution's output instead), without biases."""
    return {"input": {"shape": [3, side, side]}, "loss": {"type": "mse"}, **top, "layers": [
        {"type": "conv2d", "out_channels": c, "kernel_size": 3, "padding": 1, "activation": "relu", "bias": False},
        {"type": "conv2d", "out_channels": c, "kernel_size": 3, "stride": 2, "padding": 1, "activation": "relu",
         "bias": False},
        {"type": "flatten"},
        {"type": "linear", "out_features": 5, "bias": False}]}


def _spec_by_hand(side: int, c: int = 8) -> int:
    half = side // 2
    return (c * side * side) * (3 * 3 * 3) + (c * half * half) * (c * 3 * 3) + 5 * (c * half * half)


def _keras(side: int, c: int = 8) -> dict[str, Any]:
    first = {"class_name": "InputLayer", "config": {"name": "inp", "batch_shape": [None, side, side, 3]}}
    layers = [{"class_name": "Conv2D", "config": {"name": "c1", "filters": c, "kernel_size": 3, "padding": "same",
                                                 "activation": "relu"}},
              {"class_name": "Conv2D", "config": {"name": "c2", "filters": c, "kernel_size": 3, "strides": 2,
                                                 "padding": "same", "activation": "relu"}},
              {"class_name": "Conv2DTranspose", "config": {"name": "up", "filters": 4, "kernel_size": 2,
                                                          "strides": 2, "activation": "relu"}},
              {"class_name": "Flatten", "config": {"name": "flat"}},
              {"class_name": "Dense", "config": {"name": "out", "units": 5}}]
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [first, *layers]}}


def _keras_mlp() -> dict[str, Any]:
    first = {"class_name": "InputLayer", "config": {"name": "inp", "batch_shape": [None, 10]}}
    layers = [{"class_name": "Dense", "config": {"name": "h", "units": 32, "activation": "relu"}},
              {"class_name": "Dense", "config": {"name": "out", "units": 2}}]
    return {"class_name": "Sequential", "config": {"name": "mlp", "layers": [first, *layers]}}


def _tight() -> Settings:
    return Settings(limits=Limits(simulation_seconds=1e-9))


def test_spec_multiply_adds_of_a_known_conv_net_onnxsweep29() -> None:
    for side in (16, 32):
        assert multiply_adds(make_plan(parse_spec(_spec(side)))) == _spec_by_hand(side)


def test_keras_graph_multiply_adds_of_a_known_conv_net_onnxsweep29() -> None:
    for side in (16, 32):
        graph = plan_keras_graph(_keras(side), batch_size=8)
        # the Dense's bias and the convolutions' are left out of the count, as in the ONNX door's
        assert graph.multiply_adds == _by_hand(side)


def test_a_big_spec_is_cut_a_small_one_is_not_onnxsweep29() -> None:
    budget = Limits().simulation_seconds
    # a U-Net-sized convolution stack at 224x224 (planned at batch 8: the count is per sample)
    big = make_plan(parse_spec(_spec(224, c=64, batch_size=8)))
    timing = fit_time(multiply_adds(big) * 64, 64, 3, batch_free=True, seeds_free=True, device=None,
                      budget=budget)
    assert timing.lowered and TIME_FLOOR_BATCH <= timing.batch < 64 and timing.seeds >= TIME_FLOOR_SEEDS
    mlp = make_plan(parse_spec({"input": {"shape": [10]}, "loss": {"type": "mse"},
                                "layers": [{"type": "linear", "out_features": 32, "activation": "relu"},
                                           {"type": "linear", "out_features": 2}]}))
    kept = fit_time(multiply_adds(mlp) * 64, 64, 3, batch_free=True, seeds_free=True, device=None, budget=budget)
    assert (kept.batch, kept.seeds, kept.lowered, kept.note) == (64, 3, False, None)


def test_spec_check_lowers_only_what_the_spec_does_not_set_onnxsweep29() -> None:
    doc = check_architecture(_spec(8), verify=False, settings=_tight())
    assert doc.simulation is not None
    assert (doc.simulation.batch_size, doc.simulation.seeds) == (TIME_FLOOR_BATCH, TIME_FLOOR_SEEDS)
    said = " ".join(doc.simulation.notes)
    assert "not the default batch 64 and 3 seeds" in said and "GRADHEALTH_LIMITS__SIMULATION_SECONDS" in said
    kept = check_architecture(_spec(8, batch_size=16, seeds=3), verify=False, settings=_tight())
    assert kept.simulation is not None
    assert (kept.simulation.batch_size, kept.simulation.seeds) == (16, 3)
    assert not any("not the default" in n for n in kept.simulation.notes)
    # the seeds given as an argument are kept too; the batch the spec leaves out is still lowered
    given = check_architecture(_spec(8), seeds=3, verify=False, settings=_tight())
    assert given.simulation is not None
    assert (given.simulation.batch_size, given.simulation.seeds) == (TIME_FLOOR_BATCH, 3)
    # at the default budget a small net keeps the defaults
    small = check_architecture(_spec(8), verify=False)
    assert small.simulation is not None and (small.simulation.batch_size, small.simulation.seeds) == (64, 3)


def test_keras_check_lowers_only_what_was_not_given_onnxsweep29() -> None:
    doc = check_keras(_keras(8), loss="mse", verify=False, settings=_tight())
    assert (doc.simulation.batch_size, doc.simulation.seeds) == (MIN_DEFAULT_BATCH, TIME_FLOOR_SEEDS)
    assert "not the default batch 64 and 3 seeds" in doc.summary
    given = check_keras(_keras(8), loss="mse", verify=False, settings=_tight(), batch_size=16, seeds=3)
    assert (given.simulation.batch_size, given.simulation.seeds) == (16, 3)
    assert "not the default" not in given.summary
    small = check_keras(_keras_mlp(), loss="mse", verify=False)
    assert (small.simulation.batch_size, small.simulation.seeds) == (64, 3)


def test_start_line_for_a_spec_and_a_keras_model_onnxsweep29() -> None:
    stages: list[str] = []
    check_architecture(_spec(8, name="tiny"), verify=False, progress=lambda f, s: stages.append(s))
    assert not any(s.startswith("checking ") for s in stages)  # a check of a second says nothing of it
    check_architecture(_spec(8, name="tiny"), verify=False, settings=_tight(),
                       progress=lambda f, s: stages.append(s))
    assert any(s.startswith("checking tiny: ~") and "estimated (batch 4, 2 seeds)" in s for s in stages)
    stages.clear()
    check_keras(_keras(8), loss="mse", verify=False, settings=_tight(), seeds=3, batch_size=16,
                progress=lambda f, s: stages.append(s))
    started = [s for s in stages if s.startswith("checking ")]
    assert len(started) == 1 and "(batch 16, 3 seeds)" in started[0]
    assert "--batch-size and --seeds shorten it" in started[0]
