"""One CSV is one format whatever its name or compression (newuser8 #12: the same
``step,loss,grad_norm`` CSV uploaded plain was read as ``native``, gzipped as ``metrics.csv.gz`` as
``lightning``: the gzip is read under its name without ``.gz``, and ``metrics.csv`` alone made it
Lightning's)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from gradhealth.logs.load import read_log

CSV = "step,loss,grad_norm\n" + "".join(f"{i},{2.4 - 0.001 * i:.6f},{0.8 + 0.01 * (i % 7):.6f}\n"
                                         for i in range(300))
LIGHTNING = "epoch,step,train_loss\n" + "".join(f"{i // 100},{i},{2.4 - 0.001 * i:.6f}\n" for i in range(300))


@pytest.mark.parametrize("name", ["metrics.csv", "upload", "big_metrics.csv", "run.csv"])
@pytest.mark.parametrize("gz", [False, True])
def test_a_wide_csv_without_lightning_columns_is_native_under_any_name(tmp_path: Path, name: str,
                                                                       gz: bool) -> None:
    path = tmp_path / (name + ".gz" if gz else name)
    path.write_bytes(gzip.compress(CSV.encode()) if gz else CSV.encode())
    assert read_log(path).format == "native"


@pytest.mark.parametrize("gz", [False, True])
def test_a_csvlogger_file_is_lightning_plain_or_gzipped(tmp_path: Path, gz: bool) -> None:
    path = tmp_path / ("metrics.csv.gz" if gz else "metrics.csv")
    path.write_bytes(gzip.compress(LIGHTNING.encode()) if gz else LIGHTNING.encode())
    assert read_log(path).format == "lightning"
