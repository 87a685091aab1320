"""Session-wide fixtures: a cached check, so each example is simulated once per session.

Builders that test modules import (example specs, MLP specs) live in tests/helpers.py.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import settings

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.document import Diagnosis
from tests.helpers import example
from tests.recorder_server import ScriptedServer

# A log detector that raises fails the test instead of becoming a note in the document.
os.environ.setdefault("GRADHEALTH_STRICT", "1")

# Tests share two cores with each other's simulations; one torch thread avoids oversubscription.
torch.set_num_threads(1)

# CI gates a change on one run: there the property tests draw the same examples each time
# (derandomize), so a run on a developer's machine with CI=true predicts CI's verdict. Without CI
# they draw fresh examples each run and keep exploring; a failure they find becomes a fixed case.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@cache
def _checked(name: str) -> Diagnosis:
    return run_architecture_check(example(name), CheckOptions(Thresholds(), Limits()))


@pytest.fixture
def checked() -> Callable[[str], Diagnosis]:
    """checked(name) -> the diagnosis of a bundled example (computed once per session)."""
    return lambda name: copy.deepcopy(_checked(name))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running ``gradhealth serve`` (tests/test_recorder_service.py's ``Service``) shared by the
    tests of a module (the live recorder's); test_recorder_service.py has one per test instead."""
    from tests.test_recorder_service import Service

    s = Service(tmp_path_factory.mktemp("serve"))
    s.start()
    yield s
    s.stop()


@pytest.fixture
def off_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's output as off a GitHub runner, whatever machine runs the tests (no step summary,
    no annotations written for the runner): a module takes it with
    ``pytestmark = pytest.mark.usefixtures("off_runner")``."""
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def run_csv(tmp_path: Path) -> Path:
    """A CSV log whose gradient norm explodes (``tests.ci.helpers.exploding_csv``), in ``tmp_path``."""
    from tests.ci.helpers import exploding_csv

    path = tmp_path / "run.csv"
    path.write_text(exploding_csv())
    return path


@pytest.fixture
def recorder_server() -> Iterator[ScriptedServer]:
    """A scripted HTTP server for the recorder's requests (tests/recorder_server.py), shut down after."""
    s = ScriptedServer()
    yield s
    s.http.shutdown()
    s.http.server_close()
