"""The HTML report: one self-contained page (inline CSS and SVG; no scripts, fonts or links to
anything outside it), so it works offline, prints, and opens as a CI artifact.

Order: the verdict; the findings, most severe first, each with its evidence, remedies, snippets
and verified figures; then the charts (:mod:`gradhealth.report.svg`); then the raw tables.

Architecture checks chart the per-layer gradient norms in forward order on a log scale, with the
vanishing/exploding thresholds (relative to the last layer, as the checks measure them), the
mean-field prediction of each theory stretch and the layers a finding names highlighted; each
finding's remedies before -> after; dL/dh_t against t for recurrent layers; saturated and dead
fractions per layer. Log checks chart each series a finding names with its steps shaded and the
learning rate beneath, and per-layer gradient norms as a layer x step heatmap, from the
document's downsampled ``points``. Light and dark themes follow ``prefers-color-scheme``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from functools import partial
from html import escape

from gradhealth.analysis.thresholds import Thresholds  # pydantic only: keeps the report torch-free
from gradhealth.core.document import Diagnosis, Finding, LayerReport, SeriesPoints
from gradhealth.report import svg
from gradhealth.report.context import (
    ReportContext,
    by_severity,
    finding_title,
    input_label,
    locate_findings,
    num,
    one_line,
    verified_state,
    verified_text,
)

_STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#57606a;--grid:#e6e9ed;--card:#f6f8fa;
--border:#d0d7de;--err:#cf222e;--warn:#9a6700;--ok:#1a7f37;--info:#0969da;--c0:#0969da;--c1:#8250df;
--c2:#bc4c00;--c3:#1a7f37;--c4:#bf3989;--c5:#57606a}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;--grid:#21262d;
--card:#161b22;--border:#30363d;--err:#ff7b72;--warn:#d29922;--ok:#3fb950;--info:#58a6ff;
--c0:#58a6ff;--c1:#bc8cff;--c2:#ffa657;--c3:#3fb950;--c4:#ff7eb6;--c5:#8d96a0}}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;
background:var(--bg);color:var(--fg);overflow-wrap:anywhere}
h1{font-size:1.5rem;margin:.5rem 0}h2{border-bottom:1px solid var(--border);padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1.05rem;margin:.2rem 0 .4rem}
nav a{margin-right:1rem}a{color:var(--info)}
.muted{color:var(--muted)}
.badge{display:inline-block;border-radius:1rem;padding:0 .6rem;font-size:.85rem;font-weight:600;
border:1px solid currentColor}
.healthy,.ok{color:var(--ok)}.warning{color:var(--warn)}.unhealthy,.error{color:var(--err)}
.info{color:var(--info)}
.finding{background:var(--card);border:1px solid var(--border);border-left:4px solid var(--border);
border-radius:6px;padding:.7rem 1rem;margin:1rem 0}
.finding.sev-error{border-left-color:var(--err)}.finding.sev-warning{border-left-color:var(--warn)}
.finding.sev-info{border-left-color:var(--info)}
.remedy{margin:.6rem 0}.remedy.no{opacity:.75}
dl.evidence{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.4rem 0;
font-size:.9rem}
dl.evidence dt{color:var(--muted)}dl.evidence dd{margin:0}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.88em}
pre{background:var(--bg);border:1px solid var(--border);padding:.5rem;overflow:auto;border-radius:4px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5rem 0;font-size:.88rem}
td,th{border:1px solid var(--border);padding:.2rem .45rem;text-align:left;vertical-align:top;
overflow-wrap:normal}td:first-child{white-space:nowrap}
th{background:var(--card);white-space:nowrap}td.n{white-space:nowrap;text-align:right;font-variant-numeric:tabular-nums}
tr.hl td{background:color-mix(in srgb,var(--err) 12%,transparent)}
figure{margin:1rem 0;overflow-x:auto}figcaption{color:var(--muted);font-size:.88rem}
@media (max-width:40rem){body{font-size:14px;padding:.6rem}}
""" + svg.CSS

_log = logging.getLogger(__name__)

# How many items of an evidence list the finding card prints (the raw JSON has them all).
EVIDENCE_ITEMS = 12
HEATMAP_COLUMNS = 60
FRACTION_KEYS = ("saturated_fraction", "dead_fraction")


def _e(x: object) -> str:
    """``x`` as HTML text on one line: a user string (a model's file name, a spec's name, a series)
    holding a line break must not start a line of the page, where a CI log that shows the report
    would read a workflow command (``::error::``), as the other formats keep names on one line."""
    return escape(one_line(str(x)), quote=True)


def _pre(text: str) -> str:
    """A multi-line block (a remedy's snippet) for ``<pre>``: its own lines kept, each on one line
    (no other break characters) and none starting with ``::`` (:func:`_no_commands`)."""
    return "\n".join(_no_commands(escape(one_line(line), quote=True)) for line in text.splitlines())


# A line whose first non-blank characters are "::", the start of a GitHub workflow command.
_COMMAND_START = re.compile(r"^([ \t]*)::", re.M)


def _no_commands(markup: str) -> str:
    """``markup`` with no line beginning (after blanks) with ``::``: the first colon is written as
    the character reference ``&#58;``, which a browser shows as ``:``, so the page reads the same.
    For HTML text and attribute values only (not inside <style>, which reads no references)."""
    return _COMMAND_START.sub(r"\1&#58;:", markup)


def _value(v: object) -> str:
    """An evidence value in words: figures with three digits, long lists cut."""
    if isinstance(v, float):
        return num(v)
    if isinstance(v, list):
        shown = ", ".join(_value(x) for x in v[:EVIDENCE_ITEMS])
        return f"[{shown}{', …' if len(v) > EVIDENCE_ITEMS else ''}]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in list(v.items())[:EVIDENCE_ITEMS]) + "}"
    return "-" if v is None else str(v)


def _step(x: float | None) -> str:
    return "-" if x is None else svg.fmt_linear(x)


def named_layers(doc: Diagnosis) -> set[str]:
    """Every layer (or series) a finding's evidence names: what the charts highlight."""
    return {name for f in doc.findings for name in (f.evidence.layers or [])}


# --- findings ----------------------------------------------------------------------------------


def _finding_card(i: int, f: Finding, where: str, doc: Diagnosis) -> list[str]:
    evidence = {k: v for k, v in f.evidence.model_dump().items() if v is not None}
    parts = [
        f'<article class="finding sev-{_e(f.severity)}" id="finding-{i}">',
        f'<h3><span class="badge {_e(f.severity)}">{_e(f.severity)}</span> '
        f"<code>{_e(f.code)}</code> {_e(finding_title(f))}</h3>",
        f"<p><strong>{_e(f.summary)}</strong></p>",
        f"<p>{_e(f.explanation)}</p>",
    ]
    if where:
        parts.append(f'<p class="muted">Where: <code>{_e(where)}</code></p>')
    if evidence:
        parts.append('<dl class="evidence">')
        for k, v in evidence.items():
            parts.append(f"<dt>{_e(k)}</dt><dd>{_e(_value(v))}</dd>")
        parts.append("</dl>")
    if f.remedies:
        parts.append("<h4>Remedies</h4><ol>")
        for r in f.remedies:
            state = "" if r.recommended else " no"
            v = r.verified
            fixed = ""
            if v is not None:
                fixed = (f' <span class="badge {"ok" if v.fixed and not v.fresh_weights else "warning"}">'
                         f'{"not judged" if v.not_judged else verified_state(v).lower()}</span>')
            parts.append(
                f'<li class="remedy{state}" id="finding-{i}-{_e(r.id)}"><code>{_e(r.id)}</code> '
                f"<strong>{_e(r.title)}</strong>{fixed}"
                + ("" if r.recommended else ' <span class="muted">(not recommended)</span>')
                + f"<br>{_e(r.change)}<br><span class=\"muted\">{_e(r.rationale)}</span>"
                # (a log's remedies are read from it, never re-simulated: no "Verified:" label for them,
                # as the text and Markdown reports say "from the log", newuser10 #8)
                + (" <span class=\"muted\">(from the log)</span>" if v is None and doc.kind == "logs" else
                   f"<br>Verified: {_e(verified_text(r, doc, markdown=False))}")
                + (f" ({_e(r.unverified.replace('_', ' '))})" if r.unverified else "")
                + (f"<br><span class=\"muted\">{_e(v.note)}</span>" if v and v.note else "")
                + (f"<pre><code>{_pre(r.snippet)}</code></pre>" if r.snippet else "")
                + "</li>"
            )
        parts.append("</ol>")
    parts.append("</article>")
    return parts


# --- architecture charts -----------------------------------------------------------------------


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _threshold(doc: Diagnosis, code: str, default: float) -> float:
    """The warning threshold a finding of ``code`` was judged by, else the default."""
    for f in doc.findings:
        if f.code == code and f.evidence.threshold is not None and f.evidence.threshold > 0:
            return f.evidence.threshold
    return default


def layer_norm_chart(doc: Diagnosis, thresholds: Thresholds | None = None) -> str | None:
    """Per-layer gradient norms in forward order (log scale), thresholds, theory, highlights."""
    layers = doc.layers
    if not any(_positive(lr.output_grad_norm) or _positive(lr.grad_norm) for lr in layers):
        return None
    t = thresholds or Thresholds()
    xs = list(range(len(layers)))
    names = [lr.name for lr in layers]
    chart = svg.Chart(
        "Gradient norm per layer (forward order)",
        svg.Axis("layer index (forward order, input → output)"),
        svg.Axis("gradient norm (L2, log scale)", "log"),
        data={"chart": "layer-norms"},
    )
    chart.line(xs, [lr.output_grad_norm for lr in layers], series=0, label="||dL/dh|| output",
               markers=True, names=names)
    chart.line(xs, [lr.grad_norm for lr in layers], series=1, label="||dL/dW|| weights",
               names=names)
    index = {lr.name: i for i, lr in enumerate(layers)}
    # The checks compare the first layer's ||dL/dh|| with the last one's of a stretch: draw the
    # thresholds as norms relative to that last layer (the one a finding or the theory names).
    ref_name = next((f.evidence.layers[-1] for f in doc.findings
                     if f.code in ("vanishing_gradient", "exploding_gradient") and f.evidence.layers
                     and f.evidence.layers[-1] in index), None) or next(
        (s.layers[-1] for s in reversed(doc.theory.stretches) if s.layers[-1] in index), None)
    ref = layers[index[ref_name]].output_grad_norm if ref_name else next(
        (lr.output_grad_norm for lr in reversed(layers) if _positive(lr.output_grad_norm)), None)
    if ref is not None and _positive(ref):
        vw = _threshold(doc, "vanishing_gradient", t.vanishing_warning)
        ew = _threshold(doc, "exploding_gradient", t.exploding_warning)
        lines: tuple[tuple[float, str, svg.Level], ...] = (
            (vw, "vanishing", "warn"), (t.vanishing_error, "vanishing error", "err"),
            (ew, "exploding", "warn"), (t.exploding_error, "exploding error", "err"))
        for factor, what, level in lines:
            chart.hline(ref * factor, f"{what}: {svg.fmt(factor)} × reference", level)
    for stretch in doc.theory.stretches:
        first, last = index.get(stretch.layers[0]), index.get(stretch.layers[-1])
        if first is None or last is None or last <= first:
            continue
        anchor, ratio = layers[last].output_grad_norm, stretch.predicted_ratio
        if anchor is None or ratio is None or not (_positive(anchor) and _positive(ratio)):
            continue
        # ||dL/dh_i|| = ||dL/dh_last|| * predicted_ratio^((last - i) / (last - first)): the
        # mean-field factor per layer, compounded back from the last layer of the stretch.
        per = math.log10(ratio) / (last - first)
        span = range(first, last + 1)
        chart.line(list(span), [anchor * 10 ** (per * (last - i)) for i in span],
                   series=2, dashed=True, label=f"mean-field prediction ({stretch.activation})")
    for name in sorted(named_layers(doc) & set(index)):
        i = index[name]
        chart.highlight(i, layers[i].output_grad_norm, name, "(named by a finding)")
    return chart.render()


def remedy_chart(i: int, f: Finding) -> str | None:
    """The finding's metric before and after each verified remedy (log scale)."""
    rows = [r for r in f.remedies if r.verified is not None
            and (_positive(r.verified.before) or _positive(r.verified.after))]
    if not rows:
        return None
    metric = rows[0].verified.metric if rows[0].verified else "metric"
    labels = {float(k): r.id for k, r in enumerate(rows)}
    chart = svg.Chart(
        f"{f.code}: remedies re-simulated (before → after)",
        svg.Axis(f"{metric} (ratio, log scale)", "log"),
        svg.Axis("remedy", lo=-0.6, hi=len(rows) - 0.4, tick_labels=labels),
        height=90 + 34 * len(rows), margin_left=190,
        data={"chart": "remedies", "finding": f"finding-{i}"},
    )
    for k, r in enumerate(rows):
        v = r.verified
        assert v is not None  # filtered above
        chart.dumbbell(k, v.before, v.after, fixed=bool(v.fixed) and not v.fresh_weights, name=r.id)
    limit = f.evidence.threshold
    if limit is not None and _positive(limit):
        chart.vline(limit, f"threshold {svg.fmt(limit)}")
    return chart.render()


def time_step_chart(doc: Diagnosis) -> str | None:
    """||dL/dh_t|| against t, one line per recurrent layer (and sublayer)."""
    groups: dict[tuple[str, int], list[tuple[int, float | None]]] = {}
    for ts in doc.time_steps:
        groups.setdefault((ts.layer, ts.sublayer), []).append((ts.t, ts.output_grad_norm))
    if not groups:
        return None
    chart = svg.Chart(
        "Gradient through time: ||dL/dh_t|| per time step",
        svg.Axis("time step t"),
        svg.Axis("||dL/dh_t|| (L2, log scale)", "log"),
        data={"chart": "time-steps"},
    )
    for k, ((layer, sub), pts) in enumerate(sorted(groups.items())):
        pts.sort()
        label = layer + (f" [{sub}]" if sub else "")
        chart.line([p[0] for p in pts], [p[1] for p in pts], series=k, label=label, markers=len(pts) <= 80)
    for f in doc.findings:
        named_t = f.evidence.time_steps
        if named_t and f.code.endswith("through_time"):
            a, b = min(named_t), max(named_t)
            chart.shade(a, b, f"{f.code}: t {a}..{b}")
    return chart.render()


def fraction_chart(doc: Diagnosis, thresholds: Thresholds | None = None) -> str | None:
    """Saturated and dead fractions per layer (0..1), with their warning thresholds."""
    layers: list[LayerReport] = doc.layers
    if not any(getattr(lr, k) is not None for lr in layers for k in FRACTION_KEYS):
        return None
    t = thresholds or Thresholds()
    xs = list(range(len(layers)))
    names = [lr.name for lr in layers]
    chart = svg.Chart(
        "Saturated and dead units per layer",
        svg.Axis("layer index (forward order, input → output)"),
        svg.Axis("fraction of units (0 to 1)", lo=0.0, hi=1.0),
        data={"chart": "fractions"},
    )
    chart.line(xs, [lr.saturated_fraction for lr in layers], series=2, label="saturated",
               markers=True, names=names)
    chart.line(xs, [lr.dead_fraction for lr in layers], series=4, label="dead (zero for the batch)",
               markers=True, names=names)
    chart.hline(t.saturation_warning, f"saturation warning {t.saturation_warning:g}", "warn")
    chart.hline(t.dead_warning, f"dead warning {t.dead_warning:g}", "err")
    index = {name: i for i, name in enumerate(names)}
    for f in doc.findings:
        if f.code in ("saturation", "dead_units"):
            key = "saturated_fraction" if f.code == "saturation" else "dead_fraction"
            for name in f.evidence.layers or []:
                if name in index:
                    chart.highlight(index[name], getattr(layers[index[name]], key), name, f.code)
    return chart.render()


# --- log charts --------------------------------------------------------------------------------


def _log_axis(values: Iterable[float | None], label: str) -> svg.Axis:
    """Log scale when the values are positive and span more than two decades."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    positive = [v for v in vals if v > 0]
    if vals and len(positive) == len(vals) and max(positive) / min(positive) > 100:
        return svg.Axis(f"{label} (log scale)", "log")
    return svg.Axis(label)


def _series_label(s: SeriesPoints) -> str:
    """A series' axis label: its name, with its role beside it where the name does not already
    say it (``train/loss (loss)``; ``grad_norm``, not ``grad_norm (grad norm)``: newuser11)."""
    role = s.role.replace("_", " ")
    words = " ".join(w for w in re.split(r"[^a-z0-9]+", s.name.lower()) if w)
    return s.name if words == role else f"{s.name} ({role})"


def series_chart(i: int, f: Finding, s: SeriesPoints, lr: SeriesPoints | None) -> str:
    """The series a finding names over steps, its steps shaded; the learning rate beneath."""
    lo = min(s.steps + (lr.steps if lr else []))
    hi = max(s.steps + (lr.steps if lr else []))
    chart = svg.Chart(
        f"{f.code}: {s.name}",
        svg.Axis("step", lo=lo, hi=hi),
        _log_axis(s.values, _series_label(s)),
        data={"chart": "series", "finding": f"finding-{i}", "series": s.name},
    )
    steps = f.evidence.steps or []
    if len(steps) >= 2:
        chart.shade(steps[0], steps[-1], f"{f.code}: steps {steps[0]}..{steps[-1]}")
    spikes = getattr(f.evidence, "spike_steps", None) or []
    for step in spikes[:50]:
        if isinstance(step, int | float):
            chart.shade(step, step, f"spike at step {step:g}")
    chart.line(s.steps, s.values, series=0, label=s.name)
    out = chart.render()
    if lr is not None:
        below = svg.Chart(
            "learning rate",
            svg.Axis("step", lo=lo, hi=hi),
            _log_axis(lr.values, "learning rate"),
            height=170, data={"chart": "learning-rate", "finding": f"finding-{i}"},
        )
        if len(steps) >= 2:
            below.shade(steps[0], steps[-1], f"{f.code}: steps {steps[0]}..{steps[-1]}")
        below.line(lr.steps, lr.values, series=1)
        out += below.render()
    return out


def layer_heatmap(doc: Diagnosis) -> str | None:
    """Per-layer gradient norms as layer x step (geometric mean of each step bin's nonzero values).

    A bin whose values are all exactly 0 is drawn as 0 ("no gradient"), never as the bin before it
    (newuser8 #3: a dead ReLU layer's zeros were skipped and its last live value carried over 60
    steps); one with some zeros says how many in its tooltip. A bin no point of the row fell in is
    left empty, except inside a downsampled row, whose kept points stand for the steps up to the
    next one: there it shows the last kept point before it, and its tooltip says so."""
    rows = [p for p in doc.points if p.role == "layer_grad_norm" and p.steps]
    if not rows:
        return None
    lo = min(p.steps[0] for p in rows)
    hi = max(p.steps[-1] for p in rows)
    n = HEATMAP_COLUMNS if hi > lo else 1
    width = (hi - lo) / n if hi > lo else 1.0
    columns = [(lo + k * width, lo + (k + 1) * width) for k in range(n)]
    cells: list[list[float | None]] = []
    notes: list[list[str | None]] = []
    for p in rows:
        sums, counts, zeros, bad = [0.0] * n, [0] * n, [0] * n, [0] * n
        held: list[tuple[float, float | None] | None] = [None] * n  # the last point of each bin
        for step, v in zip(p.steps, p.values, strict=True):
            k = min(n - 1, int((step - lo) / width)) if hi > lo else 0
            held[k] = (step, v)
            if v is None:
                bad[k] += 1  # NaN or Inf in the log (null in the document)
            elif v > 0:
                sums[k] += math.log10(v)
                counts[k] += 1
            else:
                zeros[k] += 1  # exactly 0: no gradient reached the layer at that step
        row: list[float | None] = []
        note: list[str | None] = []
        for k in range(n):
            finite = counts[k] + zeros[k]
            if counts[k]:
                row.append(10 ** (sums[k] / counts[k]))
                note.append(f"0 at {zeros[k]} of its {finite + bad[k]} points" if zeros[k] else None)
            elif zeros[k]:
                row.append(0.0)
                note.append(None)
            else:
                # a bin of non-finite values only is NaN: drawn in a colour of its own, not as "no data"
                row.append(math.nan if bad[k] else None)
                note.append(None)
        if p.downsampled:
            # Downsampling keeps each bucket's extremes, so a bin inside the logged range may get
            # no point: the last point kept before it stands for it (a zero stays a zero).
            filled = [k for k, v in enumerate(row) if v is not None]
            last: tuple[float, float | None] | None = None
            for k in range(filled[0], filled[-1]) if filled else ():
                if row[k] is None and last is not None:
                    v = last[1]
                    row[k] = math.nan if v is None else (0.0 if not v > 0 else v)
                    note[k] = f"downsampled: as at step {svg.fmt_linear(last[0])}"
                last = held[k] or last
        cells.append(row)
        notes.append(note)
    names = [p.layer or p.name for p in rows]
    named = named_layers(doc) | {f.evidence.metric for f in doc.findings if f.evidence.metric}
    highlight = [names[k] for k, p in enumerate(rows) if p.name in named or (p.layer or "") in named]
    return svg.heatmap(
        "Per-layer gradient norm over steps", names, columns, cells,
        x_label="step", y_label="layer", value_label="||dL/dW|| (L2)", highlight=highlight,
        column_labels=_column_labels(rows, columns, lo, width, hi > lo), notes=notes,
    )


def _column_labels(rows: list[SeriesPoints], columns: list[tuple[float, float]], lo: float, width: float,
                   binned: bool) -> list[str]:
    """Each heatmap column in the steps it covers ("step 4", "steps 4-8"), not its bin's edges: a
    run logged every 2 steps over 0..294 has bins 4.9 steps wide, and "@ 4.9" names no step it logged
    (newuser6). The columns tile the run: each runs from its first step to the step before the next
    column's first (at the run's logging interval, the smallest gap between its steps), so a
    downsampled document's dropped steps fall in a column too (newuser8 #3: "steps 5-6" then
    "11-14"). A column no point fell in starts at its edge, whole where the run's steps are whole."""
    first: list[float | None] = [None] * len(columns)
    steps: set[float] = set()
    whole = True
    for p in rows:
        for step in p.steps:
            whole = whole and float(step).is_integer()
            steps.add(step)
            k = min(len(columns) - 1, int((step - lo) / width)) if binned else 0
            a = first[k]
            first[k] = step if a is None or step < a else a
    ordered = sorted(steps)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False) if b > a]
    stride = min(gaps) if gaps else 1.0
    starts: list[float] = []
    for (start, _), a in zip(columns, first, strict=True):
        starts.append(a if a is not None else (float(math.ceil(start)) if whole else start))
    out = []
    for k, a in enumerate(starts):
        b = starts[k + 1] - stride if k + 1 < len(starts) else ordered[-1]
        b = max(a, b)
        out.append(f"step {svg.fmt_linear(a)}" if a == b else f"steps {svg.fmt_linear(a)}-{svg.fmt_linear(b)}")
    return out


# --- tables ------------------------------------------------------------------------------------


def _table(head: list[str], rows: Iterable[list[str]], *, numeric_from: int = 1,
           highlight: Iterable[bool] = ()) -> list[str]:
    marks = list(highlight)
    out = ['<div class="scroll"><table>', "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for k, row in enumerate(rows):
        cls = ' class="hl"' if k < len(marks) and marks[k] else ""
        cells = "".join((f'<td class="n">{_e(c)}</td>' if j >= numeric_from else f"<td>{_e(c)}</td>")
                        for j, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table></div>")
    return out


def _tables(doc: Diagnosis, *, timings: bool = True) -> list[str]:
    parts: list[str] = []
    named = named_layers(doc)
    if doc.layers:
        parts.append("<h3>Layers</h3>")
        # with an optimizer, the first step's dW/W and the one large_updates judges (text report's columns)
        stepped = any(lr.update_ratio is not None for lr in doc.layers)
        parts += _table(
            ["layer", "type", "activation", "||dL/dW||", "||dL/dh||", "activation std", "saturated",
             "dead", "weight std"] + (["dW/W first step", "dW/W judged"] if stepped else []),
            ([lr.name, lr.type, lr.activation or "-", num(lr.grad_norm), num(lr.output_grad_norm),
              num(lr.activation_std), num(lr.saturated_fraction), num(lr.dead_fraction),
              num(lr.weight_std)] + ([num(lr.update_ratio), num(lr.judged_update_ratio)] if stepped else [])
             for lr in doc.layers),
            numeric_from=3, highlight=[lr.name in named for lr in doc.layers],
        )
    if doc.time_steps:
        parts.append("<h3>Time steps</h3>")
        parts += _table(["layer", "sublayer", "t", "||dL/dh_t||"],
                        ([ts.layer, str(ts.sublayer), str(ts.t), num(ts.output_grad_norm)]
                         for ts in doc.time_steps), numeric_from=1)
    if doc.theory.stretches:
        parts.append("<h3>Mean-field theory</h3>")
        parts += _table(
            ["layers", "depth", "activation", "σw²", "σb²", "χ1", "phase", "predicted ratio",
             "measured ratio"],
            ([" → ".join(s.layers), str(s.depth), s.activation, num(s.sigma_w2), num(s.sigma_b2),
              num(s.chi1), s.phase, num(s.predicted_ratio), num(s.measured_ratio)]
             for s in doc.theory.stretches), numeric_from=1)
    for c in doc.theory.critical:
        parts.append(f"<p>Critical initialisation: {_e(c.suggestion)}</p>")
    if doc.series:
        parts.append("<h3>Series read from the log</h3>")
        parts += _table(
            ["series", "role", "layer", "points", "non-finite", "first step", "last step", "min",
             "median", "max", "last"],
            ([s.name, s.role, s.layer or "-", str(s.points), str(s.nonfinite), _step(s.first_step),
              _step(s.last_step), num(s.min), num(s.median), num(s.max), num(s.last)]
             for s in doc.series), numeric_from=3)
    if doc.simulation is not None:
        sim = doc.simulation
        parts.append(f'<p class="muted">Simulated with {sim.seeds} seed(s), batch {sim.batch_size}, '
                     f"{_e(sim.device)} {_e(sim.precision)}, {sim.parameters:,} parameters"
                     + (f", {sim.duration_s:.3g} s; " if timings else "; ")
                     + f"{sim.remedies_simulated} remedies re-simulated"
                     + (f", {sim.remedies_rescaled} learning-rate remedy(ies) verified by rescaling the first "
                        "simulation" if sim.remedies_rescaled else "") + ".</p>")
        for n in sim.notes:
            parts.append(f'<p class="muted">Note: {_e(n)}</p>')
    if doc.log is not None:
        log = doc.log
        parts.append(f'<p class="muted">Read {log.points:,} points in {log.series} series '
                     f"({_e(log.format)})" + (f" in {log.duration_s:.3g} s" if timings else "") + ".</p>")
        for w in log.warnings:
            parts.append(f'<p class="warning">{_e(w)}</p>')
    return parts


# --- the page ----------------------------------------------------------------------------------


def charts(doc: Diagnosis) -> list[str]:
    """Every chart the document has data for, each an ``<svg>`` inside a ``<figure>``."""
    out: list[str] = []
    ordered = by_severity(doc.findings)

    def figure(draw: Callable[[], str | None], caption: str) -> None:
        # One chart that cannot be drawn (numbers the drawing cannot handle) is left out with a
        # note; the page, its findings and its other charts still come.
        try:
            svg_text = draw()
        except Exception as exc:  # noqa: BLE001 - any failure of one chart, logged with its trace
            _log.exception("chart not drawn: %s", caption)
            out.append(f'<p class="warning chart-skipped">A chart could not be drawn ({_e(caption)}): '
                       f"{_e(type(exc).__name__)}: {_e(exc)}</p>")
            return
        if svg_text:  # the chart's labels (layer and series names) start no line either
            out.append(f"<figure>{_no_commands(svg_text)}<figcaption>{_e(caption)}</figcaption></figure>")

    figure(lambda: layer_norm_chart(doc), "Gradient norms per layer, input to output, on a log scale. "
           "Dotted lines: the thresholds, as factors of the reference (the last layer of the stretch "
           "the check measured); dashed: the mean-field prediction; red dots: layers a finding names.")
    for i, f in enumerate(ordered, 1):
        figure(partial(remedy_chart, i, f), f"Finding {i}: the metric before (red) and after "
               "(green: fixed; amber: not fixed) each remedy, re-simulated.")
    figure(lambda: time_step_chart(doc), "How much gradient reaches each time step, from the last back "
           "to the first.")
    figure(lambda: fraction_chart(doc), "Fraction of each layer's units in the flat tails of its "
           "activation (saturated) or zero for the whole batch (dead).")
    by_name = {p.name: p for p in doc.points}
    lr = next((p for p in doc.points if p.role == "learning_rate"), None)
    for i, f in enumerate(ordered, 1):
        s = by_name.get(f.evidence.metric or "")
        if s is not None and s.steps:
            figure(partial(series_chart, i, f, s, lr if lr is not s else None),
                   f"Finding {i}: {s.name} over steps, the finding's steps shaded"
                   + ("; the learning rate beneath." if lr is not None and lr is not s else "."))
    figure(lambda: layer_heatmap(doc), "Per-layer gradient norms over the run (colour: log10 of the "
           "norm); rows in red are named by a finding.")
    return out


def render_html(doc: Diagnosis, ctx: ReportContext) -> str:
    """The HTML page."""
    name = input_label(doc, ctx, prefer_name=True)
    places = dict(zip(map(id, doc.findings), locate_findings(doc, ctx), strict=True))
    ordered = by_severity(doc.findings)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>Gradient Health: {_e(name)}: {_e(doc.status)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        '<nav><a href="#findings">Findings</a><a href="#charts">Charts</a>'
        '<a href="#tables">Tables</a></nav>',
        # a healthy document whose trends were not judged wears no green badge (logsweep98)
        (f'<h1>{_e(name)} <span class="badge warning">not judged (too little data)</span></h1>'
         if doc.status == "healthy" and not doc.judged else
         f'<h1>{_e(name)} <span class="badge {_e(doc.status)}">{_e(doc.status)}</span></h1>'),
        f"<p>{_e(doc.summary)}</p>",
    ]
    if ctx.source:
        parts.append(f'<p class="muted">Checked: <code>{_e(ctx.source)}</code> ({_e(doc.kind)})</p>')
    if doc.baseline is not None:
        b = doc.baseline
        parts.append(f"<p>Against the baseline: {b.new} new, {b.worse} worse, {b.gone} gone, "
                     f"{b.unchanged} unchanged ({b.regressions} regression(s)).</p>")
    parts.append('<section id="findings"><h2>Findings</h2>')
    if not ordered:
        parts.append('<p class="healthy">No findings.</p>')
    for i, f in enumerate(ordered, 1):
        w = places[id(f)]
        # A spec checked over HTTP has no file name: its line alone still says where.
        at = f"line {w.line}" if w.line and not w.uri else f"{w.uri}:{w.line}" if w.line else w.uri or ""
        where = at + (
            f" ({w.logical})" if w.logical else "")
        parts += _finding_card(i, f, where.strip(), doc)
    parts.append("</section>")
    drawn = charts(doc)
    parts.append('<section id="charts"><h2>Charts</h2>')
    parts += drawn or ['<p class="muted">Nothing to chart in this document.</p>']
    parts.append("</section>")
    parts.append('<section id="tables"><h2>Tables</h2>')
    parts += _tables(doc, timings=ctx.timings)
    parts += ["</section>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
