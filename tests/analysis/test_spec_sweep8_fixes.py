"""What the eighth spec sweep found: a spec over the size limits was refused at ``/layers`` when one
layer held nearly all of it, a sequence too long at ``/input`` rather than the length's own field,
and ``--seeds`` replaced an invalid ``seeds`` before the spec was validated, so a CI check passed a
file the API refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.analysis.limits import Limits
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import LimitExceeded, SpecError
from gradhealth.library import check_architecture


def _pointers(exc: pytest.ExceptionInfo) -> list[str]:
    return [p.pointer for p in exc.value.problems]


def test_a_spec_too_large_is_refused_at_the_layer_that_makes_it_so() -> None:
    spec = {"input": {"shape": [1000]},
            "layers": [{"type": "linear", "out_features": 10}, {"type": "linear", "out_features": 10},
                       {"type": "linear", "out_features": 1_000_000_000}]}
    with pytest.raises(LimitExceeded) as exc:
        check_architecture(spec, verify=False)
    assert _pointers(exc)[0] == "/layers/2"   # (its output is over the memory limit too: /batch_size)
    assert str(exc.value).startswith("/layers/2: too many parameters") and "in layers[2].linear" in str(exc.value)


def test_a_spec_too_large_all_over_is_refused_at_its_layers() -> None:
    spec = {"input": {"shape": [20_000]}, "layers": [{"type": "linear", "out_features": 20_000}] * 4}
    with pytest.raises(LimitExceeded) as exc:
        check_architecture(spec, verify=False)
    assert _pointers(exc) == ["/layers"]
    # one entry repeated 4 times holds them all: its `repeat` or its width is what to change
    spec = {"input": {"shape": [20_000]}, "layers": [{"type": "linear", "out_features": 20_000, "repeat": 4}]}
    with pytest.raises(LimitExceeded) as exc:
        check_architecture(spec, verify=False)
    assert _pointers(exc) == ["/layers/0"]


def test_a_sequence_too_long_is_refused_at_its_length() -> None:
    spec = {"input": {"shape": [1_000_000_000, 8]}, "layers": [{"type": "gru", "hidden_size": 8}]}
    with pytest.raises(LimitExceeded) as exc:
        check_architecture(spec, verify=False)
    assert _pointers(exc) == ["/input/shape/0"]


def test_an_override_of_seeds_does_not_hide_an_invalid_seeds(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("input: {shape: [4]}\nseeds: 0\nlayers: [{type: linear, out_features: 2}]\n")
    with pytest.raises(SpecError) as exc:
        check_architecture(path, seeds=2, verify=False)
    assert _pointers(exc) == ["/seeds"]


@pytest.mark.parametrize(("optimizer", "words"), [
    ({"type": "rmsprop", "lr": 0.03}, "a usual rmsprop step at lr 0.03 (its step once its average of squared gradients has warmed up, "
     "a few dozen steps in; its first is 10x that)"),
    ({"type": "adam", "lr": 0.05}, "one adam step at lr 0.05 changes"),
])
def test_a_large_update_says_which_step_it_judged(optimizer: dict, words: str) -> None:
    # RMSprop's square average starts at (1 - alpha) g^2: its first step is 1/sqrt(0.01) = 10x the
    # usual one, which is what is judged; the summary must not call the usual figure "one step"
    spec = {"input": {"shape": [64]}, "optimizer": optimizer, "seeds": 1,
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_normal",
                        "repeat": 3}, {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec, verify=False)
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    assert words in f.summary
    assert f.evidence.first_step_factor == pytest.approx(10.0 if optimizer["type"] == "rmsprop" else 1.0, rel=1e-6)


def test_a_parameter_refusal_points_at_the_entry_holding_most_of_them():
    """specsweep12 (GPT-Neo 2.7B): a transformer_encoder of 32 layers is one spec entry holding 94%
    of the parameters, planned as 32 units of 3% each; the refusal pointed at /layers, not at it."""
    d, layers = 1024, 24
    spec = {"input": {"tokens": {"vocab_size": 50257, "seq_len": 16}}, "batch_size": 1, "seeds": 1,
            "layers": [{"type": "embedding", "embedding_dim": d},
                       {"type": "transformer_encoder", "d_model": d, "heads": 16, "ff_width": 4 * d,
                        "num_layers": layers},
                       {"type": "linear", "out_features": 2}]}
    with pytest.raises(LimitExceeded) as caught:
        make_plan(parse_spec(spec), Limits(max_parameters=10_000_000))
    [problem] = [p for p in caught.value.problems if "too many parameters" in p.message]
    # each layer: the four d x d attention projections and two d x 4d feed-forward matrices, their
    # biases, and two LayerNorms: 12 d^2 + 13 d (PyTorch's TransformerEncoderLayer)
    per_layer = 12 * d * d + 13 * d
    assert problem.pointer == "/layers/1"
    assert f"{layers * per_layer:,} of them in layers[1].transformer_encoder;" in problem.message
