"""specsweep11: an explosion the initialisation makes, in a spec with no optimizer, gets no
training-time remedy (weight decay, a learning-rate cut): neither acts on a growth there before
the first step, and there is no rate to cut."""

from __future__ import annotations

from gradhealth.library import check_architecture


def _spec(optimizer: dict | None) -> dict:
    spec = {"input": {"shape": [64]}, "batch_size": 32, "seeds": 2,
            "layers": [{"type": "linear", "out_features": 128, "activation": "relu",
                        "init": {"scheme": "normal", "std": 1.0}, "repeat": 6},
                       {"type": "linear", "out_features": 10}]}
    return spec if optimizer is None else {**spec, "optimizer": optimizer}


def test_an_init_made_explosion_without_an_optimizer_gets_no_training_time_remedy() -> None:
    # N(0, 1) weights on width 128 under ReLU: chi = 128 / 2 = 64 per layer, 64^6 over the trunk
    doc = check_architecture(_spec(None))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    ids = [r.id for r in f.remedies]
    assert f.severity == "error" and "he_init" in ids, ids
    assert "weight_decay" not in ids and "lower_learning_rate" not in ids


def test_with_an_optimizer_the_rate_remedies_stay() -> None:
    doc = check_architecture(_spec({"type": "sgd", "lr": 0.1}))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert {"weight_decay", "lower_learning_rate"} <= {r.id for r in f.remedies}
