"""onnxsweep29 #4 (aloukik_json_h5): a file named ``.h5`` whose content is ``model.to_json()`` text was
checked at a fresh Keras initialisation and reported healthy, saying only "[weights: Keras'
initialisers, drawn per seed]": a CI user who believes they committed trained weights read it as about
them. The report now says plainly that the file holds no weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gradhealth.library import check_keras

CFG: dict[str, Any] = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "in"}},
    {"class_name": "Dense", "config": {"name": "d1", "units": 4, "activation": "relu"}},
    {"class_name": "Dense", "config": {"name": "d2", "units": 3, "activation": "linear"}}]}}


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_json_under_a_weights_name_is_said_to_hold_no_weights_onnxsweep29(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_text(json.dumps(CFG))
    doc = check_keras(path, loss="mse", seeds=1, verify=False)
    assert f"model{suffix} holds no weights: it is a JSON architecture" in doc.summary
    assert "fresh initialisation" in doc.summary
    # the bytes with their file's name (the CLI's and the service's way) say the same
    doc = check_keras(path.read_bytes(), loss="mse", seeds=1, verify=False, file_name=path.name)
    assert "holds no weights" in doc.summary


def test_json_under_a_json_name_is_not_flagged_onnxsweep29(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(CFG))
    doc = check_keras(path, loss="mse", seeds=1, verify=False)
    assert "holds no weights" not in doc.summary
    assert "[weights: Keras' initialisers, drawn per seed]" in doc.summary
