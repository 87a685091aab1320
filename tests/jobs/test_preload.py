"""A worker loads the simulation's modules when it first goes idle (issue 12: the second of two
workers paid a 2 s torch import at its first job), in a fresh process, as a spawned worker is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gradhealth.db.engine import migrate

# The worker's loop until its first idle wait, which stops it; then what it had loaded.
_SCRIPT = """
import json, os, sys, threading
from gradhealth.jobs import worker
from gradhealth.settings import Settings
stop = threading.Event()
def idle(*args, **kwargs):
    stop.set()
    return 0.0
worker._idle = idle
before = "torch" in sys.modules
cfg = worker.WorkerConfig(database_url=sys.argv[1], worker_id="w1", lease_s=5, settings=Settings())
worker.worker_loop(cfg, stop)
print(json.dumps({"before": before, "after": "torch" in sys.modules,
                  "check": "gradhealth.analysis.check" in sys.modules,
                  "omp": os.environ.get("OMP_NUM_THREADS")}))
"""


def _run(tmp_path, preload: str, **env: str) -> dict[str, object]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    environ.update(GRADHEALTH_WORKER_PRELOAD=preload, **env)
    out = subprocess.run([sys.executable, "-c", _SCRIPT, url], capture_output=True, text=True,
                         env=environ, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_an_idle_worker_loads_torch_with_its_threads_set_first(tmp_path):
    loaded = _run(tmp_path, "true", GRADHEALTH_THREADS="1")
    assert loaded == {"before": False, "after": True, "check": True, "omp": "1"}


@pytest.mark.parametrize("value", ["false", "0"])
def test_preload_off_leaves_torch_unloaded(tmp_path, value):
    loaded = _run(tmp_path, value)
    assert loaded == {"before": False, "after": False, "check": False, "omp": None}
