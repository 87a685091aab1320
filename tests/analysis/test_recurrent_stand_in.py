"""The simulation's recurrent stand-ins answer what a forward written against nn.LSTM/GRU reads
(modsweep36: `self.gru.flatten_parameters()` and `self.lstm.bidirectional` failed as model errors)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.analysis.graph import StackedRNN, UnrolledRNN, unroll_recurrent


class _Classifier(nn.Module):
    """A text classifier that uses the recurrent module's API the way tutorials do."""

    def __init__(self, cls: type[nn.RNNBase], layers: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.rnn = cls(16, 24, num_layers=layers, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(48, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rnn.flatten_parameters()
        _, h = self.rnn(self.emb(x))
        if isinstance(h, tuple):
            h = h[0]
        directions = 2 if self.rnn.bidirectional else 1
        last = h.view(self.rnn.num_layers, directions, x.shape[0], self.rnn.hidden_size)[-1]
        return self.fc(torch.cat(list(last), 1))


@pytest.mark.parametrize("cls", [nn.GRU, nn.LSTM])
@pytest.mark.parametrize("layers", [1, 2])
def test_a_forward_using_the_recurrent_modules_api_is_checked(cls: type[nn.RNNBase], layers: int) -> None:
    torch.manual_seed(0)
    doc = gradhealth.check_module(_Classifier(cls, layers), torch.randint(0, 50, (8, 12)),
                                  loss="cross_entropy", seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.parameters == sum(
        p.numel() for p in _Classifier(cls, layers).parameters())
    assert any(layer.name.startswith("rnn") for layer in doc.layers)


def test_the_stand_ins_give_the_modules_config_and_its_weights_by_torch_name() -> None:
    torch.manual_seed(0)
    holder = nn.Module()
    holder.rnn = nn.LSTM(16, 24, num_layers=2, bidirectional=True)
    holder.one = nn.GRU(16, 8, batch_first=True)
    weight = holder.rnn.weight_hh_l1_reverse.detach().clone()
    unroll_recurrent(holder)
    stacked, single = holder.rnn, holder.one
    assert isinstance(stacked, StackedRNN) and isinstance(single, UnrolledRNN)
    assert (stacked.hidden_size, stacked.num_layers, stacked.bidirectional, stacked.batch_first) == (24, 2, True, False)
    assert (single.hidden_size, single.batch_first, single.mode) == (8, True, "GRU")
    # the weight a forward reads is the copy the stand-in runs and measures, not a detached twin
    assert stacked.weight_hh_l1_reverse is stacked.layers[1].rnn.weight_hh_l0_reverse
    assert torch.equal(stacked.weight_hh_l1_reverse, weight)
    assert single.weight_ih_l0 is single.rnn.weight_ih_l0
    assert stacked.flatten_parameters() is None
    with pytest.raises(AttributeError):
        _ = stacked.weight_hh_l2
    with pytest.raises(AttributeError):
        _ = stacked.no_such_attribute
