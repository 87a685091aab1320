"""What the tenth spec sweep (architectures labelled by papers and mean-field theory) found."""

from __future__ import annotations

from typing import Any

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds


def _gpt(norm_first: bool = True) -> dict[str, Any]:
    # GPT-2's recipe in small: token embeddings drawn at std 0.02 into a Pre-LN stack
    return {"input": {"tokens": {"vocab_size": 500, "seq_len": 16}}, "batch_size": 16, "seeds": 2,
            "layers": [{"type": "embedding", "embedding_dim": 64, "init": {"scheme": "normal", "std": 0.02}},
                       {"type": "transformer_encoder", "d_model": 64, "heads": 4, "ff_width": 256,
                        "norm_first": norm_first, "num_layers": 2, "activation": "gelu"},
                       {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 10}]}


def test_growth_behind_a_pre_ln_stack_only_its_norms_read_is_a_note() -> None:
    # the block's LayerNorm divides the embedding's scale out, so ||dL/dh|| at the embedding is
    # ~1/0.02 of the stream's: growth no update feels, not an explosion
    doc = run_architecture_check(_gpt(), CheckOptions(Thresholds(), Limits(), device="cpu"))
    grows = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert grows and all(f.severity == "info" for f in grows)
    assert doc.status == "healthy"
    embedding = next(layer for layer in doc.layers if layer.name == "layers[0].embedding")
    assert embedding.normalised


def test_an_embedding_into_plain_layers_is_not_read_by_norms() -> None:
    raw = _gpt()
    raw["layers"][1:2] = [{"type": "pool", "mode": "mean"}]
    raw["layers"][2:] = [{"type": "linear", "out_features": 64, "activation": "relu", "repeat": 2},
                         {"type": "linear", "out_features": 10}]
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
    assert not any(layer.normalised for layer in doc.layers if layer.name == "layers[0].embedding")


def test_weight_decay_is_not_offered_to_a_spec_that_already_decays_more() -> None:
    # an exploding MLP under AdamW with weight decay 0.1: "add weight decay 0.01" would cut it tenfold
    raw: dict[str, Any] = {"input": {"shape": [32]}, "seeds": 1,
                           "layers": [{"type": "linear", "out_features": 32, "activation": "relu",
                                       "init": {"scheme": "normal", "std": 0.5}, "repeat": 8},
                                      {"type": "linear", "out_features": 10}]}
    for decay, offered in ((0.1, False), (0.0, True)):
        raw["optimizer"] = {"type": "adamw", "lr": 1e-4, "weight_decay": decay}
        doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
        [grows] = [f for f in doc.findings if f.code == "exploding_gradient"]
        assert any(r.id == "weight_decay" for r in grows.remedies) is offered


def test_a_gradient_that_underflows_float32_is_said_to_be_under_float32s_range() -> None:
    raw: dict[str, Any] = {"input": {"shape": [120, 8]}, "seeds": 1, "precision": "float32",
                           "layers": [{"type": "rnn", "hidden_size": 16, "nonlinearity": "tanh",
                                       "init": {"scheme": "normal", "std": 0.02}},
                                      {"type": "linear", "out_features": 4}]}
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time"]
    assert "below what float32 holds" in f.summary and "1e-38" in f.summary


def _lstm(steps: int) -> dict[str, Any]:
    return {"input": {"shape": [steps, 8]}, "seeds": 1,
            "layers": [{"type": "lstm", "hidden_size": 32}, {"type": "linear", "out_features": 4}]}


def test_a_default_lstm_over_fewer_than_50_steps_is_a_note() -> None:
    # default gates shrink dL/dh_t by ~0.6 a step: 25 steps is 1e-5, and the textbook set-up trains
    # (onnxsweep8 h06, onnxsweep9 h06 and h11); since kerassweep13 (h04: 60 steps) a note over 200
    # steps too: judged against default gates, not the length
    for steps, severity in ((25, "info"), (200, "info")):
        doc = run_architecture_check(_lstm(steps), CheckOptions(Thresholds(), Limits(), device="cpu"))
        [f] = [f for f in doc.findings if f.code == "vanishing_through_time"]
        assert f.severity == severity, (steps, f.summary)


def test_a_gradient_of_exactly_zero_is_said_to_be_zero_not_a_factor_of_nan() -> None:
    # ReLU layers behind a bias of -3 pass nothing back (onnxsweep9 b03): no per-layer factor exists
    import torch
    from torch import nn

    from gradhealth import check_module

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(6):
        linear = nn.Linear(32, 32)
        nn.init.constant_(linear.bias, -3.0)
        layers += [linear, nn.ReLU()]
    doc = check_module(nn.Sequential(*layers, nn.Linear(32, 4)), torch.randn(64, 32), loss="cross_entropy", seeds=1)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert "nan" not in f.explanation and "exactly 0" in f.explanation
