"""The torch boundary: every CLI verb that does not simulate, the log check, `import gradhealth`
and the API server's own process run without importing torch; a simulating check and the API's
worker processes do (the positive controls, so these tests can fail)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "tests" / "data" / "logs" / "lightning-csv-ml-aos" / "metrics.csv"
TINY_YAML = ("input: {shape: [8]}\nseeds: 1\nbatch_size: 8\n"
             "layers:\n  - {type: linear, out_features: 8, activation: relu}\n  - {type: linear, out_features: 2}\n")

# Runs one CLI invocation in this fresh interpreter and reports its exit code and whether torch was
# ever imported (sys.modules keeps every module imported, so "at the end" means "ever").
DRIVER = """
import json, sys
from gradhealth.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("BOUNDARY " + json.dumps({"code": code, "torch": "torch" in sys.modules}), file=sys.stderr)
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADHEALTH_")}
    env.update(extra)
    return env


def run_cli(*argv: str, cwd: Path = ROOT) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", DRIVER, *argv], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=_clean_env())
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("BOUNDARY ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("BOUNDARY "))


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=_clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("argv", [
    ["--help"], ["check", "--help"], ["examples"], ["schema"], ["catalog"], ["formats"],
    ["hash-key", "ci", "a-long-random-key"],
])
def test_verbs_that_do_not_simulate_never_import_torch(argv):
    report = run_cli(*argv)
    assert report == {"code": 0, "torch": False}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_log_check_never_imports_torch(fmt, tmp_path):
    report = run_cli("check", str(CSV), "--format", fmt, "--fail-on", "never", "-o", str(tmp_path / "out"))
    assert report == {"code": 0, "torch": False}
    assert (tmp_path / "out").stat().st_size > 0


def test_invalid_input_exits_2_without_torch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: {shape: [4]}\nlayers: [{type: linear, out_features: -3}]\n")
    assert run_cli("check", str(bad)) == {"code": 2, "torch": False}


def test_a_simulating_check_does_import_torch(tmp_path):
    # The positive control: the same probe sees torch when the command needs it.
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_YAML)
    report = run_cli("check", str(spec), "--no-verify", "--fail-on", "never")
    assert report == {"code": 0, "torch": True}


def test_import_gradhealth_and_check_logs_never_import_torch():
    out = run_python(f"""
import sys
import gradhealth
assert {{"check_architecture", "check_logs", "Diagnosis", "GradientRecorder"}} <= set(gradhealth.__all__)
names_ok = "torch" not in sys.modules
doc = gradhealth.check_logs({str(CSV)!r})
assert isinstance(doc, gradhealth.Diagnosis)
print(names_ok, "torch" in sys.modules)
""")
    assert out.split() == ["True", "False"]


def test_a_log_check_of_a_small_file_never_imports_scipy():
    # scipy.ndimage's package imports were a fifth of a whole-process log check (issue 12 item 2);
    # only a running median over a very long run needs its rank filter
    out = run_python(f"""
import sys
import gradhealth
doc = gradhealth.check_logs({str(CSV)!r})
print(len(doc.findings) >= 0, sorted(m for m in sys.modules if m == "scipy" or m.startswith("scipy.")))
""")
    assert out.split() == ["True", "[]"]


def test_the_api_app_module_tree_never_imports_torch():
    out = run_python("""
import sys
from gradhealth.api.app import create_app
from gradhealth.settings import Settings
create_app(Settings(database_url="sqlite://", workers=0)).openapi()
print("torch" in sys.modules)
""")
    assert out.split() == ["False"]


# --- the real server ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _maps_torch(pid: int) -> bool:
    """Whether process ``pid`` has any file of the torch package mapped (its C extension is
    mapped the moment `import torch` runs, and never unmapped)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return any(f"{os.sep}torch{os.sep}" in line for line in maps.splitlines())


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps (Linux)")
def test_the_api_server_process_never_loads_torch_and_its_worker_does(tmp_path):
    port = _free_port()
    env = _clean_env(GRADHEALTH_DATABASE_URL=f"sqlite:///{tmp_path}/boundary.db",
                     GRADHEALTH_UPLOAD_DIR=str(tmp_path / "uploads"), GRADHEALTH_WORKERS="1",
                     GRADHEALTH_LOG_LEVEL="WARNING")
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "gradhealth.cli", "serve", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=180)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.2)
        # Exercise what the API process does itself: validate a spec, sniff an upload, serve the
        # catalog and the OpenAPI document; the worker simulates.
        arch = client.post("/v1/checks/architecture?wait=120", content=TINY_YAML,
                           headers={"content-type": "application/yaml"})
        assert arch.status_code == 200 and arch.json()["status"] == "succeeded", arch.text
        logs = client.post("/v1/checks/logs?wait=120", files={"file": ("metrics.csv", CSV.read_bytes())})
        assert logs.status_code == 200 and logs.json()["status"] == "succeeded", logs.text
        assert client.get("/v1/catalog").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert not _maps_torch(server.pid), "the API process loaded torch"
        assert any(_maps_torch(child) for child in _children(server.pid)), "no worker loaded torch"
    finally:
        client.close()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
        log.close()
