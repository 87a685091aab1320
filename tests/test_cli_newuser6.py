"""newuser6: a `check --server` answered 429 (the service's rate limit, with Retry-After) failed
the CI step as invalid input (exit 2) with an ::error on a spec with nothing wrong; it now waits
the limit out within --server-timeout and only then is exit 3. A spec without `name` is reported
under its file's path (two files checked at once read `architecture: UNHEALTHY` twice)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gradhealth.cli import main

from .e2e.helpers import GRADHEALTH, env_for, serve

SPEC = """\
input: {shape: [16]}
seeds: 1
batch_size: 16
layers:
  - type: linear
    out_features: 16
    activation: relu
    init: {scheme: kaiming_normal}
    repeat: 2
  - type: linear
    out_features: 4
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A served service that allows 6 requests a minute per client (a token every 10 s)."""
    tmp = tmp_path_factory.mktemp("ratelimited")
    url = f"sqlite:///{tmp}/limited.db"
    settings = {"GRADHEALTH_UPLOAD_DIR": str(tmp / "uploads"), "GRADHEALTH_RATE_LIMIT_PER_MINUTE": "6"}
    with serve(url, tmp / "serve.log", **settings) as client:
        yield client, env_for(url, **settings)


def _exhaust(client: httpx.Client, *, wait_at_least: float = 0.0) -> None:
    """Spend this address's requests until the service answers 429, with a Retry-After of at least
    ``wait_at_least`` seconds: just before a token comes back the wait is a second or less, which a
    test of a wait longer than --server-timeout must not start from (it then passes the limit)."""
    for _ in range(5):
        for _ in range(50):
            r = client.get("/v1/jobs")
            if r.status_code == 429:
                break
        else:
            raise AssertionError("the rate limit never answered 429")
        retry = float(r.headers.get("retry-after", "0"))
        if retry >= wait_at_least:
            return
        time.sleep(retry + 0.5)  # past the next token: the one after is a whole period away
    raise AssertionError(f"the rate limit kept answering a Retry-After under {wait_at_least} s")


def test_a_rate_limited_check_waits_for_retry_after_and_then_runs(limited, tmp_path: Path) -> None:
    client, env = limited
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    _exhaust(client)
    started = time.monotonic()
    done = subprocess.run([*GRADHEALTH, "check", str(spec), "--server", str(client.base_url), "--format", "json",
                           "--no-progress", "--fail-on", "never", "--server-timeout", "60"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "architecture"
    # it said that it waited, and waited no more than the limit's one token (10 s) and the check
    assert "rate limited (rate limit exceeded for 127.0.0.1; retry in" in done.stderr
    assert "before trying again" in done.stderr
    assert time.monotonic() - started < 45


def test_a_rate_limit_past_server_timeout_is_exit_3_not_an_invalid_spec(limited, tmp_path: Path) -> None:
    client, env = limited
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    _exhaust(client, wait_at_least=8)  # tokens come every 10 s; the CLI gives up after 2
    done = subprocess.run([*GRADHEALTH, "check", str(spec), "--server", str(client.base_url), "--format", "github",
                           "--no-progress", "--server-timeout", "2"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "the check could not run: rate limited:" in done.stderr
    assert "--server-timeout" in done.stderr and "Traceback" not in done.stderr
    assert "::error" not in done.stdout  # nothing is wrong with the spec


def test_a_retry_after_past_the_deadline_is_not_slept(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # a service that asks for 3600 s is given up on at once, not waited on until --server-timeout
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"},
                              json={"status": 429, "title": "Too many requests", "detail": "slow down"})

    real = httpx.Client.__init__

    def init(self: httpx.Client, *args: object, **kwargs: object) -> None:
        real(self, *args, **{**kwargs, "transport": httpx.MockTransport(handler)})  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "__init__", init)
    started = time.monotonic()
    assert main(["check", "example:relu_he_mlp", "--server", "http://svc.invalid", "--server-timeout", "30"]) == 3
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "rate limited" in err and "slow down" in err and "3600 s" in err


def test_two_unnamed_specs_are_reported_under_their_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # the pre-commit hook's normal case: several files, none with `name:` (as the README's own)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.yaml").write_text(SPEC)
    (tmp_path / "models" / "b.yaml").write_text(SPEC.replace("repeat: 2", "repeat: 3"))
    (tmp_path / "named.yaml").write_text("name: encoder\n" + SPEC)
    monkeypatch.chdir(tmp_path)
    main(["check", "--no-verify", "--fail-on", "never", "models/a.yaml", "models/b.yaml", "named.yaml"])
    out = capsys.readouterr().out
    headers = [line.split(":")[0] for line in out.splitlines() if line.endswith(("HEALTHY", "UNHEALTHY"))]
    assert headers == ["models/a.yaml", "models/b.yaml", "encoder"], out
    # the document itself keeps the spec's (absent) name: the API's and the CLI's stay one document
    main(["check", "--no-verify", "--format", "json", "models/a.yaml"])
    assert json.loads(capsys.readouterr().out)["name"] is None
    # the other formats that show a name give the path too
    main(["check", "--no-verify", "--format", "markdown", "models/a.yaml"])
    assert "Gradient Health: models/a.yaml:" in capsys.readouterr().out
    main(["check", "--no-verify", "--format", "junit", "models/a.yaml"])
    assert 'classname="models/a.yaml"' in capsys.readouterr().out


@pytest.mark.parametrize(("text", "line", "col"), [
    ("input: {shape: [10]}\nlayer:\n  - {type: linear, out_features: 4}\n", 2, 1),   # the sweep's file
    ("input: {shape: [10]}\nlayers: [{type: linear, out_features: 4}]\nlayr: 3\n", 3, 1),
    ('{"input": {"shape": [10]},\n  "layer": [{"type": "linear", "out_features": 4}]}\n', 2, 3),
])
def test_a_misspelt_key_is_annotated_at_the_key(text: str, line: int, col: int, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / ("bad.json" if text.startswith("{") else "bad.yaml")
    spec.write_text(text)
    assert main(["check", str(spec), "--format", "github"]) == 2
    out = capsys.readouterr().out
    misspelt = next(ln for ln in out.splitlines() if "unknown field" in ln)
    assert f",line={line},col={col}," in misspelt, out


def test_no_verify_with_server_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    assert main(["check", str(spec), "--server", "http://svc.invalid", "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "usage error: --no-verify cannot be sent with --server" in err
    assert "could not be read" not in err
    # said before the spec is read: a broken spec does not hide it
    spec.write_text("layers: [")
    assert main(["check", str(spec), "--server", "http://svc.invalid", "--no-verify"]) == 2
    assert "usage error: --no-verify" in capsys.readouterr().err
