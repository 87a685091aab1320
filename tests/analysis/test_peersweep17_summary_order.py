"""peersweep17: the summary leads with the root cause (tdc_baseCNN_const_init led with the
``large_updates`` a constant init makes, ahead of its ``symmetric_weights`` error)."""

from __future__ import annotations

import torch
from torch import nn

import gradhealth
from gradhealth.core import rules
from gradhealth.core.document import Finding


def _f(code: str, severity: str) -> Finding:
    return rules.rule(code).finding(severity, "s", "e", {"value": 1.0})


def test_among_one_severity_a_setting_leads_then_the_flow_then_the_steps() -> None:
    found = [_f("large_updates", "error"), _f("exploding_gradient", "error"), _f("symmetric_weights", "error"),
             _f("small_updates", "warning"), _f("output_loss_mismatch", "warning"), _f("dead_units", "warning"),
             _f("saturation", "info"), _f("negative_learning_rate", "info")]
    ordered = [(x.code, x.severity) for x in rules.worst_first(found)]
    assert ordered == [
        ("symmetric_weights", "error"), ("exploding_gradient", "error"), ("large_updates", "error"),
        ("output_loss_mismatch", "warning"), ("dead_units", "warning"), ("small_updates", "warning"),
        ("negative_learning_rate", "info"), ("saturation", "info"),
    ]
    # severity still comes first: a warning's cause does not lead an error
    assert [x.code for x in rules.worst_first([_f("symmetric_weights", "warning"), _f("large_updates", "error")])] \
        == ["large_updates", "symmetric_weights"]


class _ConstantCNN(nn.Module):
    """tdc_baseCNN_const_init's LeNet (MNIST: conv 32, conv 64, each 3x3 ReLU then a 2x2 max pool,
    Dense 1024 ReLU, Dense 10), every weight 0.01 and every bias 0 (Keras' Constant(0.01))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.fc, self.out = nn.Linear(64 * 7 * 7, 1024), nn.Linear(1024, 10)
        for m in (self.conv1, self.conv2, self.fc, self.out):
            nn.init.constant_(m.weight, 0.01)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.out(torch.relu(self.fc(x.flatten(1))))


def test_a_constant_init_leads_the_summary_ahead_of_the_step_it_makes() -> None:
    doc = gradhealth.check_module(_ConstantCNN(), torch.rand(16, 1, 28, 28), input_range=(0.0, 1.0), seeds=1,
                                  verify=False, optimizer={"type": "sgd", "lr": 0.1})
    codes = {f.code: f.severity for f in doc.findings}
    # inputs of mean 1/2 reach fc's 1024 units at about 3136 x 0.01 x (288 x 0.01 x 9 x 0.01 x 1/2) = 4.1
    # each, so the readout's weight gradient is about ||p - y|| x 4.1 x sqrt(1024) = 120 (its logits all
    # equal: p uniform), and SGD 0.1 moves the readout, norm 0.01 x sqrt(10240) = 1.01, by about 10x itself
    assert codes.get("symmetric_weights") == "error" and codes.get("large_updates") == "error"
    assert doc.findings[0].code == "symmetric_weights"
    assert doc.summary.startswith("unhealthy: symmetric_weights: ")
