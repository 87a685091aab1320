"""The retention sweep of uploads and live runs, run by the API process that writes both.

The API owns the uploads: it writes each one, deletes a deleted job's, and so sweeps the folder
itself (every :attr:`UploadSweeper.every_s` seconds), whether or not it runs worker processes of
its own. Workers only read an upload, so a fleet can mount the shared volume read-only for them
(docker-compose's `worker`, deploy/kubernetes/workers.yaml): a worker, which parses untrusted logs
and models, cannot delete or alter another job's upload. The sweep used to run in the worker
supervisor only, so an API node with ``GRADHEALTH_WORKERS=0`` never swept, and the workers that did
could not delete on their read-only mounts (newuser9 #3).

Live runs are the API's too (it stores their points and caches their diagnoses), and they went the
same way: only the process running the workers swept them, so with ``GRADHEALTH_WORKERS=0`` (an API
node, or KEDA holding the workers at zero) ``GRADHEALTH_RUN_RETENTION_S`` deleted nothing, and a
separate worker process could not drop the API's cached state of a run it deleted.

Several API replicas may sweep the same shared folder: a folder another one removed first counts as
removed (see :func:`gradhealth.jobs.store.remove_upload`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from gradhealth.jobs import store
from gradhealth.live import diagnose
from gradhealth.live import store as run_store
from gradhealth.settings import Settings

log = logging.getLogger("gradhealth.retention")


class UploadSweeper:
    """Deletes uploads past ``GRADHEALTH_UPLOAD_RETENTION_S`` (and orphans) and live runs past
    ``GRADHEALTH_RUN_RETENTION_S``, on a timer thread."""

    #: How often the upload folder and the live runs are swept (a directory listing, two queries).
    every_s: float = 300.0

    def __init__(self, factory: sessionmaker[Session], settings: Settings, *,
                 on_error: Callable[[Path, OSError], None] | None = None) -> None:
        """``on_error``: called with each folder a sweep could not delete and the error (the API
        counts them in ``gradhealth_upload_delete_failures_total``); the warning is logged anyway."""
        self._factory = factory
        self.settings = settings
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> int:
        """One sweep now; how many upload folders it removed."""
        with self._factory() as session:
            removed = store.reap_uploads(session, Path(self.settings.upload_dir),
                                         retention_s=self.settings.upload_retention_s,
                                         on_error=self.on_error)
        if removed:
            log.info("removed %d upload folder(s)", removed)
        return removed

    def reap_runs(self) -> int:
        """Delete the live runs finished, or left active without a new point, more than
        ``run_retention_s`` ago (0: none), and this process's cached state of each; how many."""
        with self._factory() as session:
            removed = run_store.reap_runs(session, self.settings.run_retention_s)
        for run_id in removed:
            diagnose.forget(run_id)
        if removed:
            log.info("removed %d live run(s) past GRADHEALTH_RUN_RETENTION_S", len(removed))
        return len(removed)

    def _run(self) -> None:
        while True:  # the first sweep at start-up: a restarted node does not wait 5 minutes
            for sweep, what in ((self.sweep_once, "upload"), (self.reap_runs, "live-run")):
                try:
                    sweep()
                except Exception:  # noqa: BLE001 - the sweeper must outlive a database hiccup
                    log.exception("%s retention sweep failed", what)
            if self._stop.wait(self.every_s):
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gradhealth-upload-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
