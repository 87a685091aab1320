"""newuser7 #5: a running simulation meets its progress callback (and so a cancellation) inside a
seed's forward and backward passes, not only between seeds; the job shows the request at once."""

from __future__ import annotations

import pytest

from gradhealth.analysis import simulate as sim
from gradhealth.analysis.plan import Limits, make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.jobs import store
from gradhealth.jobs.kinds import run_architecture
from gradhealth.jobs.worker import JobStopped, _Running
from gradhealth.settings import Settings
from tests.api.helpers import TINY, running_app, settings_for

# 2 layers of 40 unrolled LSTM steps: 160 recorded steps per seed, each a tick going and coming back
LSTM = {"name": "lstm", "input": {"shape": [40, 8]}, "batch_size": 4, "seeds": 3, "loss": "mse",
        "layers": [{"type": "lstm", "hidden_size": 8, "num_layers": 2}, {"type": "linear", "out_features": 1}]}


@pytest.fixture(autouse=True)
def every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim, "TICK_S", 0.0)  # report at every tick: the test needs no slow network


def test_a_seed_reports_its_forward_then_its_backward_pass():
    seen: list[tuple[float, str]] = []
    sim.simulate(make_plan(parse_spec(LSTM), Limits()), progress=lambda f, stage: seen.append((f, stage)))
    first = [(f, s) for f, s in seen if s.startswith("simulating seed 1 of 3:")]
    forward = [f for f, s in first if s.endswith("forward pass")]
    backward = [f for f, s in first if s.endswith("backward pass")]
    # one tick per unit and recurrent step (2 units + 2 x 40 steps) each way
    assert len(forward) == 2 + 2 * 40 and len(backward) >= 2 * 40
    assert forward == sorted(forward) and forward[0] > 0 and forward[-1] == pytest.approx(1 / 6)
    assert backward[0] > 1 / 6 and max(backward) <= 0.99 / 3
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.mark.parametrize("phase", ["forward pass", "backward pass"])
def test_a_cancelled_job_stops_inside_the_seed_it_is_simulating(phase):
    running = _Running("job", time_limit_s=600)
    stages: list[str] = []

    def check(fraction: float, stage: str) -> None:
        stages.append(stage)
        if stage.endswith(phase):
            running.cancelled = True  # what the heartbeat sets when the row says cancel requested
        running.check(fraction, stage)

    with pytest.raises(JobStopped) as stopped:
        run_architecture(LSTM, check, Settings())
    assert stopped.value.status == "cancelled"
    # stopped at the first tick of that pass, in the first seed: nothing after it ran
    assert stages[-1] == f"simulating seed 1 of 3: {phase}"
    assert not any("seed 2" in s for s in stages)


def test_a_running_job_shows_its_cancel_request_at_once(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        job = api.post("/v1/checks/architecture", json=TINY).json()
        assert job["cancel_requested"] is False
        with api.app.state.sessions() as session:
            assert store.claim(session, worker_id="w", lease_s=30).id == job["id"]
        r = api.delete(f"/v1/jobs/{job['id']}")
        assert r.status_code == 202
        assert (r.json()["status"], r.json()["cancel_requested"]) == ("running", True)
        read = api.get(f"/v1/jobs/{job['id']}").json()
        assert (read["status"], read["cancel_requested"]) == ("running", True)
        listed = api.get("/v1/jobs").json()["items"]
        assert [j["cancel_requested"] for j in listed if j["id"] == job["id"]] == [True]
