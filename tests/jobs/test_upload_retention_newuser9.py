"""newuser9 #3: in the fleet topology old uploads were never deleted. The sweep ran only in the
worker supervisor, which an API with GRADHEALTH_WORKERS=0 never starts, and the fleet's workers
mount the upload volume read-only, where ``rmtree(..., ignore_errors=True)`` failed without a word.

The API now sweeps the uploads it writes (gradhealth.jobs.retention), with workers or without; a
folder it cannot delete is a logged warning with the path and errno, and a count in /metrics."""

from __future__ import annotations

import errno
import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from gradhealth.api.app import create_app
from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.db.models import JobRow
from gradhealth.jobs import store
from gradhealth.jobs.retention import UploadSweeper
from gradhealth.settings import Settings
from tests.api.helpers import running_app
from tests.helpers import aged_upload


def _finished_job(url: str, path: Path, *, ago: timedelta) -> None:
    factory = make_sessionmaker(make_engine(url))
    with factory() as session:
        job = store.submit(session, kind="logs", owner="t", request={"path": str(path), "format": None},
                           idempotency_key=None, time_limit_s=600, max_attempts=3)[0]
        session.execute(update(JobRow).where(JobRow.id == job.id).values(
            status="succeeded", finished_at=store.utcnow() - ago))
        session.commit()


def _settings(tmp_path: Path, **extra: object) -> Settings:
    url = f"sqlite:///{tmp_path}/gh.db"
    migrate(url)
    return Settings(database_url=url, upload_dir=str(tmp_path / "uploads"), upload_retention_s=3600,
                    api_keys="", **extra)  # type: ignore[arg-type]


def test_an_api_without_workers_sweeps_its_uploads(tmp_path: Path) -> None:
    """The fleet's API node (GRADHEALTH_WORKERS=0, as docker-compose's fleet-api and the Kubernetes
    api Deployment run it) deletes uploads past the retention itself: no supervisor runs there."""
    settings = _settings(tmp_path, workers=0)
    uploads = Path(settings.upload_dir)
    expired = aged_upload(uploads, "a" * 32, age_s=3 * 86400)
    recent = aged_upload(uploads, "b" * 32, age_s=3 * 86400)
    orphan = aged_upload(uploads, "c" * 32, age_s=2 * store.ORPHAN_GRACE_S)  # a killed server's partial upload
    _finished_job(settings.database_url, expired, ago=timedelta(hours=2))  # past the hour's retention
    _finished_job(settings.database_url, recent, ago=timedelta(minutes=10))
    with running_app(settings) as api:
        assert api.app.state.supervisor is None  # API-only: no worker processes, no supervisor
        deadline = time.monotonic() + 20
        while (expired.parent.exists() or orphan.parent.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not expired.parent.exists(), "the API-only node never swept its uploads"
        assert not orphan.parent.exists()
        assert recent.exists()  # its job finished 10 minutes ago: kept for the hour


def _read_only(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """What a `:ro` mount (compose) or `readOnly: true` (Kubernetes) does to a delete under ``root``:
    EROFS on every unlink and rmdir there (the tests run as root, which a chmod would not stop)."""
    unlink, rmdir = os.unlink, os.rmdir

    def refuse(real):  # noqa: ANN001, ANN202
        def call(path, *args, dir_fd=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            where = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) / path if dir_fd is not None else Path(path)
            if root in where.parents or where == root:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real(path, *args, dir_fd=dir_fd, **kwargs)
        return call

    monkeypatch.setattr(os, "unlink", refuse(unlink))
    monkeypatch.setattr(os, "rmdir", refuse(rmdir))


def test_a_delete_that_fails_is_logged_with_path_and_errno_and_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path)
    uploads = Path(settings.upload_dir)
    stuck = aged_upload(uploads, "d" * 32, age_s=2 * store.ORPHAN_GRACE_S)
    _read_only(monkeypatch, uploads)
    failed: list[tuple[Path, OSError]] = []
    sweeper = UploadSweeper(make_sessionmaker(make_engine(settings.database_url)), settings,
                            on_error=lambda folder, error: failed.append((folder, error)))
    with caplog.at_level(logging.WARNING, logger="gradhealth.jobs"):
        assert sweeper.sweep_once() == 0  # not counted as removed
    assert stuck.exists()
    assert [(folder, error.errno) for folder, error in failed] == [(stuck.parent, errno.EROFS)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(stuck.parent) in warnings[0] and "Errno 30" in warnings[0] and "EROFS" in warnings[0]


def test_the_api_counts_failed_deletes_in_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, workers=0)
    assert _failures(create_app(settings)) == 0.0  # exported at 0 from start-up
    stuck = aged_upload(Path(settings.upload_dir), "e" * 32, age_s=2 * store.ORPHAN_GRACE_S)
    _read_only(monkeypatch, Path(settings.upload_dir))
    with running_app(settings) as api:
        deadline = time.monotonic() + 20
        while _failures(api.app) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "gradhealth_upload_delete_failures_total 1.0" in api.get("/metrics").text
    assert stuck.exists()


def _failures(app) -> float:  # noqa: ANN001
    value = app.state.metrics.registry.get_sample_value("gradhealth_upload_delete_failures_total")
    return float(value if value is not None else -1)


def test_a_folder_another_replica_removed_first_is_not_a_failure(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Two API replicas sweep one shared volume: the slower one finds the folder gone."""
    gone = tmp_path / ("f" * 32)
    with caplog.at_level(logging.WARNING, logger="gradhealth.jobs"):
        assert store.remove_upload(gone) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

