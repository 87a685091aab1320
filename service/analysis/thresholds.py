"""Diagnosis thresholds: every one a named setting with its default and the reason for it.

Ratios are of gradient norms ||dL/dh|| between the first and the last hidden layer
(through depth) or between the first and the last recurrent step (through time).
A healthy wide net at the edge of chaos keeps that ratio within about a factor of
10 at the depths people build (finite width adds noise of order sqrt(depth/width)
in log10), so a factor of 100 is a clear signal and 10^4 is past what an adaptive
optimiser absorbs without the early layers effectively freezing.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Thresholds(BaseModel):
    """When a measured figure becomes a finding, and of which severity."""

    vanishing_warning: float = Field(1e-2, gt=0, lt=1, description="grad ratio first/last below this: warning")
    vanishing_error: float = Field(1e-4, gt=0, lt=1, description="grad ratio first/last below this: error")
    exploding_warning: float = Field(1e2, gt=1, description="grad ratio (or activation growth) above this: warning")
    exploding_error: float = Field(1e4, gt=1, description="grad ratio (or activation growth) above this: error")
    saturation_warning: float = Field(
        0.3, gt=0, le=1, description="fraction of a layer's units in the flat tails (sigmoid/tanh/hardtanh)")
    saturation_error: float = Field(0.6, gt=0, le=1)
    # Deep ReLU nets make their inputs ever more correlated (the mean-field correlation map's
    # fixed point is c = 1), and a unit whose inputs all look alike is off for the whole batch with
    # probability 1/2: a healthy He-initialised net at depth 30 shows ~35% such units. Only a
    # fraction beyond what correlation explains points at a bias or weight-scale problem.
    dead_warning: float = Field(
        0.6, gt=0, le=1, description="fraction of a ReLU layer's units that are zero for the whole batch")
    dead_error: float = Field(0.85, gt=0, le=1)
    # About 1e-3 of the weights' norm per step is the usual healthy update (DOMAIN: "update-to-weight
    # ratios far from about 1e-3"); a tenth of the weights in one step is two decades past it, and a
    # step larger than the weights themselves throws away what they were.
    large_update_warning: float = Field(
        0.1, gt=0, description="first-step ||delta W|| / ||W|| of a layer above this: large_updates warning")
    large_update_error: float = Field(1.0, gt=0, description="... error")
    # Three decades below the healthy 1e-3, judged on the fastest layer: a slow layer alone is a
    # vanishing gradient's business, and a large net's SGD step at a usual rate moves its layers by
    # 1e-5 to 1e-3 of their weights.
    small_update_warning: float = Field(
        1e-6, gt=0, description="first-step ||delta W|| / ||W|| of the fastest layer below this: "
                                "small_updates warning")
    # Logits never silence a sample; on probabilities a sigmoid or softmax output never does either,
    # while a linear one silences about half the batch at init (negative or near-zero outputs).
    silent_loss_warning: float = Field(
        0.05, gt=0, le=1, description="fraction of the batch a probability loss gives no gradient (its outputs "
                                      "clipped): output_loss_mismatch warning")
    silent_loss_error: float = Field(
        0.25, gt=0, le=1, description="the same fraction: output_loss_mismatch error")
    post_ln_depth: int = Field(
        6, ge=1, description="Post-LN Transformer stacks this deep or deeper need warm-up (Xiong et al. 2020)")

    def vanishing(self, ratio: float) -> str | None:
        if ratio < self.vanishing_error:
            return "error"
        return "warning" if ratio < self.vanishing_warning else None

    def exploding(self, ratio: float) -> str | None:
        if ratio > self.exploding_error:
            return "error"
        return "warning" if ratio > self.exploding_warning else None

    def updates(self, ratio: float) -> str | None:
        if ratio > self.large_update_error:
            return "error"
        return "warning" if ratio > self.large_update_warning else None

    def fraction(self, value: float, warning: float, error: float) -> str | None:
        if value >= error:
            return "error"
        return "warning" if value >= warning else None

    def shifted(self, decades: float, fraction: float) -> Thresholds:
        """These thresholds moved towards firing (``decades`` and ``fraction`` positive) or away from it
        (negative): every ratio threshold by ``decades`` powers of ten, every fraction threshold by
        ``fraction``. A verdict that holds under both shifts is not one a seed's noise decides."""
        k = 10.0 ** decades

        def share(v: float) -> float:
            return min(max(v - fraction, 1e-6), 1.0)

        return self.model_copy(update={
            "vanishing_warning": min(self.vanishing_warning * k, 0.999),
            "vanishing_error": min(self.vanishing_error * k, 0.999),
            "exploding_warning": max(self.exploding_warning / k, 1.001),
            "exploding_error": max(self.exploding_error / k, 1.001),
            "large_update_warning": self.large_update_warning / k,
            "large_update_error": self.large_update_error / k,
            "small_update_warning": self.small_update_warning * k,
            "saturation_warning": share(self.saturation_warning),
            "saturation_error": share(self.saturation_error),
            "dead_warning": share(self.dead_warning),
            "dead_error": share(self.dead_error),
            "silent_loss_warning": share(self.silent_loss_warning),
            "silent_loss_error": share(self.silent_loss_error),
        })
