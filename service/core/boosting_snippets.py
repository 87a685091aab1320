"""Each remedy as a gradient-boosting change, for the check of a boosting library's evaluation log
(XGBoost, LightGBM, CatBoost: logsweep97 lgbm_hyperopt_cv, a LightGBM log whose loss_plateau came
with ``for group in optimizer.param_groups: group["lr"] *= 3``).

A boosted ensemble has no optimizer, no weights to initialise and no gradient to clip: its step
size is the ``learning_rate`` parameter (XGBoost's ``eta``), its length the number of rounds, its
regularisation the trees' own (``lambda_l2``/``reg_lambda``, ``num_leaves``, ``min_data_in_leaf``),
and early stopping keeps the best round. :func:`in_boosting` rewrites each remedy that has such a
meaning in those words (its change and its snippet, ``snippet_framework`` ``boosting``) and leaves
out those that have none (a network's initialisation, activations, normalisation, clipping); the
remedy ids, their params and the findings stay as they are.
"""

from __future__ import annotations

import re

from gradhealth.core.document import Finding, Remedy

#: The step size in each library's words.
RATE = "the learning rate (learning_rate in LightGBM and CatBoost, eta in XGBoost)"

_EARLY_STOPPING = (
    "# {patience} evaluations without improvement: early_stopping_rounds counts rounds, so multiply by the rounds\n"
    "# between two of the log's evaluations where it prints every n-th (verbose_eval, log_evaluation(period))\n"
    "# XGBoost: xgb.train(params, dtrain, num_boost_round, evals=[(dvalid, \"valid\")],\n"
    "#              early_stopping_rounds={patience})  # then predict with iteration_range=(0, bst.best_iteration + 1)\n"
    "# LightGBM: lgb.train(params, dtrain, valid_sets=[dvalid], callbacks=[lgb.early_stopping({patience})])\n"
    "# CatBoost: model.fit(X, y, eval_set=(X_valid, y_valid), early_stopping_rounds={patience}, use_best_model=True)")


def _factor(remedy: Remedy, default: float) -> float:
    value = remedy.params.get("factor", default)
    return float(value) if isinstance(value, int | float) else default


def _rate_snippet(factor: float, rounds: bool) -> str:
    lines = [f'params["learning_rate"] = params.get("learning_rate", 0.1) * {factor:g}'
             '  # XGBoost\'s native API: params["eta"] (0.3 by default)']
    if rounds:
        lines.append(f"num_boost_round = int(num_boost_round / {factor:g})  # more, smaller rounds; early stopping "
                     "picks how many")
    return "\n".join(lines)


def boosting_remedy(remedy: Remedy) -> Remedy | None:
    """``remedy`` as a change to a boosting run's parameters, None where it has no such meaning."""
    rid, why = remedy.id, re.search(r"\(([^()]*)\)$", remedy.change)
    because = f" ({why.group(1)})" if why else ""
    if rid == "raise_learning_rate":
        f = _factor(remedy, 3.0)
        change = f"raise {RATE} to {f:g}x{because}"
        code = _rate_snippet(f, rounds=False)
    elif rid == "lower_learning_rate":
        f = _factor(remedy, 0.1)
        change = (f"lower {RATE} to {f:g}x and raise the number of rounds to match, with early stopping on the "
                  f"validation set{because}")
        code = _rate_snippet(f, rounds=True)
    elif rid == "early_stopping":
        patience = remedy.params.get("patience", 10)
        change = re.sub(r"keep the weights from (?:step )?", "keep the trees up to round ", remedy.change)
        change = change.replace(" evaluations without improvement", " evaluations without improvement "
                                "(early_stopping_rounds)")
        code = _EARLY_STOPPING.format(patience=patience)
    elif rid == "weight_decay":
        change = ("regularise the trees: raise lambda_l2 (XGBoost's reg_lambda, CatBoost's l2_leaf_reg) and "
                  "min_data_in_leaf (XGBoost's min_child_weight), lower num_leaves or max_depth")
        code = ('params.update(lambda_l2=1.0, min_data_in_leaf=50, num_leaves=15)  # LightGBM\n'
                '# XGBoost: params.update(reg_lambda=1.0, min_child_weight=5, max_depth=4)')
    elif rid == "balance_classes":
        change = remedy.change
        code = ('params["scale_pos_weight"] = n_negative / n_positive  # binary; LightGBM also: is_unbalance=True\n'
                "# multiclass: pass sample weights (inverse class frequency) to the Dataset / DMatrix")
    elif rid == "check_data":
        change = remedy.change.replace(", and with them finite run that step under "
                                       "torch.autograd.set_detect_anomaly(True) to name the operation that made it",
                                       "")
        code = ("import numpy as np\n"
                "print(np.isfinite(X_train).all(), np.isfinite(y_train).all(), np.isfinite(X_valid).all(),\n"
                "      np.isfinite(y_valid).all())  # NaN features are allowed as missing; labels and Inf are not")
    else:
        return None
    return remedy.model_copy(update={"change": change, "snippet": code, "snippet_framework": "boosting"})


#: Why a boosted ensemble's loss stops falling (its plateau's explanation): a network's words (frozen
#: parameters, saturated or dead units, requires_grad) name nothing a boosting run has (logsweep98 #2).
_PLATEAU = ("A boosted ensemble adds a tree each round, fitted to what the trees before it got wrong: a training "
            "loss that stops falling means the new trees change the predictions little or not at all. The step "
            "size (learning_rate, XGBoost's eta) may be so small, or 0, that each tree moves them by next to "
            "nothing; the trees may be too constrained to find a split that gains (max_depth or num_leaves small, "
            "min_data_in_leaf, min_child_weight, min_gain_to_split or gamma large); the features may not predict "
            "the target (labels shuffled or misaligned with their rows, a target leaked out or dropped); or the "
            "fit has converged, when the validation loss flattens too and early stopping keeps its best round.")
_AT_CHANCE = ("The loss sits where a constant guess of the classes' shares scores: no tree has yet found a split "
              "that predicts better. ")


def boosting_explanation(finding: Finding) -> str:
    """``finding``'s explanation for a boosting run, where its own speaks of a network's parts."""
    if finding.code != "loss_plateau":
        return finding.explanation
    chance = (finding.evidence.model_extra or {}).get("at_chance")
    return (_AT_CHANCE if chance else "") + _PLATEAU


def in_boosting(findings: list[Finding]) -> list[Finding]:
    """``findings`` of a boosting log, each remedy in boosting's words (:func:`boosting_remedy`); a remedy
    with no meaning for boosted trees is left out, its id named in the finding's ``withheld_remedies``. A
    ``loss_plateau``'s explanation is a boosting run's (:func:`boosting_explanation`)."""
    out = []
    for f in findings:
        if f.code == "loss_plateau":
            f = f.model_copy(update={"explanation": boosting_explanation(f)})
        if not f.remedies:
            out.append(f)
            continue
        kept = [r for r in (boosting_remedy(r) for r in f.remedies) if r is not None]
        gone = [r.id for r in f.remedies if boosting_remedy(r) is None]
        update: dict = {"remedies": kept}
        if gone:
            withheld = list((f.evidence.model_extra or {}).get("withheld_remedies") or [])
            update["evidence"] = f.evidence.model_copy(update={"withheld_remedies": withheld + gone})
        out.append(f.model_copy(update=update))
    return out
