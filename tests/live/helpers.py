"""Builders for the live-run tests: a real unstable training run recorded with GradientRecorder,
and SSE parsing."""

from __future__ import annotations

from pathlib import Path


def record_exploding_run(path: Path, steps: int = 160) -> Path:
    """A tiny tanh MLP trained by SGD with a learning rate growing 6 % a step: healthy at first,
    then its gradient norm explodes into Inf/NaN (around step 75-90). Recorded to ``path``."""
    import torch
    from torch import nn

    from gradhealth.recorder import GradientRecorder

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=1.06)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    with GradientRecorder(model, path, flush_interval=0) as rec:
        for _ in range(steps):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            rec.step(loss, optimizer=opt)
            opt.step()
            sched.step()
    return path
