"""newuser17 #3, #4, #5: a Diagnosis shows as a short line and prints as the text report (not
~16,000 characters of pydantic repr), with a Markdown form for notebooks; check_module takes the
torch loss module a user has (and mae/huber, the other doors' names) and answers a near-miss name
with a did-you-mean; a remedy whose change leaves nothing its metric measures has verified.fixed
null in JSON, not false."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.core.losses import LOSSES
from gradhealth.errors import ArgumentError


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(64, 64), nn.Sigmoid())], nn.Linear(64, 10))


@pytest.fixture(scope="module")
def doc():
    return gradhealth.check_module(_mlp(), torch.randn(32, 64), seeds=1, verify=False)


def test_repr_is_one_short_line_naming_status_and_findings(doc) -> None:
    shown = repr(doc)
    assert shown.startswith("<Diagnosis architecture 'Sequential' unhealthy: ") and "\n" not in shown
    assert len(shown) < 300 and "vanishing_gradient (error)" in shown


def test_str_is_the_text_report_and_markdown_is_the_markdown_report(doc) -> None:
    assert str(doc) == gradhealth.render(doc)
    assert doc._repr_markdown_() == gradhealth.render(doc, "markdown")


def test_pydantic_behaviour_is_kept(doc) -> None:
    again = gradhealth.Diagnosis.model_validate_json(doc.model_dump_json())
    assert again == doc and pickle.loads(pickle.dumps(doc)) == doc
    assert json.loads(doc.model_dump_json())["status"] == "unhealthy"


@pytest.mark.parametrize(("module", "name"), [
    (nn.CrossEntropyLoss(), "cross_entropy"), (nn.NLLLoss(), "cross_entropy"), (nn.MSELoss(), "mse"),
    (nn.L1Loss(), "mae"), (nn.HuberLoss(), "huber"), (nn.SmoothL1Loss(), "huber"),
    (nn.BCEWithLogitsLoss(), "binary_cross_entropy")])
def test_a_torch_loss_module_is_checked_as_its_name(module, name) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(16, 8)
    by_module = gradhealth.check_module(model, x, loss=module, seeds=1, verify=False)
    by_name = gradhealth.check_module(model, x, loss=name, seeds=1, verify=False)
    assert [(f.code, f.severity) for f in by_module.findings] == [(f.code, f.severity) for f in by_name.findings]
    assert by_module.layers == by_name.layers  # the same gradients: the same loss was simulated


def test_a_setting_the_check_does_not_compute_is_named() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    doc = gradhealth.check_module(model, torch.randn(16, 8), loss=nn.CrossEntropyLoss(label_smoothing=0.1),
                                  seeds=1, verify=False)
    assert doc.simulation is not None and any("label_smoothing=0.1" in n for n in doc.simulation.notes)


def test_module_check_takes_every_name_the_other_doors_take_and_says_did_you_mean() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    for loss in ("mae", "huber"):
        gradhealth.check_module(model, torch.randn(16, 8), loss=loss, seeds=1, verify=False)
    with pytest.raises(ArgumentError, match="did you mean 'cross_entropy'"):
        gradhealth.check_module(model, torch.randn(16, 8), loss="crossentropy")
    with pytest.raises(ArgumentError) as err:
        gradhealth.check_module(model, torch.randn(16, 8), loss="msee")
    assert all(name in str(err.value) for name in LOSSES) and "did you mean 'mse'" in str(err.value)


def test_not_measured_reads_fixed_null_not_false() -> None:
    class DeadRelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
            nn.init.constant_(self.net[2].bias, -10.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    torch.manual_seed(0)
    doc = gradhealth.check_module(DeadRelu(), torch.randn(32, 20), seeds=1)
    data = json.loads(doc.model_dump_json())
    verdicts = [r["verified"] for f in data["findings"] for r in f["remedies"] if r.get("verified")]
    unmeasured = [v for v in verdicts if v["not_measured"]]
    assert unmeasured, "a leaky ReLU leaves no unit that can die: nothing measured"
    assert all(v["fixed"] is None for v in unmeasured)
    assert all(isinstance(v["fixed"], bool) for v in verdicts if not v["not_measured"])


def test_a_bad_device_is_an_argument_error_naming_the_argument() -> None:
    model = nn.Sequential(nn.Linear(8, 3))
    with pytest.raises(ArgumentError) as err:
        gradhealth.check_module(model, torch.randn(4, 8), device="gpu")
    assert str(err.value).startswith("device: 'gpu'") and isinstance(err.value, gradhealth.SpecError)
    assert err.value.code == "invalid_argument"


def test_nn_bceloss_is_read_as_bce_on_probabilities() -> None:
    # merge of two fixes: torch loss modules are read as their names, and BCE on probabilities
    # (nn.BCELoss on the forward's own sigmoid) has one; the instance reads as that name
    import torch
    from torch import nn

    from gradhealth import check_module

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())
    x = torch.randn(16, 4)
    by_module = check_module(net, x, loss=nn.BCELoss(), seeds=1, verify=False)
    by_name = check_module(net, x, loss="binary_cross_entropy_probs", seeds=1, verify=False)
    assert [f.code for f in by_module.findings] == [f.code for f in by_name.findings]
    assert "output_loss_mismatch" not in {f.code for f in by_module.findings}
    assert any("binary_cross_entropy_probs" in n for n in by_module.simulation.notes)
