"""A folder of runs split into its runs (RunLog.split): each series placed where the per-run
definition puts it, checked against that definition written out here, run by run."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradhealth.logs.series import RunLog, Series, make_series


def _by_definition(run: RunLog, prefix: str) -> list[str]:
    """Run ``prefix``'s series by the definition: its own (the first run, in order, whose folder
    holds the series), or, under no run's folder, those sharing the most folder names with it."""
    def home(s: Series) -> bool:
        own = next((r for r in run.runs if s.name.startswith(r + "/")), None)
        if own is not None:
            return own == prefix
        parts = s.name.split("/")[:-1]
        shared = {r: sum(1 for a, b in zip(parts, r.split("/"), strict=False) if a == b) for r in run.runs}
        return shared[prefix] == max(shared.values())
    return [s.name for s in run.series if home(s)]


_FOLDER = st.sampled_from(["a", "b", "c", "v1", "val", "x"])


@settings(max_examples=150, deadline=None)
@given(runs=st.lists(st.lists(_FOLDER, min_size=1, max_size=3).map("/".join), min_size=1, max_size=6, unique=True),
       names=st.lists(st.lists(_FOLDER, min_size=0, max_size=4).map(lambda p: "/".join([*p, "loss"])),
                      min_size=1, max_size=20, unique=True))
def test_each_series_goes_where_the_definition_puts_it(runs: list[str], names: list[str]) -> None:
    run = RunLog(format="test", source="synthetic", runs=runs,
                 series=[make_series(n, np.arange(3), np.ones(3)) for n in names])
    split = run.split()
    assert list(split) == runs
    for prefix in runs:
        assert [s.name for s in split[prefix].series] == _by_definition(run, prefix)

