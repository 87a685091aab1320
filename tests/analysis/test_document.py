"""The diagnosis document stays valid JSON whatever the measurements were."""

from __future__ import annotations

import json
import math

from gradhealth.core.document import Evidence


def test_evidence_replaces_nonfinite_numbers_at_any_depth():
    ev = Evidence(metric="m", value=math.inf, ratios={"a": math.nan, "b": 2.0}, steps=[1, 2],
                  spread=[1.0, -math.inf])
    doc = json.loads(ev.model_dump_json())  # would fail on NaN/Inf tokens with a strict parser
    assert doc["value"] is None and doc["ratios"] == {"a": None, "b": 2.0} and doc["spread"] == [1.0, None]
    json.dumps(doc, allow_nan=False)
