"""newuser7 item 2: a live finding whose measure hovers at its threshold flapped (loss_plateau
new -> resolved four times in 200 steps). A finding now resolves only once it has been missing from
diagnose.RESOLVE_AFTER diagnoses in a row; one back before that raises nothing new."""

from __future__ import annotations

from types import SimpleNamespace

from gradhealth.core.document import Diagnosis
from gradhealth.live import diagnose
from gradhealth.logs.detectors.common import finding

_PLATEAU = finding("loss_plateau", "warning", "flat", "why", {"metric": "loss", "value": 0.009}, [])


def _doc(*findings):  # noqa: ANN002, ANN202
    return Diagnosis(kind="logs", status="warning" if findings else "healthy", summary="s", findings=list(findings))


def _replay(present: list[bool], *, finish: bool = False) -> list[str]:
    """The events of a run whose diagnoses hold loss_plateau where ``present`` says, in turn."""
    run = SimpleNamespace(id="r1")
    state: dict[str, str] = {}
    events: list[str] = []
    for i, p in enumerate(present):
        final = finish and i == len(present) - 1
        changes = diagnose.compare(state, _doc(_PLATEAU) if p else _doc(), run, final=final)
        events += [kind for kind, _ in changes.events]
        state = changes.state
    return events


def test_a_measure_oscillating_around_its_threshold_raises_once() -> None:
    # the late improvement over 20 batches, around plateau_improvement = 1 %: below it is a plateau
    measure = [0.02, 0.009, 0.011, 0.008, 0.012, 0.009, 0.013, 0.0095, 0.011, 0.009,
               0.0105, 0.008, 0.012, 0.009, 0.011, 0.0085, 0.0102, 0.009, 0.011, 0.009]
    present = [m < 0.01 for m in measure]
    assert sum(a != b for a, b in zip(present, present[1:], strict=False)) >= 15  # it flips at nearly every batch
    assert _replay(present) == ["finding"]  # was: finding/resolved ten times over


def test_a_finding_gone_for_good_still_resolves() -> None:
    gone = [True] * 3 + [False] * diagnose.RESOLVE_AFTER
    assert _replay(gone) == ["finding", "resolved"]
    assert _replay(gone[:-1]) == ["finding"]  # missing from fewer diagnoses: still held
    # and coming back after it resolved is a new event, as before
    assert _replay(gone + [True]) == ["finding", "resolved", "finding"]


def test_finishing_resolves_a_held_finding_at_once() -> None:
    assert _replay([True, True, False], finish=True) == ["finding", "resolved"]


def test_held_marks_are_not_counted_as_findings() -> None:
    run = SimpleNamespace(id="r1")
    first = diagnose.compare({}, _doc(_PLATEAU), run)
    held = diagnose.compare(first.state, _doc(), run)
    assert held.events == [] and held.state["loss_plateau|loss"] == "warning"
    assert all(not k.startswith("absent:") for k in first.state)
