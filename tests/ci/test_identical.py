"""Every format, for both check kinds, is the same in-process and through a real `gradhealth
serve` (``--server``): the service returns the document, the CLI renders it on this side with the
same context. Only measured durations may differ."""

from __future__ import annotations

import re
import subprocess

import pytest

from gradhealth.report import FORMATS
from tests.e2e.helpers import GRADHEALTH, env_for, serve

from .helpers import VANISHING_YAML, exploding_csv, git_checkout

# Wall-clock figures: the document's duration_s, JUnit's time=, "0.82 s" / "in 0.12s" in prose.
DURATIONS = [
    (re.compile(r'("duration_s":\s*)[0-9.eE+-]+'), r"\1D"),
    (re.compile(r'\btime="[0-9.]+"'), 'time="D"'),
    (re.compile(r"\b[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)? ?s\b"), "D s"),  # "1 s" too (3 digits)
]


def normalise(text: str) -> str:
    for pattern, repl in DURATIONS:
        text = pattern.sub(repl, text)
    return text


def check_all(repo, source: str, out: str, env: dict, *extra: str) -> int:
    (repo / out).mkdir()
    argv = [*GRADHEALTH, "check", source, "--format", "text", "--no-progress", *extra]
    argv += [x for name in FORMATS for x in ("--output", f"{name}={out}/{name}{FORMATS[name].suffix}")]
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode


@pytest.mark.parametrize("source", ["specs/vanishing.yaml", "logs/bad.csv"])
def test_every_format_is_the_same_in_process_and_through_a_real_server(tmp_path, source):
    repo = git_checkout(tmp_path, {"specs/vanishing.yaml": VANISHING_YAML, "logs/bad.csv": exploding_csv()})
    url = f"sqlite:///{tmp_path}/identical.db"
    # Remedies unverified on both sides: the point is the rendering, and two cores are shared.
    settings = {"GRADHEALTH_UPLOAD_DIR": str(tmp_path / "uploads"), "GRADHEALTH_VERIFY_REMEDIES": "false"}
    env = env_for(url, **settings)
    local_rc = check_all(repo, source, "local", env)
    with serve(url, tmp_path / "serve.log", **settings) as client:
        remote_rc = check_all(repo, source, "remote", env, "--server", str(client.base_url))
    assert local_rc == remote_rc == 1
    for name, fmt in FORMATS.items():
        local = (repo / "local" / f"{name}{fmt.suffix}").read_text()
        remote = (repo / "remote" / f"{name}{fmt.suffix}").read_text()
        assert local.strip(), name
        assert normalise(local) == normalise(remote), name
    sarif = (repo / "local" / "sarif.sarif").read_text()
    assert f'"uri": "{source}"' in sarif
