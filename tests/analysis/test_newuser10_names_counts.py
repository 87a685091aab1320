"""newuser10 #7 (the part left) and #15, modsweep36's note figures: a live module's bounded output
named by qualified module name and class with a snippet filled from the model; the healthy summary
counting the layers with weights alike in a spec and a module; a module check's activation bytes;
each note of a healthy summary with its key figure."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_architecture, check_module
from gradhealth.analysis.check import summary_line
from gradhealth.core.document import Evidence, Finding


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(13, 64), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_a_modules_bounded_output_is_named_by_module_and_its_snippet_by_the_model() -> None:
    torch.manual_seed(0)
    model = _Regressor()
    doc = check_module(model, torch.randn(64, 13), loss="mse", seeds=1,
                       targets=5 + 45 * torch.rand(64, 1))
    f = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    # the layer and the squash by qualified name and class: the line to edit
    assert f.summary.startswith("head.2 (Linear 32\u21921)'s outputs go through head.3 (Sigmoid) under mse")
    r = next(r for r in f.remedies if r.id == "output_activation")
    assert r.snippet.startswith("model.head[3] = nn.Identity()")
    assert "model.head[2], a Linear(32, 1)" in r.snippet
    assert "n_in" not in r.snippet and "n_out" not in r.snippet
    assert (r.params["n_in"], r.params["n_out"]) == ("32", "1")
    # the snippet is right: applied, the sigmoid is gone and the output is the Linear's
    exec(r.snippet.split("#")[0], {"model": model, "nn": nn})
    assert isinstance(model.head[3], nn.Identity)


def test_a_specs_bounded_output_keeps_its_words_with_its_width_filled() -> None:
    doc = check_architecture({
        "name": "reg", "input": {"shape": [13]}, "seeds": 1, "batch_size": 32,
        "loss": {"type": "mse", "target_range": [5, 50]},
        "layers": [{"type": "linear", "out_features": 64, "activation": "relu"},
                   {"type": "linear", "out_features": 1, "activation": "sigmoid"}]})
    f = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    assert f.summary.startswith("layers[1].linear's outputs go through a sigmoid under mse")
    r = next(r for r in f.remedies if r.id == "output_activation")
    assert r.snippet.startswith("nn.Sequential(nn.Linear(64, 1), nn.Identity())")


def test_the_healthy_summary_counts_layers_with_weights_alike_in_a_spec_and_a_module() -> None:
    # conv, batchnorm, relu, pool, flatten, linear: two layers with weights in both doors (the
    # norm's weights count with the conv it follows; a module folds it into the conv)
    spec = check_architecture({
        "name": "cnn", "input": {"shape": [3, 16, 16]}, "seeds": 1, "batch_size": 8,
        "loss": {"type": "cross_entropy", "classes": 10},
        "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
                   {"type": "batchnorm"}, {"type": "activation", "activation": "relu"},
                   {"type": "pool", "mode": "mean"}, {"type": "flatten"},
                   {"type": "linear", "out_features": 10}]}, verify=False)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    mod = check_module(model, torch.randn(8, 3, 16, 16), loss="cross_entropy", seeds=1, verify=False)
    assert spec.status == mod.status == "healthy"
    assert spec.summary.startswith("healthy: no gradient problem found in 2 layers with weights")
    assert mod.summary.startswith("healthy: no gradient problem found in 2 layers with weights")
    # a pool's and a flatten's rows: no weight gradient (null, not a dead 0), their output's measured
    for row in spec.layers:
        if row.type in ("pool", "flatten"):
            assert row.grad_norm is None and row.output_grad_norm is not None and row.output_grad_norm > 0


def test_a_module_checks_activation_bytes_are_those_recorded() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 1))
    doc = check_module(model, torch.randn(32, 13), loss="mse", seeds=1, verify=False)
    width = 8 if doc.simulation.precision == "float64" else 4
    # the input (32x13), the first layer's output before and after its ReLU (2 x 32x64), the last's (32x1)
    assert doc.simulation.activation_bytes == width * 32 * (13 + 2 * 64 + 1)


def _note(code: str, metric: str | None, value: float | None) -> Finding:
    return Finding(code=code, severity="info", summary="s", explanation="e",
                   evidence=Evidence(metric=metric, value=value))


def test_each_note_of_a_healthy_summary_carries_its_key_figure() -> None:
    line = summary_line("healthy", [_note("large_updates", "max_update_ratio", 0.1893),
                                    _note("vanishing_through_time", "output_grad_ratio_first_to_last_step", 0.0031),
                                    _note("odd_code", "some_metric", 2.5), _note("bare", None, None)], 3)
    assert line == ("healthy: no gradient problem found in 3 layers with weights (note: large_updates 0.19 of the "
                    "weights per step, vanishing_through_time first/last step gradient 0.0031, "
                    "odd_code some_metric 2.5, bare)")


def test_an_adam_first_step_note_shows_its_ratio_in_the_summary() -> None:
    # modsweep36 u05's form: 1-300-300-1 ReLU under Adam 0.01, whose first step (about lr per weight,
    # against weights of about 1/sqrt(fan_in)) is a note
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 300), nn.ReLU(), nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    doc = check_module(model, torch.linspace(-1, 1, 64).unsqueeze(1), loss="mse", seeds=1, optimizer=opt,
                       verify=False)
    note = next(f for f in doc.findings if f.code == "large_updates")
    assert doc.status == "healthy" and note.severity == "info"
    assert 0.1 < note.evidence.value < 1.0
    assert f"(note: large_updates {note.evidence.value:.2g} of the weights per step)" in doc.summary


class _CalledSigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(13, 64)
        self.fc = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(torch.relu(self.hidden(x))))


def test_a_squash_called_in_forward_names_the_layer_and_the_return_to_write() -> None:
    torch.manual_seed(0)
    doc = check_module(_CalledSigmoid(), torch.randn(64, 13), loss="mse", seeds=1, target_range=(5.0, 50.0))
    f = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    assert f.summary.startswith("fc (Linear 64\u21921)'s outputs go through a sigmoid under mse")
    r = next(r for r in f.remedies if r.id == "output_activation")
    assert r.snippet.startswith("return self.fc(x)  # in forward, not torch.sigmoid(...)")


def test_a_growth_note_says_the_normalisation_absorbs_it() -> None:
    # modsweep39 u03: a plain BN-ReLU stack's backward growth (about 1.2x a layer, Yang et al. 2019)
    # past its warning bar is a note; the summary said "growth 2.1e+02x" beside "healthy" and no why
    spec = {"input": {"shape": [64]}, "batch_size": 64, "seeds": 1, "layers": [
        {"type": "linear", "out_features": 64, "init": "kaiming_normal", "norm": "batchnorm", "activation": "relu",
         "repeat": 30}, {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec, verify=False)
    note = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert doc.status == "healthy" and note.severity == "info" and note.evidence.value > 100
    assert f"exploding_gradient growth {note.evidence.value:.2g}x, absorbed by normalisation)" in doc.summary
