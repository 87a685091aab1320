"""gradhealth.heap: big freed tensor buffers stay in the heap for reuse, and are handed back after.

Checked in fresh processes (the thresholds are process-wide and set once), on what the kernel
shows: whether a 64 MiB tensor (above glibc's own dynamic limit of 32 MiB) lives in the ``[heap]``
mapping of /proc/self/maps, reused after a free, or in a mapping of its own, made and unmade at
every allocation; and the resident size before and after :func:`release_freed_memory`.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt/malloc_trim are glibc's")

_PROBE = r"""
import json, sys, torch
from gradhealth.heap import keep_freed_memory, release_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def mapping(address):
    for line in open("/proc/self/maps"):
        fields = line.split()
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) > 5 else "anonymous"
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
t = torch.ones(8 << 20, dtype=torch.float64)  # 64 MiB
first = t.data_ptr()
del t
t = torch.ones(8 << 20, dtype=torch.float64)
where, again = mapping(t.data_ptr()), t.data_ptr() == first
held = rss_kib()
del t
freed = rss_kib()
release_freed_memory()
released = rss_kib()
print(json.dumps({"kept": kept, "where": where, "reused": again, "held": held, "freed": freed,
                  "released": released}))
"""


def _probe(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout)


def test_big_buffers_live_in_the_heap_only_when_kept() -> None:
    plain, kept = _probe("plain"), _probe("keep")
    assert plain["kept"] is False and kept["kept"] is True
    assert plain["where"] == "anonymous"  # glibc mapped it on its own: unmapped again at the free
    assert kept["where"] == "[heap]"  # kept there when freed (the other test: still resident)


def test_release_hands_freed_memory_back() -> None:
    kept = _probe("keep")
    held, freed, released = (int(kept[k]) for k in ("held", "freed", "released"))  # type: ignore[call-overload]
    # freed but kept: still resident; released: the 64 MiB leave the resident set (within a margin)
    assert freed > held - 8 * 1024
    assert released < freed - 48 * 1024


def test_a_small_free_heap_is_kept_after_a_job() -> None:
    """Under heap.RELEASE_OVER free, release leaves the heap be (a small check's few free pages
    would only be faulted in again by the next); above it, it hands the pages back."""
    from gradhealth import heap

    free = heap.free_heap_bytes()
    if free is None:
        pytest.skip("no mallinfo2 (glibc < 2.33): release always trims")
    trims: list[int] = []
    real = heap._libc
    lib = real()

    class Libc:  # glibc, but malloc_trim only counted
        def malloc_trim(self, pad: int) -> int:
            trims.append(pad)
            return 1

        def __getattr__(self, name: str) -> object:
            return getattr(lib, name)

    try:
        heap._libc = lambda: Libc()  # type: ignore[assignment]
        heap.RELEASE_OVER = free + (64 << 20)
        heap.release_freed_memory()
        assert trims == []
        heap.RELEASE_OVER = 0
        heap.release_freed_memory()
        assert trims == [0]
    finally:
        heap._libc = real  # type: ignore[assignment]
        heap.RELEASE_OVER = 32 << 20
