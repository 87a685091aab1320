"""errsweep2 N4, N8, N13: a live run's points are read as the published point models say (names within
their bounds), lines end at "\\n" only, and a number literal too large for a float is refused rather
than stored as an infinity the client never sent."""

from __future__ import annotations

import json
import math

import pytest
from annotated_types import MaxLen

from gradhealth.api.routers.runs import LayerPoint, MetricPoint
from gradhealth.db.models import RunPointRow
from gradhealth.live.points import MAX_LAYER_CHARS, MAX_METRIC_CHARS, BadPoints, parse

NDJSON = "application/x-ndjson"
JSON = "application/json"


def _parse(text: str, media: str = NDJSON) -> list[tuple[str, float, float]]:
    return [(p.metric, p.step, p.value) for p in parse(text.encode(), media, max_points=1000)]


def _refused(text: str, media: str = NDJSON) -> str:
    with pytest.raises(BadPoints) as e:
        parse(text.encode(), media, max_points=1000)
    return str(e.value)


def _line(**obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


# --- N8: lines end at "\n" only -----------------------------------------------------------------


@pytest.mark.parametrize("ch", ["\u2028", "\u2029", "\u0085"])
def test_a_raw_line_separator_inside_a_string_is_no_line_break(ch):
    name = f"grad_norm/enc{ch}0"
    body = _line(step=1, metric=name, value=1.0) + "\n" + _line(step=2, metric="loss", value=2.0) + "\n"
    assert _parse(body) == [(name, 1.0, 1.0), ("loss", 2.0, 2.0)]


def test_lines_are_numbered_by_newlines_only():
    body = _line(step=1, metric="a\u2028b\u2028c", value=1.0) + "\n" + '{"step": 2, "metric": \n'
    assert _refused(body).startswith("line 2: not JSON")


def test_crlf_and_json_seq_bodies_still_split():
    crlf = _line(step=1, metric="loss", value=1.0) + "\r\n" + _line(step=2, metric="loss", value=2.0) + "\r\n"
    seq = "".join("\x1e" + _line(step=s, metric="loss", value=1.0) + "\n" for s in (1, 2))
    assert [p[1] for p in _parse(crlf)] == [1.0, 2.0]
    assert [p[1] for p in _parse(seq, "application/json-seq")] == [1.0, 2.0]


# --- N13: an overflowing number is refused, an explicit non-finite value kept ------------------------


@pytest.mark.parametrize("literal", ["1e999", "-1e999", str(10**400), '"1e400"'])
def test_a_value_beyond_a_float_is_refused_naming_the_record_and_field(literal):
    ok = '{"step": 1, "metric": "loss", "value": 1.0}'
    bad = '{"step": 2, "metric": "loss", "value": ' + literal + "}"
    assert "'value' is" in _refused(f"[{ok}, {bad}]", JSON)
    assert _refused(f"[{ok}, {bad}]", JSON).startswith("record 2: 'value' is ")
    assert _refused(f"{ok}\n{bad}\n").startswith("line 2: 'value' is ")
    assert "beyond the range of a float" in _refused(f"{ok}\n{bad}\n")


def test_a_wide_records_overflowing_value_is_refused_too():
    assert _refused('{"step": 1, "loss": 1e999}').startswith("line 1: 'loss' is 1e999")


@pytest.mark.parametrize("spelling", ["Infinity", "-Infinity", "NaN", "inf", '"inf"', '"-inf"', '"nan"',
                                      '"Infinity"', "1e308"])
def test_explicit_non_finite_values_and_large_finite_ones_are_kept(spelling):
    [(_, _, value)] = _parse('{"step": 1, "metric": "loss", "value": ' + spelling + "}")
    expected = float(spelling.strip('"'))
    assert value == expected or (math.isnan(value) and math.isnan(expected))


# --- N4: the published name bounds ------------------------------------------------------------------


def test_the_bounds_are_the_published_models_and_the_columns():
    def max_len(model: type, field: str) -> int:
        return next(m.max_length for m in model.model_fields[field].metadata if isinstance(m, MaxLen))

    assert max_len(MetricPoint, "metric") == MAX_METRIC_CHARS == RunPointRow.__table__.c.metric.type.length
    assert max_len(LayerPoint, "layer") == MAX_LAYER_CHARS
    assert len("update_ratio/") + MAX_LAYER_CHARS <= MAX_METRIC_CHARS  # the longest per-layer series name fits


def test_names_over_their_bound_are_refused_naming_the_record():
    at, over = "m" * MAX_METRIC_CHARS, "m" * (MAX_METRIC_CHARS + 1)
    assert _parse(_line(step=1, metric=at, value=1.0))[0][0] == at
    assert _refused(f"[{_line(step=1, metric='loss', value=1.0)}, {_line(step=1, metric=over, value=1.0)}]",
                    JSON) == f"record 2: 'metric' is {MAX_METRIC_CHARS + 1} characters; at most {MAX_METRIC_CHARS}"
    layer = "l" * MAX_LAYER_CHARS
    assert _parse(_line(step=1, layer=layer, kind="grad_norm", value=1.0))[0][0] == f"grad_norm/{layer}"
    assert _refused(_line(step=1, layer=layer + "l", kind="grad_norm", value=1.0)) == \
        f"line 1: 'layer' is {MAX_LAYER_CHARS + 1} characters; at most {MAX_LAYER_CHARS}"
    assert "300,000 characters; at most 255" in _refused(json.dumps({"step": 1, "x" * 300_000: 1.0}))


# --- through HTTP -----------------------------------------------------------------------------------


def test_http_points_with_a_line_separator_or_an_overflow(api):
    run = api.post("/v1/runs", json={"name": "errsweep2-points"}).json()
    url = f"/v1/runs/{run['id']}/points"
    body = _line(step=1, metric="grad_norm/enc\u20280", value=1.0) + "\n" + _line(step=1, metric="loss", value=2.0)
    r = api.post(url, content=body.encode(), headers={"content-type": NDJSON})
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    r = api.post(url, content=b'[{"step": 2, "metric": "loss", "value": 1e999}]', headers={"content-type": JSON})
    assert r.status_code == 422 and r.json()["detail"].startswith("record 1: 'value' is 1e999"), r.text
    r = api.post(url, content=b'[{"step": 2, "metric": "loss", "value": "inf"}]', headers={"content-type": JSON})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
