"""newuser6 P13: ``recorder.send()`` answers with the job while it is still queued; ``wait=`` gets
the finished job from the upload's own ``?wait=`` (against a real ``gradhealth serve``)."""

from __future__ import annotations

import pytest
import torch

from gradhealth.errors import ArgumentError
from gradhealth.recorder import GradientRecorder


def _recorded(tmp_path, name: str) -> GradientRecorder:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = GradientRecorder(model, tmp_path / name, every=1)
    for _ in range(40):
        x = torch.randn(16, 4)
        loss = torch.nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long())
        opt.zero_grad()
        loss.backward()
        rec.step(loss=loss, optimizer=opt)
        opt.step()
    return rec


def test_send_returns_the_queued_job_and_wait_returns_the_finished_one(tmp_path, service):
    job = _recorded(tmp_path, "a.jsonl").send(service.url)
    assert job["status"] in ("queued", "running") and job.get("result") is None
    done = _recorded(tmp_path, "b.jsonl").send(service.url, wait=60)
    assert done["status"] == "succeeded"
    assert done["result"]["kind"] == "logs" and done["result"]["status"] in ("healthy", "warning")


@pytest.mark.parametrize("wait", [-1, float("nan"), "10", True])
def test_send_refuses_a_bad_wait(tmp_path, wait):
    rec = _recorded(tmp_path, "c.jsonl")
    with pytest.raises(ArgumentError, match="wait"):
        rec.send("http://127.0.0.1:9", wait=wait)
