"""What the thirty-seventh log sweep (uploads as users send them) found: a folder of several runs
was merged and judged by its longest loss alone (a diverging run beside a longer healthy one passed),
and a supported log was refused for its packaging: UTF-16 text (PowerShell's ``>``), a lone
gzip-compressed file (a rotated ``train.log.gz``), a semicolon-separated CSV with decimal commas."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import UploadTooLarge
from gradhealth.library import check_logs
from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log


def _lightning_csv(folder: Path, losses: np.ndarray) -> None:
    folder.mkdir(parents=True)
    rows = ["epoch,step,train_loss"] + [f"{i // 100},{i},{x:.5f}" for i, x in enumerate(losses)]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")


def _healthy(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 2.3 * np.exp(-np.arange(n) / 300) + 0.3 + 0.02 * rng.standard_normal(n)


def test_every_run_of_a_folder_is_judged_not_the_longest_alone(tmp_path: Path) -> None:
    root = tmp_path / "lightning_logs"
    _lightning_csv(root / "version_0", _healthy(1200, 0))                  # longer, healthy
    diverging = _healthy(800, 1)
    diverging[500:] *= np.geomspace(1, 25, 300)
    _lightning_csv(root / "version_1", diverging)
    log = read_log(root)
    assert log.runs == ["version_0", "version_1"]
    assert any(w.code == "several_runs" for w in log.warnings)
    [f] = [f for f in diagnose(log).findings if f.code == "loss_divergence"]
    assert f.evidence.metric == "version_1/train_loss"
    # zipped, as users send it: the same
    z = tmp_path / "logs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in root.rglob("*.csv"):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    assert "loss_divergence" in {f.code for f in check_logs(z).findings}


def test_earlier_checkpoints_of_one_history_are_read_once(tmp_path: Path) -> None:
    history = [{"step": s, "loss": float(2.3 * np.exp(-s / 400) + 0.3), "epoch": s / 1000} for s in range(10, 1510, 10)]
    for last in (500, 1000, 1500):
        folder = tmp_path / "out" / f"checkpoint-{last}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(json.dumps(
            {"global_step": last, "log_history": [h for h in history if h["step"] <= last]}))
    log = read_log(tmp_path / "out")
    assert log.runs == [] and len(log.by_role("loss")[0]) == 150
    [note] = [w for w in log.warnings if w.code == "skipped_runs"]
    assert "checkpoint-500, checkpoint-1000 are earlier snapshots" in note.message


def _nanogpt_text(nan_from: int) -> str:
    return "".join(f"iter {i}: loss {'nan' if i >= nan_from else f'{3.0 - i / 2000:.4f}'}, time 12.3ms\r\n"
                   for i in range(0, 2500, 10))


def test_a_utf16_log_is_read_as_its_text(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"\xff\xfe" + _nanogpt_text(1800).encode("utf-16-le"))
    doc = check_logs(path)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert "step 1800" in f.summary
    assert any("UTF-16 text, read as UTF-8" in w for w in doc.log.warnings)


def test_a_lone_gzipped_log_is_decompressed_and_a_bomb_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.log.gz"
    path.write_bytes(gzip.compress(_nanogpt_text(1800).encode()))
    doc = check_logs(path)
    assert doc.name == "train.log.gz" or doc.log.source.endswith("train.log")
    assert "nonfinite" in {f.code for f in doc.findings}
    bomb = tmp_path / "big.log.gz"
    bomb.write_bytes(gzip.compress(b"0" * (300 * 2**20)))
    with pytest.raises(UploadTooLarge, match="zip bomb"):
        check_logs(bomb)


def test_a_semicolon_table_with_decimal_commas_is_read(tmp_path: Path) -> None:
    rows = ["epoch;loss;val_loss"] + [f"{e};{0.9 * 0.9 ** e:.4f};{0.4 + (0.02 * (e - 12) if e > 12 else 0):.4f}"
                                      .replace(".", ",") for e in range(30)]
    path = tmp_path / "history.csv"
    path.write_text("\n".join(rows) + "\n")
    doc = check_logs(path)
    assert doc.log.format == "keras" and doc.log.points == 60
    assert "validation_divergence" in {f.code for f in doc.findings}
