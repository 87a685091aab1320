"""kerassweep28: a separate activation layer after a Dense (Keras-1/2's ``Dense(128)`` then
``Activation('relu')``) is the Dense's activation for its init remedy and the words about it, in
both doors."""

from __future__ import annotations

from typing import Any

import pytest

from gradhealth.analysis.importers.keras import check_keras
from tests.analysis.test_keras_import import _dense, _layer, _seq
from tests.analysis.test_kerassweep27_fixes import _functional

DEPTH, WIDTH = 24, 32


def _stack(split: list[str], merged: bool) -> list[dict[str, Any]]:
    """DEPTH x Dense(WIDTH) with Glorot's init and a ReLU, written merged or as separate layers
    (``split`` names the layers between the Dense and its Activation)."""
    out: list[dict[str, Any]] = []
    for i in range(DEPTH):
        if merged:
            out.append(_dense(f"d{i}", WIDTH, "relu"))
            continue
        out.append(_dense(f"d{i}", WIDTH))
        out.extend(_layer(cls, f"{cls.lower()}{i}", **({"rate": 0.0} if cls == "Dropout" else {})) for cls in split)
        out.append(_layer("Activation", f"a{i}", activation="relu"))
    out.append(_dense("out", 4))
    return out


def _vanishing(doc: Any) -> Any:
    found = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert found, doc.summary
    return found[0]


@pytest.mark.parametrize("split", [[], ["Dropout"]])
def test_spec_door_a_separate_relu_layer_gets_he_init_as_the_merged_form(split: list[str]) -> None:
    # grasool_nobn40_json: 39 x Dense(128) + Activation('relu') with Glorot's init vanished
    # (sqrt(1/2) a layer, theory: Var(W) = 1/n, a ReLU halves the second moment) but was told its
    # layers had "no activation of their own" and not offered he_init, the fix the merged form got
    split_doc = check_keras(_seq(*_stack(split, merged=False), shape=[WIDTH]), seeds=2, verify=False)
    merged_doc = check_keras(_seq(*_stack(split, merged=True), shape=[WIDTH]), seeds=2, verify=False)
    split_f, merged_f = _vanishing(split_doc), _vanishing(merged_doc)
    assert [r.id for r in merged_f.remedies][0] == "he_init"
    assert "he_init" in [r.id for r in split_f.remedies], [r.id for r in split_f.remedies]
    assert "no activation of their own" not in split_f.explanation
    assert "relu layers" in split_f.explanation, split_f.explanation
    # its change names the first few of the DEPTH layers and counts the rest, as batch_norm's does
    he = next(r for r in split_f.remedies if r.id == "he_init")
    assert f"and {DEPTH - 4} more with kaiming_normal" in he.change, he.change


def test_graph_door_a_separate_relu_layer_gets_he_init() -> None:
    # a Reshape at the end the spec door does not take: the graph door, which folds the activation
    # module into the Dense before it
    layers = [*_stack([], merged=False), _layer("Reshape", "reshape", target_shape=[2, 2])]
    doc = check_keras(_functional([WIDTH], *layers), seeds=2, verify=False)
    f = _vanishing(doc)
    assert "he_init" in [r.id for r in f.remedies], [r.id for r in f.remedies]
    assert "no activation of their own" not in f.explanation


# --- khushi_srnn: trained weights read as a fresh init from one Dense kernel's spread -------------

def _keras_fresh(seed: int = 0) -> Any:
    """An Embedding -> SimpleRNN -> Dense drawn as Keras initialises them: U(+-0.05), Glorot
    uniform kernel and an orthogonal recurrent kernel, zero biases."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Embedding(1000, 32), nn.RNN(32, 32, batch_first=True), nn.Linear(32, 16))
    with torch.no_grad():
        net[0].weight.uniform_(-0.05, 0.05)
        nn.init.xavier_uniform_(net[1].weight_ih_l0)
        nn.init.orthogonal_(net[1].weight_hh_l0)
        net[1].bias_ih_l0.zero_()
        net[1].bias_hh_l0.zero_()
        nn.init.xavier_uniform_(net[2].weight)
        net[2].bias.zero_()
    return net


def test_a_keras_fresh_init_is_still_read_as_fresh_with_every_part_judged() -> None:
    from gradhealth.analysis.freshinit import fresh_init, fresh_note

    found = fresh_init(_keras_fresh())
    assert found is not None
    # the Dense kernel, the RNN's input kernel, its orthogonal recurrent kernel and the embedding
    assert sum(found.values()) == 4, found
    assert "each of the 4 weight matrices" in fresh_note(found)
    assert "the one weight matrix large enough to judge matches" in fresh_note({"Glorot normal": 1})


@pytest.mark.parametrize("moved", ["dense_bias", "rnn_bias", "embedding", "recurrent"])
def test_training_signs_other_than_a_kernel_spread_make_a_checkpoint(moved: str) -> None:
    # each is what a few epochs leave while every kernel's spread stays at Glorot's: biases off
    # zero (std 0.026 where Keras starts at 0, under torch's bound 1/sqrt(32) = 0.18, whose draw
    # would have a spread of 0.10), an embedding widened from U(+-0.05) (std 0.029) to 0.048, and
    # a recurrent kernel no longer orthogonal (its singular values spread)
    import torch

    from gradhealth.analysis.freshinit import fresh_init

    net = _keras_fresh()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        if moved == "dense_bias":
            net[2].bias.copy_(0.026 * torch.randn(16, generator=g, dtype=torch.float64).float())
        elif moved == "rnn_bias":
            net[1].bias_ih_l0.copy_(0.034 * torch.randn(32, generator=g, dtype=torch.float64).float())
        elif moved == "embedding":
            net[0].weight.mul_(0.048 / 0.0289)
        else:
            net[1].weight_hh_l0.add_(0.03 * torch.randn(32, 32, generator=g, dtype=torch.float64).float())
    assert fresh_init(net) is None


# --- kim_rnn, kim_dense: stateful RNNs refused with no way forward ---------------------------------

@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM"])
def test_a_stateful_recurrent_layer_is_checked_as_its_stateless_window(cls: str) -> None:
    # backpropagation stops at the batch's window, so the gradient is the stateless layer's over it
    def config(stateful: bool) -> dict[str, Any]:
        rnn = _layer(cls, "rnn", units=8, activation="tanh", return_sequences=False, stateful=stateful)
        return _seq(rnn, _dense("out", 1), shape=[36, 1])
    stateful = check_keras(config(True), seeds=2, verify=False)
    stateless = check_keras(config(False), seeds=2, verify=False)
    assert "stateless equivalent: rnn" in stateful.summary
    assert "not simulated" in stateful.summary
    assert _grads_of(stateful) == pytest.approx(_grads_of(stateless), rel=1e-9)


def _grads_of(doc: Any) -> dict[str, float]:
    return {u.name: u.grad_norm for u in doc.layers if u.grad_norm is not None}


# --- hiv_lstm: chrono with hard_sigmoid gates ------------------------------------------------------

def test_the_keras_chrono_snippet_sets_sigmoid_gates_where_the_remedy_swapped_them() -> None:
    from gradhealth.core import remedies as R
    from gradhealth.core.keras_snippets import keras_snippet

    remedy = R.gated_recurrent_cell("lstm_1", "chrono", 1575, already_lstm=True)
    remedy.params["recurrent_activation"] = "sigmoid"
    assert 'recurrent_activation="sigmoid"' in keras_snippet(remedy, "lstm_1")


def test_graph_door_chrono_for_hard_sigmoid_gates_swaps_them_and_is_verified() -> None:
    # theory: chrono's forget bias log U(1, T - 1) is mostly past 2.5, where Keras 2's hard sigmoid
    # 0.2x + 0.5 is flat at 1 (and the input gate, at -b_f, flat at 0): no gradient; with sigmoid
    # gates the same bias keeps the state over about T steps
    lstm = _layer("LSTM", "lstm", units=8, activation="tanh", recurrent_activation="hard_sigmoid",
                  return_sequences=False)
    layers = [lstm, _dense("out", 1), _layer("Reshape", "reshape", target_shape=[1])]
    doc = check_keras(_functional([1200, 2], *layers), seeds=2, verify=True)
    gated = [r for f in doc.findings for r in f.remedies if r.id == "gated_recurrent_cell"]
    assert gated, doc.summary
    assert 'recurrent_activation="sigmoid"' in gated[0].change
    # re-simulated: a gradient reaches the first step (with the hard sigmoid kept it was exactly 0)
    assert gated[0].verified is not None and gated[0].verified.after > 1e-4, gated[0].verified
