"""The log check's ``small_updates`` judges the median logged layer, not the fastest (peersweep18 #3,
its log side: SGD 1e-5 on a He ReLU MLP moved 7 hidden layers by about 3e-7 of their norm a step
and its 1-unit readout by 3.06e-6; with the fastest deciding, the readout kept every layer silent).

The truth is the test's own: the ratios it wrote, their medians recomputed with numpy, the median
layer picked by hand from the sorted medians, the factor 1e-4 / that median.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradhealth.library import check_logs
from tests.logs.test_large_updates import LR, N, base_rows, healthy_ratios, jsonl, ratio_rows


def _small(doc) -> list:  # noqa: ANN001
    return [f for f in doc.findings if f.code == "small_updates"]


def test_a_fast_one_unit_head_does_not_mask_seven_slow_layers(tmp_path):
    # seven hidden layers about 3e-4 of a healthy step (medians near 3e-7), a head 3e-3 of it (3e-6)
    hidden = {f"fc{i}.weight": 3e-4 * healthy_ratios(i) for i in range(1, 8)}
    head = 3e-3 * healthy_ratios(99)
    rows = base_rows()
    for name, v in hidden.items():
        rows += ratio_rows(name, v)
    rows += ratio_rows("head.weight", head)
    doc = check_logs(jsonl(tmp_path, rows))
    medians = {name: float(np.median(v)) for name, v in {**hidden, "head.weight": head}.items()}
    assert medians["head.weight"] > 1e-6 > max(m for n, m in medians.items() if n != "head.weight")
    ranked = sorted(medians, key=medians.__getitem__)
    middle = ranked[len(ranked) // 2]  # 8 layers: the 5th slowest, past half of them
    [f] = _small(doc)
    ev = f.evidence.model_dump()
    assert f.severity == "warning"
    assert ev["value"] == pytest.approx(medians[middle]) == pytest.approx(ev["median_update_ratio"])
    assert ev["median_layer"] == middle
    assert ev["fastest_layer"] == "head.weight"
    assert ev["max_update_ratio"] == pytest.approx(medians["head.weight"])
    assert ev["layers_share_under_threshold"] == pytest.approx(7 / 8)
    assert "head.weight" in f.summary and middle in f.summary
    [remedy] = f.remedies
    assert remedy.id == "raise_learning_rate"
    factor = 1e-4 / medians[middle]
    assert remedy.params["factor"] == pytest.approx(factor)
    assert f"{LR * factor:.3g}" in remedy.change


def test_most_layers_healthy_beside_slow_ones_is_not_small_updates(tmp_path):
    # five of eight layers move healthily: the median layer is healthy, whatever the three slow ones
    rows = base_rows()
    for i in range(1, 4):
        rows += ratio_rows(f"slow{i}.weight", 1e-4 * healthy_ratios(i))
    for i in range(4, 9):
        rows += ratio_rows(f"fc{i}.weight", healthy_ratios(i))
    assert _small(check_logs(jsonl(tmp_path, rows))) == []


def test_an_embedding_is_left_out_of_the_median(tmp_path):
    # an embedding's step touches only its batch's rows: its small ratio does not tip the median
    rows = base_rows() + ratio_rows("embed_tokens.weight", 1e-4 * healthy_ratios(1)) + ratio_rows(
        "fc1.weight", 1e-4 * healthy_ratios(2)) + ratio_rows("fc2.weight", healthy_ratios(3))
    assert _small(check_logs(jsonl(tmp_path, rows))) == []
    assert len(rows) > 3 * N
