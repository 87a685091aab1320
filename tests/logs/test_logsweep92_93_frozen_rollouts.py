"""logsweep92 madqn_sessions (an epsilon-greedy agent's TD loss read as a diverging objective),
ant_transformer_gates (``Val MSE`` beside ``Train MSE`` not read as the validation loss),
hppo_nan_objective (launches under a repeated banner, a bare ``iter=0000`` counter starting again), and
logsweep93 sentimentrnn_collapsed (a test loss identical to 14 digits every epoch not quoted as the
evidence that no update reaches the model, and a larger learning rate offered for it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.check import run_log_check
from tests.logs.helpers import write

# an agent's TD loss per episode: low at the first episode (Q-values near 0), then at the scale of the
# returns it regresses onto, noisy (madqn_sessions' 10-episode launches have this shape)
_TD = [1.71, 14.4, 26.5, 29.5, 32.8, 12.8, 28.5, 10.7, 22.3, 12.9]


def _console(exploration: bool) -> str:
    eps = " | ε: 0.050" if exploration else ""
    return "\n".join(f"Episode {k}/10 | Deliveries: 3 | Collisions: 0 | Loss: {v:.4f}{eps}"
                     for k, v in enumerate(_TD, 1)) + "\n"


def test_an_episode_counter_beside_an_exploration_rate_is_an_agent_whose_td_loss_is_no_objective(
        tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "train_log.txt", _console(True)))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]


def test_an_episode_counter_alone_keeps_the_loss_judged_as_an_objective(tmp_path: Path) -> None:
    # (a few-shot learner counts its tasks as episodes: its loss falls, and a jump from 1.71 to
    # 10-33 that never comes back within 3x of it is a divergence: min(later) / first = 10.7 / 1.71)
    assert min(_TD[1:]) / _TD[0] > 3
    doc = run_log_check(write(tmp_path, "train_log.txt", _console(False)))
    assert [f for f in doc.findings if f.code == "loss_divergence"]


@pytest.mark.parametrize(("train", "held_out"), [("Train MSE", "Val MSE"), ("train_rmse", "valid_rmse"),
                                                 ("Train NLL", "Test NLL"), ("train_mae", "eval_mae")])
def test_a_held_out_splits_error_beside_the_training_splits_is_the_validation_loss(
        tmp_path: Path, train: str, held_out: str) -> None:
    # the training error falls 15% an epoch; the held-out one falls to epoch 6 and then rises 10% an
    # epoch: overfitting, which only a validation loss shows (ant_transformer_gates: Val MSE was a metric)
    epochs = range(1, 21)
    tr = [1.0 * 0.85 ** e for e in epochs]
    va = [0.9 * 0.85 ** min(e, 6) * 1.1 ** max(e - 6, 0) for e in epochs]
    text = "\n".join(f"Epoch {e:02d} | {train}: {a:.6f} | Gate Loss: 0.3862 | {held_out}: {b:.6f}"
                     for e, a, b in zip(epochs, tr, va, strict=True)) + "\n"
    doc = run_log_check(write(tmp_path, "train.log", text))
    val = [s for s in doc.series if s.role == "val_loss"]
    assert [s.name for s in val] == [held_out.replace(" ", "_")]
    assert [s.name for s in doc.series if s.role == "loss"] == [train.replace(" ", "_")]
    over = [f for f in doc.findings if f.code == "validation_divergence"]
    assert over and over[0].evidence.metric == held_out.replace(" ", "_")


def test_a_held_out_error_is_no_validation_loss_beside_a_validation_loss_by_name(tmp_path: Path) -> None:
    text = "\n".join(f"Epoch {e:02d} | Train MSE: {0.85 ** e:.6f} | val_loss: {0.9 * 0.85 ** e:.6f} | "
                     f"Val MSE: {0.8 * 0.85 ** e:.6f}" for e in range(1, 13)) + "\n"
    doc = run_log_check(write(tmp_path, "train.log", text))
    assert [s.name for s in doc.series if s.role == "val_loss"] == ["val_loss"]


def _collapsed(test_losses: list[float]) -> str:
    # a flat training loss (within 0.3% of 0.95, as a model that outputs one class gives) and the test loss
    train = [0.9544535914837327, 0.9511685806084733, 0.9511685740223247, 0.9486824010617166,
             0.9511685766567841, 0.9486823934876458, 0.9486823994151795, 0.9511685839015476]
    return "".join(f"---\n[Epoch {e}] Train Loss={a!r} T=220.5s\nTest loss={b!r}\nAccuracy=0.65\n"
                   for e, (a, b) in enumerate(zip(train, test_losses, strict=True), 1))


def test_an_evaluation_loss_repeated_to_every_digit_is_quoted_and_no_larger_rate_is_offered(tmp_path: Path) -> None:
    frozen = 0.90144944190979
    doc = run_log_check(write(tmp_path, "train.log", _collapsed([frozen] * 8)))
    [f] = [f for f in doc.findings if f.code == "loss_plateau"]
    assert f.severity == "warning"
    assert repr(frozen) in f.summary and "every one of its 8 evaluations" in f.summary
    extra = f.evidence.model_extra
    assert extra["exact_repeat"] and extra["repeated_value"] == frozen and extra["repeats"] == 8
    assert extra["digits"] == len("90144944190979")
    assert [r.id for r in f.remedies] == ["check_updates", "check_loss_graph"]


def test_an_evaluation_loss_that_moves_in_its_last_digits_keeps_the_stalled_loss_advice(tmp_path: Path) -> None:
    # the same test loss changing in its 12th digit: the weights moved, too little; a larger rate is advice
    moving = [0.90144944190979 + k * 1e-12 for k in range(8)]
    assert len(set(moving)) == 8
    doc = run_log_check(write(tmp_path, "train.log", _collapsed(moving)))
    [f] = [f for f in doc.findings if f.code == "loss_plateau"]
    assert "exactly" not in f.summary and not f.evidence.model_extra.get("exact_repeat")
    assert [r.id for r in f.remedies] == ["raise_learning_rate"]
