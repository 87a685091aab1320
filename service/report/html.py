"""A self-contained HTML page (no external assets, no scripts): status, findings with their
remedies, and the per-layer table. The dashboards issue grows it; keep it one file."""

from __future__ import annotations

from html import escape

from gradhealth.core.document import Diagnosis
from gradhealth.report.context import ReportContext, locate_findings, num, verified_text

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;
color:#1b1f24}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left}
th{background:#f6f8fa}code,pre{font-family:ui-monospace,monospace}pre{background:#f6f8fa;padding:.5rem;overflow:auto}
.healthy{color:#1a7f37}.warning{color:#9a6700}.unhealthy,.error{color:#cf222e}.info{color:#0969da}
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def render_html(doc: Diagnosis, ctx: ReportContext) -> str:
    """The HTML page."""
    name = doc.name or ctx.source or doc.kind
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Gradient Health: {_e(name)}: {_e(doc.status)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f'<h1>{_e(name)}: <span class="{_e(doc.status)}">{_e(doc.status)}</span></h1>',
        f"<p>{_e(doc.summary)}</p>",
    ]
    if ctx.source:
        parts.append(f"<p>Checked: <code>{_e(ctx.source)}</code></p>")
    places = locate_findings(doc, ctx)
    if doc.findings:
        parts += [
            "<h2>Findings</h2>",
            "<table>",
            "<tr><th>severity</th><th>code</th><th>where</th><th>finding</th></tr>",
        ]
        for f, w in zip(doc.findings, places, strict=True):
            where = (f"{w.uri}:{w.line}" if w.line else w.uri or "") + (
                f" ({w.logical})" if w.logical else ""
            )
            parts.append(
                f'<tr><td class="{_e(f.severity)}">{_e(f.severity)}</td>'
                f"<td><code>{_e(f.code)}</code></td>"
                f"<td>{_e(where)}</td><td>{_e(f.summary)}</td></tr>"
            )
        parts.append("</table>")
        for f in doc.findings:
            parts += [
                f'<h3 id="{_e(f.code)}"><code>{_e(f.code)}</code>: {_e(f.summary)}</h3>',
                f"<p>{_e(f.explanation)}</p>",
            ]
            if f.remedies:
                parts.append("<ol>")
                for r in f.remedies:
                    tag = "" if r.recommended else " (not recommended)"
                    parts.append(
                        f"<li><code>{_e(r.id)}</code>{_e(tag)}: {_e(r.change)} "
                        f"[{_e(verified_text(r, doc, markdown=False))}]"
                        + (f"<pre>{_e(r.snippet)}</pre>" if r.snippet else "")
                        + "</li>"
                    )
                parts.append("</ol>")
    if doc.layers:
        parts += [
            "<h2>Layers</h2>",
            "<table>",
            "<tr><th>layer</th><th>grad_norm</th><th>output_grad_norm</th>"
            "<th>activation std</th></tr>",
        ]
        for layer in doc.layers:
            parts.append(
                f"<tr><td><code>{_e(layer.name)}</code></td><td>{num(layer.grad_norm)}</td>"
                f"<td>{num(layer.output_grad_norm)}</td><td>{num(layer.activation_std)}</td></tr>"
            )
        parts.append("</table>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
