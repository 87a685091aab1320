"""End to end against real processes: restart without loss, a worker killed mid-job, the time
limit, cancelling a running job, and `gradhealth check --server`."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.jobs import store
from tests.e2e.helpers import GRADHEALTH, env_for, serve, start_worker, stop, wait_job

TINY = {"input": {"shape": [16]}, "seeds": 1, "batch_size": 16,
        "layers": [{"type": "linear", "out_features": 16, "activation": "relu", "init": "kaiming_normal",
                    "repeat": 3}, {"type": "linear", "out_features": 4}]}
# Several seconds of work on one core: long enough to be caught in the middle.
SLOW = {"input": {"shape": [300, 16]}, "seeds": 6, "batch_size": 64, "name": "slow",
        "layers": [{"type": "rnn", "hidden_size": 128}, {"type": "linear", "out_features": 4}]}


def test_results_survive_a_restart_and_queued_jobs_are_not_lost(tmp_path):
    url = f"sqlite:///{tmp_path}/svc.db"
    log = tmp_path / "serve.log"
    with serve(url, log) as client:
        done = client.post("/v1/checks/architecture?wait=60", json=TINY).json()
        assert done["status"] == "succeeded"
    # Queued while no worker runs (the service is down): written straight to the job table.
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    with factory() as session:
        queued, _ = store.submit(session, kind="architecture", owner="anonymous", request=TINY,
                                 idempotency_key=None, time_limit_s=60, max_attempts=3)
    with serve(url, log) as client:
        again = client.get(f"/v1/jobs/{done['id']}").json()
        assert again["status"] == "succeeded" and again["result"] == done["result"]
        later = wait_job(client, queued.id, ("succeeded", "failed"))
        assert later["status"] == "succeeded"


def test_a_worker_killed_mid_job_is_replaced_and_the_job_retried(tmp_path):
    url = f"sqlite:///{tmp_path}/fault.db"
    log = tmp_path / "fault.log"
    with serve(url, log, GRADHEALTH_WORKERS="0", GRADHEALTH_LEASE_S="2") as client:
        first = start_worker(url, tmp_path / "w1.log", GRADHEALTH_LEASE_S="2")
        try:
            job = client.post("/v1/checks/architecture", json=SLOW).json()
            running = wait_job(client, job["id"], ("running", "succeeded", "failed"))
            assert running["status"] == "running" and running["attempts"] == 1
        finally:
            stop(first, signal.SIGKILL)  # the whole process group: supervisor and worker, no goodbye
        second = start_worker(url, tmp_path / "w2.log", GRADHEALTH_LEASE_S="2")
        try:
            done = wait_job(client, job["id"], ("succeeded", "failed"), timeout=300)
        finally:
            stop(second)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert done["result"]["findings"][0]["code"] == "vanishing_through_time"


def test_time_limit_fails_the_job_and_the_worker_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path}/limit.db"
    with serve(url, tmp_path / "limit.log", GRADHEALTH_JOB_TIME_LIMIT_S="0.5") as client:
        slow = client.post("/v1/checks/architecture", json=SLOW).json()
        failed = wait_job(client, slow["id"], ("succeeded", "failed"))
        assert failed["status"] == "failed" and failed["error"]["type"].endswith("time-limit")
        assert "0.5 s" in failed["error"]["detail"]
        assert client.post("/v1/checks/architecture?wait=60", json=TINY).json()["status"] == "succeeded"


def test_cancelling_a_running_job(tmp_path):
    url = f"sqlite:///{tmp_path}/cancel.db"
    with serve(url, tmp_path / "cancel.log") as client:
        job = client.post("/v1/checks/architecture", json=SLOW).json()
        wait_job(client, job["id"], ("running",))
        r = client.delete(f"/v1/jobs/{job['id']}")
        assert r.status_code == 202
        assert wait_job(client, job["id"], ("cancelled", "succeeded", "failed"))["status"] == "cancelled"


def test_check_with_server_matches_the_in_process_check(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    spec = tmp_path / "spec.json"
    spec.write_text('{"input": {"shape": [32]}, "seeds": 1, "layers": [{"type": "linear", "out_features": 32, '
                    '"activation": "sigmoid", "init": {"scheme": "normal", "std": 0.05}, "repeat": 8}, '
                    '{"type": "linear", "out_features": 4}]}')
    local = subprocess.run([*GRADHEALTH, "check", str(spec), "--format", "json"], capture_output=True, text=True,
                           env=env_for(url), timeout=300)
    with serve(url, tmp_path / "cli.log") as client:
        remote = subprocess.run([*GRADHEALTH, "check", str(spec), "--format", "json", "--server",
                                 str(client.base_url)], capture_output=True, text=True, env=env_for(url), timeout=300)
        bad = subprocess.run([*GRADHEALTH, "check", "-", "--server", str(client.base_url)], input='{"input": {}}',
                             capture_output=True, text=True, env=env_for(url), timeout=300)
    assert local.returncode == remote.returncode == 1
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert [f["code"] for f in a["findings"]] == [f["code"] for f in b["findings"]]
    assert a["findings"][0]["evidence"]["value"] == b["findings"][0]["evidence"]["value"]
    assert bad.returncode == 2 and "/input" in bad.stderr


def test_the_service_on_postgresql_keeps_results_across_a_restart(tmp_path, database_url):
    """The same service with DATABASE_URL on a real PostgreSQL server (and on SQLite)."""
    log = tmp_path / "pg.log"
    with serve(database_url, log) as client:
        done = client.post("/v1/checks/architecture?wait=60", json=TINY).json()
        assert done["status"] == "succeeded", done
    with serve(database_url, log) as client:
        again = client.get(f"/v1/jobs/{done['id']}").json()
        assert again["status"] == "succeeded" and again["result"] == done["result"]
        assert client.get("/readyz").json()["checks"]["database"] == "ok"


def test_log_check_with_server_matches_in_process(tmp_path):
    url = f"sqlite:///{tmp_path}/logs.db"
    folder = Path(__file__).resolve().parents[1] / "data" / "logs" / "lightning-csv-ml-aos"
    local = subprocess.run([*GRADHEALTH, "check", str(folder), "--format", "json"], capture_output=True, text=True,
                           env=env_for(url), timeout=300)
    with serve(url, tmp_path / "logs.log", GRADHEALTH_UPLOAD_DIR=str(tmp_path / "up")) as client:
        remote = subprocess.run([*GRADHEALTH, "check", str(folder), "--format", "json", "--server",
                                 str(client.base_url)], capture_output=True, text=True, env=env_for(url), timeout=300)
    assert local.returncode == remote.returncode == 0, remote.stderr
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert a["status"] == b["status"] and [f["code"] for f in a["findings"]] == [f["code"] for f in b["findings"]]
    assert {s["name"] for s in a["series"]} == {s["name"] for s in b["series"]}


def test_the_recorder_sends_its_log_to_the_service(tmp_path):
    import torch
    from torch import nn

    from gradhealth.recorder import GradientRecorder

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    recorder = GradientRecorder(model, tmp_path / "run" / "gradients.jsonl")
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    for _ in range(30):
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        recorder.step(loss=loss, optimizer=optimizer)
        optimizer.step()
    url = f"sqlite:///{tmp_path}/rec.db"
    with serve(url, tmp_path / "rec.log", GRADHEALTH_UPLOAD_DIR=str(tmp_path / "up")) as client:
        job = recorder.send(str(client.base_url))
        assert job["kind"] == "logs" and job["links"]["self"] == f"/v1/jobs/{job['id']}"
        done = wait_job(client, job["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    names = {s["name"] for s in done["result"]["series"]}
    assert {"loss", "grad_norm", "lr", "grad_norm/0.weight", "grad_norm/2.bias"} <= names
