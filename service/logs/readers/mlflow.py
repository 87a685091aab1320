"""MLflow file-store run folders (``mlruns/<experiment>/<run>/``).

A run folder holds ``metrics/<key>`` files, one line per logged value, ``<timestamp_ms> <value>
<step>`` (MLflow before 1.0 wrote ``<timestamp_ms> <value>``: the step is then the line's index),
and ``params/<key>`` files holding one value each. Keys with ``/`` are nested folders
(``metrics/train/loss`` is the key ``train/loss``). Each metric file becomes a series named by its
key against its steps, with the timestamp as wall time (seconds); every param goes to
``RunLog.params`` unchanged (e.g. ``opt_clipnorm``, ``max_grad_norm``). ``meta.yaml`` and ``tags/``
are not needed and not read.

``read`` takes the run folder or a single metrics file (then the params of the run are read too
when the file sits in a ``metrics/`` folder next to ``params/``). ``sniff_dir`` says whether a
folder is a run folder. A final line that is cut off (no newline, does not parse) is dropped with
the warning ``truncated_log``; a bad line elsewhere is an error naming the file and line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import Lines, Points, first_lines, open_log, truncated
from gradhealth.logs.series import LogWarning, RunLog, parse_number

_LINE = re.compile(r"^\s*(\d{9,})\s+(\S+)(?:\s+(-?\d+))?\s*$")
_MAX_FILES = 100_000
_MAX_PARAM_BYTES = 64 * 1024


def _metric_files(metrics: Path, links: list[str] | None = None) -> list[Path]:
    """The metric files under ``metrics``; symbolic links (to files or folders) are never followed
    (one may point anywhere on the server: /etc/passwd), and each one passed over is added to
    ``links`` (its path under ``metrics``) for the reader's note."""
    out: list[Path] = []
    for root, dirs, files in os.walk(metrics):
        here = Path(root)
        if links is not None:
            links.extend((here / d).relative_to(metrics).as_posix() + "/" for d in sorted(dirs)
                         if not d.startswith(".") and (here / d).is_symlink())
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (here / d).is_symlink())
        for f in sorted(files):
            p = here / f
            if f.startswith("."):
                continue
            if p.is_symlink():
                if links is not None:
                    links.append(p.relative_to(metrics).as_posix())
                continue
            if p.is_file():
                out.append(p)
                if len(out) > _MAX_FILES:
                    raise LogError(f"{metrics.parent.name}: more than {_MAX_FILES:,} metric files")
    return out


def _links_note(name: str, links: list[str]) -> LogWarning:
    shown = ", ".join(f"metrics/{link}" for link in links[:10])
    more = f" and {len(links) - 10:,} more" if len(links) > 10 else ""
    return LogWarning(
        "skipped_files", f"{name}: {len(links):,} symbolic link(s) among the metric files left out, not "
        f"followed ({shown}{more}): a link may point outside the run folder; copy the files they point "
        "to into the folder (a DVC or git-annex checkout: check it out as plain files) to read them",
        where=f"metrics/{links[0]}")


class MLflowReader:
    name = "mlflow"
    description = "MLflow file-store run folder (metrics/<key>: 'timestamp value step' lines, params/<key>)"

    def sniff(self, filename: str, head: bytes) -> float:
        lines = first_lines(head, 20)
        if not lines or not all(_LINE.match(ln) for ln in lines):
            return 0.0
        try:
            for ln in lines:
                parse_number(ln.split()[1])
        except ValueError:
            return 0.0
        return 0.9

    def sniff_dir(self, path: Path) -> float:
        """1.0 for a run folder (a ``metrics/`` folder of MLflow metric files); 0.8 for a ``metrics/``
        folder without such files next to ``params/`` or ``meta.yaml``; else 0."""
        metrics = path / "metrics"
        try:
            if not metrics.is_dir() or metrics.is_symlink():
                return 0.0
            files: list[Path] = []
            for root, _dirs, names in os.walk(metrics):
                files.extend(Path(root) / n for n in names if not n.startswith("."))
                if len(files) >= 20:
                    break
            for f in files[:20]:
                if f.is_symlink() or not f.is_file():
                    continue
                with f.open("rb") as fh:
                    if self.sniff(f.name, fh.read(4096)) > 0:
                        return 1.0
            if (path / "params").is_dir() or (path / "meta.yaml").is_file():
                return 0.8                   # a run whose metric files are empty (or not MLflow's)
        except OSError:
            return 0.0
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        try:
            is_dir = path.is_dir()
        except OSError as e:
            raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None
        points = Points(path.name, limits)
        warnings: list[LogWarning] = []
        if is_dir:
            metrics = path / "metrics"
            if not metrics.is_dir():
                raise LogError(f"{path.name}: not an MLflow run folder (no metrics/ folder)")
            links: list[str] = []
            for f in _metric_files(metrics, links):
                self._read_metric(f, f.relative_to(metrics).as_posix(), points, warnings, limits)
            if links:
                warnings.append(_links_note(path.name, links))
            params_dir: Path | None = path / "params"
        else:
            self._read_metric(path, path.name, points, warnings, limits, where=path.name)
            params_dir = path.parent.parent / "params" if path.parent.name == "metrics" else None
        params = self._params(params_dir) if params_dir is not None else {}
        if points.count == 0:
            linked = [w.message for w in warnings if w.code == "skipped_files"]
            if linked:
                raise LogError(f"{path.name}: no metric values in the files read; {linked[0].split(': ', 1)[1]}")
            raise LogError(f"{path.name}: no metric values (the metrics files are empty)")
        return RunLog(format=self.name, source=path.name, series=points.build(), warnings=warnings,
                      params=params)

    @staticmethod
    def _read_metric(f: Path, key: str, points: Points, warnings: list[LogWarning],
                     limits: ReadLimits, where: str | None = None) -> None:
        label = where or f"metrics/{key}"
        with open_log(f, limits) as fh:
            lines = Lines(fh, label)
            index = 0
            for text in lines:
                if not text.strip():
                    continue
                m = _LINE.match(text)
                value = None
                if m:
                    try:
                        value = parse_number(m[2])
                    except ValueError:
                        value = None
                if value is None or m is None:
                    if lines.unterminated_last:
                        warnings.append(truncated(label, lines.lineno, "not 'timestamp value step'"))
                        break
                    raise LogError(f"{label} line {lines.lineno}: expected 'timestamp value step', "
                                   f"got {text.strip()[:60]!r}", position=(lines.lineno, None))
                step = int(m[3]) if m[3] is not None else index
                points.add(key, step, value, int(m[1]) / 1000.0)
                index += 1

    @staticmethod
    def _params(params: Path) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            if not params.is_dir():
                return out
            for root, dirs, files in os.walk(params):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    p = Path(root) / name
                    if name.startswith(".") or p.is_symlink() or not p.is_file():
                        continue
                    if p.stat().st_size > _MAX_PARAM_BYTES or len(out) >= _MAX_FILES:
                        continue
                    out[p.relative_to(params).as_posix()] = p.read_bytes().decode("utf-8", "replace").strip()
        except OSError:
            pass
        return out


READER = MLflowReader()
