"""How much of a run a log covers: logs cut off mid-run (``truncated_log``) and too few points to judge
(``insufficient_data``).
"""

from __future__ import annotations

import re

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.chance import accuracies
from gradhealth.logs.detectors.common import finding
from gradhealth.logs.detectors.rl import (
    A_REWARD,
    ROLLOUT_REWARD,
    counted_returns,
    on_rollouts,
    plateau_judged,
    rewards_unjudged,
    rlhf_rewards,
)
from gradhealth.logs.series import RunLog, Series, final_series, gan_part
from gradhealth.logs.stats import finite
from gradhealth.logs.stats import num as _num
from gradhealth.logs.stats import span as _span
from gradhealth.logs.thresholds import LogThresholds

#: Ctrl-C, as Python and torch's elastic launcher report it (SIGINT is signal 2)
_BY_HAND = re.compile(r"KeyboardInterrupt|got signal:? *(?:2|SIGINT)\b")


@detects("truncated_log")
def truncated(run: RunLog, t: LogThresholds) -> list[Finding]:
    notes = [w for w in run.warnings if w.code in ("truncated_log", "corrupt_record")]
    if not notes and not run.traceback:
        return []
    last_line = run.traceback.strip().splitlines()[-1] if run.traceback else None
    damage = [w for w in notes if w.code == "corrupt_record" or "traceback" not in w.message]
    if last_line and _BY_HAND.search(last_line) and not damage:
        # Ctrl-C: the user stopped the run; nothing was cut or damaged
        return [finding(
            "truncated_log", "info", f"the run was stopped by hand: {last_line}",
            "The log ends in a KeyboardInterrupt: someone stopped the run; everything before it is analysed.",
            {"metric": None, "steps": None, "value": 0.0, "problems": [], "traceback_last_line": last_line}, [])]
    if last_line and run.after_training and not damage:
        # a later stage of the script failed (an evaluation's missing file, a plot's backend): the
        # training the log shows had ended, so nothing of it was cut short (logsweep87 wind_diffusion)
        return [finding(
            "truncated_log", "info",
            f"the log ends in a traceback after training had ended ({run.after_training}): {last_line}",
            "The script failed after its training had ended, in a later stage (evaluation, prediction, export or "
            "plotting): the training the log shows is all analysed; the traceback says what to fix in that stage.",
            {"metric": None, "steps": None, "value": 0.0, "problems": [w.message for w in notes][:20],
             "traceback_last_line": last_line, "after_training": run.after_training}, [])]
    summary = (f"the log ends in a traceback: {last_line}" if last_line else
               "; ".join(w.message for w in notes[:3]))
    steps = [s.steps[-1] for s in run.series if len(s)]
    last_step = _num(max(steps)) if steps else None
    return [finding(
        "truncated_log", "warning", summary,
        "The run stopped abnormally or the file was cut or damaged; everything read before the damage is "
        "still analysed.",
        {"metric": None, "steps": [last_step, last_step] if last_step is not None else None,
         "value": float(len(notes)), "problems": [w.message for w in notes][:20], "traceback_last_line": last_line},
        [])]


#: How to log the training loss in each log format's own framework (``RunLog.format``): the advice of
#: an ``insufficient_data`` finding on a log without one, or with too few of its points. A format not
#: named here (a merged folder of several, a table of numbers) gets :data:`_LOG_THE_LOSS_DEFAULT`.
_LOG_THE_LOSS: dict[str, str] = {
    "lightning": ('Lightning: self.log("train_loss", loss) in training_step (the Trainer\'s log_every_n_steps, '
                  "50 by default, sets how often it is written)."),
    "keras": ("Keras: model.fit(..., validation_data=...) logs the training loss as loss each epoch beside "
              "val_loss, in its History (history.history['loss']), the CSVLogger's loss column and the "
              "TensorBoard callback's train/ folder; log from model.fit, not only model.evaluate."),
    "test_tube": ('test-tube: Experiment.log({"train_loss": loss.item()}) each step or epoch beside the validation '
                  "loss (Lightning's TestTubeLogger writes what training_step logs); test-tube is no longer "
                  "maintained: Lightning's CSVLogger writes the same metrics.csv with a step column."),
    "hf_trainer": ("Hugging Face Trainer: it logs the training loss (loss in trainer_state.json's log_history) "
                   "every logging_steps steps: set TrainingArguments(logging_strategy=\"steps\", logging_steps=...) "
                   "well under the run's length (the default is 500)."),
    "wandb": ('W&B: wandb.log({"train/loss": loss.item()}, step=step) in the training loop, and export the '
              "run's history, not only its summary."),
    "mlflow": 'MLflow: mlflow.log_metric("train_loss", loss.item(), step=step) in the training loop.',
    "text": ('a console log: print the loss on each step\'s line, e.g. print(f"step {step} loss {loss.item():.4f}"), '
             "and save the whole output."),
    "native": ("the recorder: recorder.step(loss=loss, optimizer=optimizer) after backward() each step records "
               "the loss and the gradient norms."),
    "sacred": 'Sacred: _run.log_scalar("train.loss", loss.item(), step) in the training loop.',
    "clearml": ('ClearML: Logger.current_logger().report_scalar("train", "loss", value=loss.item(), '
                "iteration=step) in the training loop."),
    "sb3": ("Stable-Baselines3: its logger writes train/loss (and train/value_loss, train/policy_gradient_loss) "
            "after each update; keep the train/ keys (configure(folder, [\"csv\"]) writes them to progress.csv)."),
    "sb3_monitor": ("Stable-Baselines3: monitor.csv holds episodes only; the losses are in the logger's "
                    "progress.csv (configure(folder, [\"csv\"])): check that."),
}
#: Keras' TensorBoard callback, told from a plain SummaryWriter by its tags (epoch_loss, epoch_accuracy,
#: evaluation_loss_vs_iterations): its training loss is in the train/ folder beside validation/
_KERAS_TB = ("Keras' TensorBoard callback: model.fit(..., validation_data=...) writes the training loss as "
             "epoch_loss in the log folder's train/ beside validation/; upload the whole log folder, train/ too.")
_TB_WRITER = ('TensorBoard: writer.add_scalar("train/loss", loss.item(), step) with the SummaryWriter in the '
              "training loop.")
_LOG_THE_LOSS_DEFAULT = ("log the training loss each step beside what is logged now, or a gradient norm "
                         "(see the recorder).")
_KERAS_TAG = re.compile(r"(?:^|/)(?:epoch_|evaluation_\w+_vs_iterations$)")


def log_the_loss(run: RunLog) -> str:
    """How to log the training loss in ``run``'s own format (a sentence naming its framework's way),
    the default where the format names none."""
    if run.format == "tensorboard":
        return _KERAS_TB if any(_KERAS_TAG.search(s.name) for s in run.series) else _TB_WRITER
    return _LOG_THE_LOSS.get(run.format, _LOG_THE_LOSS_DEFAULT)


#: A series that is a position the log counts, not a value (``Epoch`` printed beside ``Step``)
_POSITION_NAME = re.compile(r"(?:^|/)(?:epoch|epochs|step|steps|iter|iteration|global_step)$", re.IGNORECASE)
#: How a log names its training loss, for a log whose values have no loss's name (logsweep87 vae3d_kl:
#: Rec=, KL=, Total=): there is no option to mark one, the name in the log is what is read
_NAME_THE_LOSS = ("None of the values found has a training loss's name: a value is read as the training loss "
                  "where its name says so (loss, train_loss, total_loss, or any name with the word loss in it: "
                  "'Total loss=0.78', 'rec_loss: 0.3'), or where a bare total ('Total=0.78') is printed beside the "
                  "parts it adds up; print the loss under such a name. ")


#: The trend checks a short excerpt leaves unjudged (evidence ``not_run`` of its ``insufficient_data``
#: note: JUnit reports them skipped, SARIF as not run, never as passed: logsweep98 piper827). The
#: per-point checks (NaN/Inf, spikes, a loss that blew up or rose at every point) still ran.
TREND_CODES = ("loss_plateau", "loss_oscillation", "validation_divergence")


@detects("insufficient_data")
def insufficient(run: RunLog, t: LogThresholds) -> list[Finding]:
    main = [s for s in (run.first("loss"), run.first("grad_norm")) if s is not None]
    gan = [s for s in run.series if s.role == "metric" and gan_part(s.name) is not None]
    if not main and {gan_part(s.name) for s in gan} == {"G", "D"}:
        names = ", ".join(s.name for s in gan[:6]) + (" ..." if len(gan) > 6 else "")
        return [finding(
            "insufficient_data", "info",
            f"a GAN's generator and discriminator losses ({names}): checked for NaN/Inf, for losses that do "
            "not move, for a discriminator at or near 0 or saturated at BCELoss's clamp (100) and for a generator "
            "losing to it only",
            "The generator and the discriminator play against each other: each one's loss rises when the other "
            "improves, so neither is a training loss whose trend says whether the run learns. Their NaN/Inf are "
            "checked, losses frozen at one value, a discriminator whose loss falls toward 0 while the "
            "generator's climbs, and one pinned at BCELoss's clamp; log a gradient norm per network (see the recorder) for "
            "the gradient checks.",
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in gan][:50],
             "generator": [s.name for s in gan if gan_part(s.name) == "G"][:20],
             "discriminator": [s.name for s in gan if gan_part(s.name) == "D"][:20]}, [])]
    val = run.first("val_loss")
    seen = int(np.sum(np.isfinite(val.values))) if val is not None else 0
    if not main and val is not None and seen:
        # a Lightning CSVLogger with only validation_step logging: what it logs is still a loss; and so is
        # a short one (a boosting fit stopped early after 3 evaluations, among a CV's or a search's fits:
        # logsweep97 lgbm_hyperopt_cv), which is a short run, not a log with nothing read
        return [finding(
            "insufficient_data", "info",
            f"no training loss or gradient norm: only {val.name} ({seen} point{'s' if seen != 1 else ''}"
            + (", too few for its trends" if seen < t.min_points else "") + "), checked for NaN/Inf and spikes",
            "The training-side checks (exploding or vanishing gradients, divergence, plateaus, overfitting) need the "
            "training loss or a gradient norm; the validation loss alone is checked for what it can show. Log the "
            "training loss too: " + log_the_loss(run),
            {"metric": val.name, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50],
             "judged": False}, [])]
    counted = [s.name for s in counted_returns(run)] if not main else []
    if not main and (on_rollouts(run) or any(A_REWARD.search(s.name) for s in run.series) or counted):
        rewards = [s.name for s in run.series if ROLLOUT_REWARD.search(s.name) or A_REWARD.search(s.name)]
        rewards += [name for name in counted if name not in rewards]
        trend = plateau_judged(run)
        if trend:
            # long enough from its start for reward_plateau: whether it rose at all was judged
            # (logsweep57: a BipedalWalker monitor of 46,706 episodes that never did)
            checked = ("checked for NaN/Inf, for a collapse after a climb and for a return that never rose "
                       f"({', '.join(trend[:3])})")
            why = ("A reinforcement-learning run's reward is what improves; how far and how fast is the task's to "
                   "say (a reward's scale and pace are the environment's), so it is not judged as a loss. Over a "
                   "run this long from its start (1,000 episodes or 200 logged means or more), a return that "
                   "never rose clear of where it started, or one that climbed and then lost most of its gain, is "
                   "reported; its NaN/Inf are checked. ")
        else:
            unjudged = rewards_unjudged(run, t)
            checked = "checked for NaN/Inf only" + (
                "; not judged for a return that never rose: " + "; ".join(f"{u['metric']}: {u['reason']}"
                                                                          for u in unjudged[:3]) if unjudged else "")
            why = ("A reinforcement-learning run's reward is what improves, but whether it does is the task's to say "
                   "(a reward's scale and pace are the environment's), so it is not judged as a loss; its NaN/Inf "
                   "are checked. ")
        return [finding(
            "insufficient_data", "info",
            f"an agent's episode rewards ({', '.join(rewards[:4])}) and no loss or gradient norm: {checked}",
            why + "Log the policy and value losses or a gradient norm (see the recorder) for the gradient checks.",
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50],
             "trend_judged": trend, **({} if trend else {"judged": False})}, [])]
    accuracy = [a for a in accuracies(run) if a is not None and int(np.sum(np.isfinite(a.values))) >= 5]
    if not main and accuracy:
        # MXNet's Speedometer and Module.fit log accuracy alone by default (ls18, ls20): a run the user
        # can read from its accuracy, not a log that says nothing
        names = ", ".join(a.name for a in accuracy)
        return [finding(
            "insufficient_data", "info",
            f"no training loss or gradient norm: only {names}, checked for NaN/Inf",
            "The gradient and loss checks (exploding or vanishing gradients, divergence, plateaus, overfitting) "
            "need the training loss or a gradient norm; an accuracy alone says how well the model does, not why. "
            "Log the loss too: " + log_the_loss(run)
            + (" MXNet's Speedometer logs it with eval_metric=['acc', 'ce']." if run.format == "text" else ""),
            {"metric": accuracy[0].name, "steps": None, "value": 0.0,
             "series": [s.name for s in run.series][:50], "judged": False}, [])]
    # a GAN player's loss counts however it is named (pix2pix's G_GAN and G_L1 hold no "loss"): a log
    # of them is not one without a loss (logsweep62 h06, a DeblurGAN loss_log.txt read as nothing to judge)
    named = [s for s in run.series if s.role == "metric" and ("loss" in s.name.lower() or gan_part(s.name) is not None)
             and bool(np.any(np.isfinite(s.values)))]
    if not main and named:
        # an actor's and a critic's losses, two autoencoders' (faceswap's loss_A, loss_B), a value
        # loss alone (ls21): losses, but none the training loss whose trend the checks can judge
        names = ", ".join(s.name for s in named[:5]) + (" ..." if len(named) > 5 else "")
        return [finding(
            "insufficient_data", "info",
            f"losses logged ({names}) but none is a training loss the trend checks judge: checked for NaN/Inf",
            "These are separate objectives (an actor's and a critic's, two models'), or one that is not minimised "
            "towards a floor, so no one of them says whether the run learns, and they do not add up to a loss; "
            "their NaN/Inf and blow-ups are checked. Log the total loss, or a gradient norm (see the recorder), "
            "for the gradient and trend checks.",
            {"metric": named[0].name, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50],
             "judged": False}, [])]
    finals = {k.removeprefix("summary/"): v for k, v in run.params.items() if k.startswith("summary/")}
    if not main and not run.series and finals and any(w.code == "summary_only" for w in run.warnings):
        # a run summary (W&B's wandb-summary.json) is a file of final values by design; but no check
        # of a history ran on it, and "healthy" read as "checked" (newuser14 #1: HEALTHY, exit 0 under
        # --fail-on warning, 20 passed JUnit cases for 0 points): a warning, naming what it holds
        shown = ", ".join(f"{k} = {v}" for k, v in list(finals.items())[:6]) + (" ..." if len(finals) > 6 else "")
        return [finding(
            "insufficient_data", "warning",
            f"a run summary: only the final value of each of its {len(finals)} keys ({shown}), no history to judge",
            "A summary holds where each metric ended, not how it got there; the checks judge trends, spikes and "
            "NaN/Inf over a run's history, so only a loss or gradient norm that ended NaN/Inf or exploded was "
            "checked here. Export the run's history (CSV or JSON Lines) and check that.",
            {"metric": None, "steps": None, "value": 0.0, "final_values": dict(list(finals.items())[:50]),
             "not_run": _not_run(run), "judged": False}, [])]
    if not main and not any(len(s) for s in run.series):
        # nothing at all was written: a TensorBoard events file holding only its header record (a YOLOv5
        # run that died before epoch 0, logsweep94 tb_yolov5_empty13) was told to call
        # writer.add_scalar(...), which the run's code already does once it gets that far
        what = "scalar or histogram" if run.format == "tensorboard" else "value"
        return [finding(
            "insufficient_data", "warning",
            f"the log holds no logged {what} at all: no point of any series was written to it",
            "Without a loss or gradient-norm series none of the checks can run. The file was created by its logger "
            "but nothing was logged into it: the run may have stopped (crashed or been killed) before its first "
            "write, or written its values to another file"
            + (" (each SummaryWriter, restart or resumed run writes its own events file: check the other events files "
               "of the run's folder)" if run.format == "tensorboard" else " (a restarted or resumed run may write a "
                                                                          "new one: check the run's other files)")
            + ". Only if the training loop logs nothing at all does it need logging code; to log the training "
            "loss, " + log_the_loss(run),
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50],
             "nothing_written": True, "not_run": _not_run(run), "judged": False}, [])]
    if not main:
        # (a position the log counts, Epoch beside Step, is no series of values to list)
        found = [s.name for s in run.series if not _POSITION_NAME.search(s.name)]
        return [finding(
            "insufficient_data", "warning",
            "the log has no training loss and no gradient norm to judge"
            + (f" (series found: {', '.join(found[:8])})" if found else ""),
            "Without a loss or gradient-norm series none of the checks can run. "
            + (_NAME_THE_LOSS if found else "")
            + "To log the training loss, " + log_the_loss(run),
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50],
             **({"not_run": _not_run(run)} if not any(len(s) for s in run.series) else {}), "judged": False}, [])]
    longest = max(main, key=lambda s: int(np.sum(np.isfinite(s.values))))
    n = int(np.sum(np.isfinite(longest.values)))
    places = len(np.unique(finite(longest)[0])) if n >= t.min_points else n
    if n >= t.min_points and places < t.min_points:
        # many points, but at too few steps for a trend (a step named once, by a config line, that every
        # later line took; a counter the reader could not read as one): the trend checks, which read a
        # series step by step, had next to nothing to judge, and a silent "healthy" would say they passed
        # (logsweep95 cconvnet_lr0_sanity: 186 loss points, all at step 1)
        first = float(finite(longest)[0][0])
        return [finding(
            "insufficient_data", "warning",
            f"{longest.name}'s {n} points sit at only {places} distinct {longest.step_unit}(s)"
            + (f" (all at {_num(first)})" if places == 1 else "")
            + ": the log's steps could not be told apart, so its trends were not judged",
            "The trend checks (plateau, divergence, oscillation, overfitting) follow a loss step by step; with its "
            "points piled on so few steps they had next to nothing to judge, and only the per-point checks (NaN/Inf, "
            "a loss that blew up) ran. The log's step counter was not read as one: print the step (or epoch) on "
            "each line that prints the loss, e.g. print(f\"step {step} loss {loss.item():.4f}\"), or export the "
            "values as CSV with a step column.",
            {"metric": longest.name, "steps": _span(finite(longest)[0]), "value": float(places),
             "threshold": float(t.min_points), "points": n, "judged": False, "not_run": list(TREND_CODES)}, [])]
    if n >= t.min_points:
        return _thin_loss(run, longest, t) + _within_one_epoch(longest) + _rewards_not_judged(run, t)
    bad = len(longest) - n  # its NaN/Inf points, which nonfinite reports
    ran = ("Trend checks need at least a few points; only the per-point checks (NaN/Inf, a loss that blew up or "
           "rose at every logged point) ran. ")
    if _every_point_logged(longest) and not any(w.code == "running_index" for w in run.warnings):
        # (steps that are a count of the log's lines say nothing of the run's length: a pasted excerpt
        # of Trainer dicts at epoch 0.53 is no 3-step run, logsweep98 modernbert_hf_console_nan)
        # every step or epoch the run had is in the log: the run is short, not its logging (newuser15 #1:
        # a 5-epoch Keras CSVLogger file told to log the loss each epoch)
        unit = longest.step_unit
        advice = (f"Every {unit} of this run is logged: the run itself is {len(longest)} {unit}(s) long, under the "
                  f"{t.min_points} points the trend checks (plateau, overfitting, oscillation, a slow divergence) "
                  "need. Check a longer run for those.")
    else:
        advice = "Log the training loss more often (each step, or each epoch of a longer run): " + log_the_loss(run)
    return [finding(
        "insufficient_data", "info",
        f"only {n} finite point(s) in {longest.name}" + (f" (of {len(longest)}: {bad} NaN/Inf)" if bad else "")
        + ": too short to judge trends",
        ran + advice,
        {"metric": longest.name, "steps": _span(longest.steps) if len(longest) else None, "value": float(n),
         "threshold": float(t.min_points), "nonfinite_points": bad, "judged": False, "not_run": list(TREND_CODES)},
        [])]


def _thin_loss(run: RunLog, longest: Series, t: LogThresholds) -> list[Finding]:
    """A note where the training loss sits at fewer distinct steps than the trend checks need while a
    gradient norm beside it has enough (``longest``, which the coverage above was judged by): the
    loss's trends (plateau, divergence, oscillation, overfitting) follow it step by step and had next
    to nothing to judge, however long the gradient norm is. Several lines printing one step, or a
    stepless log with one loss line among many gradient-norm lines, had read "healthy" without a
    word. Evidence ``thin_loss``: check.py drops the note where another rule judged this loss."""
    loss = run.first("loss")
    if loss is None or loss is longest:
        return []
    steps = finite(loss)[0]
    k = len(steps)
    places = len(np.unique(steps))
    if not k or places >= t.min_points:
        return []
    unit = loss.unit
    where = loss.where(float(steps[0])) if places == 1 else loss.between(float(steps[0]), float(steps[-1]))
    pile = (f"{loss.name}'s {k} point{'s' if k != 1 else ''} sit{'s' if k == 1 else ''} at one {unit} ({where})"
            if places == 1 else f"{loss.name} has {k} point(s) at only {places} distinct {unit}s ({where})")
    bad = len(loss) - k
    return [finding(
        "insufficient_data", "info",
        f"{pile}, beside {longest.name}'s {int(np.sum(np.isfinite(longest.values)))}: too few for the loss's trends, "
        "which were not judged",
        f"The trend checks (plateau, divergence, oscillation, overfitting) follow the training loss {unit} by {unit}; "
        f"at {'one ' + unit if places == 1 else f'{places} {unit}s'} they had next to nothing to judge, and only the "
        f"per-point checks (NaN/Inf, a loss that blew up) and the gradient checks on {longest.name} ran. "
        + ("Several lines printed the same step: print the step that changes on each line that prints the loss. "
           if places == 1 and k > 1 else "")
        + "Log the training loss more often (each step, or each epoch of a longer run): " + log_the_loss(run),
        {"metric": loss.name, "steps": _span(steps), "value": float(places), "threshold": float(t.min_points),
         "points": k, "nonfinite_points": bad, "thin_loss": True, "judged": False, "not_run": list(TREND_CODES)},
        [])]


def _every_point_logged(s: Series) -> bool:
    """Whether ``s`` holds a point at every step or epoch from its first to its last (steps 1 apart,
    the first at 0 or 1): a run that short, not a log that samples it too rarely."""
    steps = s.steps
    if len(steps) < 2 or float(steps[0]) not in (0.0, 1.0):
        return False
    return bool(np.all(np.diff(np.asarray(steps, dtype=np.float64)) == 1))


#: The codes whose detectors judge a run summary's final values (no history needed): a loss or
#: gradient norm that ended NaN/Inf, a final gradient norm past the explosion bar
_JUDGE_FINALS = ("nonfinite", "exploding_gradient")


def _not_run(run: RunLog) -> list[str]:
    """The log checks that had nothing to judge in ``run``, a log with no point of history: every
    detector's code but this one's, ``truncated_log`` (the reader's notes are judged) and, where the
    log holds final values, those that judge them. Evidence ``not_run``: JUnit reports these cases
    skipped, SARIF as not run, never as passed (newuser14 #1)."""
    from gradhealth.core.rules import rules

    ran = {"insufficient_data", "truncated_log"} | (set(_JUDGE_FINALS) if final_series(run) else set())
    return [r.code for r in rules() if r.detector is not None and r.code not in ran]


def _within_one_epoch(s: Series) -> list[Finding]:
    """A note for an excerpt that lies within one epoch of a run already under way (a progress bar
    pasted from epoch 476, 0-11 % of it): its points are enough for the checks, the span is not
    enough to say how the run trends."""
    steps = finite(s)[0]
    if s.step_unit != "epoch" or not len(steps):
        return []
    first, last = float(steps[0]), float(steps[-1])
    if last - first >= 1 or first < 2:
        return []
    return [finding(
        "insufficient_data", "info",
        f"{s.name} covers only {last - first:.2g} of an epoch (epochs {first:.4g}-{last:.4g}) of a run already "
        "under way: too little of it to judge the run's trends",
        "An excerpt within one epoch shows the batch-to-batch noise around a level, not whether the run still "
        "learns; the per-point checks ran. Check the whole log, or its per-epoch values.",
        {"metric": s.name, "steps": [_num(first), _num(last)], "value": last - first, "threshold": 1.0,
         "judged": False, "not_run": list(TREND_CODES)}, [])]


def _rewards_not_judged(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A note where a run logs episode rewards that neither reward rule reported on and the "never
    rose" rule did not judge (too few points, or a log that opens mid-run: logsweep74 u10, an SB3
    PPO tail at 20M steps): "healthy" must not read as "the rewards were checked"."""
    unjudged = rewards_unjudged(run, t)
    if not unjudged:
        return []
    named = "; ".join(f"{u['metric']} ({u['reason']})" for u in unjudged[:4]) + (" ..." if len(unjudged) > 4 else "")
    first = next(s for s in run.series if s.name == unjudged[0]["metric"])
    # an RLHF trainer's reward is a batch mean per update, not an episode's return
    rlhf = {s.name for s in rlhf_rewards(run)}
    what = "rewards" if all(u["metric"] in rlhf for u in unjudged) else "episode rewards"
    return [finding(
        "insufficient_data", "info",
        f"{what} not judged for a return that never rose: {named}",
        "Whether an agent learnt is judged from its return over the run from its start (1,000 episodes or 200 "
        "logged means or more); a log that opens mid-run, or a short one, shows a stretch of it. A collapse "
        "after a climb (8 points or more), a return frozen at one value with the evaluations as flat, and "
        "NaN/Inf were checked; the losses were judged as usual. Check the whole log from step 0 to judge the "
        "rewards.",
        {"metric": first.name, "steps": _span(finite(first)[0]), "value": float(unjudged[0]["points"]),
         "threshold": None, "unjudged": unjudged[:20]}, [])]
