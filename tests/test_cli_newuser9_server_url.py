"""newuser9 #13: `--server http://host/docs` (a path before the API's routes; the service answers
404 for `/docs/v1/checks/architecture`) was exit 2, "invalid input", failing a CI step as if the
spec were wrong. A 404 for the check route itself means the URL is not the service's base URL: the
check could not run (exit 3), and the message names the URL tried and the base URL to give."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gradhealth.cli import main

from .e2e.helpers import serve

SPEC = """\
input: {shape: [16]}
seeds: 1
layers:
  - type: linear
    out_features: 4
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("wrongurl")
    with serve(f"sqlite:///{tmp}/gh.db", tmp / "serve.log", GRADHEALTH_UPLOAD_DIR=str(tmp / "uploads"),
               GRADHEALTH_WORKERS="0") as client:
        yield client


def _check(path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", str(path), "--server", url, "--no-progress", "--server-timeout", "20"])
    return code, capsys.readouterr().err


def test_a_path_before_the_routes_is_exit_3_naming_the_url_and_the_base(
        server: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    base = str(server.base_url).rstrip("/")
    code, err = _check(spec, f"{base}/docs", capsys)
    assert code == 3, err
    assert "the check could not run: wrong service url:" in err
    assert f"POST {base}/docs/v1/checks/architecture answered 404" in err
    assert f"{base}/docs is not the service's base URL; give its address without the path /docs: --server {base} " in err
    assert "invalid input" not in err and "not found:" not in err


def test_a_log_upload_to_a_wrong_url_is_exit_3_too(server: httpx.Client, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "train.csv"
    log.write_text("step,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(50)))
    base = str(server.base_url).rstrip("/")
    code, err = _check(log, f"{base}/api", capsys)
    assert code == 3, err
    assert f"POST {base}/api/v1/checks/logs" in err and f"--server {base} " in err


def test_a_server_without_the_route_at_its_root_is_asked_whether_it_is_the_service(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another web server on that address answers 404 for /v1/checks/architecture: exit 3 as well."""
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    real = httpx.Client.__init__

    def mocked(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        kwargs["transport"] = httpx.MockTransport(lambda request: httpx.Response(404, text="<h1>Not Found</h1>"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", mocked)
    code, err = _check(spec, "http://other.example:8080", capsys)
    assert code == 3, err
    assert "POST http://other.example:8080/v1/checks/architecture answered 404 (<h1>Not Found</h1>)" in err
    assert "is http://other.example:8080 a Gradient Health service" in err
