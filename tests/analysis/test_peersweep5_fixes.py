"""peersweep5: the Keras that wrote a file sets its optimizer's defaults (standalone Keras before
2.4 started Adagrad's accumulator at zeros, so its first step is lr per weight)."""

from __future__ import annotations

import pytest

from gradhealth.analysis.importers.keras import keras_optimizer


@pytest.mark.parametrize("version,start", [("2.3.1", 0.0), ("2.2.4", 0.0), ("2.13.1", 0.1), ("3.5.0", 0.1),
                                           (None, 0.1), ("tf-2.x", 0.1)])
def test_adagrads_default_accumulator_is_the_writing_keras_one(version: str | None, start: float) -> None:
    adagrad = {"class_name": "Adagrad", "config": {"lr": 0.1}}
    assert keras_optimizer(adagrad, version)["initial_accumulator"] == start


def test_an_accumulator_the_file_states_is_kept_whatever_the_version() -> None:
    adagrad = {"class_name": "Adagrad", "config": {"learning_rate": 0.1, "initial_accumulator_value": 0.5}}
    assert keras_optimizer(adagrad, "2.3.1")["initial_accumulator"] == 0.5
