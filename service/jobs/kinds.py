"""The kinds of job a worker can run, each a function ``(request, progress, settings) -> result document``.

``settings`` are the ones the service was started with (handed to the worker by the supervisor),
not the environment at the time the job runs. Heavy imports (torch) happen inside the handlers, in
the worker process only: the API process never imports them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from gradhealth.settings import Settings

Progress = Callable[[float, str], None]
Handler = Callable[[Any, Progress, Settings], dict[str, Any]]


def _simulating(handler: Handler) -> Handler:
    """A handler that simulates: as many CPU threads as are free (``settings.threads``), and freed
    tensor buffers kept in the worker's heap during the job (no page faults at every step), handed
    back to the kernel after it."""

    @functools.wraps(handler)
    def run(request: Any, progress: Progress, settings: Settings) -> dict[str, Any]:
        from gradhealth.devices import prepare_to_simulate
        from gradhealth.heap import release_freed_memory

        prepare_to_simulate(settings.threads)
        try:
            return handler(request, progress, settings)
        finally:
            release_freed_memory()

    return run


@_simulating
def run_architecture(request: Any, progress: Progress, settings: Settings) -> dict[str, Any]:
    """The architecture check of a spec (the decoded JSON/YAML body)."""
    from gradhealth.library import check_architecture

    # A spec asking for cuda on a worker without one fails as a spec error at /device (422), not a 500.
    return check_architecture(request, settings=settings, progress=progress).model_dump(mode="json")


#: The diagnosis ``name`` of an upload sent as a raw body without ``?filename=`` (its file is stored
#: as ``upload`` or ``model.onnx``, names the client never gave: newuser18 #6).
UNNAMED_UPLOAD = "unnamed upload (sent without ?filename=)"


def _upload_name(request: Any) -> str | None:
    """The name a diagnosis of an uploaded file takes: the file's, or :data:`UNNAMED_UPLOAD`."""
    return UNNAMED_UPLOAD if request.get("unnamed") else request.get("filename")


def run_logs(request: Any, progress: Progress, settings: Settings) -> dict[str, Any]:
    """The log check of an uploaded file (``request``: path, format hint, original filename)."""
    from gradhealth.library import check_logs

    doc = check_logs(request["path"], format=request.get("format"), settings=settings, progress=progress)
    doc.name = _upload_name(request) or doc.name
    return doc.model_dump(mode="json")


@_simulating
def run_model(request: Any, progress: Progress, settings: Settings) -> dict[str, Any]:
    """The check of an uploaded ONNX model (``request``: path, original filename and the options
    the API checked: loss, weights, batch_size, seeds, verify, input_shapes, optimizer, target_range, input_range). On the worker's GPU
    when it has one."""
    from gradhealth.core.ticks import ticking

    # the importers' loops over nodes tick (gradhealth.core.ticks): a cancellation is met while the
    # file is read and converted too, before the simulation's own reports begin
    with ticking(progress, 0.0, "reading the model") as follow:
        return _run_model(request, follow or progress, settings)


def _run_model(request: Any, progress: Progress, settings: Settings) -> dict[str, Any]:
    from pathlib import Path

    from gradhealth.library import check_onnx

    if request.get("format") == "keras":  # a Keras config/.keras/.h5: translated to a spec
        from gradhealth.analysis.importers.keras import check_keras

        doc = check_keras(Path(request["path"]).read_bytes(), loss=request.get("loss"),
                          seeds=request.get("seeds"), batch_size=request.get("batch_size"),
                          weights=request.get("weights"), verify=request.get("verify"),
                          settings=settings, progress=progress, optimizer=request.get("optimizer"),
                          input_shapes=request.get("input_shapes"),
                          target_range=tuple(request["target_range"]) if request.get("target_range") else None,
                          input_range=tuple(request["input_range"]) if request.get("input_range") else None,
                          file_name=request.get("filename"))
        # the model's own name (its config's ``name``), as check_keras gives it in-process and in
        # the CLI; the upload's file name only for a model without one (newuser9 P6)
        doc.name = doc.name or _upload_name(request)
        return doc.model_dump(mode="json")
    doc = check_onnx(Path(request["path"]).read_bytes(), loss=request.get("loss"),
                     seeds=request.get("seeds") or None, weights=request.get("weights") or "as_given",
                     batch_size=request.get("batch_size"), input_shapes=request.get("input_shapes"),
                     verify=request.get("verify"), settings=settings, progress=progress,
                     optimizer=request.get("optimizer"), loss_at=request.get("loss_at"),
                     input_range=tuple(request["input_range"]) if request.get("input_range") else None)
    doc.name = _upload_name(request) or doc.name
    return doc.model_dump(mode="json")


HANDLERS: dict[str, Handler] = {"architecture": run_architecture, "logs": run_logs, "model": run_model}
KINDS: tuple[str, ...] = tuple(HANDLERS)
