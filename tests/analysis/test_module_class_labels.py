"""check_module's ``targets=`` under a classification loss (peersweep15: class labels passed as
``targets=`` under cross_entropy were refused as "targets applies to a regression loss"): accepted,
said in simulation.notes, refused only where inconsistent with the output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.errors import GradHealthError


def _classifier(classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, classes))


def test_class_labels_under_cross_entropy_are_accepted_with_a_note() -> None:
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 4, 4])  # 5 classes, class 4 half of them
    doc = check_module(_classifier(5), torch.randn(8, 10), loss="cross_entropy", targets=labels,
                       seeds=1, verify=False)
    [note] = [n for n in doc.simulation.notes if n.startswith("targets=")]
    assert "8 class labels, 5 distinct classes of 5 scored, the most common 50%" in note
    assert "not needed" in note


def test_a_label_beyond_the_output_is_refused_naming_it() -> None:
    with pytest.raises(GradHealthError, match=r"class label 5, but the output \(layer 2, a Linear with 5 outputs\) "
                                              r"scores classes 0-4"):
        check_module(_classifier(5), torch.randn(8, 10), loss="cross_entropy", targets=torch.tensor([0, 5, 1]),
                     seeds=1, verify=False)


@pytest.mark.parametrize("loss,bad,element", [("cross_entropy", [0, -1], 1), ("cross_entropy", [1.5, 2], 0),
                                              ("binary_cross_entropy", [0.0, 2.0], 1)])
def test_targets_no_classifier_takes_are_refused(loss: str, bad: list, element: int) -> None:
    with pytest.raises(GradHealthError, match=f"targets under {loss} must be .* element {element} "):
        check_module(_classifier(1 if loss == "binary_cross_entropy" else 5), torch.randn(8, 10), loss=loss,
                     targets=torch.tensor(bad), seeds=1, verify=False)


def test_zero_one_targets_under_binary_cross_entropy_are_accepted() -> None:
    doc = check_module(_classifier(1), torch.randn(8, 10), loss="binary_cross_entropy",
                       targets=torch.tensor([[0.0], [1.0], [1.0], [0.0]]), seeds=1, verify=False)
    [note] = [n for n in doc.simulation.notes if n.startswith("targets=")]
    assert "4 targets in [0, 1], 50% of their mass on 1" in note and "0/1 targets drawn" in note
