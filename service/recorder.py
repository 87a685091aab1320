"""Record per-layer gradient norms from a PyTorch training loop, in Gradient Health's own log
format, for when your tools only log a total norm.

Needs only torch and the standard library (copy this one file into a project if you like)::

    from gradhealth.recorder import GradientRecorder

    recorder = GradientRecorder(model, "run/gradients.jsonl", every=10)
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        recorder.step(loss=loss, optimizer=optimizer)   # after backward, before clipping / step
        optimizer.step()
    recorder.close()
    print(recorder.send("http://localhost:8000")["links"]["self"])   # or: gradhealth check run/gradients.jsonl

Each logged step writes JSON Lines in the long form of the native format::

    {"step": 120, "metric": "loss", "value": 3.41}
    {"step": 120, "metric": "grad_norm", "value": 0.27}
    {"step": 120, "metric": "lr", "value": 0.0006}
    {"step": 120, "layer": "encoder.0.weight", "kind": "grad_norm", "value": 0.013}

Overhead: on logged steps one fused norm over all gradients (``torch._foreach_norm``) and a single
device-to-host copy; on other steps nothing but a counter.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import torch


class GradientRecorder:
    """Writes gradient norms, loss and learning rate every ``every`` steps."""

    def __init__(self, model: torch.nn.Module, path: str | Path, *, every: int = 1, weights_only: bool = False) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.every = every
        self.params = [(name, p) for name, p in model.named_parameters()
                       if p.requires_grad and (not weights_only or p.dim() > 1)]
        self._file = self.path.open("w", encoding="utf-8")
        self._count = 0

    def step(self, loss: torch.Tensor | float | None = None, *, lr: float | None = None,
             optimizer: torch.optim.Optimizer | None = None, step: int | None = None) -> None:
        """Call once per training step, after ``backward()``."""
        index = self._count if step is None else step
        self._count += 1
        if index % self.every:
            return
        named = [(name, p.grad) for name, p in self.params if p.grad is not None]
        # Everything that lives on the device goes into one tensor, so there is one host copy.
        parts = [torch.stack([n.to(torch.float64) for n in torch._foreach_norm([g.detach() for _, g in named])])
                 ] if named else []
        if isinstance(loss, torch.Tensor):
            parts.append(loss.detach().to(torch.float64).reshape(1).to(parts[0].device if parts else loss.device))
        values = torch.cat(parts).cpu().tolist() if parts else []
        layer_norms = values[:len(named)]
        total_norm = math.sqrt(sum(v * v for v in layer_norms)) if named else math.nan
        loss_value = values[-1] if isinstance(loss, torch.Tensor) else (None if loss is None else float(loss))
        if lr is None and optimizer is not None:
            lr = float(optimizer.param_groups[0]["lr"])
        rows: list[dict[str, Any]] = []
        now = time.time()
        if loss_value is not None:
            rows.append({"step": index, "metric": "loss", "value": loss_value, "wall_time": now})
        if named:
            rows.append({"step": index, "metric": "grad_norm", "value": total_norm, "wall_time": now})
        if lr is not None:
            rows.append({"step": index, "metric": "lr", "value": lr, "wall_time": now})
        rows += [{"step": index, "layer": name, "kind": "grad_norm", "value": v}
                 for (name, _), v in zip(named, layer_norms, strict=True)]
        self._file.write("".join(json.dumps(r) + "\n" for r in rows))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> GradientRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, server: str, *, api_key: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """Upload the log to a Gradient Health service; returns the job resource."""
        self.close()
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{self.path.name}\"\r\n"
                "Content-Type: application/x-ndjson\r\n\r\n").encode() + self.path.read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            server.rstrip("/") + "/v1/checks/logs?format=native", data=body, method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                     **({"X-API-Key": api_key} if api_key else {})})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own server
            return json.loads(response.read())
