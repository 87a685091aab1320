"""Keep freed tensor buffers in the process heap while simulating (glibc), and hand them back after.

A simulation allocates and frees the same large buffers at every layer, seed and remedy
(activations, gradients, weights of a few MB each). glibc serves each allocation above its mmap
threshold with a fresh ``mmap`` and gives it back with ``munmap`` on free, so every step
page-faults its memory in again, zero-filled by the kernel: on a CNN's 8 MB activations that was
more than a third of a full check (bench/README.md). Raising the mmap and trim thresholds keeps
freed buffers in the heap for the next step to reuse; :func:`release_freed_memory` after a job
hands the free pages back to the kernel (``malloc_trim``), so a worker's resident size does not
stay at its largest job's.

Used by processes Gradient Health owns (the job worker, the CLI's in-process checks), never
behind a library caller's back: the thresholds are process-wide. A no-op where the C library is
not glibc (musl, macOS, Windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Buffers up to this size are kept in the heap when freed; above it glibc maps them as before.
#: glibc's own dynamic threshold already keeps buffers up to 32 MiB once it has seen one freed,
#: but a convolution's unfolded input in float64 is easily larger (75 MB for a 32x32 CNN at
#: batch 32), and those were mapped and faulted in afresh at every step.
KEEP_UP_TO = 1 << 30


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - raises AttributeError where the symbol is missing
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`KEEP_UP_TO` for this process (once).

    Returns whether they were raised (False where the C library is not glibc)."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_UP_TO) and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_UP_TO))


#: After a job, free heap up to this size stays: a small check leaves well under 1 MiB free,
#: and handing that back cost the next job more in page faults than it saved (0.2-0.25 ms per
#: small check in the worker, against a 6 ms check).
RELEASE_OVER = 32 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def free_heap_bytes() -> int | None:
    """Bytes free in the heap's chunks (glibc's ``mallinfo2().fordblks``, every arena; about 1 us),
    or None where it cannot be read (not glibc, or glibc before 2.33)."""
    libc = _libc()
    info = getattr(libc, "mallinfo2", None) if libc is not None else None
    if info is None:
        return None
    info.restype = _MallInfo2
    return int(info().fordblks)


def release_freed_memory() -> None:
    """Hand every whole free page of the heap back to the kernel (after a job), once more than
    :data:`RELEASE_OVER` bytes of it are free."""
    libc = _libc()
    if libc is None:
        return
    free = free_heap_bytes()
    if free is None or free > RELEASE_OVER:
        libc.malloc_trim(0)
