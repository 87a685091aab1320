"""The writer lease against a training step slower than it: the recorder's live sink says its
process is alive (``POST /v1/runs/{id}/heartbeat``) after ``heartbeat`` seconds without an answer,
so a second process on the run's name is refused while the slow one lives; without heartbeats
the slow process loses its run to the first newcomer after the lease (closing note 28)."""

from __future__ import annotations

import time

import httpx

from gradhealth.recorder import GradientRecorder, HttpSink
from tests.test_recorder_service import Service, small_model, train_recorded

LEASE_S = 1


def test_a_writer_slower_than_the_lease_keeps_its_run_while_its_heartbeats_come(tmp_path):
    svc = Service(tmp_path, GRADHEALTH_RUN_WRITER_LEASE_S=str(LEASE_S))
    svc.start()
    try:
        for beat, kept in ((0.2, True), (0.0, False)):
            name = f"slow-steps-{beat}"
            sink = HttpSink(svc.url, name, heartbeat=beat, close_timeout=10)
            model = small_model()
            rec = GradientRecorder(model, tmp_path / f"{name}.jsonl", sinks=[sink], flush_interval=0)
            train_recorded(model, rec, range(1))
            assert sink.wait_sent(0, timeout=60)
            time.sleep(3 * LEASE_S)          # one training step three leases long: nothing to send
            other = httpx.post(f"{svc.url}/v1/runs", json={"name": name},
                               headers={"X-Gradhealth-Writer": "another-process-1"}, timeout=30)
            assert other.status_code == (409 if kept else 200), (beat, other.text)
            train_recorded(model, rec, range(1, 3))
            rec.close()
            # with heartbeats every step reached the run and closing finished it; without, the
            # newcomer holds the run and the slow process's later steps were refused
            assert (sink.refused is None and sink.finished) is kept, (beat, sink.refused)
    finally:
        svc.stop()
