"""newuser9 #1: ``recorder.log({...})`` (figures only, an evaluation every 25 steps) was counted in
the end record as a logged step without gradients, and the log check then told the user that
step() ran before backward()."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from gradhealth import check_logs
from gradhealth.recorder import GradientRecorder


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_log_calls_are_neither_logged_steps_nor_steps_without_gradients(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    path = tmp_path / "run" / "gradients.jsonl"
    rec = GradientRecorder(model, path, every=10, flush_interval=0)
    for step in range(100):  # README's loop: step() after backward(), before zero_grad()
        x = torch.randn(32, 20)
        loss = loss_fn(model(x), x[:, :3].argmax(1))
        opt.zero_grad()
        loss.backward()
        rec.step(loss=loss, optimizer=opt)
        opt.step()
        if step % 25 == 24:
            rec.log({"val_loss": 0.5, "val_acc": 0.8})
    rec.close()
    rows = _records(path)
    # 100 steps at every=10: steps 0, 10, ..., 90 are logged; the 4 log() calls are figures
    assert rows[-1] == {"gradhealth_recorder": "end", "logged_steps": 10}
    assert sum(1 for r in rows if r.get("metric") == "val_loss") == 4  # still written
    doc = check_logs(path).model_dump(mode="json")
    text = json.dumps(doc)
    assert "steps_without_gradients" not in text and "before backward()" not in text


def test_a_step_without_gradients_is_still_counted_beside_log_calls(tmp_path):
    model = torch.nn.Linear(4, 2)
    path = tmp_path / "g.jsonl"
    rec = GradientRecorder(model, path, flush_interval=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(3):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            if step == 0:
                rec.step(loss=loss)  # before backward(): no gradient yet
                loss.backward()
            else:
                loss.backward()
                rec.step(loss=loss)
            rec.log({"val_loss": 1.0})
            model.zero_grad()
    rec.close()
    assert _records(path)[-1] == {"gradhealth_recorder": "end", "logged_steps": 3,
                                  "steps_without_gradients": 1}
