"""modsweep48 fixes. Wording 1: a Post-LN stack's "lower the learning rate + warm-up" remedy was tagged
"a change to the model's code the check cannot make on a copy"; an optimizer/schedule change is a
change to the training configuration (``unverified="training_time"``), whatever finding proposes it."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module
from gradhealth.core import remedies as R
from gradhealth.report import render


def _post_ln() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=False)
    return nn.Sequential(nn.TransformerEncoder(layer, 8, enable_nested_tensor=False), nn.Linear(32, 10))


def test_a_rate_and_warmup_remedy_is_a_training_change_not_a_model_code_change() -> None:
    model = _post_ln()
    doc = check_module(model, torch.randn(4, 16, 32), seeds=1, verify=False,
                       optimizer=torch.optim.AdamW(model.parameters(), lr=3e-4))
    [post_ln] = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    rate = next(r for r in post_ln.remedies if r.id == "lower_learning_rate")
    assert rate.unverified == "training_time"
    text = render("text", doc)
    line = next(ln for ln in text.splitlines() if "lower_learning_rate" in ln or "warm-up" in ln.lower())
    assert "model's code" not in line


def test_the_unmeasured_reason_follows_the_remedy_kind() -> None:
    for rid in ("lower_learning_rate", "raise_learning_rate", "gradient_clipping", "weight_decay"):
        assert R.unmeasured_reason(rid) == "training_time"
    for rid in ("pre_layer_norm", "residual_connections", "layer_norm"):
        assert R.unmeasured_reason(rid) == "not_simulable"
