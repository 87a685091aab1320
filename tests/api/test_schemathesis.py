"""Property-based: requests generated from the app's own OpenAPI document get no 5xx, no response
that breaks the documented schema, and (positive data acceptance) no refusal of a request the
schema calls valid, with the per-caller rate limit on, so 429s happen and must be documented."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from gradhealth.api.app import create_app
from gradhealth.db.engine import migrate
from gradhealth.errors import PROBLEM_BASE
from gradhealth.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# a folder of this run's own: a fixed /tmp path was shared by every checkout and run on the machine
# (another checkout's migrations left it at a revision this one does not know)
_HOME = Path(tempfile.mkdtemp(prefix="gradhealth-schemathesis-"))
_DB = f"sqlite:///{_HOME / 'db.sqlite'}"
# No worker runs here, so ?wait could only time out: cap it so generated waits cost nothing.
# 120 a minute: the run makes more requests than that, so the limit is reached and its 429s are
# checked against the document like any other answer.
_settings = Settings(database_url=_DB, workers=0, rate_limit_per_minute=120, max_body_bytes=200_000,
                     wait_max_s=0.1, upload_dir=str(_HOME / "uploads"))
migrate(_DB)
app = create_app(_settings, start_workers=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

# What JSON Schema cannot say, by operation: the bytes inside an uploaded file (a log a reader
# recognises, an ONNX graph), an opaque cursor this service issued, a spec's size against the
# configured limits, and whether a layer fits what flows into it (a `linear` on token ids, a
# conv2d on a vector: known only by following shapes through the stack). A schema-valid request
# refused for one of these reasons is refused with exactly these problem types (and, for a spec,
# only at a layer); any other refusal of valid data fails the test.
CONTENT_REFUSALS: dict[str, set[str]] = {
    "POST /v1/checks/logs": {"unknown-log-format", "invalid-log", "empty-upload", "invalid-filename"},
    "POST /v1/checks/model": {"invalid-input", "invalid-onnx", "not-onnx", "invalid-model",
                              "unsupported-op", "invalid-option", "empty-upload", "limit-exceeded",
                              "invalid-filename"},  # an upload named '..' names no file
    "GET /v1/jobs": {"invalid-cursor"},
    "POST /v1/checks/architecture": {"limit-exceeded", "invalid-spec"},
    # A webhook URL's address (private, loopback, ...) is known only once its host is read.
    "POST /v1/webhooks": {"invalid-webhook-url"},
    # PATCH: its URL likewise; and `secret` with `rotate_secret: true` contradict (each valid alone).
    "PATCH /v1/webhooks/{webhook_id}": {"invalid-webhook-url", "conflicting-fields"},
    "GET /v1/webhooks/{webhook_id}/deliveries": {"invalid-cursor"},
    # A live run's points: a JSON Lines body is a string to the schema; a step or value too large
    # for a float is known once read.
    "POST /v1/runs/{run_id}/points": {"invalid-points"},
    "GET /v1/runs": {"invalid-cursor"},
    # A run's warning/error threshold pairs must be ordered (alone and against the service's): a
    # relation between two fields, each valid alone, which JSON Schema cannot state; so is
    # ?take_over=true's need of the X-Gradhealth-Writer header (a query's on a header).
    "POST /v1/runs": {"inverted-thresholds", "take-over-needs-writer"},
}
# invalid-spec passes only where every error points at a layer (nested in a block or not): a
# field's own rule is the schema's.
# `/device`: `cuda` on a host without CUDA is refused there; that depends on the host, not the schema.
# A layer's field that does not fit the shapes around it (a kernel longer than its input) is the
# layer's too.
# A range's ends are bounded in the schema; that low < high is a relation between its two items,
# which JSON Schema cannot state: a refusal at the range itself is that relation's.
# `/input` alone: a relation between the input's fields (a `range` beside `tokens`, which draws ids
# below `vocab_size`), refused at the object that holds both.
_AT_A_LAYER = re.compile(r"^((/layers/\d+)+(/[a-z_]+)?|/device|/input|/input/range|/loss/target_range)$")
# The statuses schemathesis' positive data acceptance allows by default.
_ACCEPTED = {401, 403, 404, 409, 429}


def _refusal_is_about_content(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Positive data acceptance, but a refusal of the kinds above passes when it says so."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    status = response.status_code
    if status < 300 or status in _ACCEPTED or status >= 500:
        return  # 5xx is not_a_server_error's to report
    body = response.json()
    slug = str(body.get("type", "")).removeprefix(PROBLEM_BASE)
    allowed = CONTENT_REFUSALS.get(f"{case.method.upper()} {case.path}", set())
    if (case.media_type or "").endswith("yaml") and slug in ("invalid-input", "invalid-spec"):
        return  # the YAML alternative is declared as text: its spec is the JSON body's schema's
    errors = body.get("errors") or [{}]
    if slug == "invalid-request" and all("are inverted" in str(e.get("detail") or "") for e in errors):
        slug = "inverted-thresholds"
    if slug == "invalid-spec":
        pointers = [e.get("pointer") or "" for e in body.get("errors") or [{}]]
        slug = slug if all(_AT_A_LAYER.match(p) for p in pointers) else "invalid-spec (at a field)"
    assert slug in allowed, (f"schema-valid request refused: {case.method} {case.path} -> {status} "
                             f"{body.get('type')}: {body.get('detail')}\n{case.as_curl_command()}")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    # Every built-in check; positive data acceptance as schemathesis does it, except that the
    # refusals JSON Schema cannot foresee (above) are told apart by their problem type.
    case.call_and_validate(excluded_checks=[positive_data_acceptance],
                           additional_checks=[_refusal_is_about_content])
