"""Thresholds of the log check, each with its default and the reason for it.

The guiding rule: a healthy run must come back healthy. Every detector compares a run against
itself (its own early baseline, its own rolling median), never against an absolute scale, so a
LoRA fine-tune with tiny gradient norms or a loss measured in hundreds is judged on its own terms.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Warning/error pairs of one figure: the warning must not exceed the error, else the error fires
#: first and the warning never does (a 50x grad-norm rise would be an error under a warning of 1000).
ORDERED_PAIRS = (("explode_warning", "explode_error"), ("large_update_warning", "large_update_error"),
                 ("grad_to_weight_warning", "grad_to_weight_error"))

#: The bounds of a ratio or factor threshold with no natural upper bound (finite, so that a run's
#: config, stored as JSON, reads back as it was given, and far beyond any useful setting).
_MAX_FACTOR = 1e6


class LogThresholds(BaseModel):
    """Each field is finite (``inf``/``nan`` are refused, as ``1e999`` read as inf would be stored as
    JSON null, and PostgreSQL refuses it) and bounded above: a run's config carries them
    (``POST /v1/runs``), so a client must not be able to set a window that costs minutes per check."""

    model_config = ConfigDict(allow_inf_nan=False)

    min_points: int = Field(8, ge=2, le=1_000_000, description="fewer points in loss and grad norm than this: insufficient_data")
    window: int = Field(25, ge=3, le=100, description="points in the trailing rolling window (median / MAD baselines)")
    baseline_fraction: float = Field(
        0.1, gt=0, lt=1, description="the first part of a run that sets its early baseline (after warm-up)")
    explode_warning: float = Field(10.0, gt=1, le=_MAX_FACTOR, description="late median grad norm over the early baseline: warning")
    explode_error: float = Field(100.0, gt=1, le=_MAX_FACTOR, description="... error")
    explode_absolute: float = Field(
        1e8, gt=0, le=1e30, description="a total grad norm this large at any step is an exploding_gradient error, however short "
                               "the log (healthy networks' norms are around 0.1-100, a loss-scaled one's under 1e7)")
    grad_to_weight_warning: float = Field(
        100.0, gt=0, le=_MAX_FACTOR, description="median total grad norm over the total weight norm logged with it: "
        "warning (a healthy network's is well under 1; at 100 one plain SGD step of lr 0.01 moves the weights by their own size)")
    grad_to_weight_error: float = Field(1e4, gt=0, le=_MAX_FACTOR, description="... error")
    spike_factor: float = Field(
        5.0, gt=1, le=_MAX_FACTOR, description="a point this many times its rolling median (and 6 MADs above it) is a spike")
    spike_warning_fraction: float = Field(
        0.01, gt=0, le=1, description="spikes on more than this fraction of steps (or one unrecovered): warning, else info")
    vanishing_layer_ratio: float = Field(
        1e-3, gt=0, lt=1,
        description="first layer's median grad norm over the last layer's below this: vanishing (3 decades: "
                    "embeddings and biases are legitimately ~10x smaller, depth-induced vanishing is far more)")
    vanishing_decay: float = Field(
        1e-3, gt=0, lt=1, description="late total grad norm over the early one below this while the loss stalls")
    zero_gradient_fraction: float = Field(
        0.05, gt=0, le=1, description="steps whose total grad norm is exactly zero: above this, zero_gradient")
    zero_gradient_rl_warning: float = Field(
        0.25, gt=0, le=1,
        description="steps of a group-relative RL run (GRPO, RLOO) with an exactly zero gradient because no "
                    "group's rewards differed: a warning from this fraction (a quarter of the run's updates "
                    "wasted), a note below it (such steps are expected now and then)")
    clip_saturated_fraction: float = Field(0.5, gt=0, le=1, description="steps with pre-clip norm above max_norm")
    divergence_factor: float = Field(
        1.5, gt=1, le=_MAX_FACTOR, description="final smoothed loss over its running minimum above this: loss_divergence")
    plateau_improvement: float = Field(
        0.01, gt=0, lt=1, description="relative improvement of the smoothed loss over the last half below this")
    plateau_converged_fraction: float = Field(
        0.9, gt=0, lt=1,
        description="a loss that fell more than this overall has converged: never a plateau (a loss at 1e-4 "
                    "of its start cannot improve 1% more in relative terms, and need not)")
    plateau_chance_margin: float = Field(
        0.25, gt=0, lt=1,
        description="accuracy within this fraction of 1/num_classes (and a cross-entropy near ln num_classes) "
                    "is chance level: a flat loss there is a warning, the model learnt nothing")
    accuracy_gap: float = Field(
        0.25, gt=0, lt=1,
        description="training accuracy this far above a validation accuracy that never moved: the validation "
                    "metric plateaued while the model fits the training set")
    accuracy_stuck: float = Field(
        0.05, gt=0, lt=1, description="a validation accuracy that gained less than this (absolute) is stuck")
    loss_spike_sigmas: float = Field(
        8.0, gt=0, le=_MAX_FACTOR,
        description="a loss this many robust standard deviations (of its own log-residuals around its neighbours) "
                    "above both its neighbours and its recent past is a spike: scale-free, so it works for an "
                    "LLM's per-token loss and a per-epoch validation loss alike")
    loss_spike_min_ratio: float = Field(
        1.3, gt=1, le=_MAX_FACTOR, description="... and at least this many times its neighbours' median (on runs with no noise)")
    explode_min_points: int = Field(
        5, ge=2, le=1_000_000, description="consecutive points above explode_warning x baseline: sustained growth, not a spike")
    plateau_early_fraction: float = Field(
        0.05, gt=0, lt=1, description="a run whose loss fell less than this overall never learnt: warning")
    oscillation_ratio: float = Field(
        0.25, gt=0, le=_MAX_FACTOR, description="median |loss - rolling median| / rolling median above this: oscillation")
    validation_rise: float = Field(
        0.1, gt=0, le=_MAX_FACTOR, description="val loss this much (relative) above its minimum while the train loss falls")
    clip_percentile: float = Field(
        98.0, gt=50, le=100, description="gradient_clipping max_norm: this percentile of the healthy norms")
    large_update_warning: float = Field(
        0.1, gt=0, le=_MAX_FACTOR,
        description="a layer's median update-to-weight ratio ||delta W|| / ||W|| per step above "
                    "this: large_updates warning (healthy is about 1e-3; 0.1 rewrites a tenth "
                    "of the weights every step)")
    large_update_error: float = Field(
        1.0, gt=0, le=_MAX_FACTOR,
        description="... above this: error (one step is larger than the weights themselves)")
    small_update_warning: float = Field(
        1e-6, gt=0, le=1,
        description="every logged layer's median update-to-weight ratio per step below this: "
                    "small_updates warning (three decades under the healthy 1e-3)")

    @model_validator(mode="after")
    def _pairs_ordered(self) -> Self:
        # One check for every door: the settings (GRADHEALTH_LOG_THRESHOLDS__*), a live run's config
        # (POST /v1/runs, merged with the service's), and the library.
        for warning, error in ORDERED_PAIRS:
            w, e = getattr(self, warning), getattr(self, error)
            if w > e:
                raise ValueError(f"{warning} ({w:g}) and {error} ({e:g}) are inverted: the warning must come "
                                 "before the error, so set the warning below it (or the error above it)")
        return self
