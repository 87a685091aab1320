"""Which devices a check may ask for.

Two questions, two answers: the API process must not import torch (it asks ``nvidia-smi`` whether
the host has a GPU, once), while a process that simulates imports torch anyway and asks it. Either
way ``device: cuda`` where no CUDA device is visible is a spec error at ``/device``
(:func:`gradhealth.errors.cuda_unavailable`), never a failed simulation.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

from gradhealth.errors import cuda_unavailable


def gpu_count() -> int:
    """GPUs on this machine, asked of nvidia-smi so this process never initialises CUDA."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@functools.cache
def host_has_gpu() -> bool:
    """Whether this host has a GPU (asked once per process; torch-free)."""
    return gpu_count() > 0


def torch_cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch: only for processes that simulate)."""
    import torch

    return bool(torch.cuda.is_available())


def require_cuda_if_asked(requested: str | None) -> None:
    """Raise the ``/device`` spec error when ``requested`` is ``cuda`` and torch sees no CUDA device."""
    if requested == "cuda" and not torch_cuda_available():
        raise cuda_unavailable()
