"""Which devices a check may ask for.

Two questions, two answers: the API process must not import torch (it asks ``nvidia-smi`` whether
the host has a GPU, once), while a process that simulates imports torch anyway and asks it. Either
way ``device: cuda`` where no CUDA device is visible is a spec error at ``/device``
(:func:`gradhealth.errors.cuda_unavailable`), never a failed simulation.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

from gradhealth.errors import cuda_unavailable, device_unavailable


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


def available_devices() -> list[str]:
    """The device names a simulation here may ask for: ``auto``, ``cpu`` and, where torch sees
    CUDA, ``cuda`` and each ``cuda:N`` (imports torch)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(count)] if count else [])


def check_device(requested: object) -> str | None:
    """``requested`` (text or a ``torch.device``) as the device name a simulation runs on: None
    and ``auto`` stay as given (CUDA when there is one), ``cpu``, ``cuda`` and ``cuda:N``
    normalised as torch writes them. Anything else is the ``/device`` spec error, naming the value
    and the devices there are: text torch does not read as a device (``gpu``, a typo), a device
    type the simulation does not run on (``mps``, ``xla``), CUDA without a CUDA device, or a
    ``cuda:N`` past the last one. (Every value but ``cuda`` used to run on the CPU without a word,
    so ``cuda:1`` quietly simulated on the CPU: newuser5 P5.) Imports torch."""
    if requested is None:
        return None
    import torch

    if isinstance(requested, torch.device):
        text = str(requested)
    elif isinstance(requested, str):
        text = requested
    else:
        raise device_unavailable(requested, f"is not a device name (a {type(requested).__name__})",
                                 available_devices())
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):  # "gpu", "banana", "cuda:x"
        raise device_unavailable(requested, "is not a device", available_devices()) from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise device_unavailable(requested, f"is a {device.type} device, which the simulation does not "
                                            "run on", available_devices())
    if not torch_cuda_available():
        if text == "cuda":
            raise cuda_unavailable()  # the message the CLI and the API already give
        raise device_unavailable(requested, "was requested but no CUDA device is available",
                                 available_devices())
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise device_unavailable(requested, f"names CUDA device {device.index}, but torch sees "
                                            f"{count}", available_devices())
    return str(device)


def require_cuda_if_asked(requested: object) -> None:
    """Raise the ``/device`` spec error when ``requested`` cannot be simulated on here: ``cuda``
    (or ``cuda:N``) where torch sees no such CUDA device, or a value that is no device the
    simulation runs on (:func:`check_device`). None and ``auto`` always pass."""
    check_device(requested)


def _cpus() -> int:
    """CPUs this process may run on (its affinity, which a container's cpuset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def simulation_threads(setting: int = 0) -> int:
    """How many CPU threads a simulation should use: ``setting`` when it is positive; else (auto)
    the CPUs not already busy by the 1-minute load average, at least 1.

    Why not torch's default (one per core): an intra-op parallel region waits for its slowest
    thread, and on a CPU that other processes keep busy (a shared CI runner, a worker beside
    others) that thread is often descheduled. A full check of deep_sigmoid_mlp on 2 cores took
    4.5 s with 2 threads against 3.0 s with 1 beside one busy process, and 28-30 s against 3.0 s
    beside a benchmark's three (README: CPU threads of a worker)."""
    if setting > 0:
        return setting
    cpus = _cpus()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return cpus
    return max(1, min(cpus, cpus - round(busy)))


def use_simulation_threads(setting: int = 0) -> int | None:
    """Set torch's intra-op threads to :func:`simulation_threads`, for the processes Gradient
    Health owns and that simulate (never behind a library caller's back). In auto mode an
    ``OMP_NUM_THREADS`` the user set is left alone (returns None). Imports nothing: before torch
    is loaded the number goes into ``OMP_NUM_THREADS``, which torch reads when it starts, so a
    check that fails validation still never loads torch."""
    if setting == 0 and "OMP_NUM_THREADS" in os.environ and "torch" not in sys.modules:
        return None
    n = simulation_threads(setting)
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_NUM_THREADS"] = str(n)
    elif torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def prepare_to_simulate(threads: int = 0) -> None:
    """This process is about to simulate: :func:`use_simulation_threads` with ``threads``, and
    freed tensor buffers kept in its heap for the next step (:mod:`gradhealth.heap`). For the
    processes Gradient Health owns (a job worker's handler, the CLI's in-process checks)."""
    from gradhealth.heap import keep_freed_memory

    use_simulation_threads(threads)
    keep_freed_memory()
