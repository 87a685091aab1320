"""logsweep95 cconvnet_lr0_sanity: cuda-convnet's training lines ("1.12... logprob:  0.524114, 0.125000
(1.035 sec)") are the epoch and batch, then the logistic regression cost (the loss) and the error rate.
Its 186 points were a metric "logprob", all at step 1, so no trend check ran. A ``logprob`` in any other
line form (an RL agent's action log-probability) stays no loss."""

from __future__ import annotations

from pathlib import Path

from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import line_values


def test_the_convnet_line_is_epoch_batch_loss_and_error() -> None:
    found, _ = line_values("1.12... logprob:  0.524114, 0.125000 (1.035 sec)")
    assert dict(found) == {"epoch": "1", "batch": "12", "loss": "0.524114", "error_rate": "0.125000"}


def test_a_convnet_console_has_a_loss_by_batch(tmp_path: Path) -> None:
    losses = [0.9 - 0.01 * k for k in range(12)]
    lines = ["Initialized logistic regression cost 'logprob'", "Training ConvNet"]
    lines += [f"{1 + k // 6}.{1 + k % 6}... logprob:  {v:.6f}, {v / 4:.6f} (1.{k:03d} sec)" for k, v in enumerate(losses)]
    path = tmp_path / "train_output.txt"
    path.write_text("\n".join(lines) + "\n")
    loss = read_log(path).first("loss")
    assert loss is not None and loss.name == "loss"
    # twelve points at twelve places in the log's order (epoch 1 batches 1-6, then epoch 2's), not one step
    assert len(loss.values) == 12 and len(set(map(float, loss.steps))) == 12
    assert list(loss.steps) == sorted(loss.steps)
    assert [float(v) for v in loss.values] == [float(f"{v:.6f}") for v in losses]


def test_an_rl_logprob_is_no_loss(tmp_path: Path) -> None:
    found, _ = line_values("step 3 logprob: -1.2, reward: 3.5")
    assert "loss" not in dict(found)
    path = tmp_path / "ppo.log"
    path.write_text("".join(f"step {k} logprob: -{1 + k / 10:.2f}, reward: {k / 2:.1f}\n" for k in range(12)))
    run = read_log(path)
    assert run.first("loss") is None
    assert [s.role for s in run.series if s.name == "logprob"] == ["metric"]
