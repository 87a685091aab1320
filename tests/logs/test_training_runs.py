"""Logs of real (small) training runs made here, recorded with the recorder and with TensorBoard's
own writer: the log check must find what each run really did, and nothing else."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.core.document import SEVERITY_RANK
from gradhealth.logs.check import run_log_check
from gradhealth.recorder import GradientRecorder


def _data(n: int = 256, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, 1, generator=g)
    return x, x @ w + 0.1 * torch.randn(n, 1, generator=g)


def _mlp(depth: int, width: int, act: type[nn.Module], init) -> nn.Sequential:  # noqa: ANN001
    layers: list[nn.Module] = []
    d_in = 16
    for _ in range(depth):
        lin = nn.Linear(d_in, width)
        init(lin.weight)
        nn.init.zeros_(lin.bias)
        layers += [lin, act()]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    return nn.Sequential(*layers)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, recorder: GradientRecorder | None = None,
           writer=None, x=None, y=None, clip: float | None = None) -> list[float]:  # noqa: ANN001
    x, y = (x, y) if x is not None else _data()
    losses = []
    for step in range(steps):
        i = torch.randint(0, len(x), (32,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.mse_loss(model(x[i]), y[i])
        optimizer.zero_grad()
        loss.backward()
        if recorder is not None:
            recorder.step(loss=loss, optimizer=optimizer)
        if writer is not None:
            writer.add_scalar("train/loss", loss.item(), step)
            total = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
            writer.add_scalar("train/grad_norm", total.item(), step)
            if step % 5 == 0:
                for name, p in model.named_parameters():
                    if p.grad is not None and name.endswith("weight"):
                        writer.add_histogram(f"gradients/{name}", p.grad, step)
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
    return losses


def _codes(doc, at_least: str = "info") -> set[str]:  # noqa: ANN001
    return {f.code for f in doc.findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK[at_least]}


def test_deep_sigmoid_mlp_vanishes(tmp_path):
    torch.manual_seed(0)
    model = _mlp(10, 64, nn.Sigmoid, lambda w: nn.init.normal_(w, 0, 0.05))
    with GradientRecorder(model, tmp_path / "sigmoid.jsonl") as rec:
        _train(model, torch.optim.SGD(model.parameters(), lr=0.1), 60, rec)
    doc = run_log_check(tmp_path / "sigmoid.jsonl")
    vanish = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert vanish.evidence.layers == ["0.weight", "20.weight"]
    # Independent truth: the same ratio straight from autograd on the trained model.
    x, y = _data()
    model.zero_grad()
    nn.functional.mse_loss(model(x[:32]), y[:32]).backward()
    direct = model[0].weight.grad.norm().item() / model[20].weight.grad.norm().item()
    assert abs(math.log10(vanish.evidence.value) - math.log10(direct)) < 1.0
    assert vanish.evidence.value < 1e-3
    assert not _codes(doc, "warning") & {"exploding_gradient", "nonfinite", "loss_divergence", "gradient_spike"}


def test_healthy_he_mlp_is_healthy(tmp_path):
    torch.manual_seed(1)
    model = _mlp(4, 64, nn.ReLU, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    with GradientRecorder(model, tmp_path / "healthy.jsonl") as rec:
        losses = _train(model, torch.optim.Adam(model.parameters(), lr=1e-3), 300, rec)
    assert losses[-1] < losses[0] / 5  # it really learnt
    doc = run_log_check(tmp_path / "healthy.jsonl")
    assert doc.status == "healthy", [(f.code, f.summary) for f in doc.findings]
    assert not _codes(doc, "warning")


def test_relu_mlp_with_a_diverging_learning_rate(tmp_path):
    torch.manual_seed(2)
    model = _mlp(4, 64, nn.ReLU, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 if step < 60 else 30.0)
    x, y = _data()
    with GradientRecorder(model, tmp_path / "diverge.jsonl") as rec:
        for _ in range(100):
            loss = nn.functional.mse_loss(model(x[:64]), y[:64])
            optimizer.zero_grad()
            loss.backward()
            rec.step(loss=loss, optimizer=optimizer)
            optimizer.step()
            scheduler.step()
    doc = run_log_check(tmp_path / "diverge.jsonl")
    codes = _codes(doc, "warning")
    assert codes & {"loss_divergence", "nonfinite", "exploding_gradient"}, codes
    assert doc.status == "unhealthy"
    lr_fix = next(r for f in doc.findings for r in f.remedies if r.id == "lower_learning_rate")
    # The remedy names the learning rate in effect where things went wrong: 0.3 after step 60.
    assert lr_fix.params.get("learning_rate_at_onset") == pytest.approx(0.3)
    assert lr_fix.params["suggested_learning_rate"] < 0.3


def test_rnn_without_clipping_explodes_and_clipping_gets_a_threshold_from_the_data(tmp_path):
    torch.manual_seed(3)
    rnn = nn.RNN(8, 64, batch_first=True)
    head = nn.Linear(64, 1)
    with torch.no_grad():
        nn.init.orthogonal_(rnn.weight_hh_l0)  # norm-preserving recurrence, no clipping, a brisk rate
    model = nn.ModuleDict({"rnn": rnn, "head": head})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40, 8, generator=g)
    y = torch.randn(64, 1, generator=g)
    with GradientRecorder(model, tmp_path / "rnn.jsonl") as rec:
        for _ in range(80):
            out, _ = rnn(x)
            loss = nn.functional.mse_loss(head(out[:, -1]), y)
            optimizer.zero_grad()
            loss.backward()
            rec.step(loss=loss, optimizer=optimizer)
            optimizer.step()
    doc = run_log_check(tmp_path / "rnn.jsonl")
    norms = np.array(_series(tmp_path / "rnn.jsonl", "grad_norm"))
    first_bad = int(np.argmax(~np.isfinite(norms)))
    assert first_bad > 0  # the run really blew up, after some finite steps
    nonfinite = next(f for f in doc.findings if f.code == "nonfinite")
    assert nonfinite.severity == "error" and nonfinite.evidence.steps[0] <= first_bad
    clip = next(r for r in nonfinite.remedies if r.id == "gradient_clipping")
    healthy = norms[:first_bad]
    # max_norm comes from the run's own pre-explosion norms, not from the exploded ones
    assert healthy.min() <= clip.params["max_norm"] <= healthy.max() * 1.05


def _series(path, metric):  # noqa: ANN001, ANN202
    return [json.loads(line)["value"] for line in path.read_text().splitlines()
            if json.loads(line).get("metric") == metric]


def test_tensorboard_writer_run_is_read_and_diagnosed(tmp_path):
    tb = pytest.importorskip("torch.utils.tensorboard")
    torch.manual_seed(0)
    model = _mlp(10, 64, nn.Sigmoid, lambda w: nn.init.normal_(w, 0, 0.05))
    writer = tb.SummaryWriter(log_dir=str(tmp_path / "tb"))
    _train(model, torch.optim.SGD(model.parameters(), lr=0.1), 60, writer=writer)
    writer.close()
    doc = run_log_check(tmp_path / "tb")
    codes = _codes(doc)
    assert "vanishing_gradient" in codes, [(f.code, f.summary) for f in doc.findings]
    assert {s.role for s in doc.series} >= {"loss", "grad_norm", "layer_grad_norm"}


def test_recorder_overhead_is_only_on_logged_steps(tmp_path):
    model = _mlp(2, 16, nn.ReLU, nn.init.kaiming_normal_)
    rec = GradientRecorder(model, tmp_path / "every.jsonl", every=10)
    _train(model, torch.optim.SGD(model.parameters(), lr=0.01), 35, rec)
    rec.close()
    records = [json.loads(line) for line in (tmp_path / "every.jsonl").read_text().splitlines()]
    # (the recorder's own start and end records carry no step)
    steps = sorted({int(r["step"]) for r in records if "gradhealth_recorder" not in r})
    assert steps == [0, 10, 20, 30]
