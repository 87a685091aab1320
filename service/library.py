"""The functions behind the public API (``gradhealth.check_architecture``, ``gradhealth.check_logs``).

The command line and the job workers call these too, so a library call, ``gradhealth check`` and
a job all return the same :class:`~gradhealth.core.document.Diagnosis` for the same input and
settings. Heavy imports (torch, the simulator, the readers) happen inside the functions: importing
this module costs nothing.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradhealth.errors import ArgumentTypeError, InputFormatError, not_utf8_at

if TYPE_CHECKING:
    from gradhealth.core.document import Diagnosis
    from gradhealth.settings import Settings

Progress = Callable[[float, str], None]
SpecSource = Mapping[str, Any] | str | Path


def example_names() -> list[str]:
    """Names of the example specs bundled with the package."""
    folder = resources.files("gradhealth") / "examples"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(source: SpecSource) -> dict[str, Any]:
    """The decoded spec from a mapping (copied), a path to a YAML/JSON file, ``example:NAME`` (a
    bundled example), or YAML/JSON text (a string with a newline, or starting with ``{``).

    Raises :class:`~gradhealth.errors.InputFormatError` when it cannot be read.
    """
    from gradhealth.analysis.spec import load_spec_text

    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))  # the caller's dict is theirs: overrides go on a copy
    if not isinstance(source, (str, Path)):  # a torch module reached pathlib (newuser5 P6)
        raise ArgumentTypeError(_source_type_message("spec", source, "a dict, a path, example:NAME or YAML/JSON text"))
    if isinstance(source, str) and source.startswith("example:"):
        name = source.removeprefix("example:")
        if name not in example_names():
            raise InputFormatError(f"no bundled example {name!r}; choose one of: {', '.join(example_names())}")
        return load_spec_text((resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text())
    if isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        return load_spec_text(source)
    path = Path(source)
    if not path.is_file():
        raise InputFormatError(f"{source}: no such file")
    content_type = ("application/json" if path.suffix == ".json"
                    else "application/yaml" if path.suffix in (".yaml", ".yml") else None)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{source}: not UTF-8 text {not_utf8_at(exc)}") from None
    return load_spec_text(text, content_type=content_type, declared_by="file_name")


def _source_type_message(argument: str, value: object, expected: str) -> str:
    """The message of an argument of the wrong type, with a hint where the value is a live module."""
    message = f"{argument} must be {expected}, got {type(value).__name__}"
    torch = sys.modules.get("torch")  # not imported: the value is no torch module (never imported here)
    if torch is not None and (isinstance(value, torch.nn.Module)
                              or (isinstance(value, type) and issubclass(value, torch.nn.Module))):
        message += "; a live torch.nn.Module goes to check_module(model, example_inputs)"
    return message


def _check_settings(settings: object) -> None:
    """``settings`` is a :class:`~gradhealth.settings.Settings` (or None)."""
    from gradhealth.settings import Settings

    if settings is not None and not isinstance(settings, Settings):
        raise ArgumentTypeError(f"settings must be a gradhealth.settings.Settings, got {type(settings).__name__}")


def check_architecture(spec: SpecSource, *, seeds: int | None = None, device: str | None = None,
                       verify: bool | None = None, settings: Settings | None = None,
                       progress: Progress | None = None) -> Diagnosis:
    """Simulate the architecture ``spec`` and diagnose its gradients, with verified remedies.

    ``spec``: a dict, a path to a YAML/JSON file, ``example:NAME`` or YAML/JSON text. ``seeds`` and
    ``device`` override the spec's; ``verify=False`` proposes remedies without re-simulating them.
    ``settings`` (thresholds, limits, ``verify_remedies``) default to the environment's, as in the CLI.

    Raises :class:`~gradhealth.errors.SpecError` (with JSON pointers; ``/device`` for ``cuda``
    without a CUDA device), :class:`~gradhealth.errors.LimitExceeded` or
    :class:`~gradhealth.errors.InputFormatError`, before anything is simulated.
    """
    from gradhealth.analysis.plan import make_plan, multiply_adds
    from gradhealth.analysis.spec import parse_spec
    from gradhealth.analysis.timing import fit_time
    from gradhealth.devices import require_cuda_if_asked
    from gradhealth.settings import get_settings

    _check_settings(settings)
    settings = settings if settings is not None else get_settings()
    raw = load_spec(spec)
    # Invalid input is reported before torch is imported (so a bad spec fails fast) and before the
    # device is looked at (so a bad spec is reported as such); the spec as written first, so that
    # an override never lets through a file the API and a plain check refuse (`seeds: 0`)
    parsed = parse_spec(raw)
    if seeds is not None:
        raw["seeds"] = seeds
        parsed = parse_spec(raw)
    plan = make_plan(parsed, settings.limits)
    # the time the spec's defaults would take, from its multiply-adds: past the budget, the batch and
    # seeds the spec does not set are lowered, as for a model file (onnxsweep29 #1 follow-up: a large
    # U-Net was a slow, silent run)
    timing = fit_time(multiply_adds(plan) * parsed.batch_size, parsed.batch_size, parsed.seeds,
                      batch_free="batch_size" not in raw, seeds_free=seeds is None and "seeds" not in raw,
                      device=device or parsed.device, budget=settings.limits.simulation_seconds,
                      how="the spec's batch_size and seeds")
    if timing.lowered:
        raw["batch_size"], raw["seeds"] = timing.batch, timing.seeds
        plan = make_plan(parse_spec(raw), settings.limits)
    require_cuda_if_asked(device or parsed.device)
    from gradhealth.analysis.check import CheckOptions, run_architecture_check

    options = CheckOptions(settings.thresholds, settings.limits, device=device,
                           verify=settings.verify_remedies if verify is None else verify)
    if progress is not None and timing.worth_saying:
        progress(0.0, timing.start_line(str(raw.get("name") or "the spec")))
    doc = run_architecture_check(raw, options, progress=progress, plan=plan)
    if timing.note is not None and doc.simulation is not None:
        doc.simulation.notes.append(timing.note)
    return doc


def check_logs(path: str | Path, *, format: str | None = None, settings: Settings | None = None,
               progress: Progress | None = None) -> Diagnosis:
    """Read the training log at ``path`` (a file, a run folder, or a zip/tar archive of one) and
    diagnose its gradients. Never imports torch.

    ``format`` is a hint (see ``gradhealth formats``); without it the format is detected.
    Raises :class:`~gradhealth.errors.LogError` (or :class:`~gradhealth.errors.UnknownLogFormat`,
    :class:`~gradhealth.errors.UploadTooLarge`) saying where the log is broken.
    """
    from gradhealth.logs.check import run_log_check
    from gradhealth.settings import get_settings

    if not isinstance(path, (str, Path)):  # a number reached pathlib as a TypeError (newuser5 P6)
        raise ArgumentTypeError(_source_type_message("path", path, "a path (str or pathlib.Path)"))
    _check_settings(settings)
    settings = settings if settings is not None else get_settings()
    return run_log_check(Path(path), format=format, thresholds=settings.log_thresholds,
                         limits=settings.read_limits(), progress=progress)


def check_module(model: Any, example_inputs: Any, *, loss: Any = "cross_entropy", seeds: int = 3,
                 verify: bool = True, device: str | None = None,
                 settings: Settings | None = None, optimizer: Any = None,
                 input_range: tuple[float, float] | None = None, scheduler: Any = None,
                 warmup_steps: int | None = None, clip_norm: float | None = None,
                 target_range: tuple[float, float] | None = None, targets: Any = None,
                 trained: bool = False) -> Diagnosis:
    """Diagnose the gradients of a live ``torch.nn.Module`` in this process, with the same
    findings, thresholds and document as :func:`check_architecture`.

    ``example_inputs``: a tensor, a tuple of them, or a mapping of the forward's arguments; any
    argument may nest tuples, lists and dicts of tensors (an LSTM's ``(h0, c0)`` beside the tokens),
    with numbers and None passed as given; the simulation draws synthetic inputs of the same shapes
    and dtypes (standard normal floats; integer ids that an nn.Embedding reads
    below the example's max + 1; other integer inputs, such as an attention mask, as given).
    ``loss``: ``cross_entropy`` (over the output's last dimension, random classes), ``binary_cross_entropy``
    (on logits, as ``nn.BCEWithLogitsLoss``, against random 0/1 targets of the output's shape), ``mse``, ``mae``,
    ``huber`` or ``sum`` (the CLI's and ``check_onnx``'s names), or your torch loss module of one of them
    (``nn.CrossEntropyLoss()``, ``nn.NLLLoss()``, ``nn.BCEWithLogitsLoss()``, ``nn.MSELoss()``, ``nn.L1Loss()``,
    ``nn.HuberLoss()``, ``nn.SmoothL1Loss()``; a setting the check does not compute, such as a class weight or
    label smoothing, is named in ``simulation.notes``); a near-miss name gets a did-you-mean.
    ``optimizer``: your training optimizer (``torch.optim`` SGD, Adam, AdamW, RMSprop, Adadelta, NAdam or
    Adagrad, a warm-up scheduler on it read as warming up; or a dict
    like ``{"type": "adam", "lr": 1e-3}``): its first step is measured and ``large_updates``
    reports a learning rate too large for the network, with a verified rate.
    ``scheduler``: your LR scheduler (LambdaLR, LinearLR, OneCycleLR, SequentialLR), read without being
    stepped: its warm-up length and peak rate; ``warmup_steps``: the warm-up's length stated directly;
    ``clip_norm``: the total gradient norm you clip at (``clip_grad_norm_``'s ``max_norm``). A Post-LN
    stack warmed up over 1,000 steps or more is then judged as a spec's with ``optimizer.warmup_steps``.
    ``input_range``: ``(low, high)``: the float inputs drawn uniform in your data's range instead of
    standard normal (a VAE whose binary cross-entropy reads its input pixels as targets: ``(0, 1)``).
    ``trained``: the module holds trained weights (a checkpoint loaded into it): judged as a model
    file's stored weights are; by default a live module is at its initialisation.
    ``targets`` (``mse``): example regression targets (a tensor or array): a single sigmoid or tanh
    output is judged on the share of them out of its range (``output_loss_mismatch``);
    ``target_range``: ``(low, high)``, where they lie, if only that is known. With neither, such an
    output is judged against standard-normal targets, as a spec's is.
    ``device``: ``auto`` (the default: CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``.
    The module is never modified: every simulation, remedies included, runs on a deep copy.

    Raises, before anything runs, :class:`~gradhealth.errors.ArgumentError` (a ``ValueError``;
    :class:`~gradhealth.errors.ArgumentTypeError`, a ``TypeError``, for a wrong type) naming the
    argument, :class:`~gradhealth.errors.SpecError` for a bad ``optimizer`` dict or a ``device``
    that is no device or not here, ``ModelError`` for an example input that is not a tensor;
    where the model's own code fails, ``ModelRunError`` (a ``ModelError`` and a ``RuntimeError``,
    with ``stage`` forward, loss or backward, the original error chained); where the check's own code
    fails, ``CheckFailed`` (a ``RuntimeError`` too, the original error chained). All are
    :class:`~gradhealth.errors.GradHealthError`.
    """
    from gradhealth.analysis.module_check import check_module as run
    from gradhealth.settings import get_settings

    _check_settings(settings)
    settings = settings if settings is not None else get_settings()
    return run(model, example_inputs, loss=loss, seeds=seeds, verify=verify, device=device,
               thresholds=settings.thresholds, optimizer=optimizer, input_range=input_range,
               scheduler=scheduler, warmup_steps=warmup_steps, clip_norm=clip_norm,
               target_range=target_range, targets=targets, trained=trained)


def check_onnx(source: str | Path | bytes, *, loss: str | None = None, seeds: int | None = None,
               weights: str = "as_given", batch_size: int | None = None,
               input_shapes: dict[str, list[int]] | None = None, verify: bool | None = None,
               device: str | None = None, settings: Settings | None = None,
               progress: Progress | None = None, optimizer: Any = None,
               external_data: bool = False, loss_at: str | None = None,
               input_range: tuple[float, float] | None = None) -> Diagnosis:
    """Diagnose an ONNX model (a path or the file's bytes); nothing in the file is executed.

    ``external_data``: a path's tensors stored beside it (torch's default export writes
    ``model.onnx.data``) are read from the file's own folder, plain names only. Off by default:
    a reference inside a file is not followed unless its owner asks, so a service built on this
    function never reads a file an upload names.

    ``seeds``: None for the default, 3, or fewer (2 at the least) where the simulation at the default
    batch and seeds is estimated over ``limits.simulation_seconds``, which the report then says.
    ``weights``: ``as_given`` or ``reinitialise``; ``input_shapes`` sizes dynamic dimensions by
    input name; ``optimizer`` (a dict like ``{"type": "adam", "lr": 1e-3}``): the training
    optimizer whose first step ``large_updates`` checks (an ONNX file does not say); ``loss_at``: the
    tensor the loss is taken at, a graph output or an internal value (by default the first float
    output computed from the inputs, else the logits its integer outputs are sampled from);
    ``input_range``: ``(low, high)``, the float inputs drawn uniform in the data's range instead of
    N(0, 1) (``(0, 1)`` for pixels). Raises
    :class:`~gradhealth.errors.InputFormatError` (not ONNX),
    ``gradhealth.analysis.importers.ModelError`` (unsupported ops, external data, missing sizes)
    or :class:`~gradhealth.errors.LimitExceeded`, before anything is simulated.
    """
    from gradhealth.analysis.module_check import check_onnx as run
    from gradhealth.settings import get_settings

    settings = settings if settings is not None else get_settings()
    name = None
    if not isinstance(source, bytes):
        from gradhealth.analysis.importers.onnx_static import inline_external

        name = Path(source).name
        data = Path(source).read_bytes()
        # torch's exporter writes the weights beside the file by default (model.onnx.data)
        source = inline_external(data, Path(source).parent) if external_data else data
    return run(source, loss=loss, seeds=seeds, weights=weights, batch_size=batch_size,
               input_shapes=input_shapes, device=device, limits=settings.limits,
               verify=settings.verify_remedies if verify is None else verify,
               thresholds=settings.thresholds, name=name, progress=progress, optimizer=optimizer,
               output=loss_at, input_range=input_range)


def check_keras(source: str | Path | bytes | Mapping[str, Any], *, loss: str | None = None,
                seeds: int | None = None, weights: str | None = None, batch_size: int | None = None,
                verify: bool | None = None, device: str | None = None,
                settings: Settings | None = None, progress: Progress | None = None,
                optimizer: dict[str, Any] | None = None,
                input_shapes: Mapping[str, list[int]] | None = None,
                target_range: tuple[float, float] | None = None,
                input_range: tuple[float, float] | None = None, file_name: str | None = None) -> Diagnosis:
    """Diagnose a Keras model: a ``model.to_json()`` config (a dict), or a path to / the bytes of
    a JSON config, a ``.keras`` archive or an ``.h5`` file. Read as data only (JSON, zip, h5py):
    nothing in the file is executed, and neither Keras nor TensorFlow is imported.

    The config is translated layer by layer, keeping Keras' initialisers and activations; the loss
    comes from the file's training config, else from the output layer (``loss`` overrides it).
    ``weights``: ``as_given`` (the weights the file stores), ``reinitialise`` (Keras' initialisers
    per seed), or None: ``as_given`` when the file stores weights. ``file_name``: the name of the file
    whose bytes ``source`` is (a path gives its own): a ``.h5`` or ``.keras`` name over JSON text is said
    to hold no weights. Layers are named by their Keras
    names when stored weights are used. ``input_shapes`` fills dynamic input dimensions (a
    variable-length sequence): ``{"input": [32, 41]}`` or by ``InputLayer`` name. ``target_range``:
    where a regression loss's targets lie, ``(0, 1)`` for 0/1 labels (the spec's ``loss.target_range``;
    without it and an accuracy metric they are taken as standard normal). ``input_range``: where the
    float inputs lie, ``(0, 1)`` for one-hot or pixel data: drawn uniform in it instead of N(0, 1)
    (an Embedding's token ids keep their draw). Raises ``gradhealth.analysis.importers.ModelError``
    (untranslatable layers, all named in one message; weights that do not fit),
    :class:`~gradhealth.errors.InputFormatError` or :class:`~gradhealth.errors.LimitExceeded`,
    before anything is simulated.
    """
    from gradhealth.analysis.importers.keras import check_keras as run

    name: str | None = file_name  # (bytes' file name: a .h5 name over JSON text is said to hold no weights)
    if isinstance(source, Mapping):
        data: bytes | dict[str, Any] = dict(source)
    elif isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise InputFormatError(f"{source}: no such file")
        data = path.read_bytes()
        name = path.name
    doc: Diagnosis = run(data, loss=loss, seeds=seeds, weights=weights, batch_size=batch_size,
                         verify=verify, device=device, settings=settings, progress=progress,
                         optimizer=optimizer, input_shapes=dict(input_shapes) if input_shapes else None,
                         target_range=target_range, input_range=input_range, file_name=name)
    if doc.name is None and name is not None:  # a model without a name: its file's, as the service
        doc.name = name                        # and check_onnx name it
    return doc


def render(doc: Diagnosis | Mapping[str, Any] | str | Path, format: str = "text", *,
           layers: bool = False, source: str | None = None) -> str:
    """``doc`` as the report ``gradhealth check --format FORMAT`` prints (newuser10 #9).

    ``doc``: a :class:`~gradhealth.Diagnosis` (what every ``check_*`` returns), the dict of a
    saved diagnosis document, or the path (str or pathlib.Path) of one saved as JSON (``gradhealth
    check --format json``, ``doc.model_dump_json()``; a job from ``GET /v1/jobs/{id}`` or a live
    run from ``GET /v1/runs/{id}`` is read for its diagnosis, as ``--baseline`` reads it).
    ``format``: ``text`` (the default), ``markdown``, ``html``, ``json``, ``sarif``, ``junit``,
    ``github`` or ``codeclimate``, rendered by the same code as the CLI's and the service's
    reports. ``layers``: add the per-layer table to the text report (``--layers``); ``source``: the
    checked input's path as your repository names it, for the reports that point at a file (SARIF,
    JUnit, GitHub, Code Climate). Raises :class:`~gradhealth.errors.ArgumentError` for an unknown
    format, :class:`~gradhealth.errors.InputFormatError` for a document that is not a diagnosis.
    Never imports torch.
    """
    from pydantic import ValidationError

    from gradhealth.core.document import Diagnosis
    from gradhealth.errors import ArgumentError
    from gradhealth.report import FORMATS, ReportContext

    if not isinstance(format, str) or format not in FORMATS:
        raise ArgumentError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if isinstance(doc, (str, Path)):
        from gradhealth.cli_report import load_document

        doc = load_document(str(doc), where=str(doc))
    elif isinstance(doc, Mapping) and not isinstance(doc, Diagnosis):
        try:
            doc = Diagnosis.model_validate(dict(doc))
        except ValidationError as exc:
            raise InputFormatError(f"doc: not a diagnosis document ({exc.error_count()} error(s)): "
                                   f"{' '.join(str(exc).split())[:300]}") from None
    if not isinstance(doc, Diagnosis):
        raise ArgumentTypeError(f"doc must be a Diagnosis, a dict of one or the path of a saved one, "
                                f"got {type(doc).__name__}")
    context = ReportContext(source=source, kind="logs" if doc.kind == "logs" else None, layers=layers)
    return FORMATS[format].render(doc, context)
