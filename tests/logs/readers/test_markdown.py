"""Markdown tables of training results: the Hugging Face model card's table, tables pasted in issues.

The card below is written the way ``transformers``' model-card generator writes one (YAML front
matter, prose, then ``## Training results`` with ``No log`` where no training loss was logged yet);
the values are synthetic, and each test checks the series against the table's own cells.
"""

from __future__ import annotations

import math

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.library import check_logs
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write

CARD = """---
license: apache-2.0
base_model: distilbert-base-uncased
tags:
- generated_from_trainer
---

# distilbert-finetuned-sst2

This model is a fine-tuned version of distilbert-base-uncased. It achieves the following results on
the evaluation set:
- Loss: {last_val}
- Accuracy: 0.5

### Training hyperparameters

- learning_rate: 0.005
- train_batch_size: 32

### Training results

| Training Loss | Epoch | Step | Validation Loss | Accuracy |
|:-------------:|:-----:|:----:|:---------------:|:--------:|
{rows}

### Framework versions

- Transformers 4.38.2
"""


def card(train: list[str], val: list[float], acc: list[float]) -> str:
    rows = "\n".join(f"| {t:<13} | {e + 1:.1f}   | {250 * (e + 1):<4} | {v:<15.4f} | {a:<8} |"
                     for e, (t, v, a) in enumerate(zip(train, val, acc, strict=True)))
    return CARD.format(rows=rows, last_val=f"{val[-1]:.4f}")


def test_a_model_card_is_read_by_step_with_the_loss_roles(tmp_path):
    train = ["No log", "0.5120", "0.3311", "0.2214", "0.1507"]
    val = [0.45, 0.38, 0.35, 0.34, 0.36]
    p = write(tmp_path, "README.md", card(train, val, [0.8, 0.85, 0.87, 0.88, 0.88]))
    assert sniff.detect(p).name == "markdown"
    s = by_name(read_log(p))
    assert set(s) == {"Training Loss", "Validation Loss", "Accuracy"}   # not the epoch
    assert s["Training Loss"].role == "loss" and s["Validation Loss"].role == "val_loss"
    assert s["Training Loss"].steps.tolist() == [500, 750, 1000, 1250]  # "No log" is no value
    assert s["Training Loss"].values.tolist() == [float(t) for t in train[1:]]
    assert s["Validation Loss"].steps.tolist() == [250, 500, 750, 1000, 1250]
    assert s["Validation Loss"].values.tolist() == val
    assert s["Accuracy"].step_unit == "step"


def test_a_card_stuck_at_chance_is_a_plateau(tmp_path):
    # a binary task whose losses sit at ln 2 for every evaluation: the model learns nothing
    train = ["No log", "0.6932", "0.6932", "0.6931", "0.6932"]
    doc = check_logs(write(tmp_path, "README.md", card(train, [0.6931] * 5, [0.5] * 5)))
    assert "loss_plateau" in {f.code for f in doc.findings}
    assert round(math.log(2), 4) == 0.6931


def test_a_nan_in_the_table_is_a_nonfinite_finding(tmp_path):
    train = ["No log", "0.5120", "nan", "nan", "nan"]
    doc = check_logs(write(tmp_path, "README.md", card(train, [0.45, 0.38, math.nan, math.nan, math.nan],
                                                       [0.8] * 5)))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.evidence.steps and f.evidence.steps[0] == 750


def test_an_epoch_table_pasted_in_an_issue(tmp_path):
    text = ("My loss goes up after epoch 3, any idea?\n\n"
            "| epoch | train loss | val loss | model |\n"
            "|---|---|---|---|\n"
            "| 1 | 2.31 | 2.20 | resnet18 |\n"
            "| 2 | 1.95 | 1.90 | resnet18 |\n"
            "| 3 | 1.70 | 1.80 | resnet18 |\n"
            "| 4 | 1.72 | 2.40 | resnet18 |\n\n"
            "| epoch | train loss |\n|---|---|\n| 1 | 9.0 |\n")
    log = read_log(write(tmp_path, "issue.txt", text))
    s = by_name(log)
    assert s["train loss"].role == "loss" and s["val loss"].role == "val_loss"
    assert s["val loss"].step_unit == "epoch" and s["val loss"].steps.tolist() == [1, 2, 3, 4]
    assert s["val loss"].values.tolist() == [2.2, 1.9, 1.8, 2.4]
    assert "model" not in s
    notes = [w.message for w in log.warnings]
    assert any("column 'model': 'resnet18' is not a number" in m for m in notes)
    assert any("the table at line 10 is left out" in m for m in notes)


def test_a_row_with_too_few_cells_names_its_line(tmp_path):
    text = "| Step | Loss |\n|---|---|\n| 1 | 2.0 |\n| 2 |\n"
    with pytest.raises(LogError, match=r"t\.md line 4: 1 cells where the header at line 1 has 2"):
        read_log(write(tmp_path, "t.md", text))


def test_tables_without_a_loss_and_a_step_are_not_training_results(tmp_path):
    # a README's table of hyperparameters, one comparing models' losses (no step: rows are not
    # steps of a run), and Lightning's model summary (no Markdown rule row)
    readme = "| option | value |\n|---|---|\n| lr | 0.1 |\n| batch | 32 |\n"
    with pytest.raises(UnknownLogFormat):
        read_log(write(tmp_path, "README.md", readme))
    models = "| model | val loss | accuracy |\n|---|---|---|\n| small | 0.9 | 71 |\n| large | 40.2 | 12 |\n"
    with pytest.raises(UnknownLogFormat):
        read_log(write(tmp_path, "RESULTS.md", models))
    summary = ("  | Name  | Type   | Params\n---------------------------------\n"
               "0 | model | ResNet | 11.2 M\n")
    assert sniff.sniff("out.txt", summary.encode())[0] is None or \
        sniff.sniff("out.txt", summary.encode())[0].name != "markdown"


def test_a_notebook_table_without_outer_pipes_or_long_rules(tmp_path):
    # a Trainer table copied from Jupyter (open-r1 #704): no outer pipes, rules of two dashes
    text = ("Step | Training Loss | reward | kl\n-- | -- | -- | --\n"
            "1 | -0.283600 | 13.437500 | nan\n2 | -0.149100 | 6.931818 | nan\n3 | -0.110500 | 6.250000 | nan\n")
    s = by_name(read_log(write(tmp_path, "grpo.md", text)))
    assert s["Training Loss"].steps.tolist() == [1, 2, 3]
    assert s["Training Loss"].values.tolist() == [-0.2836, -0.1491, -0.1105]
    assert all(math.isnan(v) for v in s["kl"].values)


def test_a_document_with_a_long_stretch_of_training_lines_after_a_summary_is_a_log(tmp_path):
    # build-nanogpt's log.md (logsweep40): 66 lines of a model summary, then 26 step lines
    summary = [f"  ({i}): Block(attn=CausalSelfAttention, mlp=MLP)" for i in range(66)]
    steps = [f"step {i:4d} | loss: {10.9 * 0.9 ** i:.6f} | lr 6.0000e-04 | norm: {6.7 * 0.85 ** i:.4f}"
             for i in range(26)]
    log = read_log(write(tmp_path, "log.md", "\n".join(["# Training", *summary, *steps]) + "\n"))
    assert {"loss", "norm"} <= {s.name for s in log.series}
    # a README whose prose holds a few numbers, one line after another, stays no log
    prose = ["# Results", *[f"We trained for {i} epochs and the loss was {0.5 + i / 10}." for i in range(4)],
             *["Some more prose without numbers."] * 20]
    with pytest.raises(UnknownLogFormat):
        read_log(write(tmp_path, "README.md", "\n".join(prose) + "\n"))
