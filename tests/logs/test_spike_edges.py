"""The edges of a spike (logsweep47): a run's first logged points are its start-up, not spikes; a
spike on the last logged point has no recovery to judge; and a clipping remedy never suggests a
threshold looser than the one the run already clips at (a Hugging Face Trainer clips at 1.0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.logs.check import diagnose, run_log_check
from gradhealth.logs.remedies import HF_TRAINER_MAX_NORM, clip_in_force
from gradhealth.logs.series import RunLog, make_series


def _run(fmt: str = "test", params: dict[str, str] | None = None, **named: np.ndarray) -> RunLog:
    """A run of the named series on steps 100, 200, ... (as long as each series)."""
    run = RunLog(format=fmt, source="synthetic", params=params or {})
    for name, values in named.items():
        run.series.append(make_series(name, 100 * np.arange(1, len(values) + 1), np.asarray(values, float)))
    return run


def _found(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def _trainer_state(tmp_path: Path, loss: list[float], norms: list[float], **extra: object) -> Path:
    """A trainer_state.json logging ``loss`` and ``grad_norm`` every 10 steps."""
    history = [{"epoch": round(0.01 * (i + 1), 2), "grad_norm": g, "learning_rate": 2e-5, "loss": lo,
                "step": 10 * (i + 1)} for i, (lo, g) in enumerate(zip(loss, norms, strict=True))]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": history, "global_step": 10 * len(loss), **extra}))
    return path


def _clip_norms(findings: list[Finding]) -> list[float]:
    return [float(r.params["max_norm"]) for f in findings for r in f.remedies if r.id == "gradient_clipping"]


# --- defect 1: the start-up of a short run is not a spike ------------------------------------------

#: logsweep47 item 09 (law-llm): the first two norms are the start-up, while the loss falls from its highest
LAW_LOSS = [284.87, 161.25, 9.90, 5.39, 5.18, 5.02]
LAW_NORMS = [197.5, 422.0, 3.317, 2.183, 2.705, 2.682]


def test_the_first_high_norms_of_a_short_run_whose_loss_falls_are_start_up_not_spikes() -> None:
    run = _run(loss=np.array(LAW_LOSS), grad_norm=np.array(LAW_NORMS))
    assert not _found(diagnose(run).findings, "gradient_spike")


def test_the_law_llm_trainer_state_has_no_spike(tmp_path: Path) -> None:
    doc = run_log_check(_trainer_state(tmp_path, LAW_LOSS, LAW_NORMS))
    assert not _found(doc.findings, "gradient_spike")


def test_a_start_up_below_the_glaring_bar_is_no_short_spike_note_either() -> None:
    # 60 is twice both its neighbours and 20x the rest's median, but nothing lower came before it
    loss = [40.0, 20.0, 4.0, 3.5, 3.4, 3.3, 3.2]
    norms = [30.0, 60.0, 3.0, 2.7, 2.9, 2.8, 3.1]
    assert not _found(diagnose(_run(loss=np.array(loss), grad_norm=np.array(norms))).findings, "gradient_spike")


def test_a_short_run_spike_after_a_lower_start_is_still_a_spike() -> None:
    # the same 422 after a first norm at the run's level: it stands above a lower level on both sides
    norms = [3.1, 422.0, 3.317, 2.183, 2.705, 2.682]
    [f] = _found(diagnose(_run(loss=np.array(LAW_LOSS), grad_norm=np.array(norms))).findings, "gradient_spike")
    assert f.severity == "warning" and f.evidence.spike_steps == [200] and f.evidence.recovered is True


def test_high_first_norms_while_the_loss_does_not_fall_are_still_judged() -> None:
    # no start-up to explain them: the loss is flat, so the glaring rule stands
    [f] = _found(diagnose(_run(loss=np.full(6, 2.0), grad_norm=np.array(LAW_NORMS))).findings, "gradient_spike")
    assert f.severity == "warning" and f.evidence.spike_steps == [100, 200]


# --- defect 2: a spike on the last logged point -----------------------------------------------------

def test_a_glaring_spike_on_the_last_point_has_unknown_recovery() -> None:
    # unsloth #5207: 11140 among norms of about 8, on the last logged line
    norms = [14.98, 9.78, 7.64, 92.10, 29.00, 5.21, 7.83, 7.79, 11140.00]
    [f] = _found(diagnose(_run(loss=np.full(9, 1.4), grad_norm=np.array(norms))).findings, "gradient_spike")
    assert "did not recover" not in f.summary
    assert "the log ends at the spike at step 900" in f.summary and "unknown" in f.summary
    assert f.evidence.recovered is None and f.evidence.ends_at_spike is True


def test_a_long_run_spike_on_its_last_point_is_a_note_with_unknown_recovery() -> None:
    rng = np.random.default_rng(0)
    norms = 1.0 + 0.05 * rng.standard_normal(200)
    norms[-1] = 30.0
    loss = 2.0 + np.exp(-np.arange(200) / 50)
    [f] = _found(diagnose(_run(loss=loss, grad_norm=norms)).findings, "gradient_spike")
    assert f.severity == "info" and f.evidence.recovered is None and f.evidence.ends_at_spike is True
    assert "did not recover" not in f.summary and "unknown" in f.summary
    # the same spike one point earlier, with the norm back at its level after it: recovered
    norms[-2], norms[-1] = 30.0, 1.0
    [f] = _found(diagnose(_run(loss=loss, grad_norm=norms)).findings, "gradient_spike")
    assert f.severity == "info" and f.evidence.recovered is True and "recovered after each" in f.summary


def test_a_loss_spike_on_the_last_point_is_not_graded_as_not_recovered() -> None:
    rng = np.random.default_rng(1)
    loss = (0.5 + np.exp(-np.arange(120) / 30)) * np.exp(0.01 * rng.standard_normal(120))
    loss[-1] = 5.0  # 10x its level, under 10x where the run started (a warning of its own)
    [f] = _found(diagnose(_run(loss=loss)).findings, "loss_spike")
    assert f.severity == "info" and f.evidence.recovered is None
    assert "did not recover" not in f.summary and "the log ends at the spike" in f.summary


# --- defect 3: no clipping threshold looser than the run's own ---------------------------------------

def test_a_trainer_state_without_max_grad_norm_is_taken_to_clip_at_the_trainer_default() -> None:
    limit, source = clip_in_force(_run("hf_trainer", grad_norm=np.ones(5))) or (None, "")
    assert limit == HF_TRAINER_MAX_NORM == 1.0 and "default" in source and "before clipping" in source
    assert clip_in_force(_run("hf_trainer", {"max_grad_norm": "0.3"}, grad_norm=np.ones(5))) == (0.3, "the run's params")
    assert clip_in_force(_run("text", grad_norm=np.ones(5))) is None


def test_huge_pre_clip_norms_of_a_trainer_run_get_no_clipping_remedy(tmp_path: Path) -> None:
    # TrOCR (logsweep47 item 10): pre-clip norms of 1e5-1e6 with a few spikes; the Trainer already
    # clipped every step at 1.0, so "clip at 1.2e6" would be a no-op
    rng = np.random.default_rng(2)
    norms = list(2e5 * np.exp(0.2 * rng.standard_normal(120)))
    for i in (30, 60, 90):
        norms[i] *= 20
    loss = list(5.0 * np.exp(-np.arange(120) / 30) + 0.1)
    findings = run_log_check(_trainer_state(tmp_path, loss, norms)).findings
    assert _found(findings, "gradient_spike")
    assert _clip_norms(findings) == []


def test_a_trainer_run_gets_a_tighter_threshold_only_when_its_data_says_so(tmp_path: Path) -> None:
    # norms around 0.1 with spikes to 0.9: clipping at the default 1.0 lets them through; the remedy
    # says so and names a threshold from the data, never above the one in force
    rng = np.random.default_rng(3)
    norms = list(0.1 * np.exp(0.1 * rng.standard_normal(120)))
    for i in (30, 60, 90):
        norms[i] = 0.9
    loss = list(2.0 * np.exp(-np.arange(120) / 40) + 0.5)
    findings = run_log_check(_trainer_state(tmp_path, loss, norms)).findings
    [clip] = [r for f in _found(findings, "gradient_spike") for r in f.remedies if r.id == "gradient_clipping"]
    assert float(clip.params["max_norm"]) <= 0.5 * HF_TRAINER_MAX_NORM
    assert "already clips at 1" in clip.params["basis"] and "default max_grad_norm" in clip.params["basis"]
    # with max_grad_norm recorded tighter than the data's threshold: no clipping remedy at all
    findings = run_log_check(_trainer_state(tmp_path, loss, norms, args={"max_grad_norm": 0.12})).findings
    assert _found(findings, "gradient_spike") and _clip_norms(findings) == []


def test_a_loop_that_records_no_clipping_keeps_the_data_derived_threshold() -> None:
    rng = np.random.default_rng(4)
    norms = 5.0 * np.exp(0.1 * rng.standard_normal(120))
    norms[[30, 60, 90]] = 200.0
    findings = diagnose(_run("text", loss=2.0 * np.exp(-np.arange(120) / 40) + 0.5, grad_norm=norms)).findings
    [limit] = _clip_norms(_found(findings, "gradient_spike"))
    assert 5.0 < limit < 10.0
