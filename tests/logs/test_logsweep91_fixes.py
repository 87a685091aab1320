"""logsweep91: per-batch ``Epoch,Batch,<loss>`` tables (refused under capitalised GAN names, and read one
epoch per row), a GAN discriminator logging its real and fake terms summed (balance 2 ln 2), a loss-only
trainer_state whose eval loss stalled while the training loss fell far under it, a ``loss_plateau`` note
that denied a plateau, and a refusal that called a named header's rows bare numbers (items
wavegan_d_dominant, hf_catrobot_overfit, hf_lora_sft_floor, charrnn_lr_sweep_table)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError
from gradhealth.library import check_logs
from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.test_detectors_real_runs import found, run_of

LN2 = math.log(2)


def _gan_rows(n: int = 400, per_epoch: int = 20, seed: int = 0) -> list[tuple[int, int, float, float]]:
    """A game the discriminator wins: D (real + fake BCE summed) from 2 ln 2 down to about 0.2, G from
    0.72 up to about 2.5, a row per batch, ``per_epoch`` batches per epoch."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        e, b = divmod(i, per_epoch)
        t = i / n
        g = 0.72 + 1.8 * t + rng.uniform(-0.2, 0.2)
        d = max(0.05, 2 * LN2 - 1.2 * t + rng.uniform(-0.05, 0.05))
        rows.append((e, b, round(g, 4), round(d, 4)))
    return rows


def _write(path: Path, header: str, rows: list[tuple]) -> Path:
    path.write_text(header + "\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("names", ["Gen Loss,Disc Loss", "Generator Loss,Discriminator Loss", "G Loss,D Loss"])
def test_logsweep91_capitalised_gan_names_under_epoch_and_batch_are_read(tmp_path: Path, names: str) -> None:
    rows = _gan_rows()
    log = read_log(_write(tmp_path / "losses.csv", f"Epoch,Batch,{names}", rows))
    g_name, d_name = names.split(",")
    by = {s.name: s for s in log.series}
    assert set(by) == {g_name, d_name}  # the epoch and batch columns place rows, they are no series
    d = by[d_name]
    # each row at its place within its epoch: e + b / 20 (20 batches per epoch, 0-19)
    expected = [e + b / 20 for e, b, _, _ in rows]
    assert np.allclose(d.steps, expected)
    assert d.step_unit == "epoch" and float(d.steps[-1]) < 20  # never past the file's last epoch
    assert d.where(float(d.steps[45])) == "epoch 2, batch 5"


def test_logsweep91_epoch_only_table_spreads_its_rows_within_each_epoch(tmp_path: Path) -> None:
    rows = [(e, g, d) for e, _, g, d in _gan_rows()]
    log = read_log(_write(tmp_path / "losses.csv", "Epoch,Gen Loss,Disc Loss", rows))
    d = next(s for s in log.series if s.name == "Disc Loss")
    # the k-th of an epoch's 20 rows at e + k / 20
    assert np.allclose(d.steps, [i / 20 for i in range(400)])


def test_logsweep91_per_batch_table_quotes_epochs_in_the_file(tmp_path: Path) -> None:
    # repro epoch_batch_loss.csv: "lowest ... at epoch 19", "0.714 at epoch 33" in a 20-epoch file
    rng = np.random.default_rng(0)
    rows = [(i // 20, i % 20, round(2.0 * math.exp(-i / 150) + 0.3 * (i > 300) * (i - 300) / 100
                                    + rng.uniform(0, 0.05), 4)) for i in range(400)]
    path = _write(tmp_path / "log.csv", "epoch,batch,loss", rows)
    log = read_log(path)
    [loss] = log.series
    assert float(loss.steps.max()) < 20
    notes = [w.message for w in log.warnings if w.code == "step_order"]
    assert notes and "one epoch after the row before" not in notes[0] and "within its epoch" in notes[0]
    text = json.dumps(check_logs(path).model_dump(mode="json"))
    for quoted in __import__("re").findall(r"epoch (\d+)", text):
        assert int(quoted) < 20


def test_logsweep91_stalled_epoch_counter_is_still_one_run_by_row(tmp_path: Path) -> None:
    # the reading the new placing must not take over: an epoch stuck at 0 on every row
    path = _write(tmp_path / "log.csv", "epoch,loss", [(0, 1.0 / (i + 1)) for i in range(30)])
    log = read_log(path)
    assert [float(x) for x in log.series[0].steps] == list(range(30))


def test_logsweep91_summed_discriminator_is_judged_against_2_ln_2(tmp_path: Path) -> None:
    # D ends near 0.2: 1/7 of its balance 2 ln 2 (where it began), but above a quarter of ln 2 (0.173)
    rows = _gan_rows()
    tail = [d for _, _, _, d in rows[-40:]]
    assert LN2 / 4 < float(np.median(tail)) <= 2 * LN2 / 4
    doc = check_logs(_write(tmp_path / "gan.csv", "Epoch,Batch,Gen Loss,Disc Loss", rows))
    [f] = [f for f in doc.findings if f.code == "loss_divergence"]
    assert f.severity == "warning"
    ev = f.evidence.model_dump()
    assert math.isclose(ev["discriminator_balance"], 2 * LN2)
    # a quarter of the lesser of 2 ln 2 and its start (the median of its first 2 %: 8 of 400 points)
    start = float(np.median([d for _, _, _, d in rows[:8]]))
    assert math.isclose(ev["discriminator_threshold"], 0.25 * min(2 * LN2, start))
    assert ev["discriminator_threshold"] > LN2 / 4  # the mean form's rule would miss it


def test_logsweep91_mean_form_discriminator_keeps_ln_2() -> None:
    # the same game with D's terms averaged (half the loss): balance ln 2, and a D ending at 0.1 (half
    # of 0.2) is under a quarter of it: the summed form's rule changes nothing for the mean form
    rows = _gan_rows()
    g = np.array([r[2] for r in rows])
    d = np.array([r[3] for r in rows]) / 2
    [f] = found(diagnose(run_of(g_loss=g, d_loss=d)), "loss_divergence")
    assert math.isclose(f.evidence.model_dump()["discriminator_balance"], LN2)
    # and a mean-form D that ends at 0.2 (above 0.173) is not called a win
    d_high = np.array([max(0.2, LN2 - (LN2 - 0.2) * i / 300) for i in range(400)])
    assert not found(diagnose(run_of(g_loss=g, d_loss=d_high)), "loss_divergence")


def _state(path: Path, evals: dict[int, float], train: callable, steps: range) -> Path:  # type: ignore[valid-type]
    lh: list[dict] = []
    for s in steps:
        lh.append({"epoch": s / 107, "learning_rate": 2e-4 * (1 - s / 330), "loss": round(train(s), 4), "step": s})
        if s in evals:
            lh.append({"epoch": s / 107, "eval_loss": evals[s], "step": s})
    path.write_text(json.dumps({"global_step": steps[-1], "log_history": lh}))
    return path


def test_logsweep91_stalled_eval_loss_far_above_a_falling_train_loss_warns(tmp_path: Path) -> None:
    # hf_catrobot_overfit: eval 1.0125, 0.9043, 0.9268 while train fell 1.9 -> 0.03
    path = _state(tmp_path / "trainer_state.json", {100: 1.0125, 200: 0.9043, 300: 0.9268},
                  lambda s: max(0.03, 1.9 * math.exp(-s / 70)), range(10, 330, 10))
    [f] = [f for f in check_logs(path).findings if f.code == "validation_divergence"]
    assert f.severity == "warning"
    ev = f.evidence.model_dump()
    # independently: the training before the best evaluation (steps 110-200) and since the one before
    # the last (steps 210-320)
    then = float(np.median([max(0.03, round(1.9 * math.exp(-s / 70), 4)) for s in range(110, 201, 10)]))
    now = float(np.median([max(0.03, round(1.9 * math.exp(-s / 70), 4)) for s in range(210, 321, 10)]))
    assert math.isclose(ev["train_then"], then) and math.isclose(ev["train_last"], now)
    assert ev["best"] == 0.9043 and ev["last"] == 0.9268 and ev["best_step"] == 200
    assert math.isclose(ev["value"], 0.9268 / now)


@pytest.mark.parametrize("evals,train", [
    # a healthy fine-tune: eval tracks train, never 10x above it
    ({100: 1.10, 200: 0.95, 300: 0.96}, lambda s: 1.9 * math.exp(-s / 200) + 0.8),
    # eval still improving at its last evaluation, however far above the training loss
    ({100: 1.01, 200: 0.95, 300: 0.93}, lambda s: max(0.03, 1.9 * math.exp(-s / 70))),
    # a large gap, but the training loss had stopped falling by the best evaluation (converged)
    ({100: 1.01, 200: 0.90, 300: 0.93}, lambda s: max(0.05, 1.9 * math.exp(-s / 20))),
])
def test_logsweep91_stall_rule_leaves_healthy_fine_tunes_alone(tmp_path: Path, evals, train) -> None:
    path = _state(tmp_path / "trainer_state.json", evals, train, range(10, 330, 10))
    assert not [f for f in check_logs(path).findings if f.code == "validation_divergence"
                and f.severity in ("warning", "error")]


def test_logsweep91_a_late_rise_note_does_not_deny_its_code() -> None:
    # hf_lora_sft_floor: "[i] loss_plateau (info): loss rose 0.36% ... not a plateau"
    rng = np.random.default_rng(1)
    v = np.concatenate([np.linspace(1.0, 0.55, 8), 0.55 * np.linspace(1.0, 1.19, 8)]) * (1 + 0.02 * rng.standard_normal(16))
    [f] = found(diagnose(run_of(train_loss=v)), "loss_plateau")
    assert "rose" in f.summary and "not a plateau" not in f.summary


def test_logsweep91_refusal_of_a_named_header_says_what_the_names_lack(tmp_path: Path) -> None:
    # charrnn_lr_sweep_table: columns named after learning rates, holding losses
    path = tmp_path / "results.csv"
    path.write_text("learning_rate_0.005,learning_rate_0.001,learning_rate_0.0005\n"
                    + "\n".join(f"{2.0 - i / 100:.3f},{2.1 - i / 120:.3f},{2.2 - i / 150:.3f}" for i in range(50)) + "\n")
    with pytest.raises(LogError) as e:
        check_logs(path)
    msg = str(e.value.detail if hasattr(e.value, "detail") else e.value)
    assert "these columns name no loss, step or gradient norm" in msg
    assert "bare numbers" not in msg and "'learning_rate_0.005'" in msg
