"""errsweep2 N9 and N10: the recorder refuses bad settings where they are given, with a message
naming the argument, and a live-mode error no retry can fix reaches the training loop and
``close()`` as :class:`RunRefused` instead of being retried until ``close_timeout`` and dropped.

Where a service is needed it is a real HTTP server on a socket of this process.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import torch
from torch import nn

from gradhealth.recorder import GradientRecorder, HttpSink, Record, RunRefused
from tests.recorder_server import ScriptedServer


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))


def _backward(model: nn.Module) -> torch.Tensor:
    loss = model(torch.randn(8, 4)).pow(2).mean()
    model.zero_grad()
    loss.backward()
    return loss


def _train(model: nn.Module, rec: GradientRecorder, steps: int) -> None:
    for _ in range(steps):
        rec.step(loss=_backward(model), lr=0.1)


# -- N9: numeric settings and the loss ------------------------------------------------------------

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"every": NAN}, TypeError, r"every must be an integer >= 1, got nan"),
    ({"every": 2.5}, TypeError, r"every must be an integer >= 1, got 2\.5"),
    ({"every": True}, TypeError, r"every must be an integer"),
    ({"every": 0}, ValueError, r"every must be an integer >= 1, got 0"),
    ({"buffer": 2.5}, TypeError, r"buffer must be an integer >= 1, got 2\.5"),
    ({"flush_interval": INF}, ValueError, r"flush_interval must be a finite number .*got inf"),
    ({"flush_interval": NAN}, ValueError, r"flush_interval must be a finite number .*got nan"),
    ({"flush_interval": "1"}, TypeError, r"flush_interval must be a number .*got '1'"),
    ({"close_timeout": NAN}, ValueError, r"close_timeout must be a finite number .*got nan"),
    ({"close_timeout": INF}, ValueError, r"close_timeout must be a finite number .*got inf"),
    ({"close_timeout": -1.0}, ValueError, r"close_timeout must be a finite number .*got -1\.0"),
])
def test_numeric_settings_are_refused_at_construction_naming_the_argument(
        tmp_path: Path, kwargs: dict, error: type[Exception], message: str) -> None:
    path = tmp_path / "run.jsonl"
    with pytest.raises(error, match=message):
        GradientRecorder(_model(), path, **kwargs)
    assert not path.exists()  # refused before anything was made


def test_a_numpy_style_integer_every_still_works(tmp_path: Path) -> None:
    class Index:  # anything with __index__ (numpy.int64, ...) is an integer
        def __index__(self) -> int:
            return 2

    model = _model()
    rec = GradientRecorder(model, tmp_path / "run.jsonl", every=Index(), flush_interval=0)  # type: ignore[arg-type]
    _train(model, rec, 4)
    rec.close()
    steps = {json.loads(line).get("step") for line in (tmp_path / "run.jsonl").read_text().splitlines()}
    assert steps - {None} == {0, 2}


@pytest.mark.parametrize(("loss", "error", "message"), [
    (torch.ones(3), ValueError, r"loss must be a scalar .*got a tensor of shape \(3,\)"),
    (torch.ones(2, 2), ValueError, r"shape \(2, 2\)"),
    (torch.ones((), dtype=torch.complex64), TypeError, r"loss must be a real number"),
    ("3.5", TypeError, r"loss must be a number or a 0-d or 1-element tensor, got '3.5'"),
    ([1.0, 2.0], TypeError, r"loss must be a number"),
])
def test_a_loss_that_is_not_one_number_is_refused_by_step_itself(
        tmp_path: Path, loss: object, error: type[Exception], message: str) -> None:
    model = _model()
    rec = GradientRecorder(model, tmp_path / "run.jsonl", flush_interval=0)
    _backward(model)
    with pytest.raises(error, match=message):
        rec.step(loss=loss)  # type: ignore[arg-type]
    _train(model, rec, 2)  # the writer thread did not die of it: the recorder goes on
    rec.close()
    end = json.loads((tmp_path / "run.jsonl").read_text().splitlines()[-1])
    assert end == {"gradhealth_recorder": "end", "logged_steps": 2}


def test_one_element_losses_and_an_int_lr_are_recorded(tmp_path: Path) -> None:
    model = _model()
    rec = GradientRecorder(model, tmp_path / "run.jsonl", flush_interval=0)
    for loss, lr in [(torch.tensor([2.0]), 1), (torch.tensor(3.0), torch.tensor(0.5)), (4, 0.25)]:
        _backward(model)
        rec.step(loss=loss, lr=lr)  # type: ignore[arg-type]
    rec.close()
    rows = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["value"] for r in rows if r.get("metric") == "loss"] == [2.0, 3.0, 4.0]
    assert [r["value"] for r in rows if r.get("metric") == "lr"] == [1.0, 0.5, 0.25]


def test_a_writer_failure_names_its_cause(tmp_path: Path) -> None:
    class Broken:
        def write(self, records: list[Record]) -> None:
            raise OSError("disk on fire")

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    model = _model()
    rec = GradientRecorder(model, tmp_path / "run.jsonl", flush_interval=0, sinks=[Broken()])
    with pytest.raises(RuntimeError, match=r"writer failed: OSError: disk on fire"):  # noqa: PT012
        _train(model, rec, 1)
        rec.flush()
    with pytest.raises(RuntimeError, match=r"writer failed: OSError: disk on fire"):
        rec.close()


# -- N10: live mode -------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"server": "not a url"}, ValueError, r"server must be an http:// or https:// URL"),
    ({"server": "127.0.0.1:8000"}, ValueError, r"server must be an http:// or https:// URL"),
    ({"server": "ftp://example.org"}, ValueError, r"server must be an http:// or https:// URL"),
    ({"server": "http://"}, ValueError, r"with a host"),
    ({"server": "http://127.0.0.1:99999"}, ValueError, r"not a valid URL"),
    ({"api_key": "bad\nkey"}, ValueError, r"api_key must be printable ASCII.*character 4 of 7 is '\\n'"),
    ({"api_key": "clé"}, ValueError, r"api_key must be printable ASCII.*'é'"),
    ({"api_key": "two words"}, ValueError, r"api_key must be printable ASCII"),
    ({"config": {"clip_threshold": NAN}}, ValueError, r"config must be JSON with finite numbers"),
    ({"config": {"params": {"lr": INF}}}, ValueError, r"config must be JSON with finite numbers"),
    ({"config": {"clip_threshold": object()}}, TypeError, r"config must be JSON-serialisable"),
])
def test_live_settings_no_retry_could_fix_are_refused_at_construction(
        tmp_path: Path, kwargs: dict, error: type[Exception], message: str) -> None:
    settings = {"server": "http://127.0.0.1:9", "run": "r", **kwargs}
    path = tmp_path / "run.jsonl"
    started = time.monotonic()
    with pytest.raises(error, match=message) as raised:
        GradientRecorder(_model(), path, close_timeout=5, **settings)
    assert time.monotonic() - started < 2  # at once, not after close_timeout
    assert not path.exists()
    with pytest.raises(error, match=message):
        HttpSink(**settings)
    if "api_key" in kwargs:  # the key is a secret: only the bad character is shown
        assert kwargs["api_key"] not in str(raised.value)


def test_a_non_json_success_answer_is_raised_by_close_not_dropped(recorder_server: ScriptedServer,
                                                                   tmp_path: Path) -> None:
    # Not a Gradient Health service (a proxy's or another app's HTML page): no retry fixes it.
    recorder_server.plan = [(200, b"<html>welcome</html>", "text/html")]
    model = _model()
    rec = GradientRecorder(model, tmp_path / "run.jsonl", server=recorder_server.url, run="html", on_refused="raise",
                           close_timeout=5)
    _train(model, rec, 3)
    started = time.monotonic()
    with pytest.raises(RunRefused, match="JSONDecodeError"):
        rec.close()
    assert time.monotonic() - started < 5
    assert rec.live is not None and rec.live.unsent_path is not None  # the points are kept
    assert len(rec.live.unsent_path.read_text().splitlines()) == 3 * (3 + 4)


def test_a_request_httpx_cannot_send_is_a_refusal_not_an_outage(recorder_server: ScriptedServer,
                                                                tmp_path: Path) -> None:
    sink = HttpSink(recorder_server.url, "hdr", close_timeout=5, on_refused="raise", spill=tmp_path / "unsent.jsonl")
    sink._client.headers["X-Trace"] = "a\nb"  # a header h11 will never send (LocalProtocolError)
    sink.write([Record(0, 0, 0.0, 1.0, None, ("w",), (0.5,))])
    started = time.monotonic()
    with pytest.raises(RunRefused, match="LocalProtocolError"):
        sink.close()
    assert time.monotonic() - started < 4  # not retried until close_timeout
    assert sink.retries == 0 and recorder_server.requests == []
    assert sink.unsent_path is not None and sink.unsent_path.read_text().count("\n") == 3


def test_any_5xx_is_retried_as_the_readme_says(recorder_server: ScriptedServer, tmp_path: Path) -> None:
    # 520 (a CDN's "unknown error") before the run is created, as when the service restarts.
    recorder_server.plan = [(520, b"", "text/plain"), (599, b"", "text/plain")]
    model = _model()
    rec = GradientRecorder(model, tmp_path / "run.jsonl", server=recorder_server.url, run="cdn",
                           close_timeout=10)
    assert rec.live is not None
    rec.live.backoff = (0.01, 0.05)
    _train(model, rec, 3)
    rec.close()
    assert rec.live.retries == 2 and rec.live.sent == 3 and rec.live.finished
    assert recorder_server.points == 3 * (3 + 4)



def test_a_retry_after_given_as_an_http_date_is_waited(recorder_server: ScriptedServer, tmp_path: Path) -> None:
    # RFC 9110 allows Retry-After as a date (proxies and load balancers send one); the recorder
    # read seconds only and retried a 503 after its own 10 ms backoff instead.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    recorder_server.plan = [(503, b"", "text/plain", {"Retry-After": when})]
    sink = HttpSink(recorder_server.url, "dated", close_timeout=10, backoff=(0.01, 30.0),
                    spill=tmp_path / "unsent.jsonl")
    sink.write([Record(0, 0, 0.0, 1.0, None, ("w",), (0.5,))])
    deadline = time.monotonic() + 8
    while len(recorder_server.times) < 3 and time.monotonic() < deadline:  # 503, then the run, then points
        time.sleep(0.05)
    sink.close()
    assert recorder_server.requests[:2] == ["/v1/runs", "/v1/runs"]
    # The date has whole seconds: 3 s ahead is waited as 2-3 s.
    assert recorder_server.times[1] - recorder_server.times[0] >= 1.5
