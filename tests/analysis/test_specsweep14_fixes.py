"""specsweep14: fixes from a sweep of architecture specs written from papers, and invalid specs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gradhealth.errors import SpecError
from gradhealth.library import check_architecture
from tests.helpers import mlp


def _bn_mlp(opt: dict[str, Any]) -> dict[str, Any]:
    # three batch-normed hidden layers and a fresh readout: the finding carves out the head's first
    # step up to the error line 1 in a network with norms (a BN ResNet-32 at He et al.'s SGD 0.1)
    return mlp(3, width=64, norm="batchnorm") | {"optimizer": opt}


def _large_updates(doc: Any) -> Any:
    return next(f for f in doc.findings if f.code == "large_updates")


def _head(doc: Any) -> Any:
    return doc.layers[-1]


def test_p1_lower_learning_rate_sizes_a_fresh_head_against_the_line_the_finding_judges_it_by() -> None:
    # specsweep14 P1 (goyal2017 nowarmup): lr 3.2 was cut to 0.00434, bringing the fresh head to 1e-2,
    # 23x under the 0.1 the same network trains at, whose head's step the finding lets go up to 1
    lr = 20.0
    doc = check_architecture(_bn_mlp({"type": "sgd", "lr": lr}))
    f = _large_updates(doc)
    head = _head(doc)
    assert f.evidence.layers == [head.name] and f.severity == "error"
    # SGD's first step: ||dW|| / ||W|| = lr ||g|| / ||W||, ||W|| = std sqrt(fan_in fan_out)
    norm_w = head.weight_std * math.sqrt(head.fan_in * head.fan_out)
    assert head.update_ratio == pytest.approx(lr * head.grad_norm / norm_w, rel=0.03)
    # the head's line: the error level, 1, with no momentum to build the step up
    limits = f.evidence.model_extra["update_ratio_limits"]
    assert limits == {head.name: pytest.approx(1.0)}
    # the rate brings it to a tenth of that line, as every other layer to a tenth of the warning line:
    # lr_new ||g|| / ||W|| = 0.1
    remedy = next(r for r in f.remedies if r.id == "lower_learning_rate")
    new_lr = remedy.patch[0]["value"]
    assert new_lr == pytest.approx(0.1 * norm_w / head.grad_norm, rel=0.03)
    assert new_lr > 5 * 1e-2 * norm_w / head.grad_norm  # the old sizing's target, 1e-2, was 10x lower
    assert remedy.verified is not None and remedy.verified.fixed
    assert remedy.verified.after == pytest.approx(0.1, rel=0.02)


def test_p1_the_head_line_counts_momentum_build_up_and_a_plain_network_keeps_its_lower_line() -> None:
    # the carve-out judges the head's first step, the step judged being momentum's built-up one:
    # the line is the build-up factor x 1 (norms) or x 0.3 (FRESH_HEAD_MARGIN x 0.1, no norms)
    beta = 0.9
    steps = round(1 / (1 - beta))
    build = sum(math.sqrt((1 - beta ** (2 * t)) / (1 - beta ** 2)) for t in range(1, steps + 1)) / steps
    doc = check_architecture(_bn_mlp({"type": "sgd", "lr": 20.0, "momentum": beta}), verify=False)
    f = _large_updates(doc)
    assert f.evidence.model_extra["update_ratio_limits"][_head(doc).name] == pytest.approx(build, rel=1e-9)
    remedy = next(r for r in f.remedies if r.id == "lower_learning_rate")
    judged = f.evidence.model_extra["update_ratios"][_head(doc).name]
    assert remedy.patch[0]["value"] == pytest.approx(20.0 * 0.1 * build / judged, rel=5e-3)

    plain = mlp(3, width=64) | {"seeds": 2, "optimizer": {"type": "sgd", "lr": 5.0}}
    doc = check_architecture(plain, verify=False)
    f = _large_updates(doc)
    limits = f.evidence.model_extra["update_ratio_limits"]
    ratios = f.evidence.model_extra["update_ratios"]
    assert limits[_head(doc).name] == pytest.approx(0.3)
    assert all(v == pytest.approx(0.1) for n, v in limits.items() if n != _head(doc).name)
    # the layer needing the largest cut sets the rate: each brought to a tenth of its line or under
    new_lr = next(r for r in f.remedies if r.id == "lower_learning_rate").patch[0]["value"]
    assert new_lr == pytest.approx(5.0 * min(0.1 * limits[n] / r for n, r in ratios.items()), rel=5e-3)


def test_p2_a_declared_warm_up_is_named_with_the_step_judged_and_its_first_step() -> None:
    # specsweep14 disagreement (goyal2017 warmup): the evidence never mentioned the warm-up it kept the
    # error through; the severity rule stays (docs: past the error level it stays an error)
    doc = check_architecture(_bn_mlp({"type": "sgd", "lr": 20.0, "momentum": 0.9, "warmup_steps": 40}),
                             verify=False)
    f = _large_updates(doc)
    head = _head(doc)
    assert f.severity == "error"
    extra = f.evidence.model_extra
    assert extra["warmup_steps"] == 40 and extra["warmup_first_factor"] == pytest.approx(1 / 40)
    assert extra["judged_step"] == "full_rate_after_warmup"
    # its first step at lr/40, with no momentum built up yet: the first step's ratio / 40
    assert extra["warmup_first_update_ratios"][head.name] == pytest.approx(head.update_ratio / 40, rel=1e-6)
    assert "warms up to that rate over 40 steps" in f.summary
    assert "the step judged is the one at the full rate" in f.summary
    assert "warmup_first_update_ratios" in f.explanation


_VGG_ON_28 = [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "activation": "relu"},
    {"type": "maxpool2d", "kernel_size": 2, "stride": 2},  # 28 -> 14
    {"type": "maxpool2d", "kernel_size": 2, "stride": 2},  # 14 -> 7
    {"type": "maxpool2d", "kernel_size": 2, "stride": 2},  # 7 -> 3
    {"type": "maxpool2d", "kernel_size": 2, "stride": 2},  # 3 -> 1
    {"type": "maxpool2d", "kernel_size": 2, "stride": 2},  # 1: the kernel does not fit
    {"type": "flatten"},
    {"type": "linear", "out_features": 10},
]


def test_p3_a_pool_whose_kernel_exceeds_the_map_is_refused_at_its_kernel_with_advice_that_works() -> None:
    # specsweep14 P2 (inv_vgg16_on_mnist_5pools): refused at /stride with "at most 1", whose spec was
    # then refused at /kernel_size
    spec = {"input": {"shape": [1, 28, 28]}, "seeds": 1, "layers": _VGG_ON_28}
    with pytest.raises(SpecError) as err:
        check_architecture(spec, verify=False)
    text = str(err.value)
    assert "/layers/5/kernel_size" in text and "/stride" not in text
    assert "already 1x1 before this pool" in text and "remove this pool" in text
    # each piece of advice is accepted: the pool removed, a kernel of at most 1
    for layers in (_VGG_ON_28[:5] + _VGG_ON_28[6:],
                   _VGG_ON_28[:5] + [{"type": "maxpool2d", "kernel_size": 1, "stride": 1}] + _VGG_ON_28[6:]):
        check_architecture({"input": {"shape": [1, 28, 28]}, "seeds": 1, "layers": layers}, verify=False)


def test_p3_a_stride_past_a_map_the_kernel_fits_is_still_refused_at_its_stride() -> None:
    spec = {"input": {"shape": [1, 4, 4]}, "seeds": 1, "layers": [
        {"type": "maxpool2d", "kernel_size": 2, "stride": 8}, {"type": "flatten"},
        {"type": "linear", "out_features": 2}]}
    with pytest.raises(SpecError, match="/layers/0/stride"):
        check_architecture(spec, verify=False)


def test_p4_the_text_report_names_the_variant_its_fix_command_applies(tmp_path: Any, capsys: Any) -> None:
    # specsweep14 P3 (sussillo2009): both gated_recurrent_cell variants printed the command that applies
    # the first; each printed command, run, must apply the patch printed under it
    import json
    import re

    from gradhealth.cli import main

    spec = tmp_path / "lstm.json"
    spec.write_text(json.dumps({"input": {"shape": [400, 8]}, "seeds": 1, "precision": "float32",
                                "layers": [{"type": "lstm", "hidden_size": 16, "forget_bias": -1.0},
                                           {"type": "linear", "out_features": 4}]}))
    main(["check", str(spec), "--no-verify", "--no-progress"])
    lines = capsys.readouterr().out.splitlines()
    shown = []
    for i, line in enumerate(lines):
        m = re.search(r"`gradhealth fix SPEC --remedy gated_recurrent_cell( --variant (\d))?` applies it", line)
        if m:
            shown.append((m.group(2), json.loads(lines[i + 1].strip())))
    assert [v for v, _ in shown] == ["1", "2"]
    for variant, op in shown:
        assert main(["fix", str(spec), "--remedy", "gated_recurrent_cell", "--variant", str(variant)]) == 0
        fixed = json.loads(capsys.readouterr().out)
        assert op["op"] == "replace" and op["path"] == "/layers/0"
        assert fixed["layers"][0]["forget_bias"] == op["value"]["forget_bias"]
    assert [op["value"]["forget_bias"] for _, op in shown] == ["chrono", 1.0]


@pytest.mark.parametrize("cell,gate,other", [
    ("gru", "biasing the update gate towards keeping the state", "forget gate"),
    ("lstm", "opening the forget gate", "update gate"),
])
def test_p5_the_vanishing_through_time_note_names_the_cells_own_gate(cell: str, gate: str, other: str) -> None:
    # specsweep14 P4 (cho2014_gru_encoder): a GRU's note said "opening the forget gate"; a GRU has an
    # update gate (Cho et al. 2014 Sec 2.3), which chrono initialisation biases for a GRU
    spec = {"input": {"shape": [200, 8]}, "seeds": 1, "precision": "float32",
            "layers": [{"type": cell, "hidden_size": 16}, {"type": "linear", "out_features": 4}]}
    doc = check_architecture(spec, verify=False)
    f = next(f for f in doc.findings if f.code == "vanishing_through_time")
    assert gate in f.explanation and other not in f.explanation


def test_p6_a_residual_scale_of_zero_is_refused_as_a_cut_branch_not_an_underflowing_std() -> None:
    # specsweep14 P5 (rezero_resmlp_scale0): "as smaller scales underflow to a standard deviation of 0"
    # for a branch multiplier; at 0, y = x + 0 * f(x): dL/dW_f = 0 * ..., the branch never trains
    spec = {"input": {"shape": [8]}, "layers": [
        {"type": "linear", "out_features": 8},
        {"type": "residual", "scale": 0, "layers": [{"type": "linear", "out_features": 8}]}]}
    with pytest.raises(SpecError) as err:
        check_architecture(spec, verify=False)
    text = str(err.value)
    assert "/layers/1/scale" in text and "standard deviation" not in text
    assert "cuts the branch out" in text and "ReZero" in text and "not expressible" in text
    # the scale it suggests is accepted
    spec["layers"][1]["scale"] = 0.01
    check_architecture(spec | {"seeds": 1}, verify=False)
    # an input std of 0 keeps its own reason
    with pytest.raises(SpecError, match="standard deviation of 0"):
        check_architecture({"input": {"shape": [8], "scale": 0}, "layers": [{"type": "linear", "out_features": 2}]},
                           verify=False)


def test_p7_no_progress_silences_the_still_working_notice(monkeypatch: Any, tmp_path: Any, capsys: Any) -> None:
    # specsweep14 P6: "still working after 16 s" printed under --no-progress, mixing into 2>&1 captures;
    # docs/cli.md: --progress/--no-progress is the progress on stderr, the notice what shows without either
    import json

    from gradhealth import cli

    monkeypatch.setattr(cli, "QUIET_NOTICE_S", -1.0)  # every check is past it
    spec = tmp_path / "mlp.json"
    spec.write_text(json.dumps(mlp(2, width=8) | {"seeds": 1}))
    cli.main(["check", str(spec), "--no-verify", "--no-progress"])
    assert "still working" not in capsys.readouterr().err
    cli.main(["check", str(spec), "--no-verify"])  # stderr is no terminal here: the notice stays
    assert capsys.readouterr().err.count("still working") == 1


@pytest.mark.parametrize("heads,divides", [(12, True), (16, False)])
def test_p7_a_transformer_width_mismatch_says_the_width_to_use(heads: int, divides: bool) -> None:
    # specsweep14 P6 (inv_transformer_dmodel_mismatch): BERT-Base's 768 on 300-d embeddings said what
    # and where, not the fix
    spec = {"input": {"shape": [16, 300]}, "layers": [
        {"type": "transformer_encoder", "d_model": 768, "heads": heads, "num_layers": 1, "ff_width": 64},
        {"type": "pool"}, {"type": "linear", "out_features": 2}]}
    with pytest.raises(SpecError) as err:
        check_architecture(spec, verify=False)
    text = str(err.value)
    assert "/layers/0/d_model" in text and "set d_model: 300" in text
    assert "linear layer with out_features: 768 before it" in text
    assert ("must divide it" in text) is not divides
    # both fixes are accepted (with heads that divide the width)
    width = spec["layers"][0] | {"d_model": 300, "heads": 12}
    check_architecture(spec | {"seeds": 1, "layers": [width] + spec["layers"][1:]}, verify=False)
    check_architecture(spec | {"seeds": 1, "layers": [{"type": "linear", "out_features": 768}] + spec["layers"]},
                       verify=False)
