"""newuser15 #4: with API keys on, ``gradhealth check --server`` without a key, or with a wrong one,
said "send your API key in the X-API-Key header" (a header a CLI user cannot set), and its SARIF and
JUnit reports filed an ``invalid_input`` result against the spec file. The message now names
``--api-key`` and ``$GRADHEALTH_API_KEY``; the reports blame no file (SARIF: no result, an
unsuccessful invocation; JUnit: an error, not a failure); the exit status stays 2 (docs/cli.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from gradhealth.cli import main
from gradhealth.client import Client, KeyRefused
from gradhealth.settings import hash_key

from .e2e.helpers import serve

SPEC = "input: {shape: [16]}\nseeds: 1\nlayers:\n  - type: linear\n    out_features: 4\n"
KEY = "right-key-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("keys")
    with serve(f"sqlite:///{tmp}/gh.db", tmp / "serve.log", GRADHEALTH_UPLOAD_DIR=str(tmp / "uploads"),
               GRADHEALTH_WORKERS="0", GRADHEALTH_API_KEYS=f"alice={hash_key(KEY)}",
               GRADHEALTH_API_KEY="") as client:
        yield client


@pytest.mark.parametrize(("key", "words"), [(None, "pass --api-key KEY or set $GRADHEALTH_API_KEY"),
                                            ("wrong-key-0123456789abc", "check --api-key or $GRADHEALTH_API_KEY")])
def test_cli_names_the_flag_and_reports_blame_no_file(server, tmp_path, capsys, monkeypatch, key, words):
    monkeypatch.delenv("GRADHEALTH_API_KEY", raising=False)
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    sarif, junit = tmp_path / "r.sarif", tmp_path / "r.xml"
    argv = ["check", str(spec), "--server", str(server.base_url).rstrip("/"), "--no-progress",
            "--output", f"sarif={sarif}", "--output", f"junit={junit}"] + (["--api-key", key] if key else [])
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and "the check could not run" in err
    run = json.loads(sarif.read_text())["runs"][0]
    assert run["results"] == [] and run["invocations"][0]["executionSuccessful"] is False
    xml = junit.read_text()
    assert "<error" in xml and "<failure" not in xml and "invalid_input" not in xml


def test_client_names_api_key_argument(server):
    client = Client(str(server.base_url).rstrip("/"))
    try:
        with pytest.raises(KeyRefused) as e:
            client.runs()
    finally:
        client.close()
    assert "api_key=" in str(e.value.detail) and e.value.status == 401 and not e.value.key_given
