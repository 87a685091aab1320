"""One-seed-first remedy verification against every-seed verification, spec by spec.

The architecture check verifies a remedy on the spec's first seed and runs the other seeds only
where the verdict is close to a threshold (``gradhealth.analysis.check.decided``). This script runs
each spec both ways (the second with the margin test forced off, so that every remedy runs every
seed) and prints, per spec, how many remedies one seed decided and any remedy whose (fixed,
recommended) differs between the two. Specs a check refuses are skipped.

    .venv/bin/python bench/verify_seeds.py service/examples [more folders of .json/.yaml specs]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from gradhealth.analysis import check
from gradhealth.errors import GradHealthError


def _verdicts(raw: dict[str, Any]) -> dict[str, tuple[bool, bool, int | None]]:
    doc = check.run_architecture_check(raw)
    return {f"{f.code}/{r.id}/{json.dumps(r.patch, sort_keys=True)[:300]}":
            (r.verified.fixed, r.recommended, r.verified.seeds)
            for f in doc.findings for r in f.remedies if r.verified is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    decided = check.decided
    total = one = differ = 0
    for folder in args.folders:
        for path in sorted([*folder.glob("*.json"), *folder.glob("*.yaml")]):
            raw = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
            try:
                check.decided = decided
                first = _verdicts(raw)
                check.decided = lambda *a, **k: False  # every remedy runs every seed
                every = _verdicts(raw)
            except GradHealthError:
                continue
            finally:
                check.decided = decided
            changed = [k for k in first.keys() | every.keys() if first.get(k, (None,) * 3)[:2] != every.get(k, (None,) * 3)[:2]]
            seeds_one = sum(1 for v in first.values() if v[2] == 1)
            total, one, differ = total + len(first), one + seeds_one, differ + len(changed)
            print(f"{path.name:<55} {len(first):>2} remedies, {seeds_one:>2} on one seed"
                  + (f"  DIFFER: {changed}" if changed else ""), flush=True)
    print(f"\n{total} verified remedies, {one} decided on one seed, {differ} verdicts differ from every seed's")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
