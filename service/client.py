"""A small HTTP client for a running Gradient Health service (``gradhealth check --server``)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from gradhealth.core.numbers import plain
from gradhealth.core.words import shorten
from gradhealth.errors import (
    ArgumentTypeError,
    GradHealthError,
    InputFormatError,
    Problem,
    SpecError,
)


class RemoteError(GradHealthError):
    """The service answered with a problem document."""

    def __init__(self, problem: dict[str, Any]) -> None:
        problems, position = _located(problem.get("errors"))
        super().__init__(str(problem.get("detail", problem)), problems, position=position)
        self.status = int(problem.get("status", 500))
        self.title = str(problem.get("title", "Error"))
        self.code = "remote"
        self._problem = problem

    def to_problem(self) -> dict[str, object]:
        return dict(self._problem)


def _located(errors: Any) -> tuple[list[Problem], tuple[int, int | None] | None]:
    """A problem document's ``errors[]`` as the local check raises them: each item with a JSON
    pointer a :class:`Problem` (so ``gradhealth check --server`` places each one on its line of the
    file, as the local run does: newuser14 #2), and the ``line`` and ``column`` of a body that could
    not be parsed (or the ``line`` alone of a log a failed job could not read: newuser16 #6). Items
    of a parameter (no pointer) are left in the detail."""
    if not isinstance(errors, list):
        return [], None
    problems = [Problem(e["pointer"], str(e.get("detail", "")))
                for e in errors if isinstance(e, dict) and isinstance(e.get("pointer"), str)]
    position = next(((e["line"], e["column"] if type(e.get("column")) is int else None) for e in errors
                     if isinstance(e, dict) and type(e.get("line")) is int), None)
    return problems, position


class RemoteSpecError(RemoteError, SpecError):
    """The service refused the spec (422 ``invalid-spec``): a :class:`RemoteError` that is also the
    :class:`~gradhealth.errors.SpecError` the local check raises, its ``problems`` by JSON pointer, so
    one ``except SpecError`` catches both (newuser16 #5: the client raised SpecError where it
    validated the spec itself, for ``seeds=``, and RemoteError where the service did)."""


def remote_error(problem: dict[str, Any]) -> RemoteError:
    """The :class:`RemoteError` (or the subclass of its kind) for a problem document."""
    kind = str(problem.get("type") or "").rsplit("/", 1)[-1]
    return RemoteSpecError(problem) if kind == SpecError.code.replace("_", "-") else RemoteError(problem)


class WrongServiceURL(RemoteError):
    """The server answered 404 (or 405) for one of the service's own routes (``POST
    /v1/checks/architecture``), which a Gradient Health service always has: the URL given is not the
    service's base URL (a path such as ``/docs`` on it, another server), not a problem of the input.
    ``gradhealth check --server`` exits 3 on it (newuser9 #13)."""


class KeyRefused(RemoteError):
    """The service answered 401: no API key was sent, or the one sent is not valid. The detail says
    how to give one to this client (``api_key=``), where the service's own words name the HTTP header
    a raw caller sets (newuser15 #4); ``key_given`` says which. A problem of the credentials, not of
    the input: ``gradhealth check`` reports it on no file (SARIF with no result, a JUnit error)."""

    def __init__(self, problem: dict[str, Any], *, key_given: bool) -> None:
        said = str(problem.get("detail") or "unauthorized")
        detail = (f"the service refused the API key given ({said}): check the api_key= passed to Client"
                  if key_given else
                  f"the service needs an API key ({said}): pass Client(..., api_key=...)")
        super().__init__({**problem, "detail": detail})
        self.key_given = key_given
        self.service_detail = said


class ServiceUnreachable(RemoteError):
    """The service could not be reached (no one listening, DNS, TLS, a timeout): httpx's transport
    error, wrapped so that a caller catching :class:`RemoteError` (or ``GradHealthError``) catches
    it too (newuser10 #12); ``status`` 503, or 504 where the service took too long to answer. The
    original error is chained."""


#: A job resource's states (``GET /v1/jobs/{id}``).
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

#: The longest one wait for a 429's ``Retry-After`` (a longer ask that still ends before the
#: deadline is waited in steps of this, each retried); a 429 without the header is retried after
#: 1, 2, 4... seconds up to this.
MAX_RATE_WAIT_S = 30.0


def retry_after(response: httpx.Response) -> float | None:
    """A response's ``Retry-After`` in seconds (a number of seconds, or an HTTP date), else None."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


#: The most bytes one answer of the service may have (a job's result or a report is far smaller):
#: a larger one is refused as it arrives, not read into memory (errsweep6: a 2 GB answer took 6 GB).
MAX_RESPONSE_BYTES = 64 * 2**20

#: The deadline (``time.monotonic()``) of the request being sent, set by :meth:`Client.send`.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("gradhealth_deadline", default=None)


class _AnswerTooLarge(GradHealthError):
    """An answer over the client's ``max_response_bytes``; :meth:`Client._reach` says whose."""


class _BoundedBody(httpx.SyncByteStream):
    """A response body read with a cap on its size and an overall deadline: past ``deadline`` the
    read stops (a server trickling a byte every few seconds kept every read within its timeout
    and the whole answer past any), and the socket is shut down at the deadline so that a read
    blocked then returns at once."""

    def __init__(self, inner: httpx.SyncByteStream, max_bytes: int, deadline: float, sock: Any) -> None:
        self.inner, self.max_bytes, self.deadline = inner, max_bytes, deadline
        self.timer: threading.Timer | None = None
        if sock is not None:
            self.timer = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, (sock,))
            self.timer.daemon = True
            self.timer.start()

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        try:
            for chunk in self.inner:
                seen += len(chunk)
                if seen > self.max_bytes:
                    raise _AnswerTooLarge(f"the answer is over {self.max_bytes:,} bytes")
                if time.monotonic() > self.deadline:
                    raise httpx.ReadTimeout("the answer did not arrive within the time allowed")
                yield chunk
        except httpx.HTTPError:
            if time.monotonic() >= self.deadline:  # the deadline's shutdown ended the read
                raise httpx.ReadTimeout("the answer did not arrive within the time allowed") from None
            raise

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.inner.close()


def _shut(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _BoundedTransport(httpx.BaseTransport):
    """httpx's transport with each request given an overall deadline (its timeout, or the wait
    :meth:`Client.send` was given, whichever ends first: each phase's timeout is cut to what is
    left) and each answer a size cap (:class:`_BoundedBody`)."""

    def __init__(self, max_bytes: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.max_bytes = max_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        timeouts = dict(request.extensions.get("timeout") or {})
        longest = max((v for v in timeouts.values() if v is not None), default=None)
        deadline = now + longest if longest is not None else float("inf")
        outer = _DEADLINE.get()
        if outer is not None:
            deadline = min(deadline, max(outer, now + 1.0))  # a moment for the last request, not none
        if deadline != float("inf"):
            left = max(0.001, deadline - now)
            request.extensions["timeout"] = {k: (left if v is None else min(v, left)) for k, v in timeouts.items()}
        response = self.inner.handle_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise _AnswerTooLarge(f"the answer is {int(declared):,} bytes, over the limit of {self.max_bytes:,}")
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        network = response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        bounded = _BoundedBody(stream, self.max_bytes, deadline, sock if deadline != float("inf") else None)
        return httpx.Response(response.status_code, headers=response.headers, stream=bounded,
                              extensions=response.extensions, request=request)

    def close(self) -> None:
        self.inner.close()


class Client:
    """Submit checks and wait for their results."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0,
                 on_state: Callable[[dict[str, Any]], None] | None = None,
                 on_rate_limited: Callable[[float, str], None] | None = None,
                 max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        """``on_state``: called with the job each time its status or progress (``progress.fraction``,
        ``progress.stage``) changes while it is waited for (a command line's progress lines); with
        one, a check is submitted without the server's long wait, so its progress is seen from the
        start. ``on_rate_limited``: called with the seconds about to be waited and the service's
        words each time a request answered 429 is retried (see :meth:`send`). Each request ends
        within ``timeout`` (plus a ``?wait`` the server was asked for) and within the wait of the
        check it serves, however slowly the server answers; an answer over ``max_response_bytes``
        is refused as it arrives (RemoteError 502)."""
        headers = {"X-API-Key": api_key} if api_key else {}
        self._key_given = bool(api_key)
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                 transport=_BoundedTransport(max_response_bytes))
        self.on_state = on_state
        self.on_rate_limited = on_rate_limited

    def send(self, request: Callable[[], httpx.Response], deadline: float) -> httpx.Response:
        """``request()``'s response; one answered 429 (over the service's rate limit: CI jobs that
        share a key hit it in bursts) is made again after its ``Retry-After`` (each wait at most
        :data:`MAX_RATE_WAIT_S`) while that ends before ``deadline`` (``time.monotonic()``).
        Past it, RemoteError with status 429, title "Rate limited", saying how long was waited."""
        started = time.monotonic()
        fallback = 1.0
        while True:
            token = _DEADLINE.set(deadline)
            try:
                response = self._reach(request)
            finally:
                _DEADLINE.reset(token)
            if response.status_code != 429:
                return response
            asked = retry_after(response)
            wait = min(MAX_RATE_WAIT_S, fallback if asked is None else asked)
            fallback = min(MAX_RATE_WAIT_S, fallback * 2)
            words = self._words(response)
            # nothing is accepted before the time asked: past the deadline, give up now
            if time.monotonic() + (wait if asked is None else asked) > deadline:
                waited = time.monotonic() - started
                raise RemoteError({
                    "status": 429, "title": "Rate limited",
                    "detail": f"{self.http.base_url} is still rate limiting this client ({words})"
                              + (f" after {waited:.0f} s of waiting" if waited >= 0.5 else "")
                              + f"; the next try ({plain(asked if asked is not None else wait)} s from now) "
                                "would be past the time allowed for the check"})
            if self.on_rate_limited is not None:
                self.on_rate_limited(wait, words)
            time.sleep(wait)

    def _reach(self, request: Callable[[], httpx.Response]) -> httpx.Response:
        """``request()``'s response; :class:`ServiceUnreachable` naming the URL where it got none."""
        try:
            return request()
        except _AnswerTooLarge as exc:
            raise RemoteError({"status": 502, "title": "Not a Gradient Health service",
                               "detail": f"{exc} (a Gradient Health answer is far smaller); is {self.base_url} "
                                         "a Gradient Health service?"}) from None
        except httpx.TimeoutException as exc:
            raise ServiceUnreachable({
                "status": 504, "title": "Service unreachable",
                "detail": f"{self.base_url} did not answer in time ({type(exc).__name__}: {exc or 'timed out'}); "
                          "is the service overloaded, or the client's timeout= too short?"}) from exc
        except httpx.TransportError as exc:
            raise ServiceUnreachable({
                "status": 503, "title": "Service unreachable",
                "detail": f"cannot reach {self.base_url} ({type(exc).__name__}: {exc}); is a Gradient Health "
                          "service running at that address?"}) from exc

    @staticmethod
    def _words(response: httpx.Response) -> str:
        """A problem answer's ``detail`` (else its first 200 characters), on one line."""
        try:
            problem = response.json()
        except (ValueError, RecursionError):
            problem = None
        if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
            return " ".join(problem["detail"].split())
        return shorten(" ".join(response.text[:2000].split()), 200) or f"HTTP {response.status_code}"

    def submitted(self, response: httpx.Response) -> dict[str, Any]:
        """The job a check route (``POST /v1/checks/...``) answered; WrongServiceURL where the
        route itself is not there (404, 405), else as :meth:`_json`."""
        if response.status_code in (404, 405):
            raise self._wrong_url(response)
        return self._json(response)

    def _wrong_url(self, response: httpx.Response) -> WrongServiceURL:
        """The server answered 404/405 for a check route: which URL was tried, and the base URL to try."""
        url = httpx.URL(str(self.http.base_url))
        given = str(url).rstrip("/")
        root = str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")
        tried = str(response.request.url.copy_with(query=None, fragment=None))
        prefix = url.path.rstrip("/")
        if prefix:
            hint = (f"{given} is not the service's base URL; give its address without the path "
                    f"{prefix}: --server {root} (unless a proxy serves the API under {prefix})")
        else:
            hint = f"is {given} a Gradient Health service (its address and port)?"
        return WrongServiceURL({"status": response.status_code, "title": "Wrong service URL",
                                "detail": f"{response.request.method} {tried} answered {response.status_code} "
                                          f"({self._words(response)}): {hint}"})

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except (ValueError, RecursionError):
                problem = None
            if not isinstance(problem, dict):
                problem = {"status": response.status_code, "title": "HTTP error",
                           "detail": " ".join(response.text[:500].split())}
            if response.status_code == 401:
                raise KeyRefused(problem, key_given=self._key_given)
            raise remote_error(problem)
        try:
            data = response.json()
        except ValueError:
            data = None
        except RecursionError:  # nested past the interpreter's stack: no document of the service is
            raise self._not_a_service(response, "the answer is JSON nested too deep to be a Gradient "
                                                "Health document") from None
        if not isinstance(data, dict):
            raise self._not_a_service(response, "the answer is not a JSON object")
        return data

    def _not_a_service(self, response: httpx.Response | None, why: str) -> RemoteError:
        """A 2xx answer that is not one of the service's documents (a proxy's HTML page, say)."""
        where = f"{response.request.method} {response.request.url}: " if response is not None else ""
        kind = response.headers.get("content-type", "no content type") if response is not None else ""
        return RemoteError({"status": 502, "title": "Not a Gradient Health service",
                            "detail": f"{where}{why}" + (f" ({kind})" if kind else "")
                            + f"; is {self.http.base_url} a Gradient Health service?"})

    def check_architecture(self, spec: Mapping[str, Any] | str | Path, *, seeds: int | None = None,
                           device: str | None = None, wait_s: float = 3600.0,
                           poll_s: float = 0.5, idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit ``spec`` and return the finished job (raises RemoteError for a failed one).

        ``spec`` is what :func:`gradhealth.check_architecture` takes (newuser8 P6): a dict, a path to
        a YAML/JSON file, ``example:NAME`` or YAML/JSON text, read here by the same code
        (:func:`gradhealth.library.load_spec`) and sent as JSON; one that cannot be read raises
        :class:`~gradhealth.errors.InputFormatError` (or ``ArgumentTypeError`` for another type)
        before anything is sent. ``seeds`` and ``device`` override the spec's, as in
        :func:`gradhealth.check_architecture` (newuser10 #11): they travel as the spec's own fields,
        after the spec as written is validated here (a :class:`~gradhealth.errors.SpecError`, nothing
        sent). The service has no field for the library's ``verify=``, ``settings=`` or ``progress=``
        (its own settings decide; ``on_state`` follows the job)."""
        from gradhealth.library import load_spec

        spec = load_spec(spec)
        if seeds is not None or device is not None:
            from gradhealth.analysis.spec import parse_spec

            parse_spec(spec)  # the spec as written, before an override hides a bad `seeds`
            if seeds is not None:
                spec["seeds"] = seeds
            if device is not None:
                spec["device"] = device
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        started = time.monotonic()
        job = self.submitted(self.send(lambda: self.http.post(
            "/v1/checks/architecture", params={"wait": self._server_wait(wait_s)}, json=spec, headers=headers,
            timeout=self._waiting(wait_s)), started + wait_s))
        return self._finish(job, wait_s, poll_s, started=started)

    def check_logs(self, path: str | Path, *, format: str | None = None, wait_s: float = 3600.0,
                   poll_s: float = 0.5) -> dict[str, Any]:
        """Upload a log file (or archive; a path, str or pathlib.Path) and return the finished job."""
        if not isinstance(path, (str, Path)):
            raise ArgumentTypeError(f"path must be a path (str or pathlib.Path), got {type(path).__name__}")
        path = Path(path)
        if not path.is_file():
            raise InputFormatError(f"{path}: no such file (the client uploads one file or archive; "
                                   "a run folder goes through `gradhealth check` locally)")
        params: dict[str, Any] = {"wait": self._server_wait(wait_s), "filename": path.name}
        if format:
            params["format"] = format
        started = time.monotonic()

        def post() -> httpx.Response:  # the file read again for each try
            with path.open("rb") as f:
                return self.http.post("/v1/checks/logs", params=params, files={"file": (path.name, f)},
                                      timeout=self._waiting(wait_s))

        job = self.submitted(self.send(post, started + wait_s))
        return self._finish(job, wait_s, poll_s, started=started)

    def _server_wait(self, wait_s: float) -> float:
        """The ``?wait`` to submit with: none where progress is followed (a long wait answered only
        at its end showed nothing for 30 s: newuser3), else up to 30 s (one round trip for a quick check)."""
        return 0 if self.on_state is not None else min(wait_s, 30)

    def _waiting(self, wait_s: float) -> httpx.Timeout:
        """The client's timeout plus the ?wait the server may spend before it answers (a read
        timeout equal to the wait itself raced the server's answer on a busy machine)."""
        base = self.http.timeout
        return httpx.Timeout(base.connect, read=(base.read or 0) + min(wait_s, 30),
                             write=base.write, pool=base.pool)

    def _job(self, job: dict[str, Any]) -> dict[str, Any]:
        """``job`` when it is a job resource (an id and a known status), else RemoteError."""
        if job.get("status") not in JOB_STATES or not isinstance(job.get("id"), (str, int)):
            raise self._not_a_service(None, "the answer is not a job (no `id` and known `status`)")
        if job["status"] == "succeeded" and not isinstance(job.get("result"), dict):
            raise self._not_a_service(None, f"job {job['id']} succeeded without a `result` document")
        return job

    def _finish(self, job: dict[str, Any], wait_s: float, poll_s: float, *,
                started: float | None = None) -> dict[str, Any]:
        """Poll the submitted ``job`` until it ends or ``wait_s`` from ``started`` (the submission's
        ``time.monotonic()``; default now) pass."""
        started = time.monotonic() if started is None else started
        deadline = started + wait_s
        job = self._job(job)
        seen: tuple[Any, ...] | None = None
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            raw = job.get("progress")
            progress: dict[str, Any] = raw if isinstance(raw, dict) else {}
            now = (job["status"], progress.get("fraction"), progress.get("stage"))
            if self.on_state is not None and now != seen:
                seen = now
                self.on_state(job)
            time.sleep(poll_s)
            job_id = job["id"]
            try:
                job = self._job(self._json(self.send(functools.partial(self.http.get, f"/v1/jobs/{job_id}"),
                                                     deadline)))
            except RemoteError as exc:
                if exc.status != 429:
                    raise
                self._cancel(job_id)  # given up on: not left holding a worker
                raise
        if self.on_state is not None and seen is not None and job["status"] not in ("queued", "running"):
            # the end too: a progress display that stopped at its last running line never said the job
            # was done (newuser15 #3)
            self.on_state(job)
        if job["status"] == "failed":
            raise remote_error(job.get("error") or {"detail": "the job failed", "status": 500})
        if job["status"] != "succeeded":
            # a check the caller gave up on is stopped, not left holding a worker (a CI step that
            # times out and is retried queued a second one behind it: newuser3)
            stopped = job["status"] in ("queued", "running") and self._cancel(job["id"])
            raise RemoteError({"status": 504, "title": "Timed out",
                               "detail": f"job {job['id']} is still {job['status']} after {time.monotonic() - started:.0f} s "
                                         f"(the wait allowed {plain(wait_s)} s); "
                                         + ("it has been cancelled (DELETE /v1/jobs/{id})" if stopped
                                            else f"see GET /v1/jobs/{job['id']}")})
        return job

    def _cancel(self, job_id: Any) -> bool:
        """Ask the service to stop job ``job_id``; whether it accepted (a failure to reach it is
        not the caller's error: the timeout is)."""
        try:
            return self.http.delete(f"/v1/jobs/{job_id}").status_code in (200, 202, 204)
        except httpx.HTTPError:
            return False

    def report(self, job_id: str, format: str = "text") -> str:
        """A finished job's report in ``format`` (``text``, ``markdown``, ``html``, ``json``,
        ``sarif``, ``junit``, ``github``, ``codeclimate``) as the service writes it; RemoteError
        for a problem (an unknown job 404, an unknown format 406, an unfinished job 409)."""
        response = self.send(functools.partial(self.http.get, f"/v1/jobs/{job_id}/report",
                                               params={"format": format}),
                             time.monotonic() + MAX_RATE_WAIT_S)
        if response.status_code >= 400:
            self._json(response)  # raises RemoteError with the service's problem
        return response.text

    def run_report(self, run_id: str, format: str = "text") -> str:
        """A live run's report in ``format`` (any of :meth:`report`'s) as the service writes it
        (``GET /v1/runs/{id}/report``): the diagnosis so far while the run is active; RemoteError for
        a problem (404 an unknown run, 409 one with no points yet, 406 an unknown format)."""
        response = self.send(functools.partial(self.http.get, f"/v1/runs/{run_id}/report",
                                               params={"format": format}),
                             time.monotonic() + MAX_RATE_WAIT_S)
        if response.status_code >= 400:
            self._json(response)  # raises RemoteError with the service's problem
        return response.text

    def run(self, run_id: str) -> dict[str, Any]:
        """A live run and its current diagnosis (``GET /v1/runs/{id}``; the recorder's
        ``recorder.live.run_id``); RemoteError for a problem (404 an unknown run)."""
        return self._json(self.send(functools.partial(self.http.get, f"/v1/runs/{run_id}"),
                                    time.monotonic() + MAX_RATE_WAIT_S))

    def runs(self, **params: Any) -> dict[str, Any]:
        """One page of your live runs, newest first (``GET /v1/runs``; ``params`` are its query
        parameters: ``status=``, ``stale=``, ``limit=``, ``cursor=``)."""
        return self._json(self.send(functools.partial(self.http.get, "/v1/runs", params=params),
                                    time.monotonic() + MAX_RATE_WAIT_S))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

