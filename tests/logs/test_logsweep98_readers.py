"""Fixes from logsweep98 (fairseq's loss scale and checkpoint lines, boosting consoles, small names)."""

from __future__ import annotations

from pathlib import Path

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.series import boosting_log
from tests.logs.helpers import by_name, write

_HEAD = "2020-03-23 11:38:13 | INFO | "


def _fairseq(scales: list[str], *, overflow: list[float] | None = None) -> str:
    """A fairseq console: train_inner lines whose loss_scale is printed with fairseq's 3 decimals,
    then its scaler's own overflow reports."""
    lines = []
    for i, scale in enumerate(scales):
        lines.append(f"{_HEAD}train_inner | epoch 003:  {i + 1} / 356 loss={9.4 - 0.01 * i:.2f}, "
                     f"nll_loss=8.44, ppl=347.28, num_updates={100 * (i + 1)}, lr=0.000175, "
                     f"gnorm={50 + i:.3f}, loss_scale={scale}, train_wall=1281, wall={9000 + 10 * i}")
    lines += [f"{_HEAD}fairseq.trainer | NOTE: overflow detected, setting loss scale to: {s!r}"
              for s in overflow or []]
    return "\n".join(lines) + "\n"


def _scale_finding(tmp_path: Path, text: str):  # noqa: ANN202 - the loss scale's nonfinite finding or None
    doc = diagnose(read_log(write(tmp_path, "train.log", text)))
    return next((f for f in doc.findings if f.code == "nonfinite" and f.evidence.metric == "loss_scale"),
                None)


def test_a_loss_scale_printed_as_0_is_below_the_printed_digits_not_0(tmp_path: Path) -> None:
    # logsweep98 fairseq1895_min_loss_scale: fairseq prints loss_scale with 3 decimals, so 0.000488
    # reads "loss_scale=0"; a scaler only halves its scale (2^16 / 2^k > 0), so it was never 0
    f = _scale_finding(tmp_path, _fairseq(["0.25", "0.031", "0.004", "0"]))
    assert f is not None and f.severity == "error"
    assert "fell to 0 " not in f.summary and "printed as 0" in f.summary
    assert (f.evidence.model_extra or {})["below_printed_precision"] is True
    assert "floor" not in f.summary  # 0 says nothing of whether fairseq's 1e-4 was reached


def test_a_loss_scale_above_fairseqs_floor_is_not_said_to_be_at_it(tmp_path: Path) -> None:
    # logsweep98 #2: 2^-12 = 0.000244 was said to be "down to its floor", but fairseq's floor
    # (--min-loss-scale) is 1e-4 and the log stopped before it
    f = _scale_finding(tmp_path, _fairseq(["0.25", "0.031", "0.004"], overflow=[2.0 ** -11, 2.0 ** -12]))
    assert f is not None
    assert f"fell to {2.0 ** -12:.3g}" in f.summary and "floor" not in f.summary
    # a scale at 2^-14 = 6.1e-5 is at or below that floor
    f = _scale_finding(tmp_path, _fairseq(["0.25", "0.031", "0.004"], overflow=[2.0 ** -13, 2.0 ** -14]))
    assert f is not None and "floor" in f.summary


def test_a_checkpoint_save_line_gives_no_series(tmp_path: Path) -> None:
    # logsweep98 fairseq1895: "saved checkpoint ... (epoch 2 @ 695 updates, score 9.393) (writing took
    # 5.76 seconds)" became series "score" and "took"
    text = _fairseq(["0.25", "0.125", "0.062", "0.031"])
    text += (f"{_HEAD}fairseq.checkpoint_utils | saved checkpoint checkpoints/checkpoint2.pt (epoch 2 @ 695 "
             "updates, score 9.393) (writing took 5.761506536975503 seconds)\n")
    names = by_name(read_log(write(tmp_path, "train.log", text)))
    assert "score" not in names and "took" not in names
    assert len(names["loss"].values) == 4


def test_a_duration_that_took_seconds_is_no_metric(tmp_path: Path) -> None:
    # (the fairseq line's "(writing took 5.76 seconds)", without a checkpoint: a time, no metric)
    text = "".join(f"epoch {e} | loss {1.0 / (e + 1):.4f} | (validation took 5.76 seconds)\n" for e in range(6))
    names = by_name(read_log(write(tmp_path, "train.log", text)))
    assert not [n for n in names if "took" in n] and len(names["loss"].values) == 6


def _lightgbm(rounds: int = 6) -> str:
    """LightGBM's evaluation lines: the training and validation logloss every 10 rounds."""
    return "".join(f"[{10 * (r + 1)}]\ttraining's binary_logloss: {0.6 * 0.9 ** r:.4f}\t"
                   f"valid_1's binary_logloss: {0.62 * 0.93 ** r:.4f}\n" for r in range(rounds))


def test_a_printed_feature_importance_table_gives_no_series(tmp_path: Path) -> None:
    # logsweep98 #2: a pandas frame of feature importances printed after a LightGBM fit ("0  f_12  312")
    # made each feature a one-point series
    features = [f"f_{i}" for i in range(40)]
    table = "        feature  importance\n" + "".join(
        f"{i:<4} {name:>10} {400 - 7 * i:>11}\n" for i, name in enumerate(features))
    log = read_log(write(tmp_path, "lgb.log", _lightgbm() + table))
    assert sorted(s.name for s in log.series) == ["training-binary_logloss", "valid_1-binary_logloss"]
    assert all(len(s.values) == 6 for s in log.series)


def test_rows_counted_from_0_that_are_steps_are_still_read(tmp_path: Path) -> None:
    # a console whose lines start with the step and name one value each are no table: the same name
    # on every line (a table's rows each have a label of their own)
    text = "step  loss\n" + "".join(f"{i} loss {2.0 * 0.9 ** i:.4f}\n" for i in range(8))
    log = read_log(write(tmp_path, "train.log", text))
    assert len(by_name(log)["loss"].values) == 8


def test_a_boosting_logs_plateau_is_explained_in_trees_not_units(tmp_path: Path) -> None:
    # logsweep98 #2: a boosting log's loss_plateau spoke of frozen parameters and saturated units
    text = "".join(f"[{i}]\ttrain-rmse:{17.0 + 0.001 * (-1) ** i:.4f}\tvalidate-rmse:{17.5 + 0.001 * (-1) ** i:.4f}\n"
                   for i in range(60))
    (plateau,) = [f for f in diagnose(read_log(write(tmp_path, "xgb.log", text))).findings
                  if f.code == "loss_plateau"]
    words = plateau.explanation.lower()
    for network in ("frozen", "saturat", "dead", "unit", "requires_grad", "weights", "detached"):
        assert network not in words, network
    assert "tree" in words and "learning_rate" in words


def _catboost(values: list[tuple[float | None, float | None]], *, higher_better: bool = False) -> str:
    """A CatBoost console: each round's learn and test values (either None: not printed), the running
    best of test (CatBoost's best: the minimum of a loss, the maximum of a score), then the times."""
    lines, best, at = ["Learning rate set to 0.05"], None, 0
    for i, (learn, test) in enumerate(values):
        row = f"{i}:"
        if learn is not None:
            row += f"\tlearn: {learn:.7f}"
        if test is not None:
            row += f"\ttest: {test:.7f}"
            if best is None or (test > best if higher_better else test < best):
                best, at = test, i
            row += f"\tbest: {best:.7f} ({at})"
        lines.append(row + f"\ttotal: {5 * i + 3}ms\tremaining: {2.5 - 0.01 * i:.2f}s")
    return "\n".join(lines) + "\n"


def test_a_catboost_console_is_a_boosting_log(tmp_path: Path) -> None:
    # logsweep98 #2: "0:\tlearn: 0.68\ttest: 0.69\tbest: 0.69 (0)\ttotal: 5ms\tremaining: 5s" was read as
    # metrics learn, test, best: no loss, no boosting rounds, no boosting remedies
    import math  # noqa: PLC0415 - this test's curves only

    rounds = range(150)
    learn = [0.69 * math.exp(-i / 30) for i in rounds]
    test = [0.5 + 0.19 * math.exp(-i / 10) + (0.004 * (i - 30) if i > 30 else 0.0) for i in rounds]
    log = read_log(write(tmp_path, "catboost.log", _catboost(list(zip(learn, test, strict=True)))))
    names = by_name(log)
    assert names["learn-loss"].role == "loss" and names["test-loss"].role == "val_loss"
    assert list(names["test-loss"].steps) == list(rounds)
    assert max(abs(a - b) for a, b in zip(names["test-loss"].values, test, strict=True)) < 1e-6
    assert not [n for n in names if "total" in n or "remaining" in n or n == "ms"]
    assert boosting_log(log)
    doc = diagnose(log)
    remedies = [r for f in doc.findings for r in f.remedies]
    assert remedies and all(r.snippet_framework == "boosting" for r in remedies)


def test_a_catboost_score_is_no_loss(tmp_path: Path) -> None:
    # with eval_metric AUC CatBoost prints only test and its best, the running maximum: a score rising
    # is no loss diverging
    auc = [0.90 + 0.09 * (1 - 0.97 ** i) for i in range(60)]
    log = read_log(write(tmp_path, "catboost.log", _catboost([(None, a) for a in auc], higher_better=True)))
    names = by_name(log)
    assert names["test"].role == "metric" and not log.by_role("val_loss") and not boosting_log(log)


def test_the_values_after_a_checkpoint_saves_clause_are_read(tmp_path: Path) -> None:
    # "Epoch 5: saving checkpoint; loss 0.3 acc 0.9": the save's clause ends at the semicolon; the line
    # was cut at "saving", losing its loss and accuracy (each epoch read, but no loss at all)
    losses = [round(1.0 / (e + 1), 4) for e in range(10)]
    for sep in ("; ", ", ", " | ", " - "):
        text = "".join(f"Epoch {e}: saving checkpoint{sep}loss {v} acc 0.9\n" for e, v in enumerate(losses))
        names = by_name(read_log(write(tmp_path, "train.log", text)))
        assert names["loss"].values.tolist() == losses, sep
        assert names["acc"].values.tolist() == [0.9] * 10
    # the clause itself still gives nothing: a path, or a score in its own brackets
    text = "".join(f"Epoch {e}: saved checkpoint ckpt/e{e}.pt (score 9.39, step 5); loss {v}\n" for e, v in enumerate(losses))
    names = by_name(read_log(write(tmp_path, "train.log", text)))
    assert names["loss"].values.tolist() == losses and "score" not in names
