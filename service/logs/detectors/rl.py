"""Reinforcement-learning runs: telling rollout rewards from losses, and a return that collapses
(``reward_collapse``).
"""

from __future__ import annotations

import math
import re

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import finding
from gradhealth.logs.remedies import lower_lr
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import finite, smooth
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds

#: An agent trained on its own rollouts (Stable-Baselines3, RLlib, baselines): its episode reward.
#: (names with spaces or hyphens too: "mean 100 episode reward", MXNet's "Train-Accuracy")
ROLLOUT_REWARD = re.compile(r"ep[_ -]?rew|episode[_ -]?(?:reward|return)|episodic[_ -]?return|eprewmean|rollout/|"
                             r"averageepret|epret|success[_ -]?rate", re.IGNORECASE)


#: A series named a reward or return as a word (a TensorBoard CSV export named after its tag,
#: "run_ppo_reward"): an agent's outcome for what the log check says it holds, but not enough to
#: read the run as one on rollouts (TRL's DPO logs "rewards/chosen" beside its loss).
A_REWARD = re.compile(r"(?:^|[/_. -])(?:reward|return)s?(?:[/_. -]|$)", re.IGNORECASE)


def on_rollouts(run: RunLog) -> bool:
    """Whether the run trains an agent on its own rollouts: its loss (PPO's policy + value +
    entropy) is not an objective that falls; its data move with the policy, and the episode reward
    is what improves."""
    return any(ROLLOUT_REWARD.search(s.name) for s in run.series)


#: An RL run's outcome series: the episode return (mean reward) or success rate it logs, by name.
_RETURN = re.compile(r"(?:^|[/_. -])(?:ep[_ -]?rew(?:ard)?[_ -]?mean|eprewmean|episode[_ -]?(?:reward|return)s?|"
                     r"episodic[_ -]?return|mean[_ -]?(?:reward|return)|(?:average)?ep[_ -]?ret|return|"
                     r"success[_ -]?rate)(?:$|[/_. -](?:mean|avg))?$", re.IGNORECASE)
#: A statistic of the episodes other than their mean (min/max/std of the returns).
_SPREAD = re.compile(r"(?:^|[/_. -])(?:min|max|std)(?:[/_. -]|$)", re.IGNORECASE)
#: Points an outcome series needs before a collapse is judged, and the share of the run at its end
#: that must stay down.
_RETURN_POINTS = 20
_RETURN_TAIL = 0.2


@detects("reward_collapse")
def reward_collapse(run: RunLog, t: LogThresholds) -> list[Finding]:
    """An agent's episode return (or success rate) that climbed well above where it started and
    then lost more than half of that gain for the last fifth of the run or more (DDPG on a
    continuous-control task: 2,143 at its best, -362 at the end). Judged on running medians, so a
    bad episode or two is not a collapse; the gain must stand out from the series' own
    episode-to-episode noise."""
    out: list[Finding] = []
    outcomes = [s for s in run.series if _RETURN.search(s.name) and "history" not in s.name.lower()]
    # the mean return where one is logged, not its min/max/std companions (baselines' and GAIL's
    # "min 100 episode reward" beside the mean)
    plain = [s for s in outcomes if not _SPREAD.search(s.name)]
    for s in plain or outcomes:
        steps, v = finite(s)
        n = len(v)
        if n < _RETURN_POINTS:
            continue
        sm = smooth(v, max(3, (n // 10) | 1))
        head = max(2, n // 10)
        start = float(np.median(v[:head]))
        i_peak = int(np.argmax(sm))
        peak = float(sm[i_peak])
        gain = peak - start
        noise = 1.4826 * float(np.median(np.abs(np.diff(v)))) / math.sqrt(2)
        tail = max(3, int(math.ceil(_RETURN_TAIL * n)))
        end = float(np.median(v[-tail:]))
        # a climb smaller than the ground lost below the start is no climb and fall: the series
        # fell (a 100-episode mean's first points, a handful of episodes, read as a "peak"); nor
        # is a peak inside the first tenth the start is the median of: the running median's edge
        # window there is the start itself, not a climb from it (logsweep52: a PPO's ep_rew_mean
        # 15000 at its first point decaying to ~1600, "climbed from 2738 to 3948")
        if gain <= 0 or gain < 4 * noise or i_peak < head or i_peak >= n - tail or gain < start - end:
            fell = _fell_below_start(s, steps, sm, start, end, noise, tail, run)
            if fell is not None:
                out.append(fell)
            continue
        kept = (end - start) / gain
        if kept >= 0.5 or not np.all(sm[-tail:] < start + 0.5 * gain):
            continue
        best = float(steps[i_peak])
        out.append(finding(
            "reward_collapse", "warning",
            f"{s.name} climbed from {start:.4g} to {peak:.4g} ({s.where(best)}) and fell back to {end:.4g} over the "
            f"last {tail} of {n} points: {1 - kept:.0%} of its gain lost (running medians)",
            "The agent got better and then worse, and stayed worse: updates too large for the policy at that "
            "stage (an actor's or critic's learning rate, a target network updated too fast, Q overestimation). "
            "The best policy was the one at the peak.",
            {"metric": s.name, "steps": [_num(best), _num(float(steps[-1]))], "value": 1 - kept,
             "threshold": 0.5, "start": start, "peak": peak, "last": end, "best_step": _num(best)},
            [R.early_stopping(best, max(2, tail // 2)),
             lower_lr(run, at_step=best, why=f"{s.name} collapsed after {s.where(best)}")]))
    return out[:3]


def _fell_below_start(s: Series, steps: np.ndarray, sm: np.ndarray, start: float, end: float, noise: float,
                      tail: int, run: RunLog) -> Finding | None:
    """An outcome that never climbed clear of where it started and ends far below it: the median of
    its last fifth and its last running median under the start by half the start's size and by 4
    standard errors of a median of that many noisy episodes (LunarLander under DQN: -154 over its first episodes, -948
    over its last). An agent that ends worse than its untrained policy has been made worse by
    training; where the series is at 0 (a success rate) it cannot fall."""
    need = max(0.5 * abs(start), 4 * 1.2533 * noise / math.sqrt(tail))  # (1.2533: a median's standard error)
    # the last fifth's median and the last running median both that far down: a fall that stays
    if not need > 0 or not (end < start - need and sm[-1] < start - need):
        return None
    return finding(
        "reward_collapse", "warning",
        f"{s.name} fell from {start:.4g} (its first tenth) to {end:.4g} over the last {tail} of {len(steps)} points "
        f"and stayed there: the agent ends worse than it started (running medians)",
        "The agent's return got worse with training and stayed worse: its updates push the policy away from what "
        "its first episodes did (a learning rate too large for the policy or the critic, a reward whose sign or "
        "scale is wrong, exploration that decays into a bad deterministic policy). The untrained policy scored "
        "better.",
        {"metric": s.name, "steps": [_num(float(steps[0])), _num(float(steps[-1]))],
         "value": (start - end) / abs(start) if start else math.inf, "threshold": 0.5, "start": start, "last": end},
        [lower_lr(run, at_step=float(steps[0]), why=f"{s.name} fell below where it started")])
