"""What a renderer knows besides the document: the checked input, and where each finding is in it.

Every renderer is a pure function of ``(Diagnosis, ReportContext)``: no clock, no environment,
so one diagnosis renders the same in-process and through the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from gradhealth.core.catalog import CASE_TITLES, FINDINGS
from gradhealth.core.document import SEVERITY_RANK, Diagnosis, Finding, Remedy, Verified
from gradhealth.core.pointers import is_json_pointer
from gradhealth.core.words import shorten
from gradhealth.report import locate as _locate

CheckKind = Literal["spec", "model", "logs"]

# The finding codes each check evaluates. A JUnit report lists every one (passed codes too); SARIF
# declares them as its rules. Written out because the registry (gradhealth.core.rules) learns which
# check implements a code only when that check's module is imported (the architecture one loads
# torch); a test pins these lists against the registry.
ARCHITECTURE_CODES: tuple[str, ...] = (
    "nonfinite",
    "exploding_gradient",
    "vanishing_gradient",
    "exploding_through_time",
    "vanishing_through_time",
    "saturation",
    "dead_units",
    "post_ln_depth_risk",
    "negative_learning_rate",
    "large_updates",
    "small_updates",
    "output_loss_mismatch",
    "symmetric_weights",
    "small_batch_statistics",
)
LOG_CODES: tuple[str, ...] = (
    "nonfinite",
    "exploding_gradient",
    "gradient_spike",
    "vanishing_gradient",
    "dead_layer",
    "zero_gradient",
    "clipping_saturated",
    "loss_spike",
    "loss_divergence",
    "loss_plateau",
    "loss_oscillation",
    "validation_divergence",
    "reward_collapse",
    "reward_plateau",
    "kl_divergence",
    "truncated_log",
    "insufficient_data",
    "large_updates",
    "small_updates",
    "negative_learning_rate",
)

README_URL = "https://gradient-health.dev/README.md"
#: The documentation pages (docs/*.md in the repository), the base of README_SECTIONS' links.
DOCS_URL = "https://gradient-health.dev/docs/"
# The docs pages' sections that document each check's codes (page and GitHub's heading anchor).
README_SECTIONS: dict[str, str] = {
    "architecture": "findings.md#finding-codes",
    "logs": "findings.md#findings-over-time",
}
MODEL_SUFFIXES = (".onnx", ".keras", ".h5", ".pt", ".pth")


@dataclass(frozen=True)
class ReportContext:
    """The checked input as CI sees it.

    ``source`` is the path as the repository names it (forward slashes, relative to its root):
    it is what SARIF, JUnit and GitHub annotations print. ``text`` is the spec's own text, for
    lines and columns. ``path`` is where the log (or model) file is on this machine, for the log
    lines. ``kind`` defaults from the document and the source's suffix.
    """

    source: str | None = None
    text: str | None = None
    path: Path | None = None
    kind: CheckKind | None = None
    layers: bool = False  # the text report's per-layer table
    readme_url: str = README_URL
    docs_url: str = DOCS_URL
    #: an archive's member the log was read from (there is no file on disk to point at)
    member: str | None = None
    #: ``--fail-on`` when given: the findings JUnit fails, as the exit code does; None: every
    #: warning and error finding fails (a report rendered without a bar, as the API's)
    fail_on: str | None = None
    #: ``--fail-on-unjudged``: a document whose trends were not judged (``judged`` false) fails, as
    #: the exit code does: its ``insufficient_data`` finding is a failed JUnit case and an error
    #: annotation (logsweep98 piper827)
    fail_on_unjudged: bool = False
    #: the saved diagnosis document the report was rendered from (``gradhealth check doc.json``), as
    #: the repository names it: the reports name it as the input (newuser12 #5)
    document: str | None = None
    #: False (``--no-timings``): the text and HTML reports leave the read and simulation times out,
    #: so that two runs of one input give byte-identical reports
    timings: bool = True
    #: the input's kind in words where the check knew it (``Keras`` for a Keras config ``.json``);
    #: None: :func:`input_kind_word` tells it from the source's suffix and the document's layers
    kind_word: str | None = None
    #: the input's absolute ``file://`` URI where ``source`` climbs out of the working directory
    #: (``../specs/a.yaml``, outside any git repository): SARIF names the file by it, without
    #: ``%SRCROOT%``, which a path climbing out of it would not resolve against (newuser13 #6)
    source_uri: str | None = None

    def check_kind(self, doc: Diagnosis) -> CheckKind:
        """``logs``, ``model`` (an ONNX/Keras/... file) or ``spec``."""
        if self.kind is not None:
            return self.kind
        if doc.kind == "logs":
            return "logs"
        if self.source and PurePosixPath(self.source).suffix.lower() in MODEL_SUFFIXES:
            return "model"
        return "spec"


#: What each kind of input is called beside its path (a JUnit suite, a report's heading).
KIND_WORDS = ("spec", "module", "log", "ONNX", "Keras")
_KERAS_SUFFIXES = (".keras", ".h5")


def input_kind_word(doc: Diagnosis, ctx: ReportContext) -> str:
    """What the checked input was, in one word of :data:`KIND_WORDS`: ``log`` for a log check;
    ``ONNX`` or ``Keras`` for a model file (by its suffix, else by the layers' pointers an ONNX
    graph's nodes give); ``module`` for a live ``check_module`` (its layers are ``module:`` paths);
    else ``spec``. A saved document says it by its layers, whatever its own file is called."""
    if doc.kind == "logs":
        return "log"
    if ctx.kind_word is not None:
        return ctx.kind_word
    suffix = PurePosixPath(ctx.source).suffix.lower() if ctx.source and not ctx.document else ""
    if suffix == ".onnx":
        return "ONNX"
    if suffix in _KERAS_SUFFIXES:
        return "Keras"
    pointers = [layer.pointer for layer in doc.layers]
    if any(p.startswith("node:") for p in pointers):
        return "ONNX"
    if any(p.startswith("module:") for p in pointers):
        return "module"
    return "spec"


def input_path(doc: Diagnosis, ctx: ReportContext) -> str | None:
    """The file the report is about, as the repository names it: the saved document it was
    rendered from, else the checked input."""
    return ctx.document or ctx.source


def input_label(doc: Diagnosis, ctx: ReportContext, *, prefer_name: bool = False, word: bool = True) -> str:
    """The input's path, with the document's own name beside it where that says more (the model's
    class, ``runs/tab/check_module.json (module Sequential)``; the log's file inside a saved
    document); without a path, the name, else the kind. ``prefer_name``: a spec's own ``name`` comes
    first (the text, Markdown and HTML headings), as the spec's author chose it; a model's class
    name or a log's file name never does, since several inputs share them. ``word=False``: the
    name alone in the brackets, where the kind is said already (a JUnit suite's)."""
    path = input_path(doc, ctx)
    kind = input_kind_word(doc, ctx)
    if prefer_name and kind == "spec" and doc.name:
        return doc.name
    if path is None:
        return doc.name or doc.kind
    name = doc.name
    if not name or name == path or path.endswith("/" + name) or (kind == "spec" and not prefer_name and not ctx.document):
        return path
    return f"{path} ({kind} {name})" if word else f"{path} ({name})"


# Control characters (C0, DEL, C1) and Unicode's own line and paragraph separators: a user string
# (a spec's name, a layer, a series, a file name) holding one could start a new line of a report,
# where a CI system reads commands (GitHub's `::error::`) or Markdown reads structure.
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Unicode's bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): a user string
# holding one visually reorders the rest of its line (a CI annotation, a code-scanning result). Each is
# shown escaped, as \u202e, the string kept otherwise (errsweep6 #8).
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def no_bidi(text: str) -> str:
    """``text`` with each bidi control (:data:`_BIDI`) written as its escape, ``\\u202e``."""
    return _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def no_bidi_in(value: Any) -> Any:
    """``value`` (a JSON report's dicts, lists and strings) with :func:`no_bidi` applied to every string."""
    if isinstance(value, str):
        return no_bidi(value)
    if isinstance(value, dict):
        return {no_bidi_in(k): no_bidi_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_bidi_in(v) for v in value]
    return value


# ASCII punctuation that Markdown (CommonMark, GitHub) or its inline HTML gives a meaning to.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&])")


def one_line(text: str) -> str:
    """``text`` on one line: every run of control characters and line breaks becomes a space."""
    return _BREAKS.sub(" ", no_bidi(text))


def md_text(text: str) -> str:
    """A user string as literal Markdown text on one line: no HTML, no emphasis, links or table
    cells (every character Markdown reads is backslash-escaped)."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def md_code(text: str, *, in_table: bool = False) -> str:
    """A user string as a Markdown code span on one line (a fence longer than its backtick runs);
    ``in_table``: pipes escaped, as GitHub's tables need even inside code."""
    body = " ".join(one_line(text).split())
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    if in_table:
        body = body.replace("|", "\\|")
    return f"{fence}{pad}{body}{pad}{fence}"


def evaluated_codes(doc: Diagnosis) -> tuple[str, ...]:
    """Every finding code the check that made ``doc`` evaluated (plus any code it reported)."""
    base = LOG_CODES if doc.kind == "logs" else ARCHITECTURE_CODES
    return base + tuple(dict.fromkeys(f.code for f in doc.findings if f.code not in base))


def not_run(doc: Diagnosis) -> dict[str, str]:
    """The evaluated codes that had nothing to judge, each with why: those a finding's evidence lists
    as ``not_run`` (an ``insufficient_data`` finding of a log with no history), less any code that
    has a finding. JUnit reports them skipped and SARIF as not run: a check that judged nothing is
    not a passed one (newuser14 #1)."""
    found = {f.code for f in doc.findings}
    out: dict[str, str] = {}
    for f in doc.findings:
        listed = (f.evidence.model_extra or {}).get("not_run")
        if isinstance(listed, list):
            for code in listed:
                if isinstance(code, str) and code not in found:
                    out.setdefault(code, f"not run: nothing to judge (see {f.code}: {shorten(f.summary, 120)})")
    return out


def help_uri(doc: Diagnosis, ctx: ReportContext) -> str:
    """The documentation section (docs/findings.md) that documents the check's codes."""
    return f"{ctx.docs_url}{README_SECTIONS['logs' if doc.kind == 'logs' else 'architecture']}"


def title(code: str) -> str:
    """The catalog's title for ``code`` (the code itself if the catalog does not know it)."""
    entry = FINDINGS.get(code)
    return entry.title if entry else code


def _case_of(f: Finding) -> str | None:
    """The case of ``f`` that :data:`~gradhealth.core.catalog.CASE_TITLES` titles: its evidence's
    metric, made finer where one metric covers two cases (a ReLU output's clip under a loss on
    logits or a regression loss; the silent share of a batch that is all of it, no gradient at all)."""
    metric = f.evidence.metric
    extra = f.evidence.model_extra or {}
    if metric == "silent_sample_fraction" and extra.get("output_grad_norm") == 0.0:
        return "no_output_gradient"
    if metric == "clipped_output_fraction" and extra.get("output_activation") == "clip":
        return "clipped_output"  # an ONNX Clip on the output path, any bounds
    if metric == "clipped_output_fraction":
        return "clipped_logits" if extra.get("from_logits") else "clipped_regression_output"
    return metric


def finding_title(f: Finding) -> str:
    """The title of one finding: its case's (:data:`~gradhealth.core.catalog.CASE_TITLES`) where
    the code covers several, so that it fits the finding (a sigmoid under mse is no loss taking
    probabilities), else the code's own (:func:`title`)."""
    case = _case_of(f)
    return CASE_TITLES.get(f.code, {}).get(case or "", None) or title(f.code)


def baseline_changes(doc: Diagnosis) -> list[str | None]:
    """Each current finding's change against ``--baseline`` (``new``, ``worse``, ``unchanged``), in
    the findings' order; None for every finding without a baseline."""
    changes: list[str | None] = [None] * len(doc.findings)
    if doc.baseline is not None:
        # the comparison lists the current findings first, in order, then the gone ones
        listed = [e.change for e in doc.baseline.findings if e.change != "gone"]
        if len(listed) == len(doc.findings):
            changes = list(listed)
    return changes


#: The note on a finding the baseline already had, in every report that annotates findings.
UNCHANGED_NOTE = "unchanged from the baseline"


def passes_as_unchanged(doc: Diagnosis, ctx: ReportContext) -> list[bool]:
    """Findings that ``--fail-on new`` lets pass because the baseline already had them (neither new
    nor worse): annotations put them at most at warning level (a GitHub ``::warning``, a SARIF
    ``warning``) and say so, as JUnit passes them and the exit code ignores them (newuser8 #8: an
    unchanged error printed ``::error`` on a check that passed)."""
    if ctx.fail_on != "new":
        return [False] * len(doc.findings)
    return [c is not None and c not in ("new", "worse") for c in baseline_changes(doc)]


def annotation_severity(f: Finding, passing_unchanged: bool) -> str:
    """The severity a finding is annotated at: its own, or at most ``warning`` for one that passes
    as unchanged from the baseline (:func:`passes_as_unchanged`)."""
    return "warning" if passing_unchanged and f.severity == "error" else f.severity


def by_severity(findings: list[Finding]) -> list[Finding]:
    """Most severe first; the checks' own order within a severity."""
    return sorted(findings, key=lambda f: -SEVERITY_RANK[f.severity])


def top_remedy(finding: Finding) -> Remedy | None:
    """The first recommended remedy that was verified to fix the finding, else the first verified
    to fix it on freshly drawn weights, else the first recommended one (the checks rank them best
    first)."""
    recommended = [r for r in finding.remedies if r.recommended]
    # (a fix measured on freshly drawn weights fixes a retraining, not the checkpoint checked; it
    # still comes before a remedy nothing measured: a model file's structural changes, never
    # simulated on a graph, were named first over one verified on fresh weights: newuser15 #6)
    return next((r for r in recommended if fixes_this(r)), None) or next(
        (r for r in recommended if r.verified is not None and r.verified.fixed), None) or (
        recommended[0] if recommended else None
    )


def remedy_label(r: Remedy) -> str:
    """What a one-line report calls its best remedy: ``Fix`` only for one the simulation verified
    fixes the finding; ``Suggested`` for the rest (a log's remedies, read from it and never
    simulated; one not simulated, ``--no-verify``; one that was but fixed nothing), whose
    :func:`verified_text` then says which (newuser11: ``Fix: raise_learning_rate`` from a log)."""
    return "Fix" if fixes_this(r) else "Suggested"


def fixes_this(r: Remedy) -> bool:
    """Whether the simulation verified that ``r`` fixes the network checked: not a remedy for
    retraining a checkpoint, whose fix was measured on freshly drawn weights (``fresh_weights``)."""
    return r.verified is not None and r.verified.fixed is True and not r.verified.fresh_weights


def verified_state(v: Verified, *, markdown: bool = False) -> str:
    """A verification's verdict in a word or three: ``FIXED`` (``**fixed**`` in Markdown), ``not
    fixed``, ``improved, not fixed`` (``Verified.improved``: a decade nearer healthy, still past the bar),
    ``not judged: why``, ``not measured`` (the change left nothing the metric measures), and for a checkpoint's remedy for retraining, measured on freshly
    drawn weights, ``fixed on fresh weights`` / ``not fixed on fresh weights`` (never ``FIXED``: the
    checkpoint itself was not fixed; kerassweep24)."""
    if v.not_judged:
        return f"not judged: {v.not_judged.split(':')[0]}"
    if v.not_measured:
        return "not measured"  # the change removed what the metric measures (kerassweep26)
    if v.fresh_weights:
        return "fixed on fresh weights" if v.fixed else "not fixed on fresh weights"
    if v.fixed:
        return "**fixed**" if markdown else "FIXED"
    # a decade or more nearer healthy, nothing introduced, still past the bar (peersweep22: "not fixed"
    # under "not recommended" read as useless beside a 113x smaller step)
    return "improved, not fixed" if v.improved else "not fixed"


def verified_text(r: Remedy, doc: Diagnosis, *, markdown: bool = True) -> str:
    """The remedy's verification in words: fixed or not, the finding's metric before -> after."""
    v = r.verified
    if v is None:
        return "from the log" if doc.kind == "logs" else "not simulated"
    return f"{verified_state(v, markdown=markdown)}: {verified_figures(v)}"


def verified_figures(v: Verified, arrow: str = "→") -> str:
    """A verification's figures: what the verdict turned on first where that is not the finding's
    metric (a Post-LN stack's depth, the metric after it in brackets), and each side effect with its
    own figure (vanishing_gradient's ratio, not the finding's metric, which may hide it)."""
    own = f"{v.metric} {num(v.before)} {arrow} {num(v.after)}"
    if v.judged is not None:
        own = f"{v.judged.metric} {num(v.judged.before)} {arrow} {num(v.judged.after)} ({own})"
    figures = {s.code: s for s in v.side_effect_figures}
    sides = [code + (f" ({figures[code].metric} {num(figures[code].before)} {arrow} {num(figures[code].after)})"
                     if code in figures else "") for code in v.side_effects]
    return own + (f"; introduces {', '.join(sides)}" if sides else "")


def num(x: float | None) -> str:
    """A figure with three significant digits; ``-`` for none."""
    return "-" if x is None else f"{x:.3g}"


@dataclass(frozen=True)
class Where:
    """A finding's place: the file, its region (when the file has lines), a logical name."""

    uri: str | None
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None
    pointer: str | None = None  # spec: the JSON pointer of the node
    logical: str | None = None  # the layer (spec, model) or series (logs) the finding names
    logical_kind: str = "object"  # SARIF's word for it: a layer is an object, a series a variable
    related: list[tuple[str, _locate.Span]] = field(default_factory=list)  # other layers named

    @property
    def key(self) -> str:
        """What identifies the place independently of line shifts (for fingerprints)."""
        return f"{self.uri or ''}|{self.pointer or self.logical or ''}"


def _spec_pointers(finding: Finding, doc: Diagnosis) -> list[tuple[str, str]]:
    """(layer name, pointer) of the layers a finding names, in its order, one per pointer. Only
    JSON pointers into the spec's text: a model's layers (``node:``, ``layer:``, ``module:``) name
    no place in any text, so a report places those findings on the file, by the layer's name
    (newuser13 #1: an ONNX job's Markdown report answered 500 on ``node:/net/net.1/Gemm``)."""
    pointers = {layer.name: layer.pointer for layer in doc.layers if is_json_pointer(layer.pointer)}
    out: dict[str, str] = {}
    for name in finding.evidence.layers or []:
        ptr = pointers.get(name)
        if ptr is not None and ptr not in out.values():
            out[name] = ptr
    if not out:
        # No layer named: the spec node a remedy patches still says where the trouble is.
        for remedy in finding.remedies:
            for op in remedy.patch:
                path = op.get("path", "")
                if not isinstance(path, str) or not is_json_pointer(path):
                    continue
                tokens = _locate.parse_pointer(path)
                if len(tokens) >= 2 and tokens[0] == "layers":
                    return [("", "/layers/" + tokens[1])]
    return list(out.items())


def _first(names: list[str] | None) -> str | None:
    return names[0] if names else None


def locate_findings(doc: Diagnosis, ctx: ReportContext) -> list[Where]:
    """Where each finding of ``doc`` is, in document order."""
    kind = ctx.check_kind(doc)
    if kind == "logs":
        return _log_places(doc, ctx)
    # a model's document (its layers are node:, layer: or module: names) has no place in any text
    named_only = bool(doc.layers) and not any(is_json_pointer(layer.pointer) for layer in doc.layers)
    places = []
    for finding in doc.findings:
        named = _spec_pointers(finding, doc)
        logical = named[0][0] if named and named[0][0] else None
        if kind == "model" or ctx.text is None or named_only:
            places.append(Where(ctx.source, logical=logical or _first(finding.evidence.layers)))
            continue
        spans = [(name, s) for name, ptr in named if (s := _locate.span(ctx.text, ptr)) is not None]
        if not spans:
            fallback = _locate.span(ctx.text, "/layers")
            spans = [("", fallback)] if fallback is not None else []
        if not spans:
            places.append(Where(ctx.source, logical=logical))
            continue
        name, s = spans[0]
        places.append(
            Where(
                ctx.source,
                s.line,
                s.column,
                s.end_line,
                s.end_column,
                s.pointer,
                logical=name or None,
                related=spans[1:],
            )
        )
    return places


def _log_places(doc: Diagnosis, ctx: ReportContext) -> list[Where]:
    targets: list[tuple[float, str | None]] = []
    wanted: list[int] = []
    for i, finding in enumerate(doc.findings):
        steps = finding.evidence.steps
        if steps:
            targets.append((float(steps[0]), finding.evidence.metric))
            wanted.append(i)
    lines: list[int | None] = []
    if ctx.path is not None and targets:
        try:
            lines = _locate.log_step_lines(ctx.path, targets)
        except OSError:
            lines = []
    line_of = dict(zip(wanted, lines, strict=False))
    places = []
    for i, finding in enumerate(doc.findings):
        line = line_of.get(i)
        series = finding.evidence.metric or _first(finding.evidence.layers)
        if ctx.member:  # an archive: the file is the archive, the member is named beside the series
            series = f"{ctx.member}: {series}" if series else ctx.member
        places.append(
            Where(ctx.source, line, None, line, None, logical=series, logical_kind="variable")
        )
    return places
