"""A real PostgreSQL for the tests: a throw-away cluster, started once per test session.

Fixtures (import them into a folder's ``conftest.py`` to use them there)::

    from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures

``postgres_url`` (session)
    The URL of a running server's ``gradhealth`` database, e.g.
    ``postgresql://postgres@127.0.0.1:54321/gradhealth``. With ``GRADHEALTH_TEST_POSTGRES_URL`` set,
    that server is used and nothing is started. Otherwise the server binaries are looked up
    (:func:`find_bindir`: ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin``, ``PATH``) and a
    cluster is created in a temporary directory, listening on 127.0.0.1 only, on a free port; it
    is stopped and its directory removed at the end of the session. Run as root, the cluster runs
    as the ``postgres`` OS user (PostgreSQL refuses to run as root). Without binaries the
    PostgreSQL tests are skipped, or, when ``CI`` is set, fail: CI must test PostgreSQL (``.ci/run``
    installs it).

``database_url`` (function, parametrised ``sqlite`` / ``postgresql``)
    A fresh database migrated to the newest schema for each test: a SQLite file in ``tmp_path``,
    or a new PostgreSQL database (``test_<random>``) dropped after the test. Select one backend
    with ``-k sqlite`` / ``-k postgresql``. Dispose of every engine made on it before the test
    ends (the PostgreSQL database is dropped with ``FORCE`` regardless).

Every conftest that imports the fixtures shares one server (reference-counted below). A cluster
left behind by a killed session (SIGTERM/SIGKILL skip the clean-up) is stopped and removed by the
next session that starts one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENV_URL = "GRADHEALTH_TEST_POSTGRES_URL"
DATABASE = "gradhealth"
PREFIX = "gradhealth-pg-"
_REQUIRED = ("initdb", "pg_ctl", "postgres")


def _has_binaries(bindir: Path) -> bool:
    return all((bindir / name).is_file() and os.access(bindir / name, os.X_OK) for name in _REQUIRED)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Looked up in order: ``pg_config --bindir`` (libpq-dev's pg_config may name a directory without
    the server, so the binaries are checked), the newest ``/usr/lib/postgresql/*/bin``, ``PATH``.
    ``.ci/run`` repeats this lookup in shell.
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip() and _has_binaries(Path(out.stdout.strip())):
                return Path(out.stdout.strip())
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True):
        if _has_binaries(bindir):
            return bindir
    initdb = shutil.which("initdb")
    if initdb and _has_binaries(Path(initdb).resolve().parent):
        return Path(initdb).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_clusters() -> None:
    """Stop and remove clusters (``$TMPDIR/gradhealth-pg-*``) whose test session has died."""
    for root in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # being set up right now, or not ours
        if _alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int((root / "data" / "postmaster.pid").read_text().splitlines()[0])
            os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown, children included
            for _ in range(50):
                if not _alive(postmaster):
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


def _conninfo(url: str) -> str:
    """A libpq URI for psycopg from a SQLAlchemy-style URL (drops a ``+driver`` suffix)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _execute_autocommit(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(_conninfo(url), autocommit=True, connect_timeout=10) as conn:
        for statement in statements:
            conn.execute(statement)


class PostgresServer:
    """A throw-away PostgreSQL cluster in a temporary directory; ``start()``, ``url``, ``stop()``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root: Path | None = None
        self.port: int | None = None
        self._as_postgres = os.geteuid() == 0
        self._running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
                               f"{self._log_tail()}")
        return out

    def _log_tail(self) -> str:
        log = self.root / "postgres.log" if self.root else None
        if log is None or not log.exists():
            return ""
        return "\n--- postgres.log ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])

    def start(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        try:
            (self.root / "owner.pid").write_text(str(os.getpid()))
            if self._as_postgres:
                try:
                    shutil.chown(self.root, "postgres", "postgres")
                except LookupError as exc:
                    raise RuntimeError("running as root, but there is no `postgres` OS user to run "
                                       "PostgreSQL as (PostgreSQL refuses to run as root)") from exc
            self._run(self.bindir / "initdb", "-D", self.datadir, "-A", "trust", "-U", "postgres",
                      "-E", "UTF8", "--no-sync")
            for attempt in range(5):
                self.port = _free_port()
                opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
                out = self._run(self.bindir / "pg_ctl", "start", "-w", "-t", "60", "-D", self.datadir,
                                "-l", self.root / "postgres.log", "-o", opts, check=attempt == 4)
                if out.returncode == 0:
                    break
            self._running = True
            _execute_autocommit(self.url.rsplit("/", 1)[0] + "/postgres", f"CREATE DATABASE {DATABASE}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory; safe to call twice."""
        if self._running:
            self._running = False
            self._run(self.bindir / "pg_ctl", "stop", "-w", "-m", "fast", "-D", self.datadir, check=False)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


# --- one server per session, shared by every conftest that imports the fixtures -----------------

_lock = threading.Lock()
_server: PostgresServer | None = None
_users = 0


def acquire_server() -> str:
    """Start the shared server if it is not running; its URL. Pair with :func:`release_server`."""
    global _server, _users
    with _lock:
        if _server is None:
            bindir = find_bindir()
            if bindir is None:
                raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl, postgres)")
            reap_stale_clusters()
            _server = PostgresServer(bindir).start()
            atexit.register(_server.stop)  # in case the session is torn down abnormally
        _users += 1
        return _server.url


def release_server() -> None:
    """Stop the shared server once its last user releases it."""
    global _server, _users
    with _lock:
        _users -= 1
        if _users == 0 and _server is not None:
            _server.stop()
            _server = None


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def create_database(admin_url: str) -> str:
    """A new empty database ``test_<random>`` on the server of ``admin_url``; its URL."""
    from sqlalchemy.engine import make_url

    name = f"test_{uuid.uuid4().hex[:16]}"
    _execute_autocommit(admin_url, f"CREATE DATABASE {name}")
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of ``url`` (made by :func:`create_database`), closing its connections."""
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    assert name and name.startswith("test_"), name
    try:
        _execute_autocommit(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except Exception:  # noqa: BLE001 - a server older than 13 has no FORCE
        _execute_autocommit(admin_url, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL database for this session (see the module docstring)."""
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    if find_bindir() is None:
        reason = ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found via pg_config, "
                  f"/usr/lib/postgresql/*/bin or PATH; install PostgreSQL or set {ENV_URL}")
        if _ci():
            pytest.fail(f"CI is set and PostgreSQL must be tested: {reason}", pytrace=False)
        pytest.skip(reason)
    url = acquire_server()
    try:
        yield url
    finally:
        release_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the newest schema, once on SQLite and once on PostgreSQL."""
    from gradhealth.db.engine import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/jobs.db"
        migrate(url)
        yield url
        return
    admin_url = request.getfixturevalue("postgres_url")
    url = create_database(admin_url)
    try:
        migrate(url)
        yield url
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def factory(database_url: str) -> Iterator[Any]:
    """A session factory on ``database_url`` (both stores); its engine is disposed after the test."""
    from gradhealth.db.engine import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
