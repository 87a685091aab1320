"""errsweep: a cancelled model job is stopped while its ONNX file is converted (the importer's loops
over nodes tick), not only once the simulation begins reporting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.core import ticks
from gradhealth.jobs.kinds import run_model
from gradhealth.jobs.worker import JobStopped, _Running
from gradhealth.settings import Settings
from tests.analysis.onnx_models import export


@pytest.fixture(autouse=True)
def every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ticks, "TICK_S", 0.0)


def test_a_cancelled_model_job_stops_while_its_file_is_converted(tmp_path):
    path = tmp_path / "mlp.onnx"
    path.write_bytes(export(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)), torch.randn(2, 8)))
    running = _Running("job", time_limit_s=600, kind="model")
    running.cancelled = True  # asked to stop before its first report
    stages: list[str] = []

    def check(fraction: float, stage: str) -> None:
        stages.append(stage)
        running.check(fraction, stage)

    with pytest.raises(JobStopped) as stopped:
        run_model({"path": str(path), "seeds": 1, "verify": False}, check, Settings())
    assert stopped.value.status == "cancelled"
    assert stages == ["reading the model"]  # nothing simulated
