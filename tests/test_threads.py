"""How many CPU threads a simulation uses (gradhealth.devices.simulation_threads)."""

from __future__ import annotations

import os

import pytest
import torch

from gradhealth import devices


@pytest.mark.parametrize(("cpus", "load", "expected"), [
    (2, 0.1, 2),   # idle: every CPU
    (2, 1.7, 1),   # one CPU's worth busy, rounding up: leave it
    (2, 6.0, 1),   # oversubscribed: never fewer than 1
    (16, 3.4, 13),
    (1, 0.0, 1),
])
def test_auto_counts_the_cpus_not_busy(monkeypatch: pytest.MonkeyPatch, cpus: int, load: float,
                                       expected: int) -> None:
    monkeypatch.setattr(devices, "_cpus", lambda: cpus)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert devices.simulation_threads(0) == expected


def test_a_setting_wins_and_no_load_average_means_every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_cpus", lambda: 8)
    assert devices.simulation_threads(3) == 3

    def no_load() -> tuple[float, float, float]:
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", no_load)
    assert devices.simulation_threads(0) == 8


def test_use_sets_torch_threads_and_the_worker_handler_applies_the_setting() -> None:
    from gradhealth.jobs.kinds import run_architecture
    from gradhealth.settings import Settings

    before = torch.get_num_threads()
    try:
        assert devices.use_simulation_threads(1) == 1 and torch.get_num_threads() == 1
        spec = {"input": {"shape": [4]}, "batch_size": 2, "seeds": 1, "loss": "mse",
                "layers": [{"type": "linear", "out_features": 2}]}
        target = 2 if before != 2 else 3
        run_architecture(spec, lambda fraction, stage: None, Settings(threads=target, verify_remedies=False))
        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(before)


_FRESH = r"""
import json, os, sys
from gradhealth.devices import use_simulation_threads
set_to = use_simulation_threads(int(sys.argv[1]))
loaded_before = "torch" in sys.modules
import torch
print(json.dumps({"set": set_to, "loaded_before": loaded_before, "torch": torch.get_num_threads()}))
"""


@pytest.mark.parametrize(("setting", "env", "expected"), [
    ("1", {}, 1),                        # before torch starts: through OMP_NUM_THREADS
    ("0", {"OMP_NUM_THREADS": "1"}, 1),  # auto leaves the user's OMP_NUM_THREADS alone
])
def test_before_torch_is_loaded_nothing_is_imported(setting: str, env: dict[str, str], expected: int) -> None:
    import json
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | env
    out = subprocess.run([sys.executable, "-c", _FRESH, setting], capture_output=True, text=True,
                         env=environ, timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["loaded_before"] is False
    assert report["torch"] == expected
    assert report["set"] == (None if setting == "0" else expected)
