"""Property-based: requests generated from the app's own OpenAPI document get no 5xx and no
response that breaks the documented schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from gradhealth.api.app import create_app
from gradhealth.db.engine import migrate
from gradhealth.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_DB = "sqlite:////tmp/gradhealth-schemathesis.db"
# No worker runs here, so ?wait could only time out: cap it so generated waits cost nothing.
_settings = Settings(database_url=_DB, workers=0, rate_limit_per_minute=100_000, max_body_bytes=200_000,
                     wait_max_s=0.1, upload_dir="/tmp/gradhealth-schemathesis-uploads")
migrate(_DB)
app = create_app(_settings, start_workers=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi(case):
    # A schema-valid spec may still be refused with 422: JSON Schema cannot say that a conv2d needs an
    # image-shaped input, or that a spec is over the parameter limit. Every other check applies.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
