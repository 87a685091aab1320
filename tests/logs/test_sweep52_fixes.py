"""logsweep52: a flat loss whose late "fall" is inside its noise, a steady small validation rise beside
a stalled accuracy, and an RL return whose first points (a rolling mean's) read as a climb."""

from __future__ import annotations

import numpy as np

from gradhealth.logs.check import diagnose
from tests.logs.test_detectors_real_runs import alarms, found, run_of

# logsweep52 item 21 (HF trainer_state, a LoRA fine-tune, loss every 10 steps over 1000 steps, lr 2e-4 -> 0)
_LORA_LOSS = [
    2.2538, 2.1126, 2.228, 2.1703, 2.0955, 2.1769, 2.1335, 2.0746, 2.3118, 2.1476, 1.9218, 2.1764, 2.1327, 2.0719,
    2.1048, 2.0419, 2.0837, 2.0422, 2.1384, 2.1318, 2.2722, 2.0774, 2.1253, 2.1624, 2.0543, 2.1542, 2.3268, 2.0749,
    2.2403, 2.0575, 2.3062, 2.081, 2.0289, 2.2525, 2.213, 2.0703, 2.1984, 2.0921, 2.0888, 2.0344, 2.0585, 2.1937,
    2.2075, 2.0918, 2.0674, 2.118, 2.1401, 2.2394, 2.09, 2.0202, 2.2468, 2.3187, 2.1024, 2.1056, 2.0486, 2.1524,
    2.5253, 1.9732, 2.1449, 1.9493, 2.4289, 2.0873, 2.1007, 1.9974, 2.1228, 2.1118, 2.0166, 2.0992, 2.1272, 2.0397,
    2.1752, 2.0067, 2.0448, 2.1073, 1.978, 1.9944, 2.5413, 2.2689, 2.1654, 2.2528, 1.9905, 2.0347, 2.0235, 2.0792,
    2.0174, 1.9447, 2.1375, 2.3284, 2.0863, 2.0996, 2.0802, 2.2645, 2.1278, 2.1074, 1.993, 2.1184, 2.1275, 2.0635,
    2.049, 2.2816]


def test_a_flat_loss_whose_late_fall_is_inside_its_noise_barely_moved() -> None:
    # its last half "falls" 1.04% by the Theil-Sen estimate, but the 99% interval holds a rise,
    # and the run as a whole moved 2.4%: no learning shown, not a slow descent
    steps = np.arange(10, 1010, 10)
    [f] = found(diagnose(run_of(steps, loss=np.array(_LORA_LOSS))), "loss_plateau")
    assert f.severity == "warning" and "barely moved" in f.summary


def test_a_slow_but_real_descent_stays_healthy() -> None:
    # 4% over the run (under plateau_early_fraction), but steady: its interval excludes a rise
    rng = np.random.default_rng(3)
    n = 200
    loss = 2.0 * (1 - 0.04 * np.arange(n) / n) * np.exp(rng.normal(0, 0.004, n))
    assert not found(diagnose(run_of(loss=loss)), "loss_plateau")


# logsweep52 item 19 (Keras CSVLogger, a binary text classifier, 16 epochs)
_LOSS = [0.6766, 0.6613, 0.6327, 0.5581, 0.4829, 0.4200, 0.3714, 0.3297, 0.3008, 0.2764, 0.2539, 0.2381, 0.2247,
         0.2067, 0.1909, 0.1787]
_VAL_LOSS = [0.6873, 0.6722, 0.6383, 0.5856, 0.5468, 0.5207, 0.5355, 0.5383, 0.5282, 0.5322, 0.5413, 0.5458, 0.5692,
             0.5644, 0.5767, 0.5857]
_VAL_ACC = [0.566, 0.566, 0.584, 0.684, 0.744, 0.7573, 0.7413, 0.7407, 0.756, 0.7553, 0.7593, 0.7587, 0.762, 0.7613,
            0.76, 0.7613]


def test_a_steady_small_validation_rise_beside_a_stalled_accuracy_is_overfitting() -> None:
    # +8.4% on the smoothed levels (under validation_rise), but rising at nearly every epoch after
    # its best (Mann-Kendall z 3.1) while val_accuracy stands at 0.76 and the loss halves
    doc = diagnose(run_of(loss=np.array(_LOSS), val_loss=np.array(_VAL_LOSS), val_accuracy=np.array(_VAL_ACC)))
    [f] = found(doc, "validation_divergence")
    assert f.severity == "warning" and f.evidence.threshold == 0.05
    assert f.evidence.best == 0.5207 and "val_loss rose from its lowest 0.521" in f.summary


def test_a_steady_small_validation_rise_beside_a_gaining_or_missing_metric_is_not() -> None:
    # the same rise while the accuracy still gains (calibration, as the larger rises are judged)
    gaining = np.array(_VAL_ACC)
    gaining[8:] = np.linspace(0.76, 0.80, 8)
    doc = diagnose(run_of(loss=np.array(_LOSS), val_loss=np.array(_VAL_LOSS), val_accuracy=gaining))
    assert not [a for a in alarms(doc) if a[0] == "validation_divergence"]
    # and with no task metric beside it, a rise under validation_rise says too little
    doc = diagnose(run_of(loss=np.array(_LOSS), val_loss=np.array(_VAL_LOSS)))
    assert not found(doc, "validation_divergence")


# logsweep52 item 17 (SB3 PPO TensorBoard): rollout/ep_rew_mean's first 40 points, a 100-episode
# rolling mean filling in after a few lucky first episodes
_EP_REW_HEAD = [15000, 32650, 17875, 14700, 10786, 9688, 8150, 7125, 6393, 5781, 5361, 4975, 4833, 4543, 4300, 4173,
                3982, 3914, 3758, 3703, 3652, 3529, 3486, 3382, 3321, 3207, 3155, 3105, 3011, 2946, 2865, 2827, 2755,
                2721, 2713, 2700, 2623, 2578, 2558, 2549]


def test_a_return_that_only_decays_from_its_first_points_did_not_climb() -> None:
    rng = np.random.default_rng(7)
    settle = np.linspace(2500, 1700, 200) + rng.normal(0, 40, 200)
    tail = 1650 + rng.normal(0, 60, 427)  # 667 points in all, as the real series
    ret = np.concatenate([_EP_REW_HEAD, settle, tail])
    doc = diagnose(run_of(np.arange(len(ret)) * 7488.0 + 14976, rollout__ep_rew_mean=ret))
    # the peak of the running median sits in the first tenth the start is measured over: no climb
    assert not [f for f in found(doc, "reward_collapse") if "climbed" in f.summary]
