"""``./dev scorecard``: build (or reuse) the corpus, score the log check and the AUTOTRAINER
baseline, print the Markdown table and the per-case details.

    python bench/scorecard/run.py [--force] [--write-readme] [--details]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scorecard import score  # noqa: E402
from scorecard.corpus import CACHE, ROOT, build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Print the scorecard; with --write-readme also put it into docs/findings.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="regenerate the corpus even if cached")
    p.add_argument("--write-readme", action="store_true", help="replace the table in docs/findings.md")
    p.add_argument("--details", action="store_true", help="print what each case got")
    args = p.parse_args(argv)
    if args.force:
        build(CACHE, force=True)
    outcomes = score.evaluate(CACHE)
    tab = score.table(outcomes)
    print(tab)
    if args.details:
        print(score.details(outcomes))
    if args.write_readme:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        score.write_readme(ROOT / score.SCORECARD_PAGE, tab, commit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
