"""Start-up of the command line as whole processes, against bare Python and ``import torch``.

Times, each as a fresh process (median of ``--repeat`` runs, default 5), in one run:

* ``python -c pass``: the interpreter alone, the floor of any command;
* ``python -c "import torch"``: what a command pays when it loads torch;
* ``gradhealth --help``;
* a log check of a small CSV (``tests/data/logs/lightning-csv-ml-aos/metrics.csv``, ``--format json``);
* a check of a small spec (``example:relu_he_mlp --seeds 1 --no-verify``), which simulates, so it
  loads torch by design.

Printed: median and min seconds, and each median as a ratio to ``python -c pass`` and to
``import torch``. Nothing is asserted; on a CPU shared with other work the figures swing, so the
load average is printed with them. Run from the repository root::

    .venv/bin/python bench/bench_cli.py
    .venv/bin/python bench/bench_cli.py --repeat 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "tests" / "data" / "logs" / "lightning-csv-ml-aos" / "metrics.csv"
CLI = [sys.executable, "-m", "gradhealth.cli"]


def cases() -> dict[str, list[str]]:
    """Name -> argv, in the order they are printed."""
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "gradhealth --help": [*CLI, "--help"],
        "gradhealth check metrics.csv": [*CLI, "check", str(CSV), "--format", "json", "--fail-on", "never"],
        "gradhealth check example (1 seed)": [*CLI, "check", "example:relu_he_mlp", "--seeds", "1",
                                              "--no-verify", "--format", "json", "--fail-on", "never"],
    }


def time_once(argv: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADHEALTH_")}
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (median reported)")
    args = parser.parse_args(argv)
    commands = cases()
    results: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():
        time_once(command)  # warm the file cache, so every case is timed warm
    for _ in range(args.repeat):  # rounds over all cases, so a burst of load spreads over them
        for name, command in commands.items():
            results[name].append(time_once(command))
    base = statistics.median(results["python -c pass"])
    torch = statistics.median(results["python -c 'import torch'"])
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, median of {args.repeat} runs")
    print(f"{'case':36s} {'median s':>9s} {'min s':>7s} {'x pass':>7s} {'x torch':>8s}")
    for name, runs in results.items():
        med = statistics.median(runs)
        print(f"{name:36s} {med:9.3f} {min(runs):7.3f} {med / base:7.1f} {med / torch:8.2f}")


if __name__ == "__main__":
    main()
