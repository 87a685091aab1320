"""The Kubernetes manifests in deploy/kubernetes, checked without a cluster.

* Every built-in resource validates strictly (unknown fields are errors) against the Kubernetes
  OpenAPI schemas that ship inside the ``kubernetes-validate`` package, for the oldest and the
  newest Kubernetes version this deployment claims.
* The KEDA resources validate against the ``openAPIV3Schema`` of KEDA's own CRDs, vendored under
  deploy/kubernetes/schemas/keda with their source and licence, made strict the same way.
* The manifests agree with the code: the commands parse with the real CLI, the probes name real
  routes, the settings parse with the real Settings, the workers' grace period outlasts the job
  lease, and the KEDA query runs against a real migrated job table and counts what it says.

Nothing is fetched at test time.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from gradhealth.cli import build_parser, cmd_worker
from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.db.models import JobRow
from gradhealth.jobs import store
from gradhealth.settings import Settings

kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
CRDS = DEPLOY / "schemas" / "keda"
# The oldest Kubernetes release these manifests are meant for, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
KEDA_KINDS = {"ScaledObject": "keda.sh_scaledobjects.yaml",
              "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}


def load_all() -> list[dict[str, Any]]:
    """Every resource of the kustomization, in order."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text(encoding="utf-8")) if d]
    return docs


RESOURCES = load_all()


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in RESOURCES if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per pod"
    return containers[0]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod sees it (ConfigMap, Secret values, then env)."""
    c = container(deployment)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(find("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = find("Secret", ref["name"])["stringData"][ref["key"]]
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process with exactly this environment reads (API keys left out)."""
    for name in list(os.environ):
        if name.startswith("GRADHEALTH_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name != "GRADHEALTH_API_KEYS":
            monkeypatch.setenv(name, value)
    return Settings()


def strict(schema: Any) -> Any:
    """``schema`` with unknown fields forbidden wherever properties are listed: the API server
    would silently drop a misspelt field of a CRD; ``kubectl --validate=strict`` refuses it."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / KEDA_KINDS[kind]).read_text(encoding="utf-8"))
    assert crd["spec"]["names"]["kind"] == kind
    group, _, version = api_version.partition("/")
    assert group == crd["spec"]["group"], f"{kind}: group {group} is not the CRD's"
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert version in served, f"{kind} {api_version}: KEDA serves {sorted(served)}"
    return strict(served[version]["schema"]["openAPIV3Schema"])


# --- schemas -------------------------------------------------------------------------------------

def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("resource", [r for r in RESOURCES if r["kind"] not in KEDA_KINDS],
                         ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_builtin_resources_validate_against_the_kubernetes_schemas(resource: dict[str, Any],
                                                                   version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("resource", [r for r in RESOURCES if r["kind"] in KEDA_KINDS],
                         ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_keda_resources_validate_against_the_vendored_crds(resource: dict[str, Any]) -> None:
    schema = crd_schema(resource["kind"], resource["apiVersion"])
    jsonschema.validate(resource, schema, cls=jsonschema.Draft7Validator)


def test_the_validators_do_refuse_a_broken_manifest() -> None:
    """The checks above can fail: misspelt fields and wrong types are caught by both validators."""
    deployment = copy.deepcopy(find("Deployment", "gradhealth-worker"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(find("ScaledObject", "gradhealth-worker"))
    schema = crd_schema("ScaledObject", scaled["apiVersion"])
    for broken in ({"minReplicas": 0}, {"maxReplicaCount": "8"}):
        candidate = copy.deepcopy(scaled)
        candidate["spec"].update(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(candidate, schema, cls=jsonschema.Draft7Validator)
    candidate = copy.deepcopy(scaled)
    # Trigger metadata values are strings.
    candidate["spec"]["triggers"][0]["metadata"]["targetQueryValue"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(candidate, schema, cls=jsonschema.Draft7Validator)


def test_the_vendored_crds_carry_their_source_and_licence() -> None:
    source = (CRDS / "SOURCE.md").read_text()
    assert "github.com/kedacore/keda" in source and re.search(r"\b[0-9a-f]{40}\b", source)
    assert "Apache License" in (CRDS / "LICENSE").read_text()
    for name in KEDA_KINDS.values():
        assert name in source


# --- the manifests agree with the code ------------------------------------------------------------

def test_the_api_is_probed_on_livez_and_readyz_and_runs_no_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gradhealth.api.routers.health import router

    api = find("Deployment", "gradhealth-api")
    c = container(api)
    routes = {route.path for route in router.routes}
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port_names == {"http": 8000}  # the image's CMD serves on 8000
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in routes
        assert c[probe]["httpGet"]["port"] in port_names
    assert c["image"].endswith(":cpu")
    assert settings_from(env_of(api), monkeypatch).workers == 0
    service = find("Service", "gradhealth-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert api["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    # Longer than the longest ?wait a request may hold.
    wait_max_s = settings_from(env_of(api), monkeypatch).wait_max_s
    assert api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > wait_max_s


def test_each_worker_pod_is_one_process_on_one_gpu() -> None:
    worker = find("Deployment", "gradhealth-worker")
    c = container(worker)
    assert c["image"].endswith(":gpu")
    assert c["command"][0] == "gradhealth"
    args = build_parser().parse_args(c["command"][1:])
    assert args.func is cmd_worker and args.processes == 1
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    # Extended resources: requests, when given, equal limits.
    assert c["resources"]["requests"].get("nvidia.com/gpu", 1) == 1
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_workers_grace_period_outlasts_the_job_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = find("Deployment", "gradhealth-worker")
    lease = settings_from(env_of(worker), monkeypatch).lease_s
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > lease, f"grace period {grace} s <= lease {lease} s"


def test_settings_in_the_config_parse_and_the_secret_placeholders_cannot_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("gradhealth-api", "gradhealth-worker"):
        env = env_of(find("Deployment", name))
        assert env["GRADHEALTH_DATABASE_URL"].startswith("postgresql://"), \
            "a plain postgresql:// URL: KEDA's scaler reads the same value"
        settings = settings_from(env, monkeypatch)
        assert settings.database_url == env["GRADHEALTH_DATABASE_URL"]
        assert settings.upload_dir == "/data/uploads"
        mounts = {m["mountPath"]: m for m in container(find("Deployment", name))["volumeMounts"]}
        assert settings.upload_dir in mounts
    secret = find("Secret", "gradhealth-database")["stringData"]
    assert "CHANGE-ME" in secret["GRADHEALTH_DATABASE_URL"]
    # The placeholder keys are refused, so the API cannot start on 0.0.0.0 until real keys are set.
    monkeypatch.setenv("GRADHEALTH_API_KEYS", secret["GRADHEALTH_API_KEYS"])
    with pytest.raises(ValueError):
        Settings()


def test_references_between_resources_resolve() -> None:
    claims = {r["metadata"]["name"] for r in RESOURCES if r["kind"] == "PersistentVolumeClaim"}
    for name in ("gradhealth-api", "gradhealth-worker"):
        spec = find("Deployment", name)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for mount in container(find("Deployment", name))["volumeMounts"]:
            assert mount["name"] in volumes
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        env_of(find("Deployment", name))  # every ConfigMap/Secret key it reads exists
    uploads = find("PersistentVolumeClaim", "gradhealth-uploads")
    assert uploads["spec"]["accessModes"] == ["ReadWriteMany"]
    scaled = find("ScaledObject", "gradhealth-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "gradhealth-worker"
    assert scaled["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "postgresql"
    auth = find("TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert refs["connection"]["key"] in find("Secret", refs["connection"]["name"])["stringData"]


# --- the KEDA query against the real job table ----------------------------------------------------

def keda_query() -> str:
    return find("ScaledObject", "gradhealth-worker")["spec"]["triggers"][0]["metadata"]["query"]


def test_the_keda_query_names_real_columns_and_statuses() -> None:
    query = keda_query()
    tables = re.findall(r"\bFROM\s+(\w+)", query, flags=re.IGNORECASE)
    assert tables == [JobRow.__tablename__]
    statuses = set(re.findall(r"'([^']*)'", query))
    assert statuses and statuses <= set(store.STATUSES), statuses
    assert "queued" in statuses
    columns = {c.name for c in JobRow.__table__.columns}
    where = re.split(r"\bWHERE\b", query, flags=re.IGNORECASE)[1]
    identifiers = set(re.findall(r"\b([a-z_]+)\b\s*(?:=|IN\b|<|>)", where, flags=re.IGNORECASE))
    assert identifiers and identifiers <= columns, identifiers - columns
    # The documented query in keda.yaml's header is the one the trigger runs.
    assert query in (DEPLOY / "keda.yaml").read_text()


def test_the_keda_query_counts_queued_and_running_jobs_on_a_migrated_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/keda.db"
    migrate(url)
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        with factory() as session:
            for i in range(5):
                store.submit(session, kind="architecture", owner="k", request={"i": i},
                             idempotency_key=None, time_limit_s=60, max_attempts=3)
            running = store.claim(session, worker_id="w1", lease_s=60)
            done = store.claim(session, worker_id="w2", lease_s=60)
            assert running is not None and done is not None
            store.finish(session, job_id=done.id, worker_id="w2", status="succeeded",
                         result={"status": "healthy"})
            failed = store.claim(session, worker_id="w3", lease_s=60)
            assert failed is not None
            store.finish(session, job_id=failed.id, worker_id="w3", status="failed")
        # 5 submitted: 1 running, 1 succeeded, 1 failed, 2 queued -> 3 need a worker.
        with engine.connect() as conn:
            assert conn.scalar(text(keda_query())) == 3
    finally:
        engine.dispose()


def test_the_api_owns_the_uploads_and_the_workers_only_read_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """newuser9 #3: the API, which writes uploads, sweeps them (GRADHEALTH_UPLOAD_RETENTION_S) with
    GRADHEALTH_WORKERS=0, so its mount must be writable; the workers' may stay read-only."""
    api = find("Deployment", "gradhealth-api")
    settings = settings_from(env_of(api), monkeypatch)
    assert settings.workers == 0 and settings.upload_retention_s > 0
    mounts = {m["mountPath"]: m for m in container(api)["volumeMounts"]}
    assert not mounts[settings.upload_dir].get("readOnly", False)
    worker = find("Deployment", "gradhealth-worker")
    mounts = {m["mountPath"]: m for m in container(worker)["volumeMounts"]}
    assert mounts[settings.upload_dir]["readOnly"] is True
