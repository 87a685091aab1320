"""errsweep4 D5: the log thresholds' warning/error pairs (explode_*, large_update_*) must be in
order wherever they are set: the library, the settings (GRADHEALTH_LOG_THRESHOLDS__*, CLI exit 2)
and a live run's config (POST /v1/runs, a 422 at /config/thresholds). An inverted pair made the
error fire first, so a 50x grad-norm rise (a warning by default) was judged unhealthy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from gradhealth.cli import main
from gradhealth.logs.thresholds import ORDERED_PAIRS, LogThresholds
from gradhealth.settings import SettingsInvalid, get_settings
from tests.api.helpers import Api, running_app, settings_for

INVERTED = [
    ({"explode_warning": 1000, "explode_error": 10}, "explode_warning (1000) and explode_error (10)"),
    ({"explode_warning": 200}, "explode_warning (200) and explode_error (100)"),  # against the default
    ({"large_update_warning": 5, "large_update_error": 0.01},
     "large_update_warning (5) and large_update_error (0.01)"),
]


def test_every_warning_error_pair_is_checked():
    fields = set(LogThresholds.model_fields)
    pairs = {(w, w.removesuffix("_warning") + "_error") for w in fields if w.endswith("_warning")}
    assert {p for p in pairs if p[1] in fields} == set(ORDERED_PAIRS)


@pytest.mark.parametrize(("given", "words"), INVERTED)
def test_the_library_refuses_an_inverted_pair(given, words):
    with pytest.raises(ValidationError) as info:
        LogThresholds(**given)
    assert words in str(info.value) and "inverted" in str(info.value)


def test_ordered_and_equal_pairs_are_kept():
    t = LogThresholds(explode_warning=20, explode_error=20, large_update_warning=0.5, large_update_error=2)
    assert (t.explode_warning, t.explode_error, t.large_update_error) == (20, 20, 2)


@pytest.mark.parametrize(("env", "words"), [
    ({"EXPLODE_WARNING": "1000", "EXPLODE_ERROR": "10"}, "explode_warning (1000) and explode_error (10)"),
    ({"LARGE_UPDATE_WARNING": "5", "LARGE_UPDATE_ERROR": "0.01"},
     "large_update_warning (5) and large_update_error (0.01)"),
])
def test_the_settings_refuse_an_inverted_pair_and_the_cli_exits_2(monkeypatch, tmp_path, capsys, env, words):
    for name, value in env.items():
        monkeypatch.setenv(f"GRADHEALTH_LOG_THRESHOLDS__{name}", value)
    with pytest.raises(SettingsInvalid) as info:
        get_settings()
    [line] = info.value.problems
    assert line.startswith("GRADHEALTH_LOG_THRESHOLDS") and words in line, line
    log = tmp_path / "run.csv"
    log.write_text("step,loss,grad_norm\n" + "".join(f"{s},{2 - s / 1000},1\n" for s in range(50)))
    assert main(["check", str(log)]) == 2
    assert words in capsys.readouterr().err


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_app(settings_for(tmp_path, workers=0)) as client:
        yield client


@pytest.mark.parametrize(("given", "words"), INVERTED)
def test_a_run_config_with_an_inverted_pair_is_a_422(api, given, words):
    r = api.post("/v1/runs", json={"name": "inverted", "config": {"thresholds": given}})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["pointer"] == "/config/thresholds" and words in error["detail"], error
    assert api.get("/v1/runs").json()["items"] == []
