"""A labelled corpus of small REAL training runs for the log check's scorecard.

Every case trains a small torch model on synthetic data (CPU, one thread, fixed seeds, well under
a few seconds), inducing one known pathology or none, and writes what the run logged in the
exact layout of one tool: TensorBoard's ``SummaryWriter`` (the real writer), Lightning's
``CSVLogger`` ``metrics.csv`` with ``grad_2.0_norm/<param>`` columns, the HF Trainer's
``trainer_state.json``, an MLflow file store, W&B ``wandb-history.jsonl``, console text, and
gradhealth's own :class:`~gradhealth.recorder.GradientRecorder` (the real recorder).

The labels are never typed by hand: each case's expected findings, the steps where they must be
located, and the findings it must not get are derived from what the script did and measured (the
steps it corrupted, the sample it poisoned, the schedule it set, the norms autograd gave), and the
script asserts that the run really shows what it was meant to (a healthy run really learnt, a
corrupted batch really spiked). The permissively licensed real logs of ``tests/data/logs`` join
the corpus with their known label: each trained well (no warning or error).

The corpus is cached under ``bench/scorecard/.corpus/`` (gitignored), keyed by this file's
source and the torch version; :func:`build` regenerates it when the key changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(__file__).resolve().parent / ".corpus"
REAL_LOGS = ROOT / "tests" / "data" / "logs"

# The log check's finding codes (service/report/context.py LOG_CODES), repeated so the corpus
# can be built without the package; the scorer checks that both agree.
CODES: tuple[str, ...] = (
    "nonfinite", "exploding_gradient", "gradient_spike", "vanishing_gradient", "dead_layer",
    "zero_gradient", "clipping_saturated", "loss_spike", "loss_divergence", "loss_plateau",
    "loss_oscillation", "validation_divergence", "reward_collapse", "reward_plateau", "kl_divergence", "truncated_log",
    "insufficient_data",
    "large_updates", "small_updates", "negative_learning_rate",
)


@dataclass
class Case:
    """One labelled log. ``expected``: code -> the step spans ([first, last], inclusive) where the
    finding must be located, each span holding a step the finding names, or None where no step is
    known. ``forbidden``: codes it must not get at
    severity ``forbidden_from`` or above. ``layers``: whether the log has per-layer norms (the
    AUTOTRAINER baseline is scored only there)."""

    name: str
    format: str
    path: str                      # relative to the corpus root (or absolute for real logs)
    pathology: str
    healthy: bool
    expected: dict[str, list[list[int]] | None] = field(default_factory=dict)
    forbidden: list[str] = field(default_factory=list)
    forbidden_from: str = "info"
    layers: bool = False
    facts: dict[str, Any] = field(default_factory=dict)   # what was measured, for the reader


@dataclass
class Rec:
    """What one training step logged."""

    step: int
    loss: float
    grad_norm: float               # total L2 norm before clipping
    lr: float
    layers: dict[str, float]
    clipped: float | None = None   # total norm after clipping
    val_loss: float | None = None
    val_acc: float | None = None


def _forbid(expected: dict[str, Any] | set[str], allowed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    return [c for c in CODES if c not in expected and c not in allowed]


# --- training ----------------------------------------------------------------------------------------


def _torch() -> Any:
    import torch
    torch.set_num_threads(1)
    return torch


def _regression(n: int = 512, d: int = 16, seed: int = 0) -> tuple[Any, Any]:
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x @ torch.randn(d, 1, generator=g) / math.sqrt(d)


def _classes(n: int = 512, d: int = 16, k: int = 3, seed: int = 0) -> tuple[Any, Any]:
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, (x[:, :k] + 0.3 * torch.randn(n, k, generator=g)).argmax(1)


def _mlp(d: int, widths: list[int], out: int, act: Callable[[], Any], seed: int) -> Any:
    torch = _torch()
    torch.manual_seed(seed)
    layers: list[Any] = []
    for w in widths:
        layers += [torch.nn.Linear(d, w), act()]
        d = w
    return torch.nn.Sequential(*layers, torch.nn.Linear(d, out))


def _fit(model: Any, data: tuple[Any, Any], steps: int, lr: float, *, loss: str = "mse",
         adam: bool = False, batch: int = 32, lr_factor: float = 1.0, clip: float | None = None,
         corrupt: set[int] | frozenset[int] = frozenset(), nan_at: int | None = None,
         val: tuple[Any, Any] | None = None, val_every: int = 10, recorder: Any = None,
         after_nonfinite: int = 5) -> list[Rec]:
    """Train and return what each step logged. A corrupted batch has its targets x100 (its update
    is skipped, as trainers that flag a batch do); ``nan_at`` poisons one sample of that batch
    with a NaN. Stops ``after_nonfinite`` steps after the loss first is not finite."""
    torch = _torch()
    nn = torch.nn
    x, y = data
    opt = (torch.optim.Adam if adam else torch.optim.SGD)(model.parameters(), lr=lr)
    lossf = nn.functional.mse_loss if loss == "mse" else nn.functional.cross_entropy
    recs: list[Rec] = []
    bad_since: int | None = None
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=torch.Generator().manual_seed(1000 + step))
        xb, yb = x[idx], y[idx]
        if step in corrupt:
            yb = yb * 100.0
        if step == nan_at:
            xb = xb.clone()
            xb[0, 0] = float("nan")
        value = lossf(model(xb), yb)
        opt.zero_grad()
        value.backward()
        if recorder is not None:
            recorder.step(loss=value, optimizer=opt, step=step)
        norms = {n: float(p.grad.norm()) for n, p in model.named_parameters() if p.grad is not None}
        total = math.sqrt(sum(v * v for v in norms.values()))
        clipped = None
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            clipped = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters())))
        rec = Rec(step, value.item(), total, opt.param_groups[0]["lr"], norms, clipped)
        if val is not None and (step % val_every == val_every - 1 or step == steps - 1):
            with torch.no_grad():
                out = model(val[0])
                rec.val_loss = lossf(out, val[1]).item()
                if loss != "mse":
                    rec.val_acc = float((out.argmax(1) == val[1]).float().mean())
        recs.append(rec)
        if step not in corrupt:
            opt.step()
        for g in opt.param_groups:
            g["lr"] *= lr_factor
        if not math.isfinite(rec.loss) and bad_since is None:
            bad_since = step
        if bad_since is not None and step - bad_since >= after_nonfinite:
            break
    return recs


# --- writers: the exact layouts of each tool ---------------------------------------------------------

T0 = 1_767_000_000.0  # a fixed wall clock, so the corpus is the same on every build


def write_tensorboard(folder: Path, recs: list[Rec], layers: bool = False, clipped: bool = False) -> Path:
    """Through the real writer, torch.utils.tensorboard.SummaryWriter."""
    from torch.utils.tensorboard import SummaryWriter

    out = folder / "runs" / "exp"
    w = SummaryWriter(log_dir=str(out))
    for r in recs:
        w.add_scalar("train/loss", r.loss, r.step, walltime=T0 + r.step)
        w.add_scalar("train/grad_norm", r.grad_norm, r.step, walltime=T0 + r.step)
        w.add_scalar("lr", r.lr, r.step, walltime=T0 + r.step)
        if clipped and r.clipped is not None:
            w.add_scalar("train/grad_norm_clipped", r.clipped, r.step, walltime=T0 + r.step)
        if layers:
            for name, v in r.layers.items():
                w.add_scalar(f"grad_norm/{name}", v, r.step, walltime=T0 + r.step)
        if r.val_loss is not None:
            w.add_scalar("val/loss", r.val_loss, r.step, walltime=T0 + r.step)
    w.close()
    return out


def write_lightning(folder: Path, recs: list[Rec], hparams: dict[str, Any] | None = None,
                    prefix: str = "") -> Path:
    """Lightning CSVLogger: lightning_logs/version_0/metrics.csv, keys sorted, blank where a row
    did not log a key, validation rows apart; grad_norm() keys grad_2.0_norm/<param>."""
    out = folder / "lightning_logs" / "version_0"
    out.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    for r in recs:
        row: dict[str, Any] = {"epoch": r.step // 50, "step": r.step, "train_loss": r.loss,
                               "lr-SGD": r.lr, "grad_2.0_norm_total": r.grad_norm}
        row.update({f"grad_2.0_norm/{prefix}{n}": v for n, v in r.layers.items()})
        rows.append(row)
        if r.val_loss is not None:
            rows.append({"epoch": r.step // 50, "step": r.step, "val_loss": r.val_loss})
    keys = sorted({k for row in rows for k in row})
    text = ",".join(keys) + "\n" + "".join(
        ",".join("" if row.get(k) is None else str(row[k]) for k in keys) + "\n" for row in rows)
    (out / "metrics.csv").write_text(text)
    (out / "hparams.yaml").write_text("".join(f"{k}: {v}\n" for k, v in (hparams or {}).items()) or "{}\n")
    return out


HF_STEP = 1   # the Trainer logs global_step, counted after the update: step s is logged as s + 1


def _shift(expected: dict[str, Any], by: int) -> dict[str, Any]:
    """Labels in a log's own step numbering."""
    return {k: None if v is None else [[lo + by, hi + by] for lo, hi in v] for k, v in expected.items()}


def write_hf(folder: Path, recs: list[Rec], epoch_steps: int = 50) -> Path:
    """HF Trainer trainer_state.json (json.dumps writes NaN/Infinity as the Trainer's file does)."""
    history: list[dict[str, Any]] = []
    for r in recs:
        e = round((r.step + 1) / epoch_steps, 4)
        history.append({"epoch": e, "grad_norm": r.grad_norm, "learning_rate": r.lr,
                        "loss": round(r.loss, 4) if math.isfinite(r.loss) else r.loss, "step": r.step + HF_STEP})
        if r.val_loss is not None:
            history.append({"epoch": e, "eval_loss": r.val_loss, "eval_runtime": 0.01, "step": r.step + HF_STEP})
    n = recs[-1].step + 1
    state = {"best_metric": None, "best_model_checkpoint": None, "epoch": n / epoch_steps,
             "eval_steps": 10, "global_step": n, "is_hyper_param_search": False,
             "is_local_process_zero": True, "is_world_process_zero": True, "log_history": history,
             "logging_steps": 1, "max_steps": n, "num_train_epochs": math.ceil(n / epoch_steps),
             "save_steps": 500, "total_flos": 0.0, "train_batch_size": 32, "trial_name": None,
             "trial_params": None}
    out = folder / "checkpoint-final"
    out.mkdir(parents=True)
    (out / "trainer_state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return out / "trainer_state.json"


def write_mlflow(folder: Path, recs: list[Rec], params: dict[str, str], layers: bool = False,
                 clipped: bool = False) -> Path:
    """MLflow file store: mlruns/<exp>/<run>/metrics/<key> lines '<ms> <value> <step>', params.
    Per-layer norms are keys gradients/<param>: the file store cannot hold a key grad_norm and a
    folder grad_norm/ side by side."""
    run = folder / "mlruns" / "1" / "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    (folder / "mlruns" / "1").mkdir(parents=True)
    (folder / "mlruns" / "1" / "meta.yaml").write_text(
        "artifact_location: file:./mlruns/1\nexperiment_id: '1'\nlifecycle_stage: active\nname: scorecard\n")
    norm = "grad_norm_clipped" if clipped else "grad_norm"
    metrics: dict[str, list[tuple[int, float]]] = {"loss": [], norm: [], "lr": [], "val_loss": []}
    for r in recs:
        metrics["loss"].append((r.step, r.loss))
        metrics[norm].append((r.step, float(r.clipped or 0.0) if clipped else r.grad_norm))
        metrics["lr"].append((r.step, r.lr))
        if r.val_loss is not None:
            metrics["val_loss"].append((r.step, r.val_loss))
        if layers:
            for name, v in r.layers.items():
                metrics.setdefault(f"gradients/{name}", []).append((r.step, v))
    for key, points in metrics.items():
        if not points:
            continue
        f = run / "metrics" / key
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(f"{int((T0 + s) * 1000)} {v!r} {s}\n" for s, v in points))
    for key, value in params.items():
        f = run / "params" / key
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value)
    (run / "meta.yaml").write_text("experiment_id: '1'\nrun_id: 0f1e2d3c4b5a69788796a5b4c3d2e1f0\nstatus: 3\n")
    return run


def write_wandb(folder: Path, recs: list[Rec], clipped: bool = False) -> Path:
    """W&B run folder files/wandb-history.jsonl, one JSON object per logged step."""
    out = folder / "wandb" / "run-20260101_000000-abc123" / "files"
    out.mkdir(parents=True)
    lines = []
    for r in recs:
        row: dict[str, Any] = {"_step": r.step, "_runtime": float(r.step), "_timestamp": T0 + r.step,
                               "train/loss": r.loss, "train/lr": r.lr}
        if clipped:
            row["train/grad_norm_clipped"] = r.clipped
        else:
            row["train/grad_norm"] = r.grad_norm
        if r.val_loss is not None:
            row["val/loss"] = r.val_loss
            if r.val_acc is not None:
                row["val/acc"] = r.val_acc
        lines.append(json.dumps(row))
    (out / "wandb-history.jsonl").write_text("\n".join(lines) + "\n")
    return out / "wandb-history.jsonl"


def write_text(folder: Path, recs: list[Rec], total: int) -> Path:
    """Console text as a training script prints it."""
    lines = []
    for r in recs:
        lines.append(f"step {r.step}/{total} | loss {r.loss:.5f} | grad_norm {r.grad_norm:.4f} | lr {r.lr:.3e}")
        if r.val_loss is not None:
            acc = f" | val_acc {r.val_acc:.4f}" if r.val_acc is not None else ""
            lines.append(f"step {r.step}/{total} | val_loss {r.val_loss:.5f}{acc}")
    folder.mkdir(parents=True)
    (folder / "train.log").write_text("\n".join(lines) + "\n")
    return folder / "train.log"


# --- measurements the labels are derived from ----------------------------------------------------


def _median(v: list[float]) -> float:
    s = sorted(v)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def _first_nonfinite(recs: list[Rec]) -> int | None:
    return next((r.step for r in recs if not (math.isfinite(r.loss) and math.isfinite(r.grad_norm))), None)


def _spiked(recs: list[Rec], attr: str, steps: set[int], factor: float) -> bool:
    """Every step in ``steps`` is ``factor`` x above the median of the 10 steps before it."""
    by = {r.step: getattr(r, attr) for r in recs}
    return all(by[s] > factor * _median([by[j] for j in range(max(0, s - 10), s) if j not in steps]) for s in steps)


def _learnt(recs: list[Rec], fall: float = 0.5) -> bool:
    first = _median([r.loss for r in recs[:10]])
    last = _median([r.loss for r in recs[-10:]])
    return last < fall * first


def _order(recs: list[Rec]) -> list[str]:
    return list(recs[0].layers)


def _weights(recs: list[Rec]) -> list[str]:
    return [n for n in _order(recs) if n.endswith("weight")]


# --- the cases ----------------------------------------------------------------------------------


def _deep_sigmoid(seed: int) -> tuple[list[Rec], dict[str, Any]]:
    torch = _torch()
    model = _mlp(16, [16] * 16, 1, torch.nn.Sigmoid, seed)
    recs = _fit(model, _regression(seed=seed), 60, 0.1)
    w = _weights(recs)
    ratio = _median([r.layers[w[0]] / r.layers[w[-1]] for r in recs])
    assert ratio < 1e-3, ratio   # the run really vanishes (autograd's own norms)
    return recs, {"first_over_last": ratio, "first": w[0], "last": w[-1]}


def case_deep_sigmoid_lightning(folder: Path) -> Case:
    recs, facts = _deep_sigmoid(1)
    path = write_lightning(folder, recs, prefix="model.")
    return Case("deep_sigmoid_lightning", "lightning", str(path.relative_to(folder.parent)),
                "vanishing", False, {"vanishing_gradient": None},
                _forbid({"vanishing_gradient"}, {"loss_plateau"}), layers=True, facts=facts)


def case_deep_sigmoid_recorder(folder: Path) -> Case:
    from gradhealth.recorder import GradientRecorder

    torch = _torch()
    model = _mlp(16, [16] * 16, 1, torch.nn.Sigmoid, 2)
    folder.mkdir(parents=True)
    with GradientRecorder(model, folder / "gradients.jsonl", flush_interval=0) as rec:
        recs = _fit(model, _regression(seed=2), 60, 0.1, recorder=rec)
    w = _weights(recs)
    ratio = _median([r.layers[w[0]] / r.layers[w[-1]] for r in recs])
    assert ratio < 1e-3, ratio
    return Case("deep_sigmoid_recorder", "native", f"{folder.name}/gradients.jsonl", "vanishing", False,
                {"vanishing_gradient": None}, _forbid({"vanishing_gradient"}, {"loss_plateau"}),
                layers=True, facts={"first_over_last": ratio})


def _diverging(lr: float, factor: float, seed: int, steps: int,
               after_nonfinite: int = 5) -> tuple[list[Rec], dict[str, Any], dict[str, Any]]:
    torch = _torch()
    model = _mlp(16, [64, 64], 1, torch.nn.ReLU, seed)
    recs = _fit(model, _regression(seed=seed), steps, lr, lr_factor=factor, after_nonfinite=after_nonfinite)
    bad = _first_nonfinite(recs)
    finite = [r.grad_norm for r in recs if math.isfinite(r.grad_norm)]
    growth = max(finite) / _median(finite[:5])
    assert growth > 1e3, growth   # the gradient norm really grew by three decades or more
    # where the explosion is: from the first step the norm is 10x its start to where it ends
    start = next(r.step for r in recs if math.isfinite(r.grad_norm) and r.grad_norm > 10 * _median(finite[:5]))
    expected: dict[str, Any] = {"exploding_gradient": [[start, recs[-1].step]]}
    if bad is not None:
        expected["nonfinite"] = [[bad, bad]]
    return recs, expected, {"growth": growth, "first_nonfinite": bad, "lr0": lr, "lr_factor": factor}


_BLOWUP_COMPANIONS = {"loss_divergence", "loss_spike", "gradient_spike", "loss_oscillation"}


def case_high_lr_tensorboard(folder: Path) -> Case:
    recs, expected, facts = _diverging(0.8, 1.0, 4, 150)   # steady growth for ~40 steps, then NaN
    path = write_tensorboard(folder, recs)
    return Case("high_lr_tensorboard", "tensorboard", str(path.relative_to(folder.parent)), "too-high lr",
                False, expected, _forbid(expected, _BLOWUP_COMPANIONS), facts=facts)


def case_high_lr_text(folder: Path) -> Case:
    recs, expected, facts = _diverging(0.8, 1.0, 6, 150, after_nonfinite=40)  # blows up at once; the script goes on
    path = write_text(folder, recs, 80)
    return Case("high_lr_text", "text", str(path.relative_to(folder.parent)), "too-high lr", False,
                expected, _forbid(expected, _BLOWUP_COMPANIONS), facts=facts)


def case_exp_lr_hf(folder: Path) -> Case:
    recs, expected, facts = _diverging(1e-3, 1.25, 5, 200)
    path = write_hf(folder, recs)
    expected = _shift(expected, HF_STEP)
    return Case("exp_lr_hf", "hf_trainer", str(path.relative_to(folder.parent)), "exponential lr", False,
                expected, _forbid(expected, _BLOWUP_COMPANIONS), facts=facts)


def case_exp_lr_wandb(folder: Path) -> Case:
    recs, expected, facts = _diverging(1e-3, 1.2, 6, 200)
    path = write_wandb(folder, recs)
    return Case("exp_lr_wandb", "wandb", str(path.relative_to(folder.parent)), "exponential lr", False,
                expected, _forbid(expected, _BLOWUP_COMPANIONS), facts=facts)


def case_dead_layer_mlflow(folder: Path) -> Case:
    torch = _torch()
    model = _mlp(16, [32, 32, 32], 1, torch.nn.ReLU, 7)
    with torch.no_grad():
        model[2].bias.fill_(-100.0)   # the second hidden layer's ReLU never fires: dead
    recs = _fit(model, _regression(seed=7), 80, 0.05)
    dead = [n for n in _order(recs) if all(r.layers[n] == 0.0 for r in recs)]
    assert dead, "no parameter had a zero gradient on every step"
    path = write_mlflow(folder, recs, {"lr": "0.05"}, layers=True)
    expected = {"dead_layer": None}
    return Case("dead_layer_mlflow", "mlflow", str(path.relative_to(folder.parent)), "dead layer", False,
                expected, _forbid(expected, {"zero_gradient", "loss_plateau"}), layers=True,
                facts={"dead": dead})


def case_dead_layer_recorder(folder: Path) -> Case:
    from gradhealth.recorder import GradientRecorder

    torch = _torch()
    model = _mlp(16, [32, 32, 32], 1, torch.nn.ReLU, 8)
    with torch.no_grad():
        model[4].bias.fill_(-100.0)
    folder.mkdir(parents=True)
    with GradientRecorder(model, folder / "gradients.jsonl", flush_interval=0) as rec:
        recs = _fit(model, _regression(seed=8), 80, 0.05, recorder=rec)
    dead = [n for n in _order(recs) if all(r.layers[n] == 0.0 for r in recs)]
    assert dead
    expected = {"dead_layer": None}
    return Case("dead_layer_recorder", "native", f"{folder.name}/gradients.jsonl", "dead layer", False,
                expected, _forbid(expected, {"zero_gradient", "loss_plateau"}), layers=True,
                facts={"dead": dead})


def _saturated(seed: int, max_norm: float) -> tuple[list[Rec], dict[str, Any]]:
    torch = _torch()
    model = _mlp(16, [32], 1, torch.nn.ReLU, seed)
    x, y = _regression(seed=seed)
    recs = _fit(model, (x, 10 * y), 120, 1e-3, clip=max_norm)
    share = sum(r.grad_norm > max_norm for r in recs) / len(recs)
    assert share >= 0.95, share   # clipping acts on (nearly) every step
    return recs, {"clipped_share": share, "max_norm": max_norm}


def case_clip_saturated_mlflow(folder: Path) -> Case:
    recs, facts = _saturated(9, 0.5)
    path = write_mlflow(folder, recs, {"max_norm": "0.5", "lr": "0.001"})
    expected = {"clipping_saturated": None}
    return Case("clip_saturated_mlflow", "mlflow", str(path.relative_to(folder.parent)), "saturated clipping",
                False, expected, _forbid(expected, {"loss_plateau"}), facts=facts)


def case_clip_saturated_wandb(folder: Path) -> Case:
    recs, facts = _saturated(10, 0.25)
    path = write_wandb(folder, recs, clipped=True)
    expected = {"clipping_saturated": None}
    return Case("clip_saturated_wandb", "wandb", str(path.relative_to(folder.parent)), "saturated clipping",
                False, expected, _forbid(expected, {"loss_plateau"}), facts=facts)


def _tiny_lr(seed: int) -> tuple[list[Rec], dict[str, Any]]:
    torch = _torch()
    model = _mlp(16, [32], 3, torch.nn.ReLU, seed)
    data = _classes(seed=seed)
    lossf = torch.nn.functional.cross_entropy
    with torch.no_grad():
        first = lossf(model(data[0]), data[1]).item()
    recs = _fit(model, data, 200, 1e-6, loss="ce", val=_classes(256, seed=seed + 100), val_every=20)
    with torch.no_grad():
        last = lossf(model(data[0]), data[1]).item()
    assert abs(last / first - 1) < 0.01, (first, last)   # nothing learnt: the full-data loss moved < 1 %
    return recs, {"first_loss": first, "last_loss": last, "lr": 1e-6}


def case_tiny_lr_text(folder: Path) -> Case:
    recs, facts = _tiny_lr(11)
    path = write_text(folder, recs, 200)
    expected = {"loss_plateau": None}
    return Case("tiny_lr_text", "text", str(path.relative_to(folder.parent)), "lr too small", False,
                expected, _forbid(expected), facts=facts)


def case_tiny_lr_tensorboard(folder: Path) -> Case:
    recs, facts = _tiny_lr(12)
    path = write_tensorboard(folder, recs)
    expected = {"loss_plateau": None}
    return Case("tiny_lr_tensorboard", "tensorboard", str(path.relative_to(folder.parent)), "lr too small",
                False, expected, _forbid(expected), facts=facts)


def _overfit(seed: int) -> tuple[list[Rec], dict[str, Any]]:
    """Memorise 64 samples with random labels: training loss falls, validation loss rises."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 16, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    vx = torch.randn(256, 16, generator=g)
    vy = torch.randint(0, 3, (256,), generator=g)
    model = _mlp(16, [128, 128], 3, torch.nn.ReLU, seed)
    recs = _fit(model, (x, y), 300, 3e-3, loss="ce", adam=True, val=(vx, vy), val_every=10)
    vals = [r.val_loss for r in recs if r.val_loss is not None]
    best = min(vals)
    assert vals[-1] > 1.5 * best and _learnt(recs), (best, vals[-1])
    start = next(r.step for r in recs if r.val_loss == best)
    return recs, {"best_val": best, "final_val": vals[-1], "best_at": start}


def case_overfit_wandb(folder: Path) -> Case:
    recs, facts = _overfit(13)
    path = write_wandb(folder, recs)
    expected = {"validation_divergence": None}
    return Case("overfit_wandb", "wandb", str(path.relative_to(folder.parent)), "overfitting", False,
                expected, _forbid(expected, {"loss_plateau"}), facts=facts)


def case_overfit_lightning(folder: Path) -> Case:
    recs, facts = _overfit(14)
    path = write_lightning(folder, recs)
    expected = {"validation_divergence": None}
    return Case("overfit_lightning", "lightning", str(path.relative_to(folder.parent)), "overfitting",
                False, expected, _forbid(expected, {"loss_plateau"}), layers=True, facts=facts)


def _corrupted(seed: int) -> tuple[list[Rec], dict[str, Any], dict[str, Any]]:
    torch = _torch()
    model = _mlp(16, [32], 1, torch.nn.ReLU, seed)
    steps = 200
    corrupt = {70, 120, 171}
    recs = _fit(model, _regression(seed=seed), steps, 0.02, corrupt=corrupt)
    assert _spiked(recs, "loss", corrupt, 100.0) and _learnt(recs)
    expected: dict[str, Any] = {"loss_spike": [[s, s] for s in sorted(corrupt)]}
    if _spiked(recs, "grad_norm", corrupt, 10.0):
        expected["gradient_spike"] = [[s, s] for s in sorted(corrupt)]
    return recs, expected, {"corrupted": sorted(corrupt)}


def case_corrupt_text(folder: Path) -> Case:
    recs, expected, facts = _corrupted(15)
    path = write_text(folder, recs, 200)
    return Case("corrupted_batches_text", "text", str(path.relative_to(folder.parent)), "corrupted batches",
                False, expected, _forbid(expected), facts=facts)


def case_corrupt_lightning(folder: Path) -> Case:
    recs, expected, facts = _corrupted(16)
    path = write_lightning(folder, recs)
    return Case("corrupted_batches_lightning", "lightning", str(path.relative_to(folder.parent)),
                "corrupted batches", False, expected, _forbid(expected), layers=True, facts=facts)


def _poisoned(seed: int, recorder_folder: Path | None = None) -> tuple[list[Rec], dict[str, Any], dict[str, Any]]:
    torch = _torch()
    model = _mlp(16, [32], 1, torch.nn.ReLU, seed)
    nan_at = 90
    if recorder_folder is not None:
        from gradhealth.recorder import GradientRecorder

        recorder_folder.mkdir(parents=True)
        with GradientRecorder(model, recorder_folder / "gradients.jsonl", flush_interval=0) as rec:
            recs = _fit(model, _regression(seed=seed), 150, 0.02, nan_at=nan_at, recorder=rec)
    else:
        recs = _fit(model, _regression(seed=seed), 150, 0.02, nan_at=nan_at)
    assert _first_nonfinite(recs) == nan_at
    expected: dict[str, Any] = {"nonfinite": [[nan_at, nan_at]]}
    return recs, expected, {"nan_sample_at": nan_at}


def case_nan_recorder(folder: Path) -> Case:
    _, expected, facts = _poisoned(17, folder)
    return Case("nan_sample_recorder", "native", f"{folder.name}/gradients.jsonl", "NaN sample", False,
                expected, _forbid(expected, {"loss_plateau"}), layers=True, facts=facts)


def case_nan_hf(folder: Path) -> Case:
    recs, expected, facts = _poisoned(18)
    path = write_hf(folder, recs)
    expected = _shift(expected, HF_STEP)
    return Case("nan_sample_hf", "hf_trainer", str(path.relative_to(folder.parent)), "NaN sample", False,
                expected, _forbid(expected, {"loss_plateau"}), facts=facts)


# healthy runs: each must really learn; nothing may be found at warning or above, and no
# pathology at all (info included) except a plateau after convergence, which is information


def _healthy(expected_learnt: list[Rec]) -> None:
    assert _learnt(expected_learnt), "a healthy run did not learn"


def case_healthy_mlp_recorder(folder: Path) -> Case:
    from gradhealth.recorder import GradientRecorder

    torch = _torch()
    model = _mlp(16, [64, 64, 64], 3, torch.nn.ReLU, 19)
    folder.mkdir(parents=True)
    with GradientRecorder(model, folder / "gradients.jsonl", flush_interval=0) as rec:
        recs = _fit(model, _classes(seed=19), 200, 3e-3, loss="ce", adam=True, recorder=rec)
    _healthy(recs)
    return Case("healthy_mlp_recorder", "native", f"{folder.name}/gradients.jsonl", "none", True, {},
                _forbid({}, {"loss_plateau"}), layers=True)


def case_healthy_mlp_hf_clipped(folder: Path) -> Case:
    torch = _torch()
    model = _mlp(16, [64, 64], 3, torch.nn.ReLU, 20)
    recs = _fit(model, _classes(seed=20), 200, 0.05, loss="ce", clip=1.0,
                val=_classes(256, seed=120), val_every=20)
    _healthy(recs)
    path = write_hf(folder, recs)
    return Case("healthy_mlp_hf_clipped", "hf_trainer", str(path.relative_to(folder.parent)), "none", True,
                {}, _forbid({}, {"loss_plateau"}), facts={"clipped_share": sum(r.grad_norm > 1.0 for r in recs) / len(recs)})


def case_healthy_cnn_tensorboard(folder: Path) -> Case:
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(21)
    g = torch.Generator().manual_seed(21)
    x = torch.randn(512, 1, 12, 12, generator=g)
    y = (x[:, 0, :6].mean((1, 2)) > x[:, 0, 6:].mean((1, 2))).long()   # top half brighter?
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 2))
    recs = _fit(model, (x, y), 200, 3e-3, loss="ce", adam=True)
    _healthy(recs)
    path = write_tensorboard(folder, recs, layers=True)
    return Case("healthy_cnn_tensorboard", "tensorboard", str(path.relative_to(folder.parent)), "none",
                True, {}, _forbid({}, {"loss_plateau"}), layers=True)


class _LSTMNet:
    """A next-token LSTM; built lazily so that torch is imported only when the corpus is built."""

    @staticmethod
    def make(vocab: int, seed: int) -> Any:
        torch = _torch()
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = nn.Embedding(vocab, 16)
                self.lstm = nn.LSTM(16, 32, batch_first=True)
                self.head = nn.Linear(32, vocab)

            def forward(self, x: Any) -> Any:
                h, _ = self.lstm(self.emb(x))
                return self.head(h[:, -1])

        torch.manual_seed(seed)
        return Net()


def _lstm_run(seed: int, clip: float | None) -> list[Rec]:
    torch = _torch()
    vocab = 8
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (512, 10), generator=g)
    y = (x[:, 0] + x[:, -1]) % vocab   # learnable from the sequence's ends
    recs = _fit(_LSTMNet.make(vocab, seed), (x, y), 250, 1e-2, loss="ce", adam=True, clip=clip)
    _healthy(recs)
    return recs


def case_healthy_lstm_lightning_clipped(folder: Path) -> Case:
    recs = _lstm_run(22, clip=1.0)
    path = write_lightning(folder, recs, hparams={"gradient_clip_val": 1.0}, prefix="model.")
    return Case("healthy_lstm_lightning_clipped", "lightning", str(path.relative_to(folder.parent)), "none",
                True, {}, _forbid({}, {"loss_plateau"}), layers=True,
                facts={"clipped_share": sum(r.grad_norm > 1.0 for r in recs) / len(recs)})


def case_healthy_lstm_mlflow(folder: Path) -> Case:
    recs = _lstm_run(23, clip=None)
    path = write_mlflow(folder, recs, {"lr": "0.01"}, layers=True)
    return Case("healthy_lstm_mlflow", "mlflow", str(path.relative_to(folder.parent)), "none", True, {},
                _forbid({}, {"loss_plateau"}), layers=True)


def case_healthy_regression_wandb(folder: Path) -> Case:
    torch = _torch()
    model = _mlp(16, [32, 32], 1, torch.nn.Tanh, 24)
    x, y = _regression(640, seed=24)   # one teacher: validation held out from the same data
    recs = _fit(model, (x[:512], y[:512]), 200, 3e-3, adam=True, val=(x[512:], y[512:]))
    _healthy(recs)
    path = write_wandb(folder, recs)
    return Case("healthy_regression_wandb", "wandb", str(path.relative_to(folder.parent)), "none", True,
                {}, _forbid({}, {"loss_plateau"}))


def case_healthy_text(folder: Path) -> Case:
    torch = _torch()
    model = _mlp(16, [64], 3, torch.nn.ReLU, 25)
    recs = _fit(model, _classes(seed=25), 200, 0.1, loss="ce", val=_classes(256, seed=125), val_every=20)
    _healthy(recs)
    path = write_text(folder, recs, 200)
    return Case("healthy_mlp_text", "text", str(path.relative_to(folder.parent)), "none", True, {},
                _forbid({}, {"loss_plateau"}))


def case_deep_sigmoid_tensorboard(folder: Path) -> Case:
    recs, facts = _deep_sigmoid(26)
    path = write_tensorboard(folder, recs, layers=True)
    return Case("deep_sigmoid_tensorboard", "tensorboard", str(path.relative_to(folder.parent)), "vanishing",
                False, {"vanishing_gradient": None}, _forbid({"vanishing_gradient"}, {"loss_plateau"}),
                layers=True, facts=facts)


def case_high_lr_lightning(folder: Path) -> Case:
    recs, expected, facts = _diverging(0.8, 1.0, 4, 150, after_nonfinite=20)
    path = write_lightning(folder, recs)
    return Case("high_lr_lightning", "lightning", str(path.relative_to(folder.parent)), "too-high lr", False,
                expected, _forbid(expected, _BLOWUP_COMPANIONS), layers=True, facts=facts)


def case_exp_lr_recorder(folder: Path) -> Case:
    from gradhealth.recorder import GradientRecorder

    torch = _torch()
    model = _mlp(16, [64, 64], 1, torch.nn.ReLU, 27)
    folder.mkdir(parents=True)
    with GradientRecorder(model, folder / "gradients.jsonl", flush_interval=0) as rec:
        recs = _fit(model, _regression(seed=27), 200, 1e-3, lr_factor=1.2, recorder=rec)
    finite = [r.grad_norm for r in recs if math.isfinite(r.grad_norm)]
    assert max(finite) / _median(finite[:5]) > 1e3
    start = next(r.step for r in recs if math.isfinite(r.grad_norm) and r.grad_norm > 10 * _median(finite[:5]))
    expected: dict[str, Any] = {"exploding_gradient": [[start, recs[-1].step]]}
    bad = _first_nonfinite(recs)
    if bad is not None:
        expected["nonfinite"] = [[bad, bad]]
    return Case("exp_lr_recorder", "native", f"{folder.name}/gradients.jsonl", "exponential lr", False,
                expected, _forbid(expected, _BLOWUP_COMPANIONS), layers=True,
                facts={"first_nonfinite": bad, "lr_factor": 1.2})


def case_dead_layer_lightning(folder: Path) -> Case:
    torch = _torch()
    model = _mlp(16, [32, 32, 32], 1, torch.nn.ReLU, 28)
    with torch.no_grad():
        model[2].bias.fill_(-100.0)
    recs = _fit(model, _regression(seed=28), 80, 0.05)
    dead = [n for n in _order(recs) if all(r.layers[n] == 0.0 for r in recs)]
    assert dead
    path = write_lightning(folder, recs, prefix="model.")
    expected = {"dead_layer": None}
    return Case("dead_layer_lightning", "lightning", str(path.relative_to(folder.parent)), "dead layer", False,
                expected, _forbid(expected, {"zero_gradient", "loss_plateau"}), layers=True, facts={"dead": dead})


def case_clip_saturated_tensorboard(folder: Path) -> Case:
    recs, facts = _saturated(29, 0.5)
    path = write_tensorboard(folder, recs, clipped=True)
    expected = {"clipping_saturated": None}
    return Case("clip_saturated_tensorboard", "tensorboard", str(path.relative_to(folder.parent)),
                "saturated clipping", False, expected, _forbid(expected, {"loss_plateau"}), facts=facts)


def case_tiny_lr_mlflow(folder: Path) -> Case:
    recs, facts = _tiny_lr(30)
    path = write_mlflow(folder, recs, {"lr": "1e-06"})
    expected = {"loss_plateau": None}
    return Case("tiny_lr_mlflow", "mlflow", str(path.relative_to(folder.parent)), "lr too small", False,
                expected, _forbid(expected), facts=facts)


def case_overfit_text(folder: Path) -> Case:
    recs, facts = _overfit(31)
    path = write_text(folder, recs, 300)
    expected = {"validation_divergence": None}
    return Case("overfit_text", "text", str(path.relative_to(folder.parent)), "overfitting", False,
                expected, _forbid(expected, {"loss_plateau"}), facts=facts)


def case_corrupt_tensorboard(folder: Path) -> Case:
    recs, expected, facts = _corrupted(32)
    path = write_tensorboard(folder, recs)
    return Case("corrupted_batches_tensorboard", "tensorboard", str(path.relative_to(folder.parent)),
                "corrupted batches", False, expected, _forbid(expected), facts=facts)


def case_nan_wandb(folder: Path) -> Case:
    recs, expected, facts = _poisoned(33)
    path = write_wandb(folder, recs)
    return Case("nan_sample_wandb", "wandb", str(path.relative_to(folder.parent)), "NaN sample", False,
                expected, _forbid(expected, {"loss_plateau"}), facts=facts)


GENERATED: tuple[Callable[[Path], Case], ...] = (
    case_deep_sigmoid_lightning, case_deep_sigmoid_recorder, case_high_lr_tensorboard, case_high_lr_text,
    case_exp_lr_hf, case_exp_lr_wandb, case_dead_layer_mlflow, case_dead_layer_recorder,
    case_clip_saturated_mlflow, case_clip_saturated_wandb, case_tiny_lr_text, case_tiny_lr_tensorboard,
    case_overfit_wandb, case_overfit_lightning, case_corrupt_text, case_corrupt_lightning,
    case_nan_recorder, case_nan_hf, case_healthy_mlp_recorder, case_healthy_mlp_hf_clipped,
    case_healthy_cnn_tensorboard, case_healthy_lstm_lightning_clipped, case_healthy_lstm_mlflow,
    case_healthy_regression_wandb, case_healthy_text, case_deep_sigmoid_tensorboard, case_high_lr_lightning,
    case_exp_lr_recorder, case_dead_layer_lightning, case_clip_saturated_tensorboard, case_tiny_lr_mlflow,
    case_overfit_text, case_corrupt_tensorboard, case_nan_wandb,
)

# The real logs of tests/data/logs (tests/data/logs/SOURCES.md): each run trained well, which is all
# that is known of them, so the label is "no warning or error" (info notes are not judged).
REAL: tuple[tuple[str, str], ...] = (
    ("hf-mistral-translator", "hf_trainer"), ("lightning-csv-ml-aos", "lightning"),
    ("keras-csvlogger-brats", "keras"), ("llmc-gpt2-124m", "text"), ("tb-lightning-lstm-textgen", "tensorboard"),
)


def real_cases() -> list[Case]:
    """The bundled real logs with their known label."""
    return [Case(f"real:{name}", fmt, str(REAL_LOGS / name), "none (real run)", True, {}, list(CODES),
                 forbidden_from="warning") for name, fmt in REAL]


def cache_key() -> str:
    """Changes when this generator or torch changes, so a stale cache is never scored."""
    import torch

    return hashlib.sha256(Path(__file__).read_bytes() + torch.__version__.encode()).hexdigest()[:16]


def build(root: Path = CACHE, *, force: bool = False) -> list[Case]:
    """Generate the corpus under ``root`` (or reuse it when its key matches) and return every case,
    the real logs included."""
    key = cache_key()
    labels = root / "labels.json"
    if not force and labels.exists():
        stored = json.loads(labels.read_text())
        if stored.get("key") == key:
            return [Case(**c) for c in stored["cases"]] + real_cases()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cases = []
    started = time.perf_counter()
    for make in GENERATED:
        name = make.__name__.removeprefix("case_")
        cases.append(make(root / name))
    took = time.perf_counter() - started
    labels.write_text(json.dumps({"key": key, "seconds": round(took, 1),
                                  "cases": [asdict(c) for c in cases]}, indent=1, default=float) + "\n")
    return cases + real_cases()


def locate(case: Case, root: Path = CACHE) -> Path:
    """Where a case's log is on disk."""
    p = Path(case.path)
    return p if p.is_absolute() else root / p
