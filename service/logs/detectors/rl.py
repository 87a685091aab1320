"""Reinforcement-learning runs: telling rollout rewards from losses, a return that collapses
(``reward_collapse``), one that never rises (``reward_plateau``), and an RLHF policy whose KL to its
reference model blows up (``kl_divergence``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding, Remedy
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import finding
from gradhealth.logs.remedies import clipping, lower_lr, raise_lr
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import diff_noise, finite, median, smooth
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
    is what improves. Named by its episode reward, or by an episode counter beside an exploration
    rate (:data:`_EXPLORATION_RATE`: an epsilon-greedy agent's console, ``Episode 3/10 | ... | Loss:
    2.4 | ε: 0.05``, that names no reward: its TD loss regresses onto targets that move with the
    agent, logsweep92 madqn_sessions). An episode counter alone is not enough: a few-shot learner
    counts its training tasks as episodes, and its loss is an objective that falls."""
    if any(ROLLOUT_REWARD.search(s.name) for s in run.series):
        return True
    return (any(_EXPLORATION_RATE.search(s.name.strip()) for s in run.series)
            and episode_counter(run) is not None)


#: An agent's exploration rate by its name: epsilon-greedy's epsilon (``eps``, ``epsilon``, ``ε``),
#: an exploration rate; what no supervised run logs beside an episode counter.
_EXPLORATION_RATE = re.compile(r"(?:^|[/_. -])(?:eps|epsilon|\u03b5|exploration(?:_rate|_eps)?)$", re.IGNORECASE)


#: An RL run's outcome series: the episode return (mean reward) or success rate it logs, by name.
#: What a Stable-Baselines3 Monitor file's series are, in its own columns (``readers.monitor``
#: derives them from ``r``, ``l`` and ``is_success``): the summaries name the column, since the
#: file has no ``ep_rew_mean`` (logsweep75)
_MONITOR_COLUMNS = {"ep_rew_mean": "the mean of column r over the last 100 episodes",
                    "episode_return": "column r", "episode_length": "column l",
                    "success_rate": "column is_success over the last 100 episodes"}


def _named(run: RunLog, s: Series, *, column_only: bool = False) -> str:
    """``s``'s name for a summary: with the file's column it was read from, for a Monitor file
    (the column alone with ``column_only``, for a name already in brackets)."""
    column = _MONITOR_COLUMNS.get(s.name) if run.format == "sb3_monitor" else None
    return s.name if not column else column if column_only else f"{s.name} ({column})"


_RETURN = re.compile(r"(?:^|[/_. -])(?:ep[_ -]?rew(?:ard)?[_ -]?mean|eprewmean|episode[_ -]?(?:reward|return)s?|"
                     r"episodic[_ -]?return|mean[_ -]?(?:reward|return)|(?:average)?ep[_ -]?ret|return|"
                     r"success[_ -]?rate)(?:$|[/_. -](?:mean|avg))?$", re.IGNORECASE)
#: A statistic of the episodes other than their mean (min/max/std of the returns).
_SPREAD = re.compile(r"(?:^|[/_. -])(?:min|max|std)(?:[/_. -]|$)", re.IGNORECASE)
#: Points an outcome series needs before a "never rose" is judged (beside the episodes or means of
#: :data:`_PLATEAU_EPISODES`), and the share of the run at its end that must stay down. A collapse
#: needs only the trend checks' ``min_points`` (8): its start (2 points at least), running medians
#: of 3 and a last fifth of 3 points at least fit in them, and its gain and fall must stand out from
#: the series' own noise, which guards a short series (logsweep74 u07: an SB3 tail of 14 means,
#: 0.975 for six updates, then 0.9, 0.72, 0.48, 0.25, 0.08 and 0 for three, went unjudged at 20).
_RETURN_POINTS = 20
_RETURN_TAIL = 0.2


#: A run's episode counter, logged on each line as its step (a console's ``Episode: 19500``), and a
#: bare mean logged against it (``Avg: -105.8``, ``average reward``): the mean return of the episodes
#: up to that line when the run logs no other return (logsweep59: a DDPG console's
#: ``Episode: N  Avg: x  BestAvg: y``).
#: (not a bare "ep": many consoles print their epoch so; nor "eps", an exploration epsilon)
_EPISODE_COUNTER = re.compile(r"(?:^|[/.])(?:episodes?|episode[_ -]?(?:num|number|count|idx|index|no)|"
                              r"n[_ -]?episodes|num[_ -]?episodes|total[_ -]?episodes)$", re.IGNORECASE)
#: (also a window's length after the word and a score: the DQN/Udacity consoles' "Average100 Score",
#: "avg score"; and a bare "Score" per episode: a score is a return only beside an episode counter)
_BARE_MEAN = re.compile(r"(?:avg|average|mean)(?:[_ -]?\d+)?(?:[_ -]?(?:reward|return|score)s?)?|(?:episode[_ -]?)?scores?",
                        re.IGNORECASE)


def episode_counter(run: RunLog) -> Series | None:
    """The run's episode counter: a series named as one (``Episode``, ``episodes``,
    ``time/episodes``) whose finite values never fall and grow over the run, else None."""
    for s in run.series:
        if not _EPISODE_COUNTER.search(s.name.strip()):
            continue
        _, v = finite(s)
        if len(v) >= 2 and bool(np.all(np.diff(v) >= 0)) and float(v[-1]) > float(v[0]):
            return s
    return None


#: The reward an RLHF trainer logs per update, the mean over the batch of completions it scored: the
#: run's return for the reward rules. TRL's GRPO and RLOO (``reward``), its PPO (``env/reward_mean``
#: in the old trainer, ``ppo/mean_scores``; ``objective/scores`` and ``objective/rlhf_reward``, the
#: score less beta x KL, in the new one and in online DPO), OpenRLHF (``reward``, ``train/reward`` on
#: W&B), verl (``critic/score/mean``, the reward model's or function's score, and
#: ``critic/rewards/mean``, with the KL penalty). In this order the first logged is the run's.
_RLHF_TOTAL = (re.compile(r"^(?:train[/_])?reward$", re.IGNORECASE),
               re.compile(r"^env/reward_mean$", re.IGNORECASE),
               re.compile(r"^ppo/mean_scores$", re.IGNORECASE),
               re.compile(r"^objective/scores$", re.IGNORECASE),
               re.compile(r"^objective/rlhf_reward$", re.IGNORECASE),
               re.compile(r"^critic/score/mean$", re.IGNORECASE),
               re.compile(r"^critic/rewards/mean$", re.IGNORECASE))
#: One reward function's batch mean where GRPO is given several (``rewards/<func>/mean``; before TRL
#: 0.16, ``rewards/<func>``): judged only where no total is logged. Not DPO's implicit rewards
#: (``rewards/chosen``, ``rewards/margins``: a log-ratio to the reference, not a score of samples).
_RLHF_PART = re.compile(r"^(?:train[/_])?rewards/(?!(?:chosen|rejected|margins|accuracies)$)[^/]+(?:/mean)?$",
                        re.IGNORECASE)


def _rlhf_reward(name: str) -> bool:
    """Whether ``name`` is a reward an RLHF trainer logs as a batch mean (:data:`_RLHF_TOTAL`, :data:`_RLHF_PART`)."""
    return any(p.match(name) for p in _RLHF_TOTAL) or (bool(_RLHF_PART.match(name)) and not _SPREAD.search(name))


def rlhf_rewards(run: RunLog) -> list[Series]:
    """The RLHF reward the run logs as its return: the first total of :data:`_RLHF_TOTAL` it logs, or,
    with none, each reward function's mean; empty for a run that logs none."""
    for pattern in _RLHF_TOTAL:
        for s in run.series:
            if pattern.match(s.name) and len(finite(s)[1]):
                return [s]
    return [s for s in run.series if _RLHF_PART.match(s.name) and not _SPREAD.search(s.name) and len(finite(s)[1])]


def _a_mean(name: str) -> bool:
    """Whether ``name`` is a mean return (one point per update or a running mean), not one episode's
    return: named a mean, or an RLHF trainer's batch-mean reward."""
    return bool(_A_MEAN.search(name)) or _rlhf_reward(name)


def _outcomes(run: RunLog) -> list[Series]:
    """The run's outcome series (episode returns, success rates, an RLHF trainer's batch-mean
    reward) by name; where it logs none but counts its episodes, a bare mean (``Avg``) logged
    against that counter."""
    found = [s for s in run.series if _RETURN.search(s.name) and "history" not in s.name.lower()]
    found += [s for s in rlhf_rewards(run) if s not in found]
    if found:
        return found
    return counted_returns(run)


def counted_returns(run: RunLog) -> list[Series]:
    """The returns a run logs against its episode counter without naming them a reward or return:
    a bare mean (``Avg``, ``Average100_Score``, ``avg score``) or a ``Score`` beside ``Episode N``;
    empty where the run counts no episodes (a supervised log's ``score`` is no return)."""
    counter = episode_counter(run)
    if counter is None:
        return []
    return [s for s in run.series if s is not counter and _BARE_MEAN.fullmatch(s.name.strip())]


def _plain_outcomes(run: RunLog) -> list[Series]:
    """:func:`_outcomes` without their min/max/std companions where a mean is logged (baselines'
    and GAIL's "min 100 episode reward" beside the mean); all of them where nothing else is."""
    outcomes = _outcomes(run)
    return [s for s in outcomes if not _SPREAD.search(s.name)] or outcomes


def _episodes_spanned(counter: Series | None, steps: np.ndarray) -> int:
    """The episodes an outcome logged at ``steps`` covers, read from the episode ``counter`` at the
    same steps: its last count less its first, plus one interval (the first mean covers the
    episodes before it); 0 where the counter has no point at the outcome's steps."""
    if counter is None or len(steps) < 2:
        return 0
    at = {float(x): float(y) for x, y in zip(*finite(counter), strict=True)}
    counts = np.array([at[float(x)] for x in steps if float(x) in at])
    if len(counts) < 2:
        return 0
    gaps = np.diff(counts)
    return int(counts[-1] - counts[0] + float(median(gaps[gaps > 0])) if np.any(gaps > 0) else 0)


@detects("reward_collapse")
def reward_collapse(run: RunLog, t: LogThresholds) -> list[Finding]:
    """An agent's episode return (or success rate) that climbed well above where it started and
    then lost more than half of that gain for the last fifth of the run or more (DDPG on a
    continuous-control task: 2,143 at its best, -362 at the end). Judged on running medians, so a
    bad episode or two is not a collapse; the gain must stand out from the series' own
    episode-to-episode noise."""
    out: list[Finding] = []
    plain = _plain_outcomes(run)
    for s in plain:
        steps, v = finite(s)
        n = len(v)
        if n < t.min_points:
            continue
        sm = smooth(v, max(3, (n // 10) | 1))
        head = max(2, n // 10)
        start = float(median(v[:head]))
        i_peak = int(np.argmax(sm))
        peak = float(sm[i_peak])
        gain = peak - start
        noise = diff_noise(v)
        tail = max(3, int(math.ceil(_RETURN_TAIL * n)))
        end = float(median(v[-tail:]))
        # a climb smaller than the ground lost below the start is no climb and fall: the series
        # fell (a 100-episode mean's first points, a handful of episodes, read as a "peak"); nor
        # is a peak inside the first tenth the start is the median of: the running median's edge
        # window there is the start itself, not a climb from it (logsweep52: a PPO's ep_rew_mean
        # 15000 at its first point decaying to ~1600, "climbed from 2738 to 3948")
        climbed = gain > 0 and gain >= 4 * noise and i_peak >= head
        if not climbed or i_peak >= n - tail or gain < start - end:
            late = _late_collapse(run, s, steps, v, sm, i_peak, start, gain, noise) if climbed else None
            fell = late or _fell_below_start(s, steps, sm, start, end, noise, tail, run)
            if fell is not None:
                out.append(fell)
            continue
        kept = (end - start) / gain
        if kept >= 0.5 or not np.all(sm[-tail:] < start + 0.5 * gain):
            late = _late_collapse(run, s, steps, v, sm, i_peak, start, gain, noise)
            if late is not None:
                out.append(late)
            continue
        best = float(steps[i_peak])
        out.append(finding(
            "reward_collapse", "warning",
            f"{_named(run, s)} climbed from {start:.4g} to {peak:.4g} ({s.where(best)}) and fell back to {end:.4g} over the "
            f"last {tail} of {n} points: {1 - kept:.0%} of its gain lost (running medians)",
            "The agent got better and then worse, and stayed worse: updates too large for the policy at that "
            "stage (an actor's or critic's learning rate, a target network updated too fast, Q overestimation). "
            "The best policy was the one at the peak.",
            {"metric": s.name, "steps": [_num(best), _num(float(steps[-1]))], "value": 1 - kept,
             "threshold": 0.5, "start": start, "peak": peak, "last": end, "best_step": _num(best)},
            [R.early_stopping(best, max(2, tail // 2), where=s.where(best)),
             *_exploring(run, s, [lower_lr(run, at_step=best, why=f"{s.name} collapsed after {s.where(best)}")])]))
    return _evaluations_folded(_one_per_quantity(run, out, plain))[:3]


#: A collapse that began late or partly recovered (:func:`_late_collapse`): the running median held
#: below the halfway mark (half the gain lost) for this share of the run's points or more (the
#: running median's own window, a tenth: one window of bad episodes is not a collapse) ...
_LATE_SHARE = 0.1
#: ... and the run ends with at least this share of the gain still lost (its last running median)
_LATE_LOST = 0.25


def _late_collapse(run: RunLog, s: Series, steps: np.ndarray, v: np.ndarray, sm: np.ndarray, i_peak: int,
                   start: float, gain: float, noise: float) -> Finding | None:
    """An outcome that climbed (``gain`` over ``start`` to its peak at ``i_peak``, 4 times its noise or
    more), then lost more than half of that gain for a tenth of the run or more, and ends with a
    quarter of the gain or more still lost, the gain and the loss both 4 standard errors or more (of a
    running median, or of the early level counted as few samples, :func:`_early_se`): a
    collapse that began in the last fifth, or one followed by a partial recovery, which the last
    fifth's test misses (logsweep97 rl_ppo_invpendulum_collapse: 11 -> 975 at 60% of the run, down to
    245, back to 515 by the end, the last fifth opening at 796)."""
    n = len(v)
    w = max(3, (n // 10) | 1)
    halfway = start + 0.5 * gain
    below = np.append(sm[i_peak:] < halfway, False)
    # the longest run of running medians under the halfway mark after the peak
    best_len, best_at, run_at = 0, -1, -1
    for i, b in enumerate(below):
        if b and run_at < 0:
            run_at = i
        elif not b and run_at >= 0:
            if i - run_at > best_len:
                best_len, best_at = i - run_at, run_at
            run_at = -1
    last = float(sm[-1])
    peak = start + gain
    # the standard error of a running median, and of the early level counted as few samples where the
    # points are a running mean (SB3's ep_rew_mean over 100 episodes wanders by more than it steps)
    se = max(1.2533 * noise / math.sqrt(w), _early_se(v, max(2, n // 10), noise)[1])
    if gain < 4 * se or best_len < max(3, math.ceil(_LATE_SHARE * n)) or (peak - last) < max(_LATE_LOST * gain, 4 * se):
        return None
    i_low = i_peak + int(np.argmin(sm[i_peak:]))
    low = float(sm[i_low])
    best, at_low, stop = float(steps[i_peak]), float(steps[i_low]), i_peak + best_at + best_len
    lost = (peak - last) / gain
    recovered = last > float(median(v[i_peak + best_at:stop]))
    return finding(
        "reward_collapse", "warning",
        f"{_named(run, s)} climbed from {start:.4g} to {peak:.4g} ({s.where(best)}), fell to {low:.4g} "
        f"({s.where(at_low)}) and {'recovered only to' if recovered else 'ended at'} {last:.4g}: more than half of its "
        f"gain lost over {best_len} of {n} points, {lost:.0%} of it still lost at the end (running medians)",
        "The agent got better and then much worse; the run ends well short of its best. Updates too large for "
        "the policy at that stage (an actor's or critic's learning rate, a target network updated too fast, Q "
        "overestimation) undo what it learnt. The best policy was the one at the peak.",
        {"metric": s.name, "steps": [_num(best), _num(float(steps[-1]))], "value": lost,
         "threshold": _LATE_LOST, "start": start, "peak": peak, "last": last, "best_step": _num(best),
         "trough": low, "trough_step": _num(at_low), "points_below_halfway": best_len},
        [R.early_stopping(best, max(2, w // 2), where=s.where(best)),
         *_exploring(run, s, [lower_lr(run, at_step=best, why=f"{s.name} collapsed after {s.where(best)}")])])


#: An agent's exploration logged beside its return: epsilon-greedy's epsilon, a policy's entropy
#: (SB3's ``entropy_loss`` is its negative), an exploration rate or action noise.
_EXPLORATION = re.compile(r"(?:^|[/_. -])(?:eps|epsilon|\u03b5|exploration(?:_rate|_eps)?|entropy(?:_loss)?|"
                          r"action_noise|noise_std)$", re.IGNORECASE)


def _exploring(run: RunLog, s: Series, others: Sequence[Remedy | None]) -> list[Remedy | None]:
    """``others`` (the rate remedies of an outcome ``s`` that never rose or fell back) with
    ``keep_exploring``: first where an exploration series the log holds fell to under a tenth of its
    first size (the evidence points there), last where the log shows none (a cause it can only
    suspect), and left out where the logged exploration held (logsweep92 iqn_cartpole_stuck: a DQN
    whose epsilon decayed too fast was offered the rate raised and lowered, nothing about exploring)."""
    for e in run.series:
        if e is s or not _EXPLORATION.search(e.name):
            continue
        steps, v = finite(e)
        if len(v) < 2:
            continue
        first, last = abs(float(v[0])), abs(float(v[-1]))
        if not last < 0.1 * first:
            return list(others)  # still exploring: the plateau's cause is elsewhere
        return [R.keep_exploring(f"{e.name} went from {float(v[0]):.3g} ({e.where(float(steps[0]))}) to "
                                 f"{float(v[-1]):.3g} ({e.where(float(steps[-1]))})"), *others]
    return [*others, R.keep_exploring(f"the log has no epsilon or entropy series: check that exploration had "
                                      f"not decayed to nothing before {s.name} improved")]


def _running_mean_of(mean: Series, episodes: Series) -> bool:
    """Whether ``mean`` is a running mean of ``episodes`` logged beside it: named a mean, the other
    not, and a point at each of the other's steps (a Monitor's ``ep_rew_mean`` over its
    ``episode_return``, SB3's own smoothing of the same returns)."""
    if mean is episodes or not _A_MEAN.search(mean.name) or _A_MEAN.search(episodes.name):
        return False
    ms, es = finite(mean)[0], finite(episodes)[0]
    return len(ms) == len(es) and len(ms) > 0 and bool(np.array_equal(ms, es))


def _one_per_quantity(run: RunLog, found: list[Finding], series: list[Series]) -> list[Finding]:
    """One reward_collapse per quantity: where a run logs its episodes' returns and a running mean
    of them (a Monitor file's ``episode_return`` and ``ep_rew_mean``), the collapse is judged on the
    running mean, the return SB3 reports and plots (one episode scatters far more than the policy
    moves), and the per-episode series' view (the medians of its first tenth and last fifth) is
    folded into that finding; where only the per-episode series collapsed, its finding stands
    alone (logsweep67 u10: two findings, 2888 -> -705.5 and 3108 -> 6581 -> 166.5, for one run)."""
    by_name = {f.evidence.metric: f for f in found}
    out = list(found)
    for mean in series:
        for episodes in series:
            if not _running_mean_of(mean, episodes):
                continue
            kept, folded = by_name.get(mean.name), by_name.get(episodes.name)
            if kept is None or folded is None:
                continue
            _, v = finite(episodes)
            n = len(v)
            start = float(median(v[: max(2, n // 10)]))
            end = float(median(v[-max(3, int(math.ceil(_RETURN_TAIL * n))):]))
            evidence = kept.evidence.model_copy(
                update={"episodes": {"metric": episodes.name, "start": start, "last": end}})
            merged = kept.model_copy(update={
                "summary": kept.summary + (f"; per episode ({_named(run, episodes, column_only=True)}), the median of the first tenth is "
                                           f"{start:.4g} and of the last fifth {end:.4g} (single episodes, not a 100-episode mean)"),
                "evidence": evidence})
            out[out.index(kept)] = merged
            by_name[mean.name] = merged
            out.remove(folded)
    return out


def _evaluations_folded(found: list[Finding]) -> list[Finding]:
    """One reward_collapse per agent: the collapse of an evaluation's return (``eval/mean_reward``,
    ``test/success_rate``: an evaluation word in its name) beside that of the training rollouts'
    return (``rollout/ep_rew_mean``) is the same policy getting worse, seen on two sets of episodes;
    it is folded into the training return's finding, as validation_divergence names the other losses
    that rose (logsweep79 u09: SB3's ep_rew_mean 951 -> -1203 and eval/mean_reward 1054 -> -1215,
    two warnings for one collapse). The summary names both, the evidence lists them (``metrics``)
    with each folded one's evidence (``also_collapsed``). Where only evaluations collapsed, each
    stands."""
    from gradhealth.logs.detectors.chance import VALIDATION

    def evaluation(f: Finding) -> bool:
        return bool(VALIDATION.search(str(f.evidence.metric or "").lower()))

    trained = [f for f in found if not evaluation(f)]
    evaluated = [f for f in found if evaluation(f)]
    if not trained or not evaluated:
        return found
    kept = trained[0]
    severity = max((kept, *evaluated), key=lambda f: ("info", "warning", "error").index(f.severity)).severity
    merged = kept.model_copy(update={
        "severity": severity,
        "summary": kept.summary + "; the same collapse in the evaluations: " + "; ".join(f.summary for f in evaluated),
        "evidence": kept.evidence.model_copy(update={
            "metrics": [kept.evidence.metric] + [f.evidence.metric for f in evaluated],
            "also_collapsed": [f.evidence.model_dump() for f in evaluated]})})
    return [merged if f is kept else f for f in found if f not in evaluated]


#: A fall that is no share of the start's size but stands out from the series' own noise: at least
#: this share of the start's size (of the early level's spread where the start is nearer 0 than
#: that) and this many standard errors of the early level, held over the whole last fifth.
#: logsweep62 u02: an SB3 PPO on Mario, ep_rew_mean 2519-2572 over its first tenth (spread 79, one
#: effective sample: a 100-episode mean moves in steps), then 1444 to the end: a 43 % fall (1076),
#: under the half of the start asked of any fall, 10.8 standard errors. A return's distance from 0
#: is the task's offset (distance walked, a survival bonus), not a scale for its falls.
_FALL_SHARE = 0.25
_FALL_SE = 10.0


def _early_se(v: np.ndarray, head: int, noise: float) -> tuple[float, float]:
    """The spread of the series' first ``head`` points (1.4826 MADs: a standard deviation robust to
    a jump) and the standard error of their median, counting the points as independent only as far
    as the episode-to-episode ``noise`` says they are: a running mean whose points move less from one
    to the next than over the tenth counts as few samples (``head * (noise / spread)**2``, 1 at
    least), episodes that vary independently as all of them."""
    early = v[:head]
    spread = 1.4826 * float(median(np.abs(early - median(early))))
    if not spread > 0:
        spread = noise
    if not spread > 0:
        return 0.0, 0.0
    effective = min(float(head), max(1.0, head * (noise / spread) ** 2))
    return spread, 1.2533 * spread / math.sqrt(effective)  # (1.2533: a median's standard error)


def _fell_below_start(s: Series, steps: np.ndarray, sm: np.ndarray, start: float, end: float, noise: float,
                      tail: int, run: RunLog) -> Finding | None:
    """An outcome that never climbed clear of where it started and ends far below it: the median of
    its last fifth and its last running median under the start by half the start's size and by 4
    standard errors of a median of that many noisy episodes (LunarLander under DQN: -154 over its first episodes, -948
    over its last); or, a smaller fall, by a quarter of the start's size (of the early level's spread
    where larger) and by ten standard errors of the early level, every running median of the last
    fifth that far down (:data:`_FALL_SE`). An agent that ends worse than its untrained policy has
    been made worse by training; where the series is at 0 (a success rate) it cannot fall."""
    n = len(steps)
    need = max(0.5 * abs(start), 4 * 1.2533 * noise / math.sqrt(tail))  # (1.2533: a median's standard error)
    threshold, against = 0.5, ""
    # the last fifth's median and the last running median both that far down: a fall that stays
    if not need > 0 or not (end < start - need and sm[-1] < start - need):
        spread, se = _early_se(np.asarray(finite(s)[1]), max(2, n // 10), noise)
        need = max(_FALL_SHARE * max(abs(start), spread), _FALL_SE * se)
        if not (need > 0 and se > 0 and end < start - need and bool(np.all(sm[-tail:] < start - need))):
            return None
        threshold = _FALL_SHARE
        against = (f", {(start - end) / se:.3g} standard errors of its first tenth's level (spread {spread:.3g}), "
                   "held over the whole last fifth")
    head = max(2, n // 10)
    first = "its first tenth" if n // 10 >= 2 else f"the median of its first {head} points"
    # a log that opens after more steps than it spans is a window of the run: its first points are
    # where the log begins, not the untrained policy
    excerpt = float(steps[0]) > float(steps[-1] - steps[0])
    began = (f"where the log begins ({s.where(float(steps[0]))}, a run already under way)" if excerpt
             else "it started")
    return finding(
        "reward_collapse", "warning",
        f"{_named(run, s)} fell from {start:.4g} ({first}) to {end:.4g} over the last {tail} of {n} points "
        f"and stayed there{against}: the agent ends worse than {began} (running medians)",
        "The agent's return got worse with training and stayed worse: its updates push the policy away from what "
        "its first episodes did (a learning rate too large for the policy or the critic, a reward whose sign or "
        "scale is wrong, exploration that decays into a bad deterministic policy). The untrained policy scored "
        "better.",
        {"metric": s.name, "steps": [_num(float(steps[0])), _num(float(steps[-1]))],
         "value": (start - end) / abs(start) if start else math.inf, "threshold": threshold, "start": start,
         "last": end, **({"standard_errors": (start - end) / se} if against else {})},
        [lower_lr(run, at_step=float(steps[0]), why=f"{s.name} fell below where it started")])


#: A return series long enough to say an agent never learnt: this many episodes (one point each, a
#: Monitor's ``r``), or this many logged means of a return (SB3's ``rollout/ep_rew_mean`` per update).
#: logsweep57: an A2C on BipedalWalker-v3, 46,706 episodes over 15,140 s, every tenth's median
#: -102 to -108 (the walker falls in every episode); a few hundred episodes can be exploration.
_PLATEAU_EPISODES = 1000
_PLATEAU_MEANS = 200
#: How far the running median may rise above the start and still be "never rose": this share of the
#: start's size (the walker's -108.4 -> -101.8 is 6 %), or this many standard errors of a running
#: median of the series' own episode-to-episode noise, whichever is larger.
_PLATEAU_SHARE = 0.1
_PLATEAU_NOISE = 4.0
#: A share of the points at the series' maximum that makes it a ceiling (CartPole's 500, a success
#: rate's 1): an agent there from the start has solved the task, not failed to learn it.
_CEILING_SHARE = 0.25
#: A success rate whose start is at least this share of its scale (1, or 100 for a percentage).
_SUCCESS_SOLVED = 0.9
#: The names of a mean return (one point per update or a running mean), not one episode's return.
_A_MEAN = re.compile(r"mean|avg|average|eprew", re.IGNORECASE)
_SUCCESS = re.compile(r"success", re.IGNORECASE)
#: An outcome series as :func:`reward_plateau` judges it: the series, its steps and finite values,
#: its start, its band and its running median.
_Judged = tuple[Series, np.ndarray, np.ndarray, float, float, np.ndarray]


def _at_ceiling(v: np.ndarray, start: float, band: float, success: bool) -> bool:
    """Whether an outcome starts at the task's best: a success rate at 90 % or more of its scale, or
    a return whose maximum a quarter of the points or more reach exactly (a capped episode: CartPole's
    500) and whose start is within ``band`` of it. A series pinned at one value at or below 0, with
    nothing under it (a sparse reward never reached, MountainCar's -200 time-out), is no ceiling."""
    top = float(np.max(v))
    if success:
        scale = 100.0 if top > 1.0 else 1.0
        return start >= _SUCCESS_SOLVED * scale
    at_top = np.abs(v - top) <= 1e-9 * max(1.0, abs(top))
    if float(np.mean(at_top)) < _CEILING_SHARE or start < top - band:
        return False
    return top > 0 or not bool(np.all(at_top))


def _long_returns(run: RunLog) -> tuple[list[_Judged], bool, int]:
    """The run's outcome series long enough for :func:`reward_plateau`, each with its steps, finite
    values, start, band and running median; whether one of them starts at the task's best (then
    none is a plateau); and the episodes counted (0 where no series has one point per episode)."""
    plain = _plain_outcomes(run)
    counter = episode_counter(run)
    # one point per episode where any series counts them (a Monitor's running mean is per episode too)
    per_episode = max((len(finite(s)[1]) for s in plain if not _a_mean(s.name)
                       and not _SUCCESS.search(s.name)), default=0)
    judged: list[_Judged] = []
    solved = False
    for s in plain:
        steps, v = finite(s)
        n = len(v)
        mean = _a_mean(s.name) and n != per_episode
        # a mean logged every k episodes against an episode counter covers the counter's span, not
        # its n points (logsweep59: 36 hundred-episode means spanning 19,500 episodes)
        spanned = _episodes_spanned(counter, steps) if mean else 0
        if (n < (_PLATEAU_MEANS if mean else _PLATEAU_EPISODES) and spanned < _PLATEAU_EPISODES) \
                or n < _RETURN_POINTS:
            continue
        # "never learnt" is a claim about the run from its start (as loss_plateau's): a log opening
        # at step 5e6 that spans 1e6 of them is a window of it
        if float(steps[0]) > float(steps[-1] - steps[0]):
            continue
        window = max(3, (n // 10) | 1)
        sm = smooth(v, window)
        # the first tenth's median, or the first 20 points' where lower (the untrained policy): a
        # climb inside the first tenth (an agent that learnt fast, then held) is learning, not a plateau
        start = min(float(median(v[: max(2, n // 10)])), float(median(v[:_RETURN_POINTS])))
        noise = diff_noise(v)
        band = max(_PLATEAU_SHARE * abs(start), _PLATEAU_NOISE * 1.2533 * noise / math.sqrt(window))
        # an outcome at the task's best from the start: the task is solved, nothing to learn
        solved = solved or _at_ceiling(v, start, band, bool(_SUCCESS.search(s.name)))
        judged.append((s, steps, v, start, band, sm))
    return judged, solved, per_episode


def plateau_judged(run: RunLog) -> list[str]:
    """The outcome series :func:`reward_plateau` judges in ``run`` (long enough, from the run's start)."""
    judged, _, _ = _long_returns(run)
    return [j[0].name for j in judged]


#: An evaluation's outcome series by name (SB3's eval/mean_reward, a test return)
_EVAL = re.compile(r"(?:^|[/_. -])(?:eval|evaluation|test|val|validation)(?:[/_. -]|$)", re.IGNORECASE)


def _frozen_returns(run: RunLog, t: LogThresholds) -> Finding | None:
    """A training return exactly constant (no spread at all) over every one of its logged points,
    ``min_points`` (8) or more of them, with the evaluations' returns as flat and no higher: no
    episode the agent played moved it, so the policy did not change what it scores, whether or not
    the log begins at the run's start (logsweep74 u01: an SB3 PPO tail at 20M steps, ep_rew_mean 0
    in all 14 updates, eval mean_reward 0). A zero spread needs no noise estimate, which is what the
    200 means of the trend rule are for; ``min_points`` is the house's least for judging a series'
    course at all. Not a return at the task's best: a constant above 0 that the evaluations reach
    is a cap held (CartPole's 500), one at or below 0 is no ceiling (as :func:`_at_ceiling`); an
    evaluation is asked for because a mean over the last 100 episodes also stays put while no
    episode ends."""
    plain = _plain_outcomes(run)
    evals = [(e, finite(e)[1]) for e in plain if _EVAL.search(e.name)]
    evals = [(e, v) for e, v in evals if len(v)]
    if not evals or any(float(np.ptp(v)) != 0 for _, v in evals):
        return None
    top = max(float(v[0]) for _, v in evals)
    for s in plain:
        if _EVAL.search(s.name):
            continue
        steps, v = finite(s)
        n = len(v)
        if n < t.min_points or float(np.ptp(v)) != 0:
            continue
        c = float(v[0])
        if top > c or (c > 0 and top >= c):
            continue
        shown = ", ".join(f"{e.name} {float(ev[0]):.4g} at " + ("its one evaluation" if len(ev) == 1 else
                                                                 f"each of its {len(ev)} evaluations")
                          for e, ev in evals[:3])
        return finding(
            "reward_plateau", "warning",
            f"{_named(run, s)} is exactly {c:.4g} at every one of its {n} logged points ({s.where(float(steps[0]))} to "
            f"{s.where(float(steps[-1]))}), and the evaluation as flat and no higher ({shown}): no episode moved the return "
            "over the stretch the log shows",
            "The agent's return did not change at all: every episode scored alike, the policy no better at the "
            "end than at the start of the log (a sparse reward the agent never reaches, an episode that always "
            "times out, exploration or entropy decayed to nothing). The log may begin mid-run; a return frozen "
            "over all of it and in evaluation is no learning there, whatever came before.",
            {"metric": s.name, "steps": [_num(float(steps[0])), _num(float(steps[-1]))], "value": 0.0,
             "threshold": 0.0, "start": c, "peak": c, "last": c, "points": n, "episodes": None,
             "peak_step": _num(float(steps[0])), "constant": True,
             "evaluation": {e.name: float(ev[0]) for e, ev in evals[:10]}},
            _exploring(run, s, [
                raise_lr(run, at_step=float(steps[0]), why=f"{s.name} never moved"),
                lower_lr(run, at_step=float(steps[0]),
                         why=f"{s.name} never moved: a policy that collapsed early learns with smaller steps")]))
    return None


def rewards_unjudged(run: RunLog, t: LogThresholds) -> list[dict]:
    """The outcome series neither reward rule reports on and :func:`reward_plateau` did not judge,
    each ``{"metric", "points", "reason"}``: too few points, or a log that opens mid-run (a
    "never rose" is a claim about the run from its start). Empty where a reward rule fired or one
    outcome series was judged."""
    judged = set(plateau_judged(run))
    # one outcome judged from the run's start is the rewards checked (an eval series beside it too short)
    if judged or reward_plateau(run, t) or reward_collapse(run, t):
        return []
    plain = _plain_outcomes(run)
    per_episode = _long_returns(run)[2]
    out = []
    for s in plain:
        steps, v = finite(s)
        n = len(v)
        if s.name in judged or not n:
            continue
        mean = _a_mean(s.name) and n != per_episode
        need = f"{_PLATEAU_MEANS} logged means" if mean else f"{_PLATEAU_EPISODES:,} episodes"
        if n < t.min_points:
            reason = f"{n} point(s), under the {t.min_points} any trend check needs"
        elif float(steps[0]) > float(steps[-1] - steps[0]):
            reason = (f"the log opens at {s.where(float(steps[0]))}, after more steps than it spans "
                      f"({_num(float(steps[-1] - steps[0]))}): a window of a run under way, and whether the return "
                      "ever rose is judged from the run's start")
        else:
            # (one clause each, no parenthesis of its own: it is quoted inside one; logsweep84 grpo_chaos read
            # "50 points, under the 200 logged means a return that never rose is judged over: each point ...")
            each = (", each an RLHF trainer's mean over one update's batch of scored completions"
                    if _rlhf_reward(s.name) else "")
            reason = f"{n} points{each}; a return that never rose is judged only from {need} on"
        out.append({"metric": s.name, "points": n, "reason": reason})
    return out


@detects("reward_plateau")
def reward_plateau(run: RunLog, t: LogThresholds) -> list[Finding]:
    """An agent's episode return (or success rate) that never rose: over 1,000 episodes or more (200
    logged means) its running median never climbs above its start (the median of its first tenth,
    or of its first 20 points where lower) by more than the larger of a tenth of the start's
    size and 4 standard errors of a running median, and its last fifth stays within that band of the
    start. Not judged on an excerpt (a log that opens after more steps than it spans), nor where an
    outcome starts at the task's best (a success rate at its ceiling, a capped return at its cap).
    On any stretch of a run, an excerpt too, a return frozen at one value over 8 logged points or
    more with the evaluations as flat (:func:`_frozen_returns`) never rose either."""
    judged, solved, per_episode = _long_returns(run)
    if solved:
        return []
    counter = episode_counter(run)
    collapsed: set[str] | None = None
    for s, steps, v, start, band, sm in judged:
        n = len(v)
        tail = max(3, int(math.ceil(_RETURN_TAIL * n)))
        i_peak = int(np.argmax(sm))
        peak = float(sm[i_peak])
        end = float(median(v[-tail:]))
        last = sm[-tail:]
        if peak - start > band or not (np.all(last - start <= band) and end - start <= band):
            continue
        if not (np.all(np.abs(last - start) <= band) and abs(end - start) <= band):
            # never rose and ends below the band: a return that never rose all the same (an Average100
            # of CartPole from 24.7 over its first, few-episode means to 22.4, the random policy's
            # level), unless it fell far enough for reward_collapse, which reports it
            if collapsed is None:
                collapsed = {str(f.evidence.metric) for f in reward_collapse(run, t)}
            if s.name in collapsed:
                continue
            within = f"none of them more than {band:.3g} above the start, the end below it"
        else:
            within = f"all within {band:.3g} of the start"
        spanned = 0 if n == per_episode else _episodes_spanned(counter, steps)
        unit = ("episodes" if n == per_episode else
                f"logged means spanning {spanned:,} episodes ({counter.name})" if counter is not None and spanned
                else "points")
        return [finding(
            "reward_plateau", "warning",
            f"{_named(run, s)} never rose over {n:,} {unit} ({s.where(float(steps[0]))} to {s.where(float(steps[-1]))}): "
            f"it starts at {start:.4g}, its running median is at most {peak:.4g} ({s.where(float(steps[i_peak]))}) "
            f"and its last fifth's median is {end:.4g}, {within} (running medians)",
            "The agent's return did not improve over the whole run: the policy is no better at the end than at "
            "the start. Most often the updates are too small to move it (a learning rate too low for the "
            "reward's scale), or too large so that it collapsed into one behaviour early (a deterministic "
            "policy, exploration or entropy decayed to nothing); also a reward that gives no signal (sparse, "
            "unnormalised, or the wrong sign) or observations the policy cannot use.",
            {"metric": s.name, "steps": [_num(float(steps[0])), _num(float(steps[-1]))],
             "value": peak - start, "threshold": band, "start": start, "peak": peak, "last": end,
             "points": n, "episodes": per_episode or spanned or None, "peak_step": _num(float(steps[i_peak]))},
            _exploring(run, s, [
                raise_lr(run, at_step=float(steps[0]), why=f"{s.name} never rose above its start"),
                lower_lr(run, at_step=float(steps[0]),
                         why=f"{s.name} never rose: a policy that collapsed early learns with smaller steps")]))]
    frozen = _frozen_returns(run, t)
    return [frozen] if frozen is not None else []


#: The KL to the reference model an RLHF trainer logs beside its reward: TRL GRPO's ``kl`` (per
#: token), TRL PPO's, RLOO's and online DPO's ``objective/kl`` (summed over the response's tokens),
#: OpenRLHF's ``kl`` (``train/kl`` on W&B), verl's ``actor/kl_loss`` (the KL loss term) and
#: ``actor/reward_kl_penalty`` (the KL in the reward). Not the KL between consecutive policies
#: (``approx_kl``, ``policy/approxkl_avg``, verl's ``actor/ppo_kl``): PPO's clipping bounds that one
#: each update, whatever the distance from the reference; nor a VAE's KL term (the run must log a
#: reward or a score).
_KL_TO_REFERENCE = re.compile(r"^(?:(?:train|rollout|objective|policy)[/_])?(?:kl|kl_div|kl_divergence|ref_kl|"
                              r"kl_ref|mean_kl|kl_mean)$|^actor/(?:kl|kl_loss|reward_kl_penalty)$", re.IGNORECASE)
#: The KL logged summed over a response's tokens (TRL's ``objective/kl``), not per token.
_KL_PER_SEQUENCE = re.compile(r"^objective/kl$", re.IGNORECASE)
#: A KL to the reference past this many nats per token (per sequence: ten times as many) held over the
#: last fifth of the run, and at least :data:`_KL_GROWTH` times its level over the first tenth, has
#: left the reference: the policy makes its own tokens e^10 times likelier than the reference does.
#: Healthy fine-tunes stay far under it: GRPO's per-token KL at beta 0.04 ends near 0.01-0.1
#: (logsweep78 u01: 0 -> 0.06), a PPO's sequence KL near the 6 nats TRL's adaptive controller aims at.
_KL_BLOWN = 10.0
_KL_GROWTH = 100.0
#: A KL that rose tenfold or more to 1 nat per token (10 per sequence) or more while the reward
#: collapsed (:func:`reward_collapse`): the policy moved away and got worse, a warning.
_KL_RISE = 10.0
_KL_RISE_LEVEL = 1.0


def _kl_series(run: RunLog) -> list[Series]:
    """The run's KL-to-reference series (:data:`_KL_TO_REFERENCE`), where it logs a reward or a score."""
    if not any(re.search(r"reward|score", s.name, re.IGNORECASE) for s in run.series):
        return []
    return [s for s in run.series if _KL_TO_REFERENCE.match(s.name)]


def _reward_over(reward: Series | None, first: float, last: float, tail_from: float) -> dict | None:
    """The reward's medians over the KL's first stretch (steps up to ``first``) and its last fifth
    (steps from ``tail_from`` to ``last``), or None where it has no points in either."""
    if reward is None:
        return None
    steps, v = finite(reward)
    early, late = v[steps <= first], v[(steps >= tail_from) & (steps <= last)]
    if not len(early) or not len(late):
        return None
    return {"metric": reward.name, "start": float(median(early)), "last": float(median(late))}


@detects("kl_divergence")
def kl_divergence(run: RunLog, t: LogThresholds) -> list[Finding]:
    """An RLHF run's KL to its reference model that blew up: over the last fifth of the run its
    median is past :data:`_KL_BLOWN` nats per token (per sequence for TRL's ``objective/kl``: ten
    times as many) and :data:`_KL_GROWTH` times its level over the first tenth or more (an error);
    or it rose :data:`_KL_RISE` times or more to :data:`_KL_RISE_LEVEL` nat per token or more while
    the run's reward collapsed (a warning). A KL exactly 0 throughout is ``small_updates``."""
    kls = _kl_series(run)
    if not kls:
        return []
    rewards = _plain_outcomes(run)
    reward = rewards[0] if rewards else None
    collapsed = bool(reward_collapse(run, t)) if reward is not None else False
    out: list[Finding] = []
    for s in kls:
        steps, v = finite(s)
        n = len(v)
        if n < t.min_points:
            continue
        scale = 10.0 if _KL_PER_SEQUENCE.match(s.name) else 1.0
        unit = "nats per sequence" if scale > 1 else "nats per token"
        head = max(2, n // 10)
        tail = max(3, int(math.ceil(_RETURN_TAIL * n)))
        early = float(median(v[:head]))
        late = float(median(v[-tail:]))
        growth = late / early if early > 0 else math.inf
        blown = late >= _KL_BLOWN * scale and growth >= _KL_GROWTH
        rose = (collapsed and late >= _KL_RISE_LEVEL * scale and growth >= _KL_RISE
                and bool(np.all(smooth(v, max(3, (n // 10) | 1))[-tail:] >= _KL_RISE * max(early, 0.0))))
        if not (blown or rose):
            continue
        sm = smooth(v, max(3, (n // 10) | 1))
        i_peak = int(np.argmax(v))
        # where it left: the first point from which the running median stays above the geometric
        # middle of its early and late levels (halfway on a log scale)
        middle = math.sqrt(max(early, late * 1e-6) * late)
        below = np.nonzero(sm < middle)[0]
        i_on = int(below[-1]) + 1 if len(below) else 0
        i_on = min(i_on, n - 1)
        onset, last_step, tail_from = float(steps[i_on]), float(steps[-1]), float(steps[-tail])
        r = _reward_over(reward, float(steps[head - 1]), last_step, tail_from)
        grew = f"{growth:.3g}x its level" if math.isfinite(growth) else "up from 0"
        said_reward = (f"; over the same stretch {r['metric']} went from {r['start']:.4g} to {r['last']:.4g}"
                       if r is not None else "")
        summary = (f"{s.name} rose from {early:.3g} (its first tenth) to {late:.4g} {unit} over the last {tail} of {n} "
                   f"points ({grew}), from {s.where(onset)} on, peaking at {float(v[i_peak]):.4g} "
                   f"({s.where(float(steps[i_peak]))}){said_reward}: the policy left its reference model")
        severity = "error" if blown else "warning"
        why = f"{s.name} grew to {late:.3g} {unit} from {s.where(onset)}"
        out.append(finding(
            "kl_divergence", severity, summary,
            "The KL to the reference model measures how far the policy has moved from the model it started as. "
            "Growing by orders of magnitude to many nats (or rising while the reward falls), the policy has left "
            "the region where the reward model's scores mean anything: it found outputs the reward scores "
            "wrongly (reward hacking), or its updates became unstable (a learning rate or a gradient too large "
            "for the policy); its outputs degenerate. The KL penalty (beta) is what should hold it near the "
            "reference.",
            {"metric": s.name, "steps": [_num(onset), _num(last_step)], "value": late,
             "threshold": (_KL_BLOWN if blown else _KL_RISE_LEVEL) * scale, "early": early, "last": late,
             "peak": float(v[i_peak]), "peak_step": _num(float(steps[i_peak])),
             "growth": growth if math.isfinite(growth) else None, "per_sequence": scale > 1,
             "reward": r, "reward_collapsed": collapsed},
            [R.raise_kl_coefficient(why), lower_lr(run, at_step=onset, why=why), clipping(run, t)]))
    return out[:1]
