"""A round trip through a client generated from the service's own OpenAPI document, the way an
integrator would make one (openapi-python-client), against a real `gradhealth serve`: submit,
watch (SSE), read, list, upload and a problem+json error, each parsed into the generated models."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from gradhealth.api.app import create_app
from gradhealth.settings import Settings
from tests.api.helpers import TINY
from tests.e2e.helpers import serve

pytestmark = pytest.mark.skipif(shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
                                is None, reason="openapi-python-client is not installed (dev extra)")

PACKAGE = "gradhealth_generated_client"
# A few steps of a falling loss in the native JSON Lines format: a log any reader of it accepts.
NATIVE_LOG = "".join(json.dumps({"step": s, "metric": "loss", "value": 2.0 / (1 + s)}) + "\n"
                     for s in range(0, 200, 10)).encode()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported from a temporary folder (generated once for the module)."""
    root = tmp_path_factory.mktemp("client")
    document = root / "openapi.json"
    app = create_app(Settings(database_url=f"sqlite:///{root / 'doc.db'}", workers=0), start_workers=False)
    document.write_text(json.dumps(app.openapi()))
    tool = str(Path(sys.executable).parent / "openapi-python-client")
    run = subprocess.run([tool, "generate", "--path", str(document), "--output-path", str(root / PACKAGE),
                          "--meta", "none"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    # Every operation that takes JSON or multipart must be generated (only the YAML and
    # application/onnx alternatives of a body may be skipped, with a warning).
    said = run.stdout + run.stderr
    assert "Endpoint will not be generated" not in said and "Unable to process schema" not in said, said[-4000:]
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _op(package: ModuleType, tag: str, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.api.{tag}.{name}")


def _model(package: ModuleType, name: str) -> Any:
    return getattr(importlib.import_module(f"{package.__name__}.models"), name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("server")
    with serve(f"sqlite:///{root / 'jobs.db'}", root / "serve.log", GRADHEALTH_UPLOAD_DIR=str(root / "uploads"),
               GRADHEALTH_WORKERS="1") as client:
        yield str(client.base_url)


@pytest.fixture
def client(generated: ModuleType, server: str) -> Iterator[Any]:
    """The generated client on the server (closed after the test: its httpx client holds sockets)."""
    with generated.Client(base_url=server, timeout=httpx.Timeout(60), raise_on_unexpected_status=True) as made:
        yield made


def test_round_trip_through_the_generated_python_client(generated: ModuleType, client: Any) -> None:
    Spec, JobRead, Problem = _model(generated, "Spec"), _model(generated, "JobRead"), _model(generated, "Problem")

    # submit: the typed body goes out as JSON; ?wait gets the finished job in the same answer
    submit = _op(generated, "checks", "submit_architecture_v1_checks_architecture_post")
    answer = submit.sync_detailed(client=client, body=Spec.from_dict(TINY), wait=60)
    assert answer.status_code in (200, 202), answer.content
    job = answer.parsed
    assert isinstance(job, JobRead) and job.kind.value == "architecture"
    assert answer.headers["Location"] == f"/v1/jobs/{job.id}"

    # SSE: the 200 is text/event-stream only, so the client hands back the text, not .json()
    events = _op(generated, "jobs", "job_events_v1_jobs_job_id_events_get")
    streamed = events.sync_detailed(job.id, client=client)
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    names = [line.removeprefix("event: ") for line in streamed.parsed.splitlines() if line.startswith("event: ")]
    assert names[-1] == "done" and set(names) <= {"progress", "done"}
    done = json.loads([line for line in streamed.parsed.splitlines() if line.startswith("data: ")][-1][6:])
    assert done["id"] == job.id and done["status"] == "succeeded"
    # ... and read as a stream through the generated client's own httpx client
    with client.get_httpx_client().stream("GET", f"/v1/jobs/{job.id}/events") as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("event: ")]
    assert lines[-1] == "event: done"

    # read
    read = _op(generated, "jobs", "read_job_v1_jobs_job_id_get").sync(job.id, client=client)
    assert isinstance(read, JobRead) and read.id == job.id and read.status.value == "succeeded"
    assert read.result.status.value in ("healthy", "warning", "unhealthy")
    assert [layer.name for layer in read.result.layers]  # the document's layers parsed as models

    # list, filtered by the kind enum the generated client knows
    list_jobs = _op(generated, "jobs", "list_jobs_v1_jobs_get")
    Kind = _model(generated, "ListJobsV1JobsGetKindType0")
    page = list_jobs.sync(client=client, kind=Kind("architecture"), limit=5)
    assert job.id in [item.id for item in page.items]
    assert {item.kind.value for item in page.items} == {"architecture"}

    # upload: multipart with the one `file` part, and the format hint from the enum
    upload = _op(generated, "checks", "submit_logs_v1_checks_logs_post")
    Body = _model(generated, "SubmitLogsV1ChecksLogsPostFilesBody")
    Format = _model(generated, "SubmitLogsV1ChecksLogsPostFormatType0")
    File = importlib.import_module(f"{generated.__name__}.types").File
    logs = upload.sync_detailed(client=client, body=Body(file=File(payload=BytesIO(NATIVE_LOG),
                                                                   file_name="train.jsonl")),
                                format_=Format("native"), wait=60)
    assert logs.status_code in (200, 202), logs.content
    assert logs.parsed.kind.value == "logs"

    # errors, parsed as problems: an unknown job (404) and a spec with a located error (422)
    missing = _op(generated, "jobs", "read_job_v1_jobs_job_id_get").sync_detailed("no-such-job", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem)
    assert missing.parsed.status == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = json.loads(json.dumps(TINY))
    bad["layers"][0]["out_features"] = 0
    refused = submit.sync_detailed(client=client, body=Spec.from_dict(bad))
    assert refused.status_code == 422 and isinstance(refused.parsed, Problem)
    assert [e.pointer for e in refused.parsed.errors] == ["/layers/0/out_features"]
    assert refused.parsed.errors[0].detail
