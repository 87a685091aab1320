"""The AUTOTRAINER rule set (Zhang et al., "AUTOTRAINER: An Automatic DNN Training Problem Detection
and Repair System", ICSE 2021), implemented here as a baseline for the scorecard.

Its published rules on gradients, as they apply to a log with per-layer gradient norms:

- **vanishing gradient**: at a logged step, the first layer's gradient norm is below 1e-3 of the
  last layer's AND below 1e-4 in absolute value;
- **exploding gradient**: at a logged step, the first layer's gradient norm is more than 70x the
  last layer's;
- **dying ReLU**: a layer with 70 % or more zero gradients. AUTOTRAINER counts zero entries of a
  layer's gradient; a log has one norm per layer and step, so the closest reading is: a layer whose
  gradient norm is exactly 0 on 70 % or more of the logged steps.

AUTOTRAINER watches training and raises a problem the first time a rule holds, so a rule that holds
on any logged step flags the run. "First" and "last" layer are the first and last parameters that
carry weights (``...weight``, else any parameter) in the depth order the log gives. The rules map
to the log check's codes vanishing_gradient, exploding_gradient and dead_layer; where a log has no
per-layer norms the baseline says nothing and is not scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

VANISH_RATIO = 1e-3
VANISH_ABS = 1e-4
EXPLODE_RATIO = 70.0
DEAD_SHARE = 0.7

CODES = ("vanishing_gradient", "exploding_gradient", "dead_layer")


def layer_norms(run: Any) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(layer, steps, norms) for each per-layer gradient norm series of a RunLog, in depth order."""
    from gradhealth.logs.detectors.layers import _depth_order

    layers = [s for s in run.series if s.role == "layer_grad_norm"]
    return [(s.layer or s.name, np.asarray(s.steps), np.asarray(s.values, dtype=float))
            for s in _depth_order(layers)]


def detect(run: Any) -> set[str] | None:
    """The codes AUTOTRAINER's rules raise on ``run``, or None when it has no per-layer norms."""
    layers = layer_norms(run)
    if len(layers) < 2:
        return None
    weights = [lay for lay in layers if lay[0].endswith("weight")] or layers
    found: set[str] = set()
    (_, s0, first), (_, s1, last) = weights[0], weights[-1]
    common, i0, i1 = np.intersect1d(s0, s1, return_indices=True)
    if len(common):
        f, la = first[i0], last[i1]
        ok = np.isfinite(f) & np.isfinite(la) & (la > 0)
        if np.any(ok & (f < VANISH_RATIO * la) & (f < VANISH_ABS)):
            found.add("vanishing_gradient")
        if np.any(ok & (f > EXPLODE_RATIO * la)):
            found.add("exploding_gradient")
    for _, _, v in layers:
        if len(v) and np.mean(v == 0.0) >= DEAD_SHARE:
            found.add("dead_layer")
            break
    return found
