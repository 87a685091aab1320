"""/v1/jobs/{id}/report: a finished job's diagnosis in the formats CI systems read.

The format comes from ``?format=`` (any name of the report registry, ``gradhealth.report.FORMATS``)
or else from the ``Accept`` header (``application/sarif+json``, ``application/junit+xml`` or
``application/xml``, ``text/markdown``, ``text/html``, ``application/json``, ``text/plain``);
no preference gets the JSON document.

Where the findings are:

- a log job: the uploaded file, kept with the job, gives the line of each finding's first step;
  the report names it by its upload's file name, or by ``?source=`` (the path in your repository).
- a model job (ONNX or Keras): the file has no lines; each finding is placed on the upload, by
  its file name or ``?source=``, with the layer it names as its logical location.
- an architecture job keeps the text its spec was submitted in (YAML or JSON), and lines are that
  text's: the caller's own. A report that names no file (no ``?source=``) gives no line where the
  line would refer to nothing (a GitHub annotation, Code Climate); the human reports (HTML, Markdown,
  text) say "line N" of the spec sent. A ``?source=`` in another language than the text sent (a
  ``.yaml`` path for a spec sent as JSON) gets findings on the file without lines. Jobs stored before
  the text was kept fall back on the spec re-serialised as JSON (``json.dumps(spec, indent=2,
  ensure_ascii=False)``).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import WithJsonSchema

from gradhealth.api.deps import CallerDep, SessionDep
from gradhealth.api.negotiation import quality, ranked  # noqa: F401  (quality: named here before)
from gradhealth.api.problems import ApiError
from gradhealth.api.routers.jobs import NOT_FOUND, _load
from gradhealth.api.schemas import RATE_LIMITED, Problem
from gradhealth.core.document import Diagnosis
from gradhealth.core.words import shorten
from gradhealth.db.models import JobRow
from gradhealth.report import FORMATS, Format, ReportContext, for_media_type, render

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=RATE_LIMITED)

# The media types the route answers with, for the OpenAPI document.
REPORT_CONTENT: dict[str, dict[str, Any]] = {}
for _f in FORMATS.values():
    REPORT_CONTENT.setdefault(_f.media_type.split(";")[0], {"schema": {"type": "string"}})
REPORT_CONTENT["application/json"] = {"schema": {"$ref": "#/components/schemas/Diagnosis"}}


# ?format=: any string to the server (an unknown one gets the 406 that lists them), the registry's
# names to clients and fuzzers.
ReportFormat = Annotated[str, WithJsonSchema({"type": "string", "enum": list(FORMATS)})]


def spec_text(spec: Any) -> str:
    """The text an architecture job's findings are located in: its stored spec as JSON."""
    return json.dumps(spec, indent=2, ensure_ascii=False)


def negotiate(format: str | None, accept: str | None) -> Format:
    """The format ``?format=`` names, else the most preferred one ``Accept`` lists; 406 when
    neither names one this service writes."""
    if format is not None:
        if format not in FORMATS:
            raise ApiError(406, "unknown_report_format",
                           f"query.format: no report format {format[:40]!r}; use one of: {', '.join(FORMATS)}",
                           parameter="query.format",
                           item=f"no report format {format[:40]!r}; use one of: {', '.join(FORMATS)}")
        return FORMATS[format]
    if not accept or not accept.strip():
        return FORMATS["json"]
    for _, _, media in ranked(accept):
        if media in ("*/*", "application/*"):
            return FORMATS["json"]
        if media == "text/*":
            return FORMATS["text"]
        found = for_media_type(media)
        if found is not None:
            return found
    words = ("ask for application/json, application/sarif+json, application/junit+xml, text/markdown, "
             "text/html or text/plain, or use ?format=")
    raise ApiError(406, "not_acceptable", f"no report in {shorten(accept, 200)!r}; {words}", parameter="header.Accept",
                   item=f"no report in {shorten(accept, 200)!r}; {words}")


def _context(kind: str, request: Any, source: str | None, sent: str | None = None) -> ReportContext:
    if kind == "logs":
        path = Path(str(request.get("path", "")))
        return ReportContext(source=source or request.get("filename"),
                             path=path if path.is_file() else None, kind="logs")
    if kind == "model":
        # An uploaded ONNX/Keras file has no lines: its findings are placed on the file, by the
        # layer's name (newuser13 #1: its stored request was taken for a spec to locate them in).
        return ReportContext(source=source or request.get("filename"), kind="model",
                             kind_word="Keras" if request.get("format") == "keras" else None)
    # The lines are those of the text the caller sent (newuser16 #3: "line 11" of the spec
    # re-serialised as JSON for a YAML spec whose layer is on line 6); an older job without it has
    # its spec re-serialised as JSON. Lines in one language are not those of a file the caller names
    # in another (newuser6 10: line 14 of a 7-line YAML file): its findings are then on the file only.
    text = sent if sent is not None else spec_text(request)
    suffix = PurePosixPath(source).suffix.lower() if source is not None else ""
    if suffix in (".json", ".yaml", ".yml") and (suffix == ".json") != _is_json(text):
        return ReportContext(source=source)
    return ReportContext(source=source, text=text)


def _is_json(text: str) -> bool:
    """Whether ``text`` is JSON (else YAML, of which JSON is a subset: a YAML spec in flow style that
    is also JSON has the same lines either way)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@router.get(
    "/{job_id}/report",
    summary="A finished job's diagnosis as SARIF, JUnit, Markdown, HTML, text or JSON",
    description="Chosen by ?format= (" + ", ".join(FORMATS) + ") or the Accept header. Log jobs "
                "point at lines of the uploaded file; architecture jobs at lines of the spec's text as "
                "it was sent (YAML or JSON). An annotation that names no file (no ?source=) carries no "
                "line; a ?source= in another language than the text sent gets findings on the file "
                "without lines.",
    response_class=Response,
    responses={
        200: {"content": REPORT_CONTENT, "description": "the report"},
        **NOT_FOUND,
        400: {"model": Problem, "description": "an Accept header with a q that is not a number from 0 to 1"},
        406: {"model": Problem, "description": "an unknown ?format= or no format the Accept header allows"},
        422: {"model": Problem, "description": "?format= or ?source= given more than once"},
        409: {"model": Problem, "description": "the job has not succeeded: `job_not_finished` while it is "
                                                "queued or running, `job_has_no_report` once it failed or was "
                                                "cancelled (it never will)"},
    },
)
def job_report(
    job_id: str, session: SessionDep, caller: CallerDep,
    format: Annotated[ReportFormat | None, Query(description="a report format; overrides Accept")] = None,
    source: Annotated[str | None, Query(max_length=1000, description="the input's path in your "
                                        "repository, as the report should name it")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    row = _load(session, job_id, caller)  # 404 first: an unknown job is unknown in any format
    # ?format= or ?source= given twice is refused app-wide (routers.query_guard), before this runs
    return job_rendered(row, negotiate(format, accept), source)


#: A job in one of these states never gets a diagnosis (there is no retry): its report, and a link to
#: it, could only ever answer 409 (errsweep6 #8).
NO_REPORT_EVER = frozenset({"failed", "cancelled"})


def no_report(row: JobRow, then: str) -> ApiError:
    """The 409 ``job_has_no_report`` of a failed or cancelled job: finished, with no report ever (a
    client that retries ``job_not_finished`` must not poll it: newuser18 #2)."""
    return ApiError(409, "job_has_no_report", f"job {row.id} is {row.status}: it will never have a report{then}")


def job_rendered(row: JobRow, chosen: Format, source: str | None = None) -> Response:
    """A job's report in ``chosen``: 409 unless the job succeeded (``job_has_no_report`` for a
    failed or cancelled job, ``job_not_finished`` for one still queued or running)."""
    if row.status in NO_REPORT_EVER:
        raise no_report(row, " (a report needs a succeeded job)")
    if row.status != "succeeded" or row.result is None:
        raise ApiError(409, "job_not_finished",
                       f"job {row.id} is {row.status}: a report needs a succeeded job")
    doc = Diagnosis.model_validate(row.result)
    sent = row.spec_text if row.kind == "architecture" else None
    return rendered(chosen, doc, _context(row.kind, row.request or {}, source, sent))


def rendered(chosen: Format, doc: Diagnosis, ctx: ReportContext) -> Response:
    """``doc`` rendered in the negotiated format ``chosen`` (a job's report, a live run's)."""
    return Response(render(chosen.name, doc, ctx), media_type=chosen.media_type, headers={"Vary": "Accept"})
