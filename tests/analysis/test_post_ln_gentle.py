"""modsweep24: a Post-LN stack trained at a rate whose first step moves it by 1e-3 of its weights
or less (the small steps a warm-up starts with) is a note, not a warning; the measured step, not
the learning rate's number, decides."""

from __future__ import annotations

import pytest

from gradhealth.analysis.rules import POST_LN_GENTLE_STEP
from gradhealth.library import check_architecture


def _spec(optimizer: dict | None) -> dict:
    spec = {"input": {"tokens": {"vocab_size": 100, "seq_len": 16}}, "batch_size": 8, "seeds": 1,
            "layers": [{"type": "embedding", "embedding_dim": 32},
                       {"type": "transformer_encoder", "d_model": 32, "heads": 4, "ff_width": 64,
                        "norm_first": False, "num_layers": 6},
                       {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 10}]}
    return spec if optimizer is None else {**spec, "optimizer": optimizer}


def _finding(optimizer: dict | None):  # noqa: ANN202
    [f] = [f for f in check_architecture(_spec(optimizer), verify=False).findings if f.code == "post_ln_depth_risk"]
    return f


@pytest.mark.parametrize("lr,severity", [(1e-6, "info"), (1e-3, "warning"), (1e-2, "warning")])
def test_adams_first_step_on_the_stack_decides(lr: float, severity: str) -> None:
    # Adam's first step is about lr per weight: on d_model 32 (weights of rms ~0.1-0.2) lr 1e-6
    # moves them by ~1e-5 of their norm, 1e-3 by ~1e-2 (the size Xiong et al.'s failing runs took)
    f = _finding({"type": "adam", "lr": lr})
    step = f.evidence.model_extra["max_update_ratio"]
    assert f.severity == severity and (step <= POST_LN_GENTLE_STEP) == (severity == "info")
    assert 0.3 * lr / 0.2 < step < 3 * lr / 0.05  # about lr over the weights' rms


def test_with_no_optimizer_the_depth_alone_is_a_warning() -> None:
    f = _finding(None)
    assert f.severity == "warning" and "max_update_ratio" not in (f.evidence.model_extra or {})


@pytest.mark.parametrize("warmup,severity", [(0, "warning"), (100, "warning"), (1000, "info"), (10000, "info")])
def test_a_declared_warm_up_long_enough_is_the_remedy_in_place(warmup: int, severity: str) -> None:
    # specsweep13 g27: BERT-base's recipe (Post-LN x12, Adam 1e-4, 10,000 warm-up steps) warned, and was
    # offered a 4,000-step warm-up, shorter than its own
    opt = {"type": "adam", "lr": 1e-3, **({"warmup_steps": warmup} if warmup else {})}
    f = _finding(opt)
    assert f.evidence.model_extra["max_update_ratio"] > POST_LN_GENTLE_STEP  # the step alone would warn
    assert f.severity == severity
    assert f.evidence.model_extra.get("warmup_steps", 0) == warmup
    full = [g for g in check_architecture(_spec(opt), verify=False).findings if g.code == "post_ln_depth_risk"][0]
    offered = [str(r.change) for r in full.remedies if r.id == "lower_learning_rate"]
    if severity == "warning":  # a warm-up offered, never one shorter than declared
        assert len(offered) == 1 and "warm-up over the first 4000 steps" in offered[0]
    else:
        assert not offered
