"""errsweep6 #5 and #8: a subnormal scale (``variance_scaling`` scale 5e-324 made a std of 0 that
torch's ``trunc_normal_`` divided by: a job failed with a 500, the CLI printed a traceback) is a 422
at its pointer, and the simulation never turns such a number into a ZeroDivisionError; a layer
without a ``type`` says so and names the types."""

from __future__ import annotations

import json

import pytest
import torch

from gradhealth.analysis import model as M
from gradhealth.analysis.spec import MIN_SCALE, InitSpec, parse_spec
from gradhealth.errors import SpecError


def _spec(layer0: dict, **top: object) -> str:
    return json.dumps({"input": {"shape": [8]}, "seeds": 1, **top,
                       "layers": [{"type": "linear", "out_features": 4, **layer0}, {"type": "linear", "out_features": 4}]})


@pytest.mark.parametrize(("layer0", "top", "pointer"), [
    ({"init": {"scheme": "variance_scaling", "scale": 5e-324}}, {}, "/layers/0/init/scale"),
    ({"init": {"scheme": "normal", "std": 5e-324}}, {}, "/layers/0/init/std"),
    ({"init": {"scheme": "truncated_normal", "std": 1e-310}}, {}, "/layers/0/init/std"),
    ({"init": {"scheme": "xavier_normal", "gain": 5e-324}}, {}, "/layers/0/init/gain"),
    ({"init": {"scheme": "uniform", "bound": 5e-324}}, {}, "/layers/0/init/bound"),
    ({"bias_init": {"scheme": "normal", "std": 1e-31}}, {}, "/layers/0/bias_init/std"),
    ({}, {"input": {"shape": [8], "scale": 5e-324}}, "/input/scale"),
])
def test_a_scale_below_the_floor_is_refused_at_its_pointer(layer0, top, pointer):
    with pytest.raises(SpecError) as err:
        parse_spec(json.loads(_spec(layer0, **top)))
    assert [p.pointer for p in err.value.problems] == [pointer]
    assert "at least 1e-30" in err.value.problems[0].message
    assert "0.0000000000" not in err.value.problems[0].message


def test_the_floor_itself_is_accepted_and_builds():
    # 1e-30 / fan 8 is a variance of 1.25e-31; the std, 3.5e-16 / 0.8796 (Keras' truncation factor), is normal
    spec = parse_spec(json.loads(_spec({"init": {"scheme": "variance_scaling", "scale": MIN_SCALE}})))
    w = torch.empty(4, 8, dtype=torch.float64)
    M.init_weight(w, spec.layers[0].init)  # type: ignore[union-attr]
    std = (MIN_SCALE / 8) ** 0.5 / 0.87962566103423978
    assert 0 < float(w.abs().max()) <= 2 * std * (1 + 1e-9)


def test_the_simulation_refuses_a_std_that_underflows_with_a_clear_error():
    # constructed past the spec's validation: the init itself must not divide by a zero std
    init = InitSpec.model_construct(scheme="variance_scaling", scale=5e-324, mode="fan_in",
                                    distribution="truncated_normal", gain=None, std=None, bound=None)
    with pytest.raises(SpecError, match="variance_scaling.*not a positive normal number"):
        M.init_weight(torch.empty(4, 8), init)


def test_cli_check_of_a_subnormal_scale_exits_2_without_a_traceback(tmp_path, capsys):
    from gradhealth.cli import main

    path = tmp_path / "vs_sub.json"
    path.write_text(_spec({"init": {"scheme": "variance_scaling", "scale": 5e-324}}))
    assert main(["check", str(path), "--no-verify", "--format", "json"]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    assert "/layers/0/init/scale" in out.out + out.err


@pytest.mark.parametrize("key", ["type\u00a0", None])
def test_a_layer_without_type_says_so_and_names_the_types(key):
    layer = {"out_features": 4} | ({key: "linear"} if key else {})
    with pytest.raises(SpecError) as err:
        parse_spec({"input": {"shape": [4]}, "layers": [layer]})
    problem = err.value.problems[0]
    assert problem.pointer == "/layers/0"
    assert "Unable to extract tag" not in problem.message
    assert "no `type`" in problem.message and "'linear'" in problem.message and "'residual'" in problem.message
    if key:
        assert repr(key) in problem.message
