"""Speed and memory of the log readers on a large file, against the usual tools, in the same run.

Generates (once, cached in a temp dir keyed by the size) a TensorBoard event file of ``--scalars``
scalars (default 2,000,000) over ``--tags`` tags (default 200), written the way
``torch.utils.tensorboard`` writes ``add_scalar``: one ``Event{wall_time, step, summary{value{tag,
simple_value}}}`` per scalar, tags interleaved step by step, step 0 left out as proto3 does. The
records are crafted here with numpy (framing, CRCs and protobuf bytes) so that writing them takes
seconds; a few are checked against tensorboard's own parser first. It also writes the same points as
a long CSV (``step,metric,value``, the native long form). Then it times, each in a fresh process so
that peak memory is its own:

* ``tensorboard (ours)``: :mod:`gradhealth.logs.readers.tensorboard` (best of ``--repeat``);
* ``EventAccumulator``: TensorBoard's ``EventAccumulator`` with ``size_guidance={"scalars": 0}``
  (keep every point), ``Reload()`` then ``Scalars(tag)`` for every tag (needs ``tensorboard``;
  best of ``--ea-repeat``, default 1: it takes about a minute for 2M scalars). Without tensorflow
  installed, tensorboard reads records with its pure-Python CRC-32C, as it does for most users of
  the ``tensorboard`` package alone;
* ``native CSV (ours)``: :mod:`gradhealth.logs.readers.native` on the CSV, when that module exists;
* ``pandas.read_csv``: the same CSV (needs ``pandas``).

Then the same comparisons as whole processes, as CI runs them (``--only whole``; wall time of a fresh
process, best of ``--repeat``, ``--ea-repeat`` for EventAccumulator): ``gradhealth check <file>
--format json`` on the event file and on the CSV (output to /dev/null), against ``python -c`` running
the EventAccumulator load above, and ``pandas.read_csv``, each with its imports.

Printed: rows per second, wall seconds, peak resident memory above the process's baseline after
imports (``VmHWM``; it includes the file's bytes where the reader holds them), and the ratios against the targets (ours >= 20x EventAccumulator, native CSV >=
0.5x pandas). Speed is measured, never asserted. Run from the repository root::

    .venv/bin/python bench/bench_logs.py
    .venv/bin/python bench/bench_logs.py --scalars 200000 --repeat 5
    .venv/bin/python bench/bench_logs.py --skip-ea              # without the slow EventAccumulator

On a CPU shared with other work the figures swing; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gradhealth.logs.readers.tensorboard import crc32c_rows, mask_crc  # noqa: E402

WALL0 = 1_718_000_000.0


def tag_names(count: int) -> list[str]:
    """Tags of the kinds and lengths real runs have (losses, lr, per-layer grad norms)."""
    fixed = ["train/loss", "val/loss", "lr", "grad_norm"]
    names = fixed[:count]
    i = 0
    while len(names) < count:
        names.append(f"grad_2.0_norm/model.layers.{i}.{'attn' if i % 2 else 'mlp'}.weight")
        i += 1
    return names


def points(n_scalars: int, n_tags: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(step, tag index, value as float32, wall time) per scalar, step-major like a training loop."""
    n_steps = -(-n_scalars // n_tags)
    step = np.repeat(np.arange(n_steps, dtype=np.int64), n_tags)[:n_scalars]
    tag = np.tile(np.arange(n_tags, dtype=np.int64), n_steps)[:n_scalars]
    rng = np.random.default_rng(0)
    value = (np.exp(-step / max(n_steps, 1)) * (1 + 0.1 * rng.standard_normal(n_scalars)) * (1 + tag % 7))
    value = value.astype(np.float32)
    value[rng.integers(0, n_scalars, size=max(1, n_scalars // 100_000))] = np.nan
    wall = WALL0 + step * 0.05 + tag * 1e-5
    return step, tag, value, wall


def _varint_len(v: np.ndarray) -> np.ndarray:
    out = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        out += v >= (1 << (7 * k))
    return out


def write_events(path: Path, n_scalars: int, n_tags: int) -> None:
    """The event file, crafted with numpy: header record + one record per scalar."""
    from gradhealth.logs.readers.tensorboard import frame_record

    step, tag, value, wall = points(n_scalars, n_tags)
    tags = [t.encode() for t in tag_names(n_tags)]
    tag_len = np.array([len(t) for t in tags], dtype=np.int64)[tag]
    assert tag_len.max() + 7 + 2 < 128, "tags must keep the nested lengths to one byte"
    step_bytes = np.where(step > 0, 1 + _varint_len(step), 0)   # proto3 leaves step 0 out
    lv = 2 + tag_len + 5                                          # value: 0a Lt tag 15 f32
    ls = 2 + lv                                                   # summary: 0a Lv value
    payload_len = 9 + step_bytes + 2 + ls                         # 09 f64 [10 step] 2a Ls summary
    rec_len = payload_len + 16
    first = frame_record(b"\x09" + np.float64(WALL0).tobytes() + b"\x1a\x0dbrain.Event:2")
    offsets = len(first) + np.concatenate([[0], np.cumsum(rec_len)[:-1]])
    out = np.zeros(len(first) + int(rec_len.sum()), dtype=np.uint8)
    out[:len(first)] = np.frombuffer(first, dtype=np.uint8)
    # records of one tag and one step width have one length: build each such group as one array
    key = tag * 16 + step_bytes
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    for group in np.split(order, cuts):
        t, sb, plen = int(tag[group[0]]), int(step_bytes[group[0]]), int(payload_len[group[0]])
        rows = np.zeros((len(group), plen + 16), dtype=np.uint8)
        rows[:, :8] = np.frombuffer(np.uint64(plen).tobytes(), dtype=np.uint8)
        rows[:, 8:12] = np.frombuffer(np.uint32(mask_crc(crc32c_rows(rows[:1, :8]))[0]).tobytes(),
                                      dtype=np.uint8)
        c = 12
        rows[:, c] = 0x09
        rows[:, c + 1:c + 9] = wall[group].astype("<f8").view(np.uint8).reshape(-1, 8)
        c += 9
        if sb:
            rows[:, c] = 0x10
            s = step[group].astype(np.uint64)
            for k in range(sb - 1):
                byte = (s >> np.uint64(7 * k)) & np.uint64(0x7F)
                if k < sb - 2:
                    byte |= np.uint64(0x80)
                rows[:, c + 1 + k] = byte.astype(np.uint8)
            c += sb
        tb = tags[t]
        head = bytes([0x2A, 2 + 2 + len(tb) + 5, 0x0A, 2 + len(tb) + 5, 0x0A, len(tb)]) + tb + b"\x15"
        rows[:, c:c + len(head)] = np.frombuffer(head, dtype=np.uint8)
        c += len(head)
        rows[:, c:c + 4] = value[group].astype("<f4").view(np.uint8).reshape(-1, 4)
        c += 4
        assert c == plen + 12
        crc = mask_crc(crc32c_rows(rows[:, 12:c])).astype("<u4")
        rows[:, c:c + 4] = crc.view(np.uint8).reshape(-1, 4)
        out[offsets[group][:, None] + np.arange(plen + 16)] = rows
    tmp = path.with_suffix(".part")
    out.tofile(tmp)
    tmp.replace(path)


def write_csv(path: Path, n_scalars: int, n_tags: int) -> None:
    """The same points as a long CSV: step,metric,value (float32 values, 9 significant digits)."""
    step, tag, value, _ = points(n_scalars, n_tags)
    names = tag_names(n_tags)
    tmp = path.with_suffix(".part")
    with tmp.open("w") as f:
        f.write("step,metric,value\n")
        chunk = 200_000
        for lo in range(0, n_scalars, chunk):
            f.writelines(f"{s},{names[t]},{v:.9g}\n" for s, t, v in zip(
                step[lo:lo + chunk].tolist(), tag[lo:lo + chunk].tolist(),
                value[lo:lo + chunk].tolist(), strict=True))
    tmp.replace(path)


def write_console(path: Path, n_scalars: int) -> None:
    """A training console of ``n_scalars`` values, five a line, as Python's logging prints them
    (``2024-05-01 12:03:07,123 - INFO - step 120 | loss 3.4102 | lr 6.000e-04 | ...``)."""
    rng = np.random.default_rng(0)
    lines = n_scalars // 5
    noise = rng.normal(0.0, 0.02, lines)
    tmp = path.with_suffix(".part")
    with tmp.open("w") as f:
        for lo in range(0, lines, 100_000):
            f.writelines(
                f"2024-05-01 {12 + s // 3600 % 12:02d}:{s // 60 % 60:02d}:{s % 60:02d},{s % 1000:03d} - INFO - "
                f"step {s} | loss {3 * math.exp(-s / 20_000) + 0.5 + noise[s - 1]:.4f} | "
                f"lr {1e-4 * min(1.0, s / 2000):.3e} | grad_norm {0.5 + (s * 7919 % 1000) / 1000:.3f} | "
                f"tokens/s {12_000 + s * 31 % 500} | epoch {s // 5000}\n"
                for s in range(lo + 1, min(lo + 100_000, lines) + 1))
    tmp.replace(path)


#: The baseline for a text log: every "name value" pair of each line by one regular expression, as a
#: script of a few lines would read a console (no formats told apart, no positions, no runs)
NAIVE_TEXT_SCRIPT = r"""
import re, sys
pair = re.compile(r"([A-Za-z_][\w/.]*)[ \t]*[:=]?[ \t]+(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    print(sum(len(pair.findall(line)) for line in f))
"""


def check_with_tensorboard(path: Path, n_scalars: int, n_tags: int) -> None:
    """The first records parse with tensorboard's protos as the values we meant."""
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        return
    import struct

    with path.open("rb") as f:
        data = f.read(200_000)
    pos, events = 0, []
    while pos + 12 <= len(data) and len(events) < n_tags + 1:
        (length,) = struct.unpack_from("<Q", data, pos)
        if pos + 16 + length > len(data):
            break
        events.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + length]))
        pos += 16 + length
    step, tag, value, wall = points(n_scalars, n_tags)
    names = tag_names(n_tags)
    assert events[0].file_version == "brain.Event:2"
    for i, ev in enumerate(events[1:]):
        v = ev.summary.value[0]
        assert (ev.step, v.tag, ev.wall_time) == (step[i], names[tag[i]], wall[i]), (i, ev)
        assert v.simple_value == value[i] or (np.isnan(v.simple_value) and np.isnan(value[i]))


# --- measuring, each in its own process ----------------------------------------------------------


def _rss_mib() -> float:
    """Peak resident memory of this process so far, MiB: ``VmHWM`` (Linux; unlike ``ru_maxrss`` it
    does not carry over the parent's peak through fork and exec), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def worker(which: str, path: Path, repeat: int) -> dict[str, object]:
    """Run one reader ``repeat`` times in this process; its best time and peak RSS growth."""
    if which == "ours":
        from gradhealth.logs.readers.registry import ReadLimits
        from gradhealth.logs.readers.tensorboard import READER

        limits = ReadLimits()  # before the baseline: its default reads the settings module once

        def run() -> int:
            return sum(len(s) for s in READER.read(path, limits).series)
    elif which == "native":
        from gradhealth.logs.readers import native
        from gradhealth.logs.readers.registry import ReadLimits

        with path.open("rb") as f:
            head = f.read(65536)
        if native.READER.sniff(path.name, head) <= 0:
            return {"skipped": "the native reader does not take the CSV"}

        limits = ReadLimits()

        def run() -> int:
            return sum(len(s) for s in native.READER.read(path, limits).series)
    elif which == "ea":
        import warnings

        warnings.simplefilter("ignore")
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        def run() -> int:
            ea = EventAccumulator(str(path), size_guidance={"scalars": 0})
            ea.Reload()
            return sum(len(ea.Scalars(t)) for t in ea.Tags()["scalars"])
    elif which == "pandas":
        import pandas as pd

        def run() -> int:
            return len(pd.read_csv(path))
    else:
        raise ValueError(which)
    base = _rss_mib()
    times, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = run()
        times.append(time.perf_counter() - t0)
    return {"rows": rows, "seconds": min(times), "peak_mib": _rss_mib() - base, "base_mib": base}


def measure(which: str, path: Path, repeat: int) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, "--worker", which, str(path), "--repeat", str(repeat)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        return {"skipped": tail[-1] if tail else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


EA_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
print(sum(len(ea.Scalars(t)) for t in ea.Tags()["scalars"]))
"""
PANDAS_SCRIPT = "import sys, pandas; print(len(pandas.read_csv(sys.argv[1])))"


def whole_process(cmd: list[str], repeat: int) -> dict[str, object]:
    """The best wall time of ``cmd`` as a fresh process (its output discarded)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        # gradhealth check exits 1 when it has findings (a CI gate), 2 on an error
        if proc.returncode not in (0, 1):
            tail = proc.stderr.strip().splitlines()
            return {"skipped": tail[-1] if tail else f"exit {proc.returncode}"}
    return {"seconds": min(times)}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scalars", type=int, default=2_000_000)
    ap.add_argument("--tags", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3, help="runs of our readers and pandas (best kept)")
    ap.add_argument("--ea-repeat", type=int, default=1, help="runs of EventAccumulator (best kept)")
    ap.add_argument("--skip-ea", action="store_true", help="leave out EventAccumulator (slow)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "gradhealth-bench-logs")
    ap.add_argument("--only", choices=("readers", "whole", "both"), default="both",
                    help="the readers in a process, whole processes, or both (default)")
    ap.add_argument("--text", action="store_true",
                    help="also a console log of the same number of values, five a line, as whole processes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("WHICH", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), args.repeat)))
        return 0

    args.cache.mkdir(parents=True, exist_ok=True)
    stem = f"{args.scalars}x{args.tags}"
    events = args.cache / f"events.out.tfevents.{stem}.bench"
    csv = args.cache / f"scalars-{stem}.csv"
    if not events.exists():
        t0 = time.perf_counter()
        write_events(events, args.scalars, args.tags)
        print(f"wrote {events} ({events.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f}s")
    if not csv.exists():
        t0 = time.perf_counter()
        write_csv(csv, args.scalars, args.tags)
        print(f"wrote {csv} ({csv.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f}s")
    console = args.cache / f"console-{args.scalars}.log"
    if args.text and not console.exists():
        t0 = time.perf_counter()
        write_console(console, args.scalars)
        print(f"wrote {console} ({console.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f}s")
    check_with_tensorboard(events, args.scalars, args.tags)

    print(f"{args.scalars:,} scalars over {args.tags} tags; before: {load()}")
    results: dict[str, dict[str, object]] = {}
    plan = [("tensorboard (ours)", "ours", events, args.repeat)]
    if not args.skip_ea:
        plan.append(("EventAccumulator", "ea", events, args.ea_repeat))
    plan += [("native CSV (ours)", "native", csv, args.repeat), ("pandas.read_csv", "pandas", csv, args.repeat)]
    if args.only == "whole":
        plan = []
    for label, which, path, repeat in plan:
        r = measure(which, path, repeat)
        results[label] = r
        if "skipped" in r:
            print(f"  {label:<20} skipped: {r['skipped']}")
            continue
        rate = r["rows"] / r["seconds"]
        r["rows_per_s"] = rate
        print(f"  {label:<20} {r['rows']:>10,} rows  {r['seconds']:8.2f} s  {rate:>12,.0f} rows/s  "
              f"peak +{r['peak_mib']:,.0f} MiB")

    def ratio(a: str, b: str, target: float | None) -> None:
        ra, rb = results.get(a, {}), results.get(b, {})
        if "rows_per_s" in ra and "rows_per_s" in rb:
            x = ra["rows_per_s"] / rb["rows_per_s"]
            verdict = ("no target" if target is None
                       else f"meets the target of {target:g}x" if x >= target else f"MISSES the target of {target:g}x")
            print(f"  {a} / {b}: {x:.3g}x ({verdict})")
            results[f"{a} / {b}"] = {"ratio": x, "target": target}

    ratio("tensorboard (ours)", "EventAccumulator", 20)
    ratio("native CSV (ours)", "pandas.read_csv", 0.5)

    if args.only != "readers":
        exe = str(Path(sys.executable).with_name("gradhealth"))
        whole = [("check events (process)", [exe, "check", str(events), "--format", "json"], args.repeat)]
        if not args.skip_ea:
            whole.append(("EventAccumulator (process)", [sys.executable, "-c", EA_SCRIPT, str(events)],
                          args.ea_repeat))
        whole += [("check CSV (process)", [exe, "check", str(csv), "--format", "json"], args.repeat),
                  ("pandas.read_csv (process)", [sys.executable, "-c", PANDAS_SCRIPT, str(csv)], args.repeat)]
        if args.text:
            whole += [("check console (process)", [exe, "check", str(console), "--format", "json"], args.repeat),
                      ("naive regex (process)", [sys.executable, "-c", NAIVE_TEXT_SCRIPT, str(console)],
                       args.repeat)]
        # The baselines' packages were byte-compiled by pip at install; an editable checkout is not,
        # and under PYTHONDONTWRITEBYTECODE every process would compile ours from source (~0.4 s).
        # Compile it as an installed wheel would be (what ./dev's set-up does), and say so.
        compiled = compileall.compile_dir(str(ROOT / "service"), quiet=1)
        print(f"package byte-compiled as an installed wheel is ({'ok' if compiled else 'FAILED'}; "
              f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})")
        print("whole processes (start-up and imports included):")
        for label, cmd, repeat in whole:
            r = whole_process(cmd, repeat)
            results[label] = r
            if "skipped" in r:
                print(f"  {label:<28} skipped: {r['skipped']}")
                continue
            r["rows"] = args.scalars
            r["rows_per_s"] = args.scalars / r["seconds"]
            print(f"  {label:<28} {r['seconds']:8.2f} s  {r['rows_per_s']:>12,.0f} rows/s")
        ratio("check events (process)", "EventAccumulator (process)", 20)
        ratio("check CSV (process)", "pandas.read_csv (process)", 0.5)
        if args.text:
            ratio("check console (process)", "naive regex (process)", None)
    print(f"after: {load()}")
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
