"""modsweep46 section 3: a forward computing part of itself in float32 on the float64 copy gets the
note the docs promise (seanie_realnvp), a module left without parameters by an `_init_` typo is told
so (yaren_unet_no_init; funml_graphconv's plain-tensor weight), and the vanishing note's figure names
the layers it compares ("least/last" read as a typo of "first/last")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.errors import ArgumentError

# --- notes and wording (section 3) ---------------------------------------------------------------

class _Coupling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scale(x[:, :1])
        return torch.cat([x[:, :1], torch.exp(s) * x[:, 1:]], 1), s.sum(1)


class _Flow(nn.Module):
    """seanie_realnvp's pattern: the log-determinant summed into torch.zeros(batch) (float32) in place."""

    def __init__(self) -> None:
        super().__init__()
        self.flows = nn.ModuleList([_Coupling(), _Coupling()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_det = torch.zeros(x.size(0))  # no dtype=: float32 beside the float64 copy
        for flow in self.flows:
            x, ld = flow(x)
            log_det += ld  # in place: stays float32
        return (0.5 * (x ** 2).sum(1) - log_det).sum()


def test_a_forward_that_computes_part_of_itself_in_float32_on_the_float64_copy_gets_the_note() -> None:
    torch.manual_seed(0)
    model, x = _Flow(), torch.randn(16, 2)
    # independently: on a float64 copy, the forward's log-determinant is float32, with no error
    seen: list[torch.dtype] = []
    double = _Flow().double()
    double.flows[0].register_forward_hook(lambda m, i, o: seen.append(o[1].dtype))
    double(x.double())
    assert seen == [torch.float64]  # the layers run in float64 ...
    doc = gradhealth.check_module(model, x, loss="mse", seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.precision == "float64"
    notes = [n for n in doc.simulation.notes if "part of the forward ran in float32" in n]
    assert len(notes) == 1  # ... but the sum the loss reads is float32, and the note says where
    assert "log_det += ld" in notes[0] and "log_det = torch.zeros(x.size(0))" in notes[0]


def test_a_forward_whose_float32_tensors_only_meet_float64_ones_gets_no_such_note() -> None:
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x + 0.1 * torch.randn(x.shape))  # float32 noise, promoted to float64

    torch.manual_seed(0)
    doc = gradhealth.check_module(Noisy(), torch.randn(8, 4), loss="mse", seeds=1, verify=False)
    assert doc.simulation is not None
    assert not any("part of the forward ran in" in n for n in doc.simulation.notes)


def test_a_module_whose_init_is_misspelled_is_refused_naming_the_typo() -> None:
    class UNet(nn.Module):
        def _init_(self) -> None:  # one underscore each side: Python never calls it
            super().__init__()
            self.conv = nn.Conv2d(3, 1, 3)

    with pytest.raises(ArgumentError) as info:
        gradhealth.check_module(UNet(), torch.rand(2, 3, 8, 8), seeds=1)
    message = str(info.value)
    assert "has no parameters" in message and "_init_, not __init__" in message
    assert "no layers were created" in message and "defines no forward" in message


def test_a_module_with_an_empty_init_is_told_its_init_created_no_layers() -> None:
    class Empty(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    with pytest.raises(ArgumentError) as info:
        gradhealth.check_module(Empty(), torch.rand(2, 3), seeds=1)
    assert "__init__ created no layers" in str(info.value) and "not __init__" not in str(info.value)
    assert "defines no forward" not in str(info.value)


def test_a_module_holding_its_weight_as_a_plain_tensor_is_told_to_wrap_it() -> None:
    class GraphConv(nn.Module):  # funml_graphconv: self.w = torch.randn(...), no nn.Parameter
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.randn(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x @ self.w)

    with pytest.raises(ArgumentError) as info:
        gradhealth.check_module(GraphConv(), torch.rand(2, 8), seeds=1)
    assert "self.w as a plain tensor" in str(info.value) and "nn.Parameter" in str(info.value)


def test_the_vanishing_notes_figures_name_which_layers_they_compare() -> None:
    from gradhealth.analysis.check import NOTE_FIGURES
    shown = NOTE_FIGURES["output_grad_ratio_least_to_last"]
    # "least/last layer gradient" read as a typo of "first/last" beside the other vanishing note
    assert "least/last" not in shown and "middle layer" in shown
