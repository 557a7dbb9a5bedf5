"""deploy/: the compose file and the Kubernetes manifests pass their schema validators (which are shown
to reject broken copies), and agree with the code: every DINOSTREAM_* variable is a real settings field,
each role's probes ask /api/v1/health on the port its DINOSTREAM_HTTP__PORT names, ingest gets a GPU,
and the Dockerfile installs torch before the project and runs `dinostream`.

The validators work offline: check-jsonschema vendors the compose-spec schema, kubernetes-validate
bundles the Kubernetes schemas (both in the `test` extra).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from dinostream.core.settings import Settings, settings_from_env

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S_DIR = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# The contract every role follows: `dinostream <role>` serves /api/v1/health and /metrics on this port.
ROLE_PORTS = {"ingest": 8080, "worker": 8080, "index": 8080, "gateway": 8000}
HEALTH = "/api/v1/health"  # readiness
LIVEZ = "/livez"  # liveness: a dependency's failure (503 on health) is not fixed by a restart
SECRET_PLACEHOLDER = "placeholder-secret-value"  # what a secretKeyRef would supply


# --- helpers -------------------------------------------------------------------------------------


def k8s_files() -> list[Path]:
    """The Kubernetes resources (kustomization.yaml, which only lists them, is not one)."""
    files = sorted(f for f in K8S_DIR.glob("*.yaml") if f.name != "kustomization.yaml")
    assert files, f"no manifests in {K8S_DIR}"
    return files


def run_tool(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs a validator from this interpreter's environment (the venv's bin dir)."""
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e '.[test]'")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", path)


def check_k8s(*paths: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("kubernetes-validate", "--strict", *paths)


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def load_k8s() -> list[dict[str, Any]]:
    return [doc for f in k8s_files() for doc in yaml.safe_load_all(f.read_text()) if doc]


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def compose_defaults(value: Any) -> str:
    """A compose value as `docker compose` resolves it with none of the variables set: `${X:-d}` -> d."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {k: compose_defaults(v) for k, v in env.items()}


def compose_roles() -> dict[str, dict[str, Any]]:
    """Role name (the `dinostream` subcommand) -> compose service."""
    out = {}
    for service in load_compose()["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] in ROLE_PORTS:
            out[command[0]] = service
    return out


def k8s_workloads() -> dict[str, dict[str, Any]]:
    """Role name (the container's first arg) -> Deployment/StatefulSet."""
    out = {}
    for doc in load_k8s():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            out[container["args"][0]] = doc
    return out


def container_of(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def k8s_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment: its configmaps' data, then its own env (secrets as a placeholder)."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in load_k8s() if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in maps, f"container {container['name']} reads ConfigMap {name!r}, which no manifest defines"
        env.update(maps[name])
    for item in container.get("env", []):
        env[item["name"]] = item["value"] if "value" in item else SECRET_PLACEHOLDER
    return env


def dinostream_vars(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("DINOSTREAM_")}


def role_settings(env: dict[str, str]) -> Settings:
    return Settings.model_validate(settings_from_env(dinostream_vars(env)))


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"container {container['name']}: port name {port!r} is not one of its ports {named}"
    return named[port]


def role_envs() -> list[Any]:
    """(where, env) for every role in compose and in Kubernetes."""
    cases = [pytest.param(compose_env(s), id=f"compose-{r}") for r, s in compose_roles().items()]
    cases += [pytest.param(k8s_env(container_of(w)), id=f"k8s-{r}") for r, w in k8s_workloads().items()]
    return cases


# --- schema validation ---------------------------------------------------------------------------


def test_compose_file_is_valid_compose_spec() -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def _bare_int_ports(doc: dict[str, Any]) -> None:
    doc["services"]["gateway"]["ports"] = 8000


def _unknown_service_key(doc: dict[str, Any]) -> None:
    doc["services"]["worker"]["replicas"] = 4  # belongs under deploy:


def _misspelt_depends_on_condition(doc: dict[str, Any]) -> None:
    doc["services"]["index"]["depends_on"]["qdrant"]["condition"] = "service_ready"


COMPOSE_BREAKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "bare-int-ports": (_bare_int_ports, "gateway.ports"),
    "unknown-service-key": (_unknown_service_key, "replicas"),
    "misspelt-condition": (_misspelt_depends_on_condition, "service_ready"),
}


@pytest.mark.parametrize(("breaks", "named"), COMPOSE_BREAKS.values(), ids=COMPOSE_BREAKS.keys())
def test_compose_validator_rejects_a_broken_copy(
    tmp_path: Path, breaks: Callable[[dict[str, Any]], None], named: str
) -> None:
    doc = load_compose()
    intact, broken = tmp_path / "intact.yml", tmp_path / "broken.yml"
    intact.write_text(yaml.safe_dump(doc))  # the same round trip, unbroken, still passes
    breaks(doc)
    broken.write_text(yaml.safe_dump(doc))
    ok = check_compose(intact)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = check_compose(broken)
    assert bad.returncode != 0, f"check-jsonschema accepted a broken compose file:\n{bad.stdout}"
    assert named in bad.stdout + bad.stderr


def test_every_manifest_is_valid_kubernetes() -> None:
    files = k8s_files()
    result = check_k8s(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    for f in files:  # each file validated at least one resource
        assert re.search(rf"{re.escape(f.name)} passed for resource", result.stdout), result.stdout


def workload(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))


def _string_replicas(docs: list[dict[str, Any]]) -> None:
    workload(docs)["spec"]["replicas"] = "two"


def _unknown_container_key(docs: list[dict[str, Any]]) -> None:
    container_of(workload(docs))["gpus"] = 1


def _list_probe_port(docs: list[dict[str, Any]]) -> None:
    container_of(workload(docs))["readinessProbe"]["httpGet"]["port"] = [8080]


K8S_BREAKS: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "string-replicas": (_string_replicas, "replicas"),
    "unknown-container-key": (_unknown_container_key, "gpus"),  # rejected only with --strict
    "list-probe-port": (_list_probe_port, "port"),
}


@pytest.mark.parametrize(("breaks", "named"), K8S_BREAKS.values(), ids=K8S_BREAKS.keys())
def test_kubernetes_validator_rejects_a_broken_copy(
    tmp_path: Path, breaks: Callable[[list[dict[str, Any]]], None], named: str
) -> None:
    source = K8S_DIR / "worker.yaml"
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
    intact, broken = tmp_path / "intact.yaml", tmp_path / "broken.yaml"
    intact.write_text(yaml.safe_dump_all(docs))
    docs = copy.deepcopy(docs)
    breaks(docs)
    broken.write_text(yaml.safe_dump_all(docs))
    ok = check_k8s(intact)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = check_k8s(broken)
    assert bad.returncode != 0, f"kubernetes-validate accepted a broken manifest:\n{bad.stdout}"
    assert named in bad.stdout + bad.stderr


# --- agreement with the code ---------------------------------------------------------------------


def test_every_role_is_deployed() -> None:
    assert set(compose_roles()) == set(ROLE_PORTS)
    assert set(k8s_workloads()) == set(ROLE_PORTS)


@pytest.mark.parametrize("env", role_envs())
def test_role_environment_is_valid_settings(env: dict[str, str]) -> None:
    s = role_settings(env)  # extra="forbid": a misspelt DINOSTREAM_ variable fails here
    assert s.kafka.bootstrap, "no DINOSTREAM_KAFKA__BOOTSTRAP: each container would start its own embedded broker"
    assert s.index.qdrant_url, "no DINOSTREAM_INDEX__QDRANT_URL: each container would keep its own Qdrant Edge"
    assert s.data_dir == Path("/data")
    assert s.http.host == "0.0.0.0", "a role listening on loopback cannot be probed or reached"


def test_a_misspelt_variable_is_caught() -> None:
    env = compose_env(compose_roles()["worker"]) | {"DINOSTREAM_KAFKA__BOOTSTRAPP": "kafka:9092"}
    with pytest.raises(ValidationError, match="bootstrapp"):
        role_settings(env)


@pytest.mark.parametrize("role", sorted(ROLE_PORTS))
def test_compose_healthcheck_asks_the_role_port(role: str) -> None:
    service = compose_roles()[role]
    port = role_settings(compose_env(service)).http.port
    assert port == ROLE_PORTS[role]
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", "the slim image has no curl: check with python"
    assert f"http://127.0.0.1:{port}{HEALTH}" in " ".join(test)
    for published in service.get("ports", []):
        assert str(published).rsplit(":", 1)[-1] == str(port), f"{role} publishes {published}, listens on {port}"


@pytest.mark.parametrize("role", sorted(ROLE_PORTS))
def test_k8s_probes_ask_the_role_port(role: str) -> None:
    workload = k8s_workloads()[role]
    container = container_of(workload)
    port = role_settings(k8s_env(container)).http.port
    assert port == ROLE_PORTS[role]
    probes = {k: v for k, v in container.items() if k.endswith("Probe")}
    assert {"readinessProbe", "livenessProbe"} <= set(probes)
    for kind, probe in probes.items():
        wanted = {"readinessProbe": {HEALTH}, "livenessProbe": {LIVEZ}}.get(kind, {HEALTH, LIVEZ})
        assert probe["httpGet"]["path"] in wanted, f"{role} {kind}"
        assert resolve_port(container, probe["httpGet"]["port"]) == port, f"{role} {kind} asks another port"
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        assert int(annotations["prometheus.io/port"]) == port


def test_k8s_services_reach_the_role_port() -> None:
    workloads = k8s_workloads()
    for svc in (d for d in load_k8s() if d["kind"] == "Service"):
        selector = svc["spec"]["selector"].items()
        targets = [r for r, w in workloads.items() if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, f"Service {svc['metadata']['name']} selects the pods of {targets}, not one role"
        container = container_of(workloads[targets[0]])
        for p in svc["spec"]["ports"]:
            assert resolve_port(container, p["targetPort"]) == ROLE_PORTS[targets[0]]


def test_ingest_gets_a_gpu_and_nothing_else_does() -> None:
    compose = compose_roles()
    (device,) = compose["ingest"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == 1 and "gpu" in device["capabilities"]
    assert role_settings(compose_env(compose["ingest"])).model.device.startswith("cuda")
    assert all("deploy" not in s for r, s in compose.items() if r != "ingest")

    workloads = k8s_workloads()
    for role, workload in workloads.items():
        limits = container_of(workload).get("resources", {}).get("limits", {})
        assert limits.get("nvidia.com/gpu") == (1 if role == "ingest" else None), role
    assert role_settings(k8s_env(container_of(workloads["ingest"]))).model.device.startswith("cuda")


def test_one_dockerfile_a_gpu_image_for_ingest_and_a_cpu_image_for_the_rest() -> None:
    compose = compose_roles()
    assert all(s["build"]["dockerfile"] == "deploy/Dockerfile" for s in compose.values())
    cpu = {r: s["image"] for r, s in compose.items() if r != "ingest"}
    assert len(set(cpu.values())) == 1 and compose["ingest"]["image"] not in cpu.values()
    assert all(s["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu") for r, s in compose.items() if r != "ingest")
    k8s = {r: container_of(w)["image"] for r, w in k8s_workloads().items()}
    assert len({i for r, i in k8s.items() if r != "ingest"}) == 1 and k8s["ingest"] != k8s["worker"]


def test_compose_dependencies_wait_for_health() -> None:
    services = load_compose()["services"]
    for role, service in compose_roles().items():
        depends = service.get("depends_on", {})
        assert "kafka" in depends, f"{role} does not wait for Kafka"
        for dep, cond in depends.items():
            wanted = "service_healthy" if "healthcheck" in services[dep] else "service_started"
            assert cond["condition"] == wanted, f"{role} -> {dep}"


def test_compose_broker_is_kraft_with_the_partitions_the_roles_expect() -> None:
    kafka = compose_env(load_compose()["services"]["kafka"])
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{kafka['KAFKA_NODE_ID']}@")
    for role, service in compose_roles().items():
        s = role_settings(compose_env(service))
        assert s.kafka.partitions == int(kafka["KAFKA_NUM_PARTITIONS"]), role
        host, _, port = s.kafka.bootstrap.partition(":")
        assert f"PLAINTEXT://{host}:{port}" in kafka["KAFKA_ADVERTISED_LISTENERS"], role


def test_k8s_autoscaling_stays_within_partitions() -> None:
    docs = load_k8s()
    workloads = {w["metadata"]["name"]: (r, w) for r, w in k8s_workloads().items()}
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert any(workloads[h["spec"]["scaleTargetRef"]["name"]][0] == "worker" for h in hpas)
    for hpa in hpas:
        role, workload = workloads[hpa["spec"]["scaleTargetRef"]["name"]]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == workload["kind"]
        assert container_of(workload)["resources"]["requests"]["cpu"], "a CPU HPA needs a CPU request"
        if role in ("worker", "index"):  # consumers beyond the partition count get no work
            partitions = role_settings(k8s_env(container_of(workload))).kafka.partitions
            assert hpa["spec"]["maxReplicas"] <= partitions, f"{role} HPA scales past {partitions} partitions"


def test_k8s_disruption_budgets_and_namespace() -> None:
    docs = load_k8s()
    (ns,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == ns, f"{d['kind']} {d['metadata']['name']}"
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in k8s_workloads().values()]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdbs
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert sum(selector.items() <= labels.items() for labels in pod_labels) == 1, pdb["metadata"]["name"]
    for workload in k8s_workloads().values():
        assert (
            workload["spec"]["selector"]["matchLabels"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        )


# --- the image -----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_installs_torch_before_the_project_and_runs_dinostream() -> None:
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1].strip('"') for op, rest in steps if op == "ARG" and "=" in rest
    }
    assert re.fullmatch(r"torch==[\d.]+", args["TORCH_SPEC"]), args
    runs = [i for i, (op, _) in enumerate(steps) if op == "RUN"]
    torch_step = next(i for i in runs if "pip install ${TORCH_SPEC}" in steps[i][1])
    project_step = next(i for i in runs if re.search(r"pip install (\.|/src)(\s|$)", steps[i][1]))
    copy_step = next(i for i, (op, _) in enumerate(steps) if op == "COPY")
    assert torch_step < copy_step < project_step, "torch must be installed (and cached) before the project"
    (entrypoint,) = [rest for op, rest in steps if op == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["dinostream"]
    users = [rest for op, rest in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    env = " ".join(rest for op, rest in steps if op == "ENV")
    assert "DINOSTREAM_DATA_DIR=/data" in env


def test_dockerignore_lets_in_every_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = project["tool"]["setuptools"].get("package-dir", {})
    tops = {folders.get(p, p.replace(".", "/")).split("/")[0] for p in project["tool"]["setuptools"]["packages"]}
    needed = [f"{top}/" for top in sorted(tops)] + [
        "pyproject.toml",
        project["project"]["readme"],
    ]
    lines = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the build context is an allow-list: everything else (.venv, data dirs) stays out"
    missing = [n for n in needed if f"!{n}" not in lines]
    assert not missing, f".dockerignore keeps out {missing}, which `pip install .` needs"
