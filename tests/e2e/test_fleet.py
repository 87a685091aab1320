"""A fleet: three `gradhealth worker` processes on one real PostgreSQL, one SIGKILLed mid-job and
one SIGTERMed mid-job, and 50 jobs each finished exactly once.

The evidence is independent of the code under test: a trigger installed on the test database
records every change of a job's status in an audit table, with the lease owner before and after
(the job table itself forgets who ran a job once it is finished). From it:

* each job reached ``succeeded`` exactly once and never left it; nothing failed or was lost;
* each job's ``attempts`` counts its claims ended by a kill, plus its last (a graceful stop gives
  its attempt back), and every claim but the last was held by a worker we
  killed: no live worker ever lost a lease, so no job's check ran twice to completion;
* the claims are spread over all three processes, whose worker identities are disjoint.

A worker is caught mid-job deterministically: its process group is frozen (SIGSTOP), the job table
is asked whether it holds a running job, and only then is it signalled (else it is thawed and we
look again a moment later).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

from sqlalchemy import Engine, text

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.jobs import store
from tests.e2e.helpers import start_worker, stop
from tests.pg import create_database, drop_database

JOBS = 50
LEASE_S = 5  # long enough that a live worker starved of CPU for a moment keeps its lease
# Each job must run long against the claim and finish around it (~0.1 s here, against a few
# milliseconds of bookkeeping), so that a worker is caught holding one, and long enough that the
# 50 jobs are not all done before the second catch: a 4x32 network checked in ~3 ms once the
# check got faster, and the catches then missed the jobs.
SPEC = {"input": {"shape": [256]}, "seeds": 3, "batch_size": 256,
        "layers": [{"type": "linear", "out_features": 256, "activation": "tanh",
                    "init": "xavier_normal", "repeat": 8},
                   {"type": "linear", "out_features": 4}]}

AUDIT = """
CREATE TABLE job_audit (
    seq bigserial PRIMARY KEY, job_id text NOT NULL, old_status text, new_status text NOT NULL,
    old_owner text, new_owner text, attempts integer,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION job_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_audit (job_id, old_status, new_status, old_owner, new_owner, attempts)
    VALUES (NEW.id, OLD.status, NEW.status, OLD.lease_owner, NEW.lease_owner, NEW.attempts);
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_audit AFTER UPDATE ON jobs FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION job_audit_row();
"""


def worker_ids(log: Path) -> set[str]:
    """The worker identities a `gradhealth worker` process used (its INFO line per job)."""
    return set(re.findall(r"worker (\S+) runs \w+ job", log.read_text(errors="replace")))


def backends(engine: Engine, app: str) -> int:
    """Connections the processes started with PGAPPNAME=app hold on this database."""
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND application_name = :app"),
                           {"app": app})


def running_job_of(engine: Engine, ids: set[str]) -> str | None:
    if not ids:
        return None
    with engine.connect() as conn:
        return conn.scalar(text("SELECT id FROM jobs "
                                "WHERE status = 'running' AND lease_owner = ANY(:ids)"),
                           {"ids": sorted(ids)})


def completed_by(engine: Engine, ids: set[str]) -> int:
    if not ids:
        return 0
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM job_audit WHERE new_status = 'succeeded' "
                                "AND old_owner = ANY(:ids)"), {"ids": sorted(ids)})


def succeeded(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM jobs WHERE status = 'succeeded'"))


def catch_mid_job(engine: Engine, process: subprocess.Popen, log: Path, *, after: int,
                  timeout: float = 60) -> str:
    """Once ``after`` jobs have succeeded and ``process`` finished one of them, freeze its group at
    a moment it holds a running job; that job's id. The group stays frozen for the caller to
    signal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        ids = worker_ids(log)
        if succeeded(engine) >= after and completed_by(engine, ids) >= 1:
            os.killpg(process.pid, signal.SIGSTOP)
            job = running_job_of(engine, worker_ids(log))
            if job is not None:
                return job
            os.killpg(process.pid, signal.SIGCONT)  # between two jobs: let it go on, look again
        time.sleep(0.02)
    raise AssertionError("worker never caught holding a job after finishing one:\n"
                         + log.read_text()[-3000:])


def test_fleet_of_workers_finishes_every_job_exactly_once(postgres_url: str,
                                                          tmp_path: Path) -> None:
    url = create_database(postgres_url)
    engine = make_engine(url)
    processes: dict[str, subprocess.Popen] = {}
    try:
        migrate(url)  # before the workers start, so they do not race to create the schema
        with engine.begin() as conn:
            conn.exec_driver_sql(AUDIT)
        logs = {name: tmp_path / f"worker-{name}.log" for name in "ABC"}
        for name, log in logs.items():
            processes[name] = start_worker(url, log, GRADHEALTH_LEASE_S=str(LEASE_S),
                                           GRADHEALTH_LOG_LEVEL="INFO",
                                           GRADHEALTH_VERIFY_REMEDIES="false", OMP_NUM_THREADS="1",
                                           PGAPPNAME=f"fleet-{name}")
        # Ready: the supervisor and its worker process each hold a connection (libpq reads
        # PGAPPNAME, so each process group's connections carry its name).
        deadline = time.monotonic() + 90
        while not all(backends(engine, f"fleet-{n}") >= 2 for n in logs):
            for name, process in processes.items():
                assert process.poll() is None, logs[name].read_text()[-3000:]
            assert time.monotonic() < deadline, "the workers did not connect"
            time.sleep(0.2)

        factory = make_sessionmaker(engine)

        def submit(numbers: range) -> list[str]:
            with factory() as session:
                return [store.submit(session, kind="architecture", owner="fleet",
                                     request={**SPEC, "name": f"j{i}"}, idempotency_key=None,
                                     time_limit_s=120, max_attempts=3)[0].id for i in numbers]

        # Three first jobs, one per idle worker as a rule (a worker busy with its first job, which
        # imports the simulation, takes no second): once they are done the workers are warm and
        # share the rest at similar rates.
        job_ids = submit(range(3))
        deadline = time.monotonic() + 90
        while succeeded(engine) < 3:
            assert time.monotonic() < deadline, "the first jobs never finished"
            time.sleep(0.1)
        job_ids += submit(range(3, JOBS))

        # A host lost: the supervisor and its worker process die at once, mid-job.
        killed_job = catch_mid_job(engine, processes["A"], logs["A"], after=JOBS // 4)
        os.killpg(processes["A"].pid, signal.SIGKILL)
        processes["A"].wait(10)
        # A graceful stop (what Kubernetes does to a pod): SIGTERM to the supervisor only, while
        # its worker process stays frozen holding the job. The supervisor is thawed and left to
        # settle first: a signal sent to a process that is still waking up may land on a thread
        # other than the main one, where Python never runs the handler while the main thread
        # sleeps. (Not an issue for a process that was never frozen; sent again if it happens.)
        terminated_job = catch_mid_job(engine, processes["B"], logs["B"], after=JOBS // 2)
        os.kill(processes["B"].pid, signal.SIGCONT)
        time.sleep(0.5)
        processes["B"].send_signal(signal.SIGTERM)
        os.killpg(processes["B"].pid, signal.SIGCONT)
        try:
            processes["B"].wait(10)
        except subprocess.TimeoutExpired:
            processes["B"].send_signal(signal.SIGTERM)
        assert processes["B"].wait(30) == 0, logs["B"].read_text()[-3000:]

        deadline = time.monotonic() + 120
        while True:
            with engine.connect() as conn:
                left = conn.scalar(text("SELECT count(*) FROM jobs "
                                        "WHERE status IN ('queued', 'running')"))
            if left == 0:
                break
            assert processes["C"].poll() is None, logs["C"].read_text()[-3000:]
            assert time.monotonic() < deadline, f"{left} job(s) never finished"
            time.sleep(0.2)

        with engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(text(
                "SELECT id, status, attempts, result IS NOT NULL AS has_result, "
                "result->>'name' AS name FROM jobs"))}
            audit = list(conn.execute(text("SELECT job_id, old_status, new_status, old_owner, "
                                           "new_owner FROM job_audit ORDER BY seq")))
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
            stop(process)
        engine.dispose()
        drop_database(postgres_url, url)

    ids = {name: worker_ids(log) for name, log in logs.items()}
    owner_of = {wid: name for name, wids in ids.items() for wid in wids}
    assert sum(len(w) for w in ids.values()) == len(owner_of), f"worker identities overlap: {ids}"
    killed = ids["A"] | ids["B"]

    # None lost, nothing failed: every job succeeded with its own result.
    assert set(rows) == set(job_ids)
    assert Counter(r.status for r in rows.values()) == {"succeeded": JOBS}
    assert all(r.has_result for r in rows.values())
    assert sorted(r.name for r in rows.values()) == sorted(f"j{i}" for i in range(JOBS))

    claims: dict[str, list[str]] = defaultdict(list)
    completions: dict[str, list[str]] = defaultdict(list)
    for job_id, old, new, old_owner, new_owner in audit:
        assert old not in store.TERMINAL, f"job {job_id} left {old} for {new}"
        assert new in ("running", "queued", "succeeded"), f"job {job_id} went {old} -> {new}"
        if new == "running":
            assert old == "queued"
            claims[job_id].append(new_owner)
        elif new == "succeeded":
            completions[job_id].append(old_owner)
        else:  # requeued: only ever the job of a worker we killed
            assert old_owner in killed, f"job {job_id} was taken from live worker {old_owner}"

    for job_id, row in rows.items():
        # Finished exactly once, by the worker holding its last claim.
        assert len(completions[job_id]) == 1, (job_id, completions[job_id])
        assert completions[job_id][0] == claims[job_id][-1]
        # A claim ended by a kill used its attempt; one handed back on a graceful stop (SIGTERM to
        # B: its worker requeues the job) gave it back. So: the killed host's claims, plus the last.
        assert row.attempts == sum(owner_of.get(o) == "A" for o in claims[job_id][:-1]) + 1, (
            job_id, row.attempts, [owner_of.get(o) for o in claims[job_id]])
        # Every earlier claim belonged to a worker we killed: no live worker lost a lease, so no
        # second run of a job that was still running elsewhere.
        assert set(claims[job_id][:-1]) <= killed, (job_id, claims[job_id])
        for owner in claims[job_id]:
            assert owner in owner_of, f"claim by {owner}, a worker of no process we started"

    # The job A held when it was killed was finished by someone else, on its next attempt.
    assert owner_of[claims[killed_job][0]] == "A"
    assert owner_of[completions[killed_job][0]] != "A"
    assert rows[killed_job].attempts >= 2
    # B's job was either finished by B before it stopped or handed back and finished elsewhere,
    # then on the attempt it started with.
    assert owner_of[claims[terminated_job][0]] == "B"
    if owner_of[completions[terminated_job][0]] != "B":
        assert rows[terminated_job].attempts == 1

    per_process = Counter(owner_of[o] for job_claims in claims.values() for o in job_claims)
    finished = Counter(owner_of[c[0]] for c in completions.values())
    assert set(per_process) == {"A", "B", "C"}, per_process
    assert all(finished[n] >= 1 for n in "ABC"), (per_process, finished)
