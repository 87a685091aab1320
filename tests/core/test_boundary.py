"""The torch boundary of the vocabulary and the log check: importing every module of
gradhealth.core and gradhealth.logs, and running a log check, never imports torch. The
architecture rules do (the positive control: the probe can see torch when it is there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CSV = Path(__file__).resolve().parents[1] / "data" / "logs" / "lightning-csv-ml-aos" / "metrics.csv"

PROBE = """
import importlib, json, pkgutil, sys
for name in sys.argv[1].split(","):
    pkg = importlib.import_module(name)
    for mod in pkgutil.walk_packages(pkg.__path__, name + "."):
        importlib.import_module(mod.name)
if len(sys.argv) > 2:
    from gradhealth.logs.check import run_log_check
    run_log_check(sys.argv[2])
print(json.dumps({"torch": "torch" in sys.modules, "numpy": "numpy" in sys.modules}))
"""


def _probe(*args: str) -> dict[str, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_core_needs_neither_torch_nor_numpy():
    assert _probe("gradhealth.core") == {"torch": False, "numpy": False}


def test_the_log_check_never_imports_torch():
    assert _probe("gradhealth.core,gradhealth.logs", str(CSV))["torch"] is False


def test_the_probe_sees_torch_where_it_is_used():
    assert _probe("gradhealth.analysis")["torch"] is True
