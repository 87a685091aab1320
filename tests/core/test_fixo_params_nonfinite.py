"""A document never carries NaN/Inf in a remedy's params, nor in evidence updated after it was made
(closing35 notes, left by fixL: remedy ``params`` were not cleaned of inf/nan as evidence is)."""

from __future__ import annotations

import json
import math

from gradhealth.core.document import Evidence, Finding, Remedy


def _remedy(**params) -> Remedy:
    return Remedy(id="lower_learning_rate", title="t", rationale="r", change="c", snippet="s", params=params)


def test_remedy_params_are_cleaned_of_nonfinite_as_evidence_is():
    r = _remedy(factor=0.3, gradient_rise=math.inf, nested={"x": [1.0, math.nan]})
    assert r.params == {"factor": 0.3, "gradient_rise": None, "nested": {"x": [1.0, None]}}
    # a builder adding a param to a made remedy (sized_lower_lr's fix.params["gradient_rise"] = rise)
    r.params["peak"] = -math.inf
    dumped = r.model_dump()
    assert dumped["params"]["peak"] is None and dumped["params"]["factor"] == 0.3
    json.dumps(dumped, allow_nan=False)  # raises on Infinity/NaN


def test_evidence_updated_by_copy_is_written_clean():
    # a detector adding figures to a finding's evidence with model_copy(update=...), which does not validate
    ev = Evidence(metric="loss", value=2.0).model_copy(update={"value": math.inf, "minimum": math.nan,
                                                               "spikes": [{"peak": -math.inf}]})
    f = Finding(code="loss_divergence", severity="error", summary="s", explanation="e", evidence=ev,
                remedies=[_remedy(max_norm=math.inf)])
    dumped = f.model_dump()
    assert dumped["evidence"]["value"] is None and dumped["evidence"]["minimum"] is None
    assert dumped["evidence"]["spikes"] == [{"peak": None}]
    assert dumped["remedies"][0]["params"] == {"max_norm": None}
    json.dumps(dumped, allow_nan=False)
    assert json.loads(f.model_dump_json())["evidence"]["value"] is None
