"""newuser7 #6: a training script restarted from step 0 under the same run name sends points the run
holds with other values; the service keeps the first values, and the recorder says so once (a
warning naming the run and an example) instead of dropping them silently."""

from __future__ import annotations

import logging

import httpx
import torch

from gradhealth.recorder import GradientRecorder
from tests.test_recorder_service import Service, small_model, train_recorded


def test_a_restart_from_step_0_under_the_same_name_is_warned_of_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gradhealth.recorder")
    svc = Service(tmp_path)
    svc.start()
    try:
        model = small_model()
        first = GradientRecorder(model, tmp_path / "a.jsonl", server=svc.url, run="restarted",
                                 flush_interval=0, finish_on_close=False)
        train_recorded(model, first, range(10))
        first.close()
        assert first.live is not None and first.live.conflicts == 0
        # the script starts again from step 0 (another model, other values) under the same name
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        second = GradientRecorder(model, tmp_path / "b.jsonl", server=svc.url, run="restarted", flush_interval=0)
        assert second.live is not None
        train_recorded(model, second, range(15))
        second.close()
        assert second.live.run_id == first.live.run_id and second.live.finished
        assert second.live.conflicts > 0
        said = [r.getMessage() for r in caplog.records
                if r.name == "gradhealth.recorder" and r.levelno == logging.WARNING and "other values" in r.getMessage()]
        assert len(said) == 1, said
        assert "'restarted'" in said[0] and "kept" in said[0] and "new run" in said[0]
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            run = client.get(f"/v1/runs/{second.live.run_id}").json()
        assert run["last_step"] == 14
    finally:
        svc.stop()
