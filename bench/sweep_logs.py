"""Run the log check over folders of real logs and keep each file's findings, to compare two versions.

A rule changed to remove a false alarm must change nothing else: run this before and after the
change over every real log at hand and compare. Reads only local files; writes one JSON file.

    .venv/bin/python bench/sweep_logs.py --out before.json DIR [DIR ...]
    .venv/bin/python bench/sweep_logs.py --out after.json DIR [DIR ...]
    .venv/bin/python bench/sweep_logs.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gradhealth.errors import GradHealthError
from gradhealth.library import check_logs

#: Files in a sweep folder that are not logs (notes, scripts, earlier results).
_SKIP_SUFFIXES = (".md", ".tsv", ".sh", ".py", ".out.json", ".err")


def sweep(folders: list[Path]) -> dict[str, list[Any]]:
    """Each file's findings as [code, severity, summary], or ["ERR", error type, message]."""
    out: dict[str, list[Any]] = {}
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if path.name.endswith(_SKIP_SUFFIXES) or "results" in path.parts:
                continue
            try:
                doc = check_logs(path)
                out[str(path)] = [[f.code, f.severity, f.summary[:150]] for f in doc.findings]
            except GradHealthError as e:
                out[str(path)] = ["ERR", type(e).__name__, str(e)[:150]]
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The files whose (code, severity) pairs, or whose refusal, changed."""
    def key(found: object) -> object:
        if isinstance(found, list) and found and found[0] == "ERR":
            return ("ERR", found[1])
        return sorted((f[0], f[1]) for f in found) if isinstance(found, list) else found

    lines = []
    for path in sorted(set(before) | set(after)):
        a, b = key(before.get(path)), key(after.get(path))
        if a != b:
            lines.append(f"{path}\n   before {a}\n   after  {b}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, help="write the findings here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        changed = compare(before, after)
        print("\n".join(changed) if changed else f"no file's findings changed ({len(after)} files)")
        return 0
    if not args.folders or not args.out:
        parser.error("give folders and --out, or --compare BEFORE AFTER")
    found = sweep(args.folders)
    args.out.write_text(json.dumps(found, indent=0))
    print(f"{len(found)} files -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
