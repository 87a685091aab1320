"""The public Python API on misuse (newuser5 P3, P5, P6, P7, P12, P13): every refusal is a
GradHealthError naming the argument, devices are parsed, the recorder says when it records no
gradient, and a GradScaler's loss scale is divided out of the recorded norms."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import GradientRecorder, check_architecture, check_logs, check_module
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.module_check import ModelRunError
from gradhealth.analysis.simulate import pick_device
from gradhealth.errors import ArgumentError, ArgumentTypeError, GradHealthError, SpecError

NO_CUDA = not torch.cuda.is_available()


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(4, 8), torch.tensor([0, 1, 2, 0])


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- P3: a loop that records no gradient is told so ---------------------------------------------


def test_step_after_zero_grad_warns_once_and_the_end_record_counts_the_steps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with GradientRecorder(model, tmp_path / "g.jsonl") as rec:
            for _ in range(12):
                x, y = _batch()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad()  # set_to_none=True: every .grad is None below
                rec.step(loss=loss, optimizer=opt)
    said = [w for w in caught if issubclass(w.category, RuntimeWarning) and "GradientRecorder" in str(w.message)]
    assert len(said) == 1
    assert "after loss.backward() and before optimizer.zero_grad()" in str(said[0].message)
    rows = _rows(rec.path)
    assert not any(r.get("metric") == "grad_norm" or "layer" in r for r in rows)
    assert rows[-1] == {"gradhealth_recorder": "end", "logged_steps": 12, "steps_without_gradients": 12}
    # and the log check says so: the file's missing norms are not a healthy run's
    doc = check_logs(rec.path)
    said = [w for w in doc.log.warnings if "no parameter had a gradient" in w]
    assert len(said) == 1 and "12 of 12 step(s)" in said[0] and doc.status != "healthy"


def test_all_zero_gradients_after_zero_grad_set_to_none_false_warn(tmp_path: Path) -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match=r"exactly zero.*set_to_none=False"), \
            GradientRecorder(model, tmp_path / "z.jsonl") as rec:
        for _ in range(6):
            x, y = _batch()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=False)
            rec.step(loss=1.0, optimizer=opt)


def test_a_model_without_trained_parameters_is_said_at_its_first_step(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="no parameter that requires a gradient"), \
            GradientRecorder(nn.ReLU(), tmp_path / "r.jsonl") as rec:
        rec.step(loss=1.0)


def test_a_correct_loop_says_nothing(tmp_path: Path) -> None:
    model = _mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with GradientRecorder(model, tmp_path / "ok.jsonl") as rec:
            for _ in range(8):
                model.zero_grad()
                x, y = _batch()
                F.cross_entropy(model(x), y).backward()
                rec.step(loss=1.0)
    assert _rows(rec.path)[-1] == {"gradhealth_recorder": "end", "logged_steps": 8}


# --- P5: device strings are parsed, not run on the CPU whatever they say --------------------------


@pytest.mark.parametrize("device", ["gpu", "banana", "tpu", "mps", "cuda:x"])
def test_a_device_that_is_none_here_is_a_spec_error_naming_it(device: str) -> None:
    with pytest.raises(SpecError) as raised:
        check_module(_mlp(), torch.randn(4, 8), seeds=1, verify=False, device=device)
    assert raised.value.status == 422
    assert raised.value.problems[0].pointer == "/device"
    assert repr(device) in str(raised.value) and "devices available here: auto, cpu" in str(raised.value)


@pytest.mark.skipif(not NO_CUDA, reason="a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_cuda_is_a_spec_error_for_check_module_and_check_architecture(device: str) -> None:
    with pytest.raises(SpecError, match="no CUDA device is available"):
        check_module(_mlp(), torch.randn(4, 8), seeds=1, verify=False, device=device)
    with pytest.raises(SpecError, match="no CUDA device is available"):
        check_architecture("example:relu_he_mlp", seeds=1, verify=False, device=device)


@pytest.mark.skipif(NO_CUDA, reason="needs CUDA")
def test_a_cuda_index_past_the_last_device_is_refused_and_an_existing_one_is_used() -> None:
    count = torch.cuda.device_count()
    with pytest.raises(SpecError, match=f"names CUDA device {count}"):
        pick_device(f"cuda:{count}")
    assert pick_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)


def test_cpu_spellings_run_on_the_cpu() -> None:
    for device in ("cpu", torch.device("cpu"), "cpu:0"):
        doc = check_module(_mlp(), torch.randn(4, 8), seeds=1, verify=False, device=device)  # type: ignore[arg-type]  # a torch.device too
        assert doc.simulation is not None and doc.simulation.device == "cpu"
    assert pick_device("auto") == pick_device(None) == torch.device("cuda" if not NO_CUDA else "cpu")
    with pytest.raises(SpecError):
        check_architecture("example:relu_he_mlp", seeds=1, verify=False, device="gpu")


# --- P6: check_module's and the recorder's refusals are GradHealthErrors naming the argument ------


@pytest.mark.parametrize(("kwargs", "kind", "named"), [
    ({"seeds": "2"}, ArgumentTypeError, "seeds"),
    ({"seeds": 2.0}, ArgumentTypeError, "seeds"),
    ({"seeds": 0}, ArgumentError, "seeds"),
    ({"loss": "bce"}, ArgumentError, "loss"),
    ({"loss": nn.KLDivLoss()}, ArgumentTypeError, "loss"),  # (nn.CrossEntropyLoss() is taken: newuser17 #4)
    ({"verify": "yes"}, ArgumentTypeError, "verify"),
    ({"optimizer": {"type": "lion", "lr": 1e-3}}, SpecError, "/optimizer/type"),
    ({"optimizer": "adam"}, ArgumentError, "optimizer"),
])
def test_check_module_arguments_are_refused_up_front(kwargs: dict[str, Any], kind: type, named: str) -> None:
    with pytest.raises(kind, match=named) as raised:
        check_module(_mlp(), torch.randn(4, 8), **{"seeds": 1, "verify": False, **kwargs})
    assert isinstance(raised.value, GradHealthError) and raised.value.status == 422


def test_check_module_model_that_is_not_a_module_or_has_no_parameters() -> None:
    with pytest.raises(ArgumentTypeError, match="model must be a torch.nn.Module"):
        check_module(lambda t: t * 2, torch.randn(4, 8), seeds=1)
    with pytest.raises(ArgumentError, match=r"model \(ReLU\) has no parameters"):
        check_module(nn.ReLU(), torch.randn(4, 8), seeds=1)


def test_a_forward_that_fails_is_a_model_run_error_naming_the_stage_and_the_inputs() -> None:
    with pytest.raises(ModelRunError) as raised:
        check_module(_mlp(), torch.randn(16, 5), seeds=1, verify=False)
    error = raised.value
    assert error.stage == "forward" and isinstance(error, ModelError) and isinstance(error, RuntimeError)
    assert "example_inputs ((16, 5) float32)" in str(error) and "cannot be multiplied" in str(error)
    assert isinstance(error.__cause__, RuntimeError)


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        raise ValueError("my backward is broken")


class _BrokenBackward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(_FailingBackward.apply(torch.relu(self.a(x))))


def test_a_backward_that_fails_is_a_model_run_error_at_the_backward() -> None:
    with pytest.raises(ModelRunError, match="backward pass through the model failed.*my backward is broken") as raised:
        check_module(_BrokenBackward(), torch.randn(4, 8), seeds=1, verify=False)
    assert raised.value.stage == "backward"


def test_check_logs_and_check_architecture_refuse_arguments_of_the_wrong_type() -> None:
    with pytest.raises(ArgumentTypeError, match="path must be a path"):
        check_logs(123)  # type: ignore[arg-type]  # the misuse tested
    with pytest.raises(ArgumentTypeError, match="goes to check_module"):
        check_architecture(_mlp())  # type: ignore[arg-type]  # the misuse tested


@pytest.mark.parametrize(("model", "hint"), [
    (list(_mlp().parameters()), "not its parameters"),
    (torch.optim.SGD(_mlp().parameters(), lr=0.1), "step\\(optimizer=...\\)"),
    (None, "got NoneType"),
])
def test_the_recorder_refuses_a_model_that_is_not_a_module(tmp_path: Path, model: Any, hint: str) -> None:
    with pytest.raises(ArgumentTypeError, match=hint):
        GradientRecorder(model, tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()


def test_a_bad_config_opens_no_file_and_the_same_path_is_free_after(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with pytest.raises(ArgumentTypeError, match="config must be a dict"):
        GradientRecorder(_mlp(), path, config=[("clip_threshold", 1.0)])  # type: ignore[arg-type]  # the misuse tested
    assert not path.exists()
    with GradientRecorder(_mlp(), path, config={"clip_threshold": 1.0}) as rec:
        assert rec.path == path  # not <stem>.<pid>.jsonl beside a file a failed recorder still holds
    assert _rows(path)[0] == {"gradhealth_recorder": "start", "params": {"max_grad_norm": "1.0"}}


# --- P7: mixed precision ------------------------------------------------------------------------


def _layer_norms(rows: list[dict[str, Any]], step: int) -> dict[str, float]:
    return {r["layer"]: r["value"] for r in rows if r.get("step") == step and "layer" in r}


@pytest.mark.parametrize("unscale", [False, True])
def test_a_grad_scalers_scale_is_divided_out_once(tmp_path: Path, unscale: bool) -> None:
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    x, y = _batch()
    # the true gradients, independently: a plain backward of the same loss on the same weights
    reference = _mlp()
    reference.load_state_dict(model.state_dict())
    F.cross_entropy(reference(x), y).backward()
    expected = {n: float(p.grad.norm()) for n, p in reference.named_parameters()}  # type: ignore[union-attr]  # set by backward
    with GradientRecorder(model, tmp_path / "amp.jsonl", scaler=None if unscale else scaler) as rec:
        scaler.scale(F.cross_entropy(model(x), y)).backward()
        assert float(model[0].weight.grad.norm()) == pytest.approx(2**12 * expected["0.weight"], rel=1e-5)  # type: ignore[union-attr]  # set by backward
        if unscale:
            scaler.unscale_(opt)
        rec.step(loss=1.0, optimizer=opt, scaler=scaler if unscale else None)
        scaler.step(opt)
        scaler.update()
    rows = _rows(rec.path)
    got = _layer_norms(rows, 0)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-5)
    total = next(r["value"] for r in rows if r.get("metric") == "grad_norm")
    assert total == pytest.approx(math.sqrt(sum(v * v for v in expected.values())), rel=1e-5)
    assert next(r["value"] for r in rows if r.get("metric") == "loss_scale") == 2.0**12


def test_an_overflowed_step_is_recorded_as_such_and_the_scale_drop_follows(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    with GradientRecorder(model, tmp_path / "inf.jsonl", scaler=scaler) as rec:
        for i in range(2):
            opt.zero_grad()
            x, y = _batch()
            scaler.scale(F.cross_entropy(model(x), y)).backward()
            if i == 0:
                model[0].weight.grad[0, 0] = math.inf  # type: ignore[index]  # an fp16 overflow
            rec.step(loss=1.0, optimizer=opt)
            scaler.step(opt)  # skipped at step 0
            scaler.update()
    rows = _rows(rec.path)
    assert _layer_norms(rows, 0)["0.weight"] == math.inf
    assert math.isfinite(_layer_norms(rows, 1)["0.weight"])
    scales = [r["value"] for r in rows if r.get("metric") == "loss_scale"]
    assert scales == [2.0**8, 2.0**7]  # the scaler halved it after the skipped step


# --- P12, P13: step() and config ------------------------------------------------------------------


def test_step_after_close_raises_on_every_call_whatever_every_says(tmp_path: Path) -> None:
    model = _mlp()
    rec = GradientRecorder(model, tmp_path / "c.jsonl", every=10)
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    rec.step(loss=1.0)
    rec.close()
    for _ in range(3):
        with pytest.raises(ArgumentError, match="closed"):
            rec.step(loss=1.0)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"step": 1.5}, "step must be an integer"),
    ({"step": "7"}, "step must be an integer"),
    ({"lr": "0.1"}, "lr must be a number"),
    ({"lr": True}, "lr must be a number"),
    ({"optimizer": object()}, "optimizer must be a torch.optim optimizer"),
    ({"scaler": 2.0}, "scaler must be a torch.amp.GradScaler"),
])
def test_step_arguments_are_refused_naming_them(tmp_path: Path, kwargs: dict[str, Any], named: str) -> None:
    model = _mlp()
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    with GradientRecorder(model, tmp_path / "s.jsonl") as rec, pytest.raises(ArgumentTypeError, match=named):
        rec.step(loss=1.0, **kwargs)


@pytest.mark.parametrize(("config", "message"), [
    ({"clip": 1.0}, "config has no key 'clip' \\(did you mean 'clip_threshold'\\?\\)"),
    ({"clip_threshold": math.nan}, "finite numbers"),
    ({"clip_threshold": -1.0}, "must be a number > 0"),
    ({"num_classes": 1}, "num_classes"),
])
def test_config_is_checked_without_a_server(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        GradientRecorder(_mlp(), tmp_path / "cfg.jsonl", config=config)
    assert not (tmp_path / "cfg.jsonl").exists()


def test_a_recorder_that_fails_after_opening_its_file_closes_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import gradhealth.recorder as recorder

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no live mode here")

    monkeypatch.setattr(recorder, "HttpSink", refuse)
    path = tmp_path / "live.jsonl"
    with pytest.raises(RuntimeError, match="no live mode here"):
        GradientRecorder(_mlp(), path, server="http://127.0.0.1:9", run="r")
    with GradientRecorder(_mlp(), path) as rec:
        assert rec.path == path  # the failed recorder's lock was released with its file


# --- P4: a diagnosis in the training process, mid-run -------------------------------------------

def _train(rec: GradientRecorder, model: nn.Module, opt: torch.optim.Optimizer, steps: range,
           poison: int | None = None) -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    for i in steps:
        loss = F.cross_entropy(model(x), y)
        if poison is not None and i >= poison:
            loss = loss * float("nan")
        opt.zero_grad()
        loss.backward()
        rec.step(loss=loss, optimizer=opt)
        opt.step()


def test_diagnose_mid_run_is_the_log_check_without_calling_the_open_file_cut_off(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with GradientRecorder(model, tmp_path / "healthy.jsonl") as rec:
        _train(rec, model, opt, range(60))
        during = rec.diagnose()
        assert not any("no end record" in w for w in during.log.warnings)
        assert during.status == "healthy", [(f.code, f.severity) for f in during.findings]
        # the file itself, read by the CLI's check while open, is cut off: only diagnose() knows better
        assert any("no end record" in w for w in check_logs(rec.path).log.warnings)
    after = rec.diagnose()  # closed: the same document as the check of the file
    assert [(f.code, f.severity) for f in after.findings] == \
        [(f.code, f.severity) for f in check_logs(rec.path).findings]


def test_diagnose_mid_run_sees_a_nan_at_once(tmp_path: Path) -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with GradientRecorder(model, tmp_path / "nan.jsonl") as rec:
        _train(rec, model, opt, range(30), poison=25)
        doc = rec.diagnose()
        nonfinite = [f for f in doc.findings if f.code == "nonfinite"]
        assert nonfinite and nonfinite[0].severity == "error" and nonfinite[0].evidence.steps[0] == 25


def test_diagnose_needs_a_file() -> None:
    rec = GradientRecorder.__new__(GradientRecorder)
    rec.path = None
    with pytest.raises(ArgumentError, match="no path"):
        rec.diagnose()


# --- P8: figures of your own beside the gradients --------------------------------------------------

def test_metrics_and_log_write_your_figures_and_the_check_reads_a_validation_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _batch()
    with GradientRecorder(model, tmp_path / "m.jsonl", every=2) as rec:
        for i in range(40):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            rec.step(loss=loss, optimizer=opt, metrics={"train_acc": torch.tensor(0.5 + i / 100)})
            opt.step()
            if i % 5 == 4:  # an evaluation every 5 steps, on a step `every` may not log
                rec.log({"val_loss": 1.0 + 0.05 * i})  # rising: the model overfits
    rows = _rows(rec.path)
    acc = [(r["step"], r["value"]) for r in rows if r.get("metric") == "train_acc"]
    assert acc == [(i, pytest.approx(0.5 + i / 100)) for i in range(0, 40, 2)]  # the logged steps only
    val = [(r["step"], r["value"]) for r in rows if r.get("metric") == "val_loss"]
    assert val == [(i, pytest.approx(1.0 + 0.05 * i)) for i in range(4, 40, 5)]
    for r in rows:  # each line exactly as json.dumps writes it (the encoder is hand-written)
        if r.get("metric") in ("train_acc", "val_loss"):
            assert json.dumps(r) in rec.path.read_text()
    # the check reads val_loss as the validation loss: rising from its best while training falls
    found = [f for f in check_logs(rec.path).findings if f.code == "validation_divergence"]
    assert found and found[0].severity in ("warning", "error") and found[0].evidence.metric == "val_loss"


@pytest.mark.parametrize(("metrics", "error", "match"), [
    ({"loss": 1.0}, ArgumentError, "written by the recorder itself"),
    ({"": 1.0}, ArgumentError, "1-200 characters"),
    ({"acc": "0.9"}, ArgumentTypeError, r"metrics\['acc'\] must be a number"),
    ({"acc": torch.ones(3)}, ArgumentError, "one number"),
    ([("acc", 1.0)], ArgumentTypeError, "mapping"),
])
def test_bad_metrics_are_refused_naming_them(tmp_path: Path, metrics: Any, error: type, match: str) -> None:
    with GradientRecorder(_mlp(), tmp_path / "bad.jsonl") as rec, pytest.raises(error, match=match):
        rec.log(metrics, step=0)


def test_diagnose_and_scaler_errors_say_what_is_wrong(tmp_path: Path) -> None:
    # apisweep4 D12: "not in the native format", a bare AttributeError, a bare ValueError
    with GradientRecorder(_mlp(), tmp_path / "early.jsonl") as rec:
        with pytest.raises(ArgumentError, match="nothing recorded yet"):
            rec.diagnose()
        with pytest.raises(ArgumentTypeError, match="settings must be"):
            rec.diagnose(settings="x")

    class Odd:
        def get_scale(self) -> str:
            return "big"

    model = _mlp()
    F.cross_entropy(model(torch.randn(4, 8)), torch.tensor([0, 1, 2, 0])).backward()
    with GradientRecorder(model, tmp_path / "odd.jsonl") as rec, pytest.raises(ArgumentTypeError, match="get_scale"):
        rec.step(loss=1.0, scaler=Odd())


def test_assert_gradients_healthy_takes_never_as_the_cli_does() -> None:
    # newuser5 P14: the CLI's --fail-on never was refused by the pytest helper
    from gradhealth.testing import assert_gradients_healthy

    sick = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(32, 32), nn.Sigmoid())], nn.Linear(32, 3))
    with pytest.raises(AssertionError, match="vanishing_gradient"):
        assert_gradients_healthy(sick, torch.randn(16, 32), seeds=1, verify=False)
    doc = assert_gradients_healthy(sick, torch.randn(16, 32), "never", seeds=1, verify=False)
    assert any(f.code == "vanishing_gradient" for f in doc.findings)  # reported, not raised
    with pytest.raises(ValueError, match="never"):
        assert_gradients_healthy(sick, torch.randn(16, 32), "sometimes", seeds=1, verify=False)


def test_a_negative_step_is_refused_as_the_points_route_refuses_it(tmp_path: Path) -> None:
    # newuser13 #5: the service's points route refuses a negative step; the recorder says so first
    model = _mlp()
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    with GradientRecorder(model, tmp_path / "n.jsonl") as rec, \
            pytest.raises(ArgumentError, match="step must be a non-negative integer .*, got -5"):
        rec.step(loss=1.0, step=-5)
