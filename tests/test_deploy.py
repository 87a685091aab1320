"""The container files (Dockerfile, docker-compose.yml, .dockerignore), checked by structure.

No Docker engine runs in the test environment, so these tests read the files: the stages and what
each final image runs, the torch pin against ./dev, the command against the real CLI, and the
compose services against the settings the service reads at start-up.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from gradhealth.cli import build_parser, cmd_serve, cmd_worker
from gradhealth.settings import Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
FINAL_TARGETS = ("cpu", "gpu")


# --- a small Dockerfile reader -------------------------------------------------------------------

@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> list[str]:
    """Instructions with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending.strip())
    return lines


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, flags=re.IGNORECASE)
            assert m, f"unreadable FROM line: {line}"
            stages.append(Stage(base=m.group(1), name=m.group(2) and m.group(2).lower()))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """The argv of a CMD/ENTRYPOINT/HEALTHCHECK CMD in exec (JSON) or shell form."""
    args = args.strip()
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value
    return shlex.split(args)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    assert DOCKERFILE.is_file(), "Dockerfile missing at the repository root"
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def by_name(stages: list[Stage]) -> dict[str, Stage]:
    return {s.name: s for s in stages if s.name}


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE.is_file(), "docker-compose.yml missing at the repository root"
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def console_scripts() -> dict[str, str]:
    """[project.scripts] of pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]


def dev_torch_version() -> str:
    pins = set(re.findall(r"torch==([0-9][0-9A-Za-z.+]*)", (ROOT / "dev").read_text(encoding="utf-8")))
    assert len(pins) == 1, f"./dev should pin exactly one torch version, found {sorted(pins)}"
    return pins.pop()


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR} with an empty environment (the defaults)."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def container_ports(service: dict) -> set[int]:
    out: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.add(int(entry["target"]))
        else:
            out.add(int(str(entry).split(":")[-1].split("/")[0]))
    return out


def mounts(service: dict) -> set[str]:
    targets = set()
    for entry in service.get("volumes") or []:
        targets.add(entry["target"] if isinstance(entry, dict) else str(entry).split(":")[1])
    return targets


# --- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_has_cpu_and_gpu_targets_and_cpu_is_the_default(stages: list[Stage]) -> None:
    names = [s.name for s in stages]
    for target in FINAL_TARGETS:
        assert target in names, f"no `FROM ... AS {target}` stage (stages: {names})"
    assert stages[-1].name == "cpu", "the last stage is the default `docker build` target: make it cpu"
    assert len(stages) >= 2, "expected a multi-stage build"


def test_the_base_image_is_python_3_11_slim(stages: list[Stage]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.MULTILINE))
    roots = {re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s.base)
             for s in stages if s.base not in {t.name for t in stages}}
    assert roots, "no external base image"
    for image in roots:
        assert re.fullmatch(r"(docker\.io/(library/)?)?python:3\.11[\w.-]*-slim[\w.-]*", image), image


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_images_run_as_a_non_root_user(by_name: dict[str, Stage], target: str) -> None:
    user = by_name[target].last("USER")
    assert user, f"stage {target} sets no USER: it would run as root"
    name = user.split(":")[0].strip()
    assert name not in {"root", "0", ""}, f"stage {target} runs as {user!r}"
    # Nothing after the USER line switches back to root.
    keywords = [kw for kw, _ in by_name[target].instructions]
    assert "RUN" not in keywords[keywords.index("USER"):], "RUN after USER: installs must happen as root first"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_images_check_livez(by_name: dict[str, Stage], target: str) -> None:
    from gradhealth.api.routers.health import router

    check = by_name[target].last("HEALTHCHECK")
    assert check, f"stage {target} has no HEALTHCHECK"
    _, _, command = check.partition("CMD")
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"], f"the health check should use python -c (no curl in slim): {argv}"
    compile(argv[2], "<healthcheck>", "exec")
    assert "/livez" in argv[2] and ":8000/" in argv[2]
    assert "/livez" in {route.path for route in router.routes}, "the service has no /livez route"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_images_expose_8000_and_keep_sqlite_in_the_data_volume(by_name: dict[str, Stage],
                                                                    target: str) -> None:
    stage = by_name[target]
    assert "8000" in " ".join(stage.all("EXPOSE")).split()
    volumes = " ".join(stage.all("VOLUME"))
    assert "/data" in volumes, f"stage {target} declares no VOLUME /data"
    env = " ".join(stage.all("ENV"))
    assert re.search(r"GRADHEALTH_DATABASE_URL=sqlite:////data/\S+\.db", env), env


def test_torch_is_pinned_as_in_dev(by_name: dict[str, Stage]) -> None:
    version = dev_torch_version()
    text = DOCKERFILE.read_text(encoding="utf-8")
    pins = set(re.findall(r"torch==([0-9][0-9A-Za-z.+]*)", text))
    assert pins == {version}, f"Dockerfile pins torch {sorted(pins)}, ./dev installs {version}"
    cpu_runs = " ".join(by_name["cpu"].all("RUN"))
    gpu_runs = " ".join(by_name["gpu"].all("RUN"))
    assert f"torch=={version}" in cpu_runs and "download.pytorch.org/whl/cpu" in cpu_runs
    assert f"torch=={version}" in gpu_runs
    gpu_index = re.search(r"download\.pytorch\.org/whl/(\S+?)[\"'\s]", gpu_runs + " ")
    assert gpu_index, "the gpu stage installs torch from no PyTorch index"
    index = gpu_index.group(1)
    if "CUDA_INDEX" in index:
        index = dict(re.findall(r"(\w+)=(\S+)", " ".join(by_name["gpu"].all("ARG"))))["CUDA_INDEX"]
    assert re.fullmatch(r"cu1\d{2}", index), f"the gpu stage uses index {index!r}, not a CUDA one"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_images_install_the_project(by_name: dict[str, Stage], stages: list[Stage],
                                          target: str) -> None:
    runs = " ".join(by_name[target].all("RUN"))
    copies = " ".join(by_name[target].all("COPY"))
    direct = re.search(r"pip install (\S+ )*\.(\s|$)", runs)
    from_wheel = re.search(r"--from=(\S+)", copies) and re.search(r"pip install \S*\.whl", runs)
    assert direct or from_wheel, f"stage {target} does not pip install the project"
    if from_wheel and not direct:
        builder = by_name[re.search(r"--from=(\S+)", copies).group(1)]
        assert re.search(r"pip (wheel|install) .*\.(\s|$)", " ".join(builder.all("RUN")))


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_cmd_is_a_declared_console_script_that_serves_on_8000(by_name: dict[str, Stage],
                                                            target: str) -> None:
    cmd = by_name[target].last("CMD")
    assert cmd, f"stage {target} has no CMD"
    argv = exec_form(cmd)
    scripts = console_scripts()
    assert argv[0] in scripts, f"CMD runs {argv[0]!r}, not one of [project.scripts] {sorted(scripts)}"
    assert scripts[argv[0]] == "gradhealth.cli:main"
    args = build_parser().parse_args(argv[1:])
    assert args.func is cmd_serve
    assert (args.host, args.port) == ("0.0.0.0", 8000)


def test_binding_all_interfaces_needs_keys_or_an_explicit_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the comment in the Dockerfile promises the operator.
    for name in list(os.environ):
        if name.startswith("GRADHEALTH_"):
            monkeypatch.delenv(name)
    assert Settings(host="0.0.0.0").unsafe_reason() is not None
    assert Settings(host="0.0.0.0", allow_insecure=True).unsafe_reason() is None
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "GRADHEALTH_API_KEYS" in text and "GRADHEALTH_ALLOW_INSECURE=true" in text
    assert not re.search(r"^ENV\s.*GRADHEALTH_ALLOW_INSECURE", text, flags=re.MULTILINE), \
        "the image itself must not switch the check off"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    path = ROOT / ".dockerignore"
    assert path.is_file(), ".dockerignore missing"
    entries = {line.strip().rstrip("/") for line in path.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in (".venv", ".git", "data"):
        assert needed in entries, f".dockerignore does not exclude {needed}"
    assert any("__pycache__" in e for e in entries)
    for kept in ("service", "pyproject.toml", "README.md"):  # the wheel build needs them
        assert kept not in entries


# --- docker-compose.yml --------------------------------------------------------------------------

def test_compose_api_builds_the_cpu_target_and_publishes_8000(compose: dict) -> None:
    api = compose["services"].get("api")
    assert api, "no `api` service"
    assert isinstance(api.get("build"), dict) and api["build"].get("target") == "cpu"
    assert 8000 in container_ports(api)
    assert "/data" in mounts(api)
    assert not api.get("profiles"), "the api must start without a profile"


def test_compose_api_healthcheck_calls_livez(compose: dict) -> None:
    check = compose["services"]["api"].get("healthcheck")
    assert check and not check.get("disable"), "the api has no health check"
    test = check["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert "/livez" in " ".join(test)
    if test[0] == "CMD" and test[1:3] == ["python", "-c"]:
        compile(test[3], "<healthcheck>", "exec")


def test_compose_api_settings_start_on_all_interfaces(compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GRADHEALTH_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    env = environment(compose["services"]["api"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.unsafe_reason("0.0.0.0") is None, "the api would refuse to start with this environment"
    assert settings.database_url.startswith("sqlite:////data/")
    assert settings.workers != 0, "the api should run its local worker by default"
    # service/jobs/worker.py passes GRADHEALTH_LOG_LEVEL to logging.basicConfig as it is: a name
    # logging does not know ("info") makes every worker process die at start.
    if "GRADHEALTH_LOG_LEVEL" in env:
        assert isinstance(logging.getLevelName(env["GRADHEALTH_LOG_LEVEL"]), int), env["GRADHEALTH_LOG_LEVEL"]


def test_compose_postgres_profile(compose: dict) -> None:
    db = compose["services"].get("db")
    assert db, "no `db` service"
    assert db["image"].startswith("postgres:15")
    assert set(db.get("profiles")) == {"postgres", "scale"}
    assert db.get("healthcheck")
    text = COMPOSE.read_text(encoding="utf-8")
    url = re.search(r"GRADHEALTH_DATABASE_URL=(postgresql://\S+)", text)
    assert url, "the file should say which database URL points at the db service"
    env = db["environment"]
    assert url.group(1) == (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@db:5432/"
                            f"{env['POSTGRES_DB']}")


# --- profile `scale`: the fleet on PostgreSQL (`compose --profile scale up --scale worker=N`)

def started_with(compose: dict, profile: str) -> dict[str, dict]:
    """What `docker compose --profile PROFILE up` starts: unprofiled services and its own."""
    return {name: svc for name, svc in compose["services"].items()
            if not svc.get("profiles") or profile in svc["profiles"]}


def settings_of(service: dict, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a container of ``service`` reads from its environment."""
    for name in list(os.environ):
        if name.startswith("GRADHEALTH_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    for name, value in environment(service).items():
        monkeypatch.setenv(name, value)
    return Settings()


def seconds(duration: str) -> float:
    """A compose duration such as ``45s``, ``1m30s`` or ``500ms``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


def test_compose_scale_profile_is_the_fleet_on_postgresql(compose: dict,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    services = started_with(compose, "scale")
    assert {"db", "fleet-api", "worker"} <= set(services)
    db = services["db"]
    fleet_api, worker = services["fleet-api"], services["worker"]
    for service in (fleet_api, worker):
        assert service.get("profiles") == ["scale"]
        assert service["build"]["target"] == "cpu"
    api_settings = settings_of(fleet_api, monkeypatch)
    worker_settings = settings_of(worker, monkeypatch)
    env = db["environment"]
    url = (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@db:5432/"
           f"{env['POSTGRES_DB']}")
    assert api_settings.database_url == worker_settings.database_url == url
    # A pure API node: the worker containers run the jobs.
    assert api_settings.workers == 0
    assert api_settings.unsafe_reason("0.0.0.0") is None, "fleet-api would refuse to start"
    assert fleet_api["depends_on"]["db"]["condition"] == "service_healthy"
    check = fleet_api["healthcheck"]
    assert check["test"][0] == "CMD" and "/livez" in " ".join(check["test"])
    compile(check["test"][3], "<healthcheck>", "exec")
    # Uploads written by the API are readable by every worker, in one shared volume.
    assert api_settings.upload_dir == worker_settings.upload_dir
    api_volume = {str(v).split(":")[1]: str(v).split(":")[0] for v in fleet_api["volumes"]}
    worker_volume = {str(v).split(":")[1]: str(v).split(":")[0] for v in worker["volumes"]}
    parent = str(Path(api_settings.upload_dir).parent)
    assert api_volume.get(parent) and api_volume[parent] == worker_volume.get(parent)
    assert api_volume[parent] in compose["volumes"]


def test_compose_scale_worker_is_one_worker_process_and_can_be_scaled(
        compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = compose["services"]["worker"]
    command = worker["command"]
    argv = command if isinstance(command, list) else shlex.split(command)
    scripts = console_scripts()
    assert argv[0] in scripts
    args = build_parser().parse_args(argv[1:])
    assert args.func is cmd_worker and args.processes == 1
    # `--scale worker=N` refuses a fixed container name or a published host port.
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["depends_on"]["fleet-api"]["condition"] == "service_healthy"  # migrations applied
    # It serves no HTTP, so it must not inherit the image's /livez check.
    assert (worker.get("healthcheck") or {}).get("disable") is True
    settings = settings_of(worker, monkeypatch)
    assert seconds(worker["stop_grace_period"]) > settings.lease_s
    assert isinstance(logging.getLevelName(environment(worker)["GRADHEALTH_LOG_LEVEL"]), int)


def test_compose_profiles_publish_distinct_loopback_ports(compose: dict) -> None:
    for profile in ("postgres", "scale"):
        published: list[str] = []
        for name, service in started_with(compose, profile).items():
            for entry in service.get("ports") or []:
                host_ip, host_port, _ = str(entry).split(":")
                assert host_ip == "127.0.0.1", f"{name} publishes {entry} beyond the loopback"
                published.append(host_port)
        assert len(published) == len(set(published)), f"profile {profile}: ports clash: {published}"


def _up(compose: dict, profiles: set[str], named: list[str]) -> set[str]:
    """What `docker compose --profile P... up [SERVICE...]` starts: the named services (every
    enabled one when none is named) and what they depend on."""
    enabled = {n for n, s in compose["services"].items() if not s.get("profiles") or profiles & set(s["profiles"])}
    todo, started = list(named or enabled), set()
    while todo:
        name = todo.pop()
        if name not in started:
            started.add(name)
            todo += list(compose["services"][name].get("depends_on") or [])
    return started


def test_readme_fleet_command_starts_what_readme_says(compose: dict) -> None:
    """newuser8 #9: `--profile scale up` also started the unprofiled `api` (SQLite, :8000) beside
    the fleet; the documented command (docs/fleet.md) names the fleet's services, and says what the
    plain form adds. Line breaks read as spaces: the page's prose may be wrapped anywhere."""
    from tests.helpers import documentation

    readme = " ".join(documentation().split())
    m = re.search(r"`docker compose --profile scale up --build --scale worker=3 ([a-z -]+)` starts "
                  r"PostgreSQL, an API without workers on http://127\.0\.0\.1:(\d+) and three worker containers, and "
                  r"nothing else\.", readme)
    assert m, "docs/fleet.md's fleet line changed: keep it and this test in step"
    started = _up(compose, {"scale"}, m.group(1).split())
    assert started == {"db", "fleet-api", "worker"}
    assert any(str(p).startswith(f"127.0.0.1:{m.group(2)}:") for p in compose["services"]["fleet-api"]["ports"])
    assert environment(compose["services"]["fleet-api"]).get("GRADHEALTH_WORKERS") == "0"
    # the plain form starts `api` too, as README says; and Prometheus scrapes only `api`
    assert "api" in _up(compose, {"scale"}, []) and "also starts the default `api`" in readme
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    assert targets == ["api:8000"] and "scrapes only that `api:8000`" in readme


# --- newuser9 #2, #3: uploads live in the persistent volume; the API writes and deletes them ------

def _under(path: str, mount: str) -> bool:
    return Path(path) == Path(mount) or Path(mount) in Path(path).parents


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_images_keep_uploads_in_the_data_volume(by_name: dict[str, Stage], target: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """newuser9 #2: the image set only the database URL; uploads went to ./data/uploads under
    WORKDIR, the container's writable layer, and were lost when it was recreated."""
    stage = by_name[target]
    env = " ".join(stage.all("ENV"))
    m = re.search(r"GRADHEALTH_UPLOAD_DIR=(\S+)", env)
    assert m, f"stage {target} leaves GRADHEALTH_UPLOAD_DIR at its relative default"
    volumes = " ".join(stage.all("VOLUME")).split()
    assert any(_under(m.group(1), v) for v in volumes), (m.group(1), volumes)


def _volume_of(service: dict, path: str) -> tuple[str, bool] | None:
    """The volume mounted over ``path`` in ``service`` and whether that mount is read-only."""
    for entry in service.get("volumes") or []:
        source, target, *mode = str(entry).split(":")
        if _under(path, target):
            return source, "ro" in mode
    return None


@pytest.mark.parametrize("name", ["api", "fleet-api", "worker"])
def test_every_compose_service_keeps_uploads_in_its_named_volume(compose: dict, name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every profile alike: the upload folder is inside a named volume, so it outlives the container."""
    service = compose["services"][name]
    settings = settings_of(service, monkeypatch)
    assert Path(settings.upload_dir).is_absolute(), settings.upload_dir
    found = _volume_of(service, settings.upload_dir)
    assert found and found[0] in compose["volumes"], f"{name}: {settings.upload_dir} is in no volume"
    # The API writes uploads and its retention sweep deletes them: its mount must be writable.
    # A worker only reads them (least privilege): read-only is right there.
    if name != "worker":
        assert not found[1], f"{name} mounts its uploads read-only: it could not write or delete them"
