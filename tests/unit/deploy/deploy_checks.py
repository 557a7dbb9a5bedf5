"""Offline checks of a deploy/ directory against what the code needs in production (issue 20). Each check
takes the directory and returns its problems, one line each (empty: it passes), so it runs on today's
deploy/ and on the copy of the manifests before issue 20 (tests/unit/deploy/before_issue20/), where
each must find something.

Pure Python: YAML and text, no Docker or Kubernetes.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dinostream.core.kafka_io import TopicSpec, topic_message_bytes
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import Settings, settings_from_env
from dinostream.dashboard.liveness import LIVEZ
from dinostream.embedding.archs import RANDOM_ARCHS

ROLES = ("ingest", "worker", "index", "gateway")
HEALTH = "/api/v1/health"
SECRET = "<from a secret>"

# What each role reads that must come from a secret, and why (the code paths that use it).
ROLE_SECRETS: dict[str, dict[str, str]] = {
    "DINOSTREAM_HTTP__API_TOKEN": {r: "every role's HTTP API is guarded by http.api_token" for r in ROLES},
    "DINOSTREAM_INDEX__QDRANT_API_KEY": {
        "worker": "the re-id track gallery (analytics.gallery.open_gallery)",
        "index": "the index sink writes frames and events",
        "gateway": "search reads the index",
    },
    "HF_TOKEN": {
        "ingest": "loads the gated model",
        "index": "reads the model's config.json for the vector size (embedding.model_dims)",
        "gateway": "embeds uploaded images for search",
    },
}
# The services a role must wait for in compose (beyond Kafka, which every role needs).
ROLE_DEPENDENCIES = {"ingest": {"kafka"}, "worker": {"kafka", "qdrant"}, "index": {"kafka", "qdrant"}}
ROLE_DEPENDENCIES["gateway"] = {"kafka", "qdrant"}
CONSUMER_GROUP_ROLES = ("worker", "index", "ingest")  # every scale step is a rebalance


# --- reading a deploy directory ------------------------------------------------------------------


class Deploy:
    """The compose file, the Kubernetes resources and the Dockerfile of one deploy/ directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.compose = yaml.safe_load((root / "docker-compose.yml").read_text())
        k8s = root / "k8s"
        self.k8s = [d for f in sorted(k8s.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
        self.k8s_all = [d for f in sorted(k8s.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
        self.dockerfile = (root / "Dockerfile").read_text()

    def compose_roles(self) -> dict[str, dict[str, Any]]:
        out = {}
        for service in self.compose["services"].values():
            command = service.get("command")
            if isinstance(command, list) and command and command[0] in ROLES:
                out[command[0]] = service
        return out

    def workloads(self) -> dict[str, dict[str, Any]]:
        out = {}
        for doc in self.k8s:
            if doc.get("kind") in ("Deployment", "StatefulSet"):
                out[container(doc)["args"][0]] = doc
        return out

    def configmaps(self) -> dict[str, dict[str, str]]:
        return {d["metadata"]["name"]: d.get("data", {}) for d in self.k8s if d.get("kind") == "ConfigMap"}

    def k8s_env(self, workload: dict[str, Any]) -> dict[str, str]:
        c, maps, env = container(workload), self.configmaps(), {}
        for source in c.get("envFrom", []):
            env.update(maps.get(source.get("configMapRef", {}).get("name"), {}))
        for item in c.get("env", []):
            env[item["name"]] = (
                item["value"]
                if "value" in item
                else SECRET
                if "secretKeyRef" in item.get("valueFrom", {})
                else "<from the pod>"
            )
        return env

    def dockerfile_env(self) -> dict[str, str]:
        text = re.sub(r"\\\n", " ", self.dockerfile)
        out: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("ENV "):
                out.update(dict(re.findall(r"(\w+)=(\S+)", line)))
        return out


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment; `${X:-d}` as its default d, `${X}` and `${X:?...}` as supplied by the operator."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)

    def resolve(m: re.Match[str]) -> str:
        return SECRET if m.group(0)[len(m.group(1)) + 2 : len(m.group(1)) + 4] == ":?" else (m.group(2) or "")

    return {k: _INTERPOLATION.sub(resolve, str(v)) for k, v in env.items()}


# Secrets the settings require once other settings are set (SASL needs its password): a stand-in value.
REQUIRED_SECRETS = {"DINOSTREAM_KAFKA__SASL_PASSWORD": "a-secret"}


def role_settings(env: dict[str, str]) -> Settings:
    values = {k: REQUIRED_SECRETS.get(k, v) for k, v in env.items() if k.startswith("DINOSTREAM_")}
    values = {k: v for k, v in values.items() if v != SECRET}
    return Settings.model_validate(settings_from_env(values))


def check_kafka_security(root: Path) -> list[str]:
    """Kubernetes roles reach Kafka over TLS with SCRAM (the examples' brokers are shared): the same
    protocol and user for every role, the password from a Secret, the CA file on a mounted volume."""
    d, problems = Deploy(root), []
    for role in ROLES:
        workload = d.workloads().get(role)
        if workload is None:
            continue
        env = d.k8s_env(workload)
        s = role_settings(env).kafka
        if s.security_protocol != "SASL_SSL" or s.sasl_mechanism is None or not s.sasl_username:
            problems.append(f"k8s {role}: Kafka without TLS and SASL (security_protocol {s.security_protocol})")
        if env.get("DINOSTREAM_KAFKA__SASL_PASSWORD") != SECRET:
            problems.append(f"k8s {role}: no DINOSTREAM_KAFKA__SASL_PASSWORD from a Secret")
        mounts = [m["mountPath"] for m in container(workload).get("volumeMounts", [])]
        if s.ssl_cafile is None or not any(str(s.ssl_cafile).startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"k8s {role}: the Kafka CA file ({s.ssl_cafile}) is on no mounted volume")
    return problems


def _needs_no(var: str, role: str, env: dict[str, str]) -> bool:
    """Whether the role's settings make a secret unnecessary: an index told the vector size
    (index.vector_dims) reads no model config from the Hub."""
    return var == "HF_TOKEN" and role == "index" and role_settings(env).index.vector_dims is not None


def _interpolated_from_operator(value: Any) -> bool:
    """A compose value the operator supplies (an env file or the shell), not a literal in the file."""
    return bool(re.search(r"\$\{\w+", str(value)))


# --- the checks ----------------------------------------------------------------------------------


def check_secrets_and_dependencies(root: Path) -> list[str]:
    """Every role gets each secret it needs, from the operator's env (compose) or a Secret (Kubernetes),
    and waits in compose for each service it talks to."""
    d, problems = Deploy(root), []
    for var, roles in ROLE_SECRETS.items():
        for role, why in roles.items():
            service = d.compose_roles().get(role, {})
            env = service.get("environment") or {}
            raw = env.get(var)
            if (raw is None or not _interpolated_from_operator(raw)) and not _needs_no(var, role, compose_env(service)):
                problems.append(f"compose {role}: no {var} from the operator's env ({why})")
            workload = d.workloads().get(role)
            k8s_env = d.k8s_env(workload) if workload is not None else {}
            if k8s_env.get(var) != SECRET and not (workload is not None and _needs_no(var, role, k8s_env)):
                problems.append(f"k8s {role}: no {var} from a Secret ({why})")
    for where, role_env in [("k8s", d.k8s_env(w)) for w in [d.workloads().get("index")] if w is not None]:
        s = role_settings(role_env)
        if s.index.vector_dims is not None and s.index.vector_dims != model_hidden_size(s.model.model):
            problems.append(
                f"{where} index: index.vector_dims {s.index.vector_dims} is not the size of {s.model.model}'s vectors "
                f"({model_hidden_size(s.model.model)})"
            )
    for role, needs in ROLE_DEPENDENCIES.items():
        depends = d.compose_roles().get(role, {}).get("depends_on", {})
        for dep in sorted(needs):
            if depends.get(dep, {}).get("condition") != "service_healthy":
                problems.append(f"compose {role}: does not wait for {dep} to be healthy")
    return problems


def shipped_settings(root: Path) -> Settings:
    """The settings the Kubernetes roles run with (the shared ConfigMap)."""
    d = Deploy(root)
    return role_settings(d.k8s_env(d.workloads()["worker"]))


def code_topic_specs(s: Settings) -> list[TopicSpec]:
    """What the code creates with settings `s`: ensure_topics, the Faust app's own topics, the dead letters."""
    from dinostream.analytics.worker import build_app, faust_topic_specs
    from dinostream.core.kafka_io import topic_specs
    from dinostream.sinks.alert_service import dead_letter_spec

    # The topics do not depend on how clients connect; the CA file is on the pods, not here.
    plain = s.kafka.model_copy(update={"security_protocol": "PLAINTEXT", "sasl_mechanism": None, "ssl_cafile": None})
    app = build_app("kafka:9092", plain, s.analytics, processors=lambda a: [])
    return [*topic_specs(s.kafka), *faust_topic_specs(app, s.kafka), dead_letter_spec(s.alerts, s.kafka)]


def check_topics(root: Path) -> list[str]:
    """The KafkaTopic resources are exactly the topics the code creates, as it creates them; the
    example brokers do not auto-create topics (one created by a client's metadata request gets no
    configs), and take records as large as the topics do."""
    d, problems = Deploy(root), []
    s = shipped_settings(root)
    wanted = {spec.name: spec for spec in code_topic_specs(s)}
    found: dict[str, dict[str, Any]] = {}
    for doc in d.k8s_all:
        if doc.get("kind") == "KafkaTopic":
            found[doc["spec"].get("topicName", doc["metadata"]["name"])] = doc["spec"]
    for name in sorted(wanted.keys() - found.keys()):
        problems.append(f"k8s: no KafkaTopic for {name!r}")
    for name in sorted(found.keys() - wanted.keys()):
        problems.append(f"k8s: KafkaTopic {name!r} is no topic the code creates")
    for name in sorted(wanted.keys() & found.keys()):
        spec, res = wanted[name], found[name]
        replicas = res.get("replicas", -1)
        if (res.get("partitions"), replicas) != (spec.partitions, spec.replication_factor):
            problems.append(
                f"KafkaTopic {name!r}: {res.get('partitions')} partitions x {replicas} replicas, the code creates "
                f"{spec.partitions} x {spec.replication_factor}"
            )
        configs = {k: str(v) for k, v in (res.get("config") or {}).items()}
        if configs != spec.configs:
            problems.append(f"KafkaTopic {name!r}: config {configs} != the code's {spec.configs}")
    kafka_env = compose_env(d.compose["services"]["kafka"])
    if kafka_env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true") != "false":
        problems.append("compose kafka: topic auto-creation is on (KAFKA_AUTO_CREATE_TOPICS_ENABLE)")
    brokers = [("compose kafka", kafka_env.get("KAFKA_MESSAGE_MAX_BYTES"))]
    brokers += [
        ("Strimzi Kafka", doc["spec"]["kafka"].get("config", {}).get("message.max.bytes"))
        for doc in d.k8s_all
        if doc.get("kind") == "Kafka"
    ]
    need = topic_message_bytes(s.kafka)
    for where, limit in brokers:
        if limit is None or int(limit) < need:
            problems.append(f"{where}: message.max.bytes {limit} below the topics' {need}")
    if not any(doc.get("kind") == "Kafka" for doc in d.k8s_all):
        problems.append("k8s: no Strimzi Kafka example")
    return problems


def record_bytes(s: Settings, hidden_size: int, thumbnail_bytes_per_pixel: float = 1.0) -> int:
    """An upper estimate of one frame record's size on the wire: the encoded arrays at the model's
    patch grid (float16), plus a thumbnail at `thumbnail_bytes_per_pixel` (JPEG at q75 is ~0.3)."""
    grid = max(1, s.model.image_size // 16 // s.model.patch_pool)
    pdim = s.model.patch_pca_dims or hidden_size
    z = np.zeros(hidden_size, np.float16)
    rec = FrameEmbedding("s" * 64, 0, 0.0, 0.0, s.model.model, False, z, z, np.zeros((grid, grid, pdim), np.float16))
    return len(rec.encode()) + int(s.model.thumbnail_size**2 * thumbnail_bytes_per_pixel)


def model_hidden_size(model: str) -> int:
    """The hidden size of a DINOv3 checkpoint named like Meta's (`...dinov3-vitb16-...`), without the Hub."""
    m = re.search(r"(vit[a-z0-9]+?16)(plus)?", model.replace("+", "plus"))
    if not m:
        raise ValueError(f"cannot tell the size of model {model!r}")
    arch = RANDOM_ARCHS.get(m.group(1)) or RANDOM_ARCHS.get(m.group(1).replace("16", "plus16"))
    if arch is None:
        raise ValueError(f"unknown DINOv3 size in {model!r}")
    return int(arch["hidden_size"])


def check_record_budget(root: Path) -> list[str]:
    """A frame record of the shipped model and image size fits kafka.max_message_bytes (a bigger one
    is dropped by the producer)."""
    d, problems = Deploy(root), []
    envs = [("k8s", d.k8s_env(d.workloads()["ingest"]))] + [("compose", compose_env(d.compose_roles()["ingest"]))]
    for where, env in envs:
        s = role_settings(env)
        size = record_bytes(s, model_hidden_size(s.model.model))
        if size > s.kafka.max_message_bytes:
            problems.append(
                f"{where}: a frame record of {s.model.model} at {s.model.image_size} is ~{size} bytes, over "
                f"kafka.max_message_bytes {s.kafka.max_message_bytes}"
            )
    return problems


def _probe_path(c: dict[str, Any], kind: str) -> str | None:
    return c.get(kind, {}).get("httpGet", {}).get("path")


def check_probes(root: Path) -> list[str]:
    """Liveness is /livez (the process), never readiness (/api/v1/health, which a dependency's failure
    turns 503): probing readiness for liveness restarts every pod during a Kafka incident."""
    problems = []
    for role, workload in Deploy(root).workloads().items():
        c = container(workload)
        live, ready = _probe_path(c, "livenessProbe"), _probe_path(c, "readinessProbe")
        if ready != HEALTH:
            problems.append(f"k8s {role}: readiness probes {ready}, not {HEALTH}")
        if live != LIVEZ:
            problems.append(f"k8s {role}: liveness probes {live}, not {LIVEZ}")
        if live == ready:
            problems.append(f"k8s {role}: liveness and readiness probe the same path {live}")
    return problems


def writable_paths(root: Path) -> list[str]:
    """Where the image writes: the data dir, the caches (HF_HOME, XDG_CACHE_HOME, ...) and /tmp."""
    env = Deploy(root).dockerfile_env()
    paths = {"/tmp", env.get("DINOSTREAM_DATA_DIR", "/data")}
    for var in ("HF_HOME", "XDG_CACHE_HOME", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
        if var in env:
            paths.add(env[var])
    return sorted(paths)


def _covered(path: str, mounts: set[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def check_writable_paths(root: Path) -> list[str]:
    """Every role runs on a read-only root filesystem with each path it writes on a volume (compose and
    Kubernetes), and Qdrant's snapshots land on a volume in compose."""
    d, problems, paths = Deploy(root), [], writable_paths(root)
    for role, service in d.compose_roles().items():
        if not service.get("read_only"):
            problems.append(f"compose {role}: root filesystem not read-only")
        mounts = {str(v).split(":")[1] if ":" in str(v) else str(v) for v in service.get("volumes", [])}
        mounts |= set(service.get("tmpfs", []))
        problems += [f"compose {role}: {p} is on no volume" for p in paths if not _covered(p, mounts)]
    for role, workload in d.workloads().items():
        c = container(workload)
        if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problems.append(f"k8s {role}: root filesystem not read-only")
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        problems += [f"k8s {role}: {p} is on no volume" for p in paths if not _covered(p, mounts)]
    qdrant = d.compose["services"].get("qdrant", {})
    qmounts = {str(v).split(":")[1] for v in qdrant.get("volumes", []) if ":" in str(v)}
    if "/qdrant/snapshots" not in qmounts:
        problems.append("compose qdrant: /qdrant/snapshots is on no volume")
    return problems


def check_scaling(root: Path) -> list[str]:
    """HPAs and PDBs agree: a PDB never blocks a drain at the HPA's or Deployment's size, the HPA of a
    consumer-group role stabilizes both ways (each step is a rebalance), and stays within partitions."""
    d, problems = Deploy(root), []
    workloads = {w["metadata"]["name"]: (r, w) for r, w in d.workloads().items()}
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in d.k8s if h.get("kind") == "HorizontalPodAutoscaler"}
    for pdb in (p for p in d.k8s if p.get("kind") == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"].items()
        for name, (role, w) in workloads.items():
            if not selector <= w["spec"]["template"]["metadata"]["labels"].items():
                continue
            least = hpas[name]["spec"].get("minReplicas", 1) if name in hpas else w["spec"].get("replicas", 1)
            if "minAvailable" in pdb["spec"] and int(pdb["spec"]["minAvailable"]) >= least:
                problems.append(
                    f"PDB {pdb['metadata']['name']}: minAvailable {pdb['spec']['minAvailable']} "
                    f"blocks every drain at {least} {role} pods"
                )
            if "maxUnavailable" in pdb["spec"] and int(pdb["spec"]["maxUnavailable"]) < 1:
                problems.append(f"PDB {pdb['metadata']['name']}: maxUnavailable 0 blocks every drain")
    for name, hpa in hpas.items():
        role, w = workloads[name]
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            problems.append(f"HPA {name}: minReplicas above maxReplicas")
        if role in CONSUMER_GROUP_ROLES:
            behavior = hpa["spec"].get("behavior", {})
            for way in ("scaleUp", "scaleDown"):
                if behavior.get(way, {}).get("stabilizationWindowSeconds", 0) < 60:
                    problems.append(f"HPA {name}: {way} not stabilized (each step rebalances the consumer group)")
            partitions = role_settings(d.k8s_env(w)).kafka.partitions
            if hpa["spec"]["maxReplicas"] > partitions:
                problems.append(f"HPA {name}: maxReplicas above the {partitions} partitions")
    return problems


def _policies(d: Deploy) -> list[dict[str, Any]]:
    return [p for p in d.k8s if p.get("kind") == "NetworkPolicy"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions", []):
        if (labels.get(e["key"]) in e["values"]) != (e["operator"] == "In"):
            return False
    return True


def _egress_namespaces(d: Deploy, labels: dict[str, str]) -> Iterator[str]:
    for p in _policies(d):
        if _selects(p["spec"]["podSelector"], labels):
            for rule in p["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                    if ns:
                        yield ns


def check_network(root: Path) -> list[str]:
    """compose publishes on 127.0.0.1 only (or an operator's variable defaulting to it); Kubernetes has a
    default-deny NetworkPolicy and explicit egress to Kafka (every role) and Qdrant (its users)."""
    d, problems = Deploy(root), []
    for name, service in d.compose["services"].items():
        for port in service.get("ports", []):
            text = str(port)
            if not (text.startswith("127.0.0.1:") or re.match(r"\$\{\w+:-127\.0\.0\.1\}:", text)):
                problems.append(f"compose {name}: publishes {text} beyond 127.0.0.1")
    deny = [
        p
        for p in _policies(d)
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        problems.append("k8s: no default-deny NetworkPolicy")
    ns = d.k8s_env(d.workloads()["worker"]) if "worker" in d.workloads() else {}
    kafka_ns = re.search(r"\.(\w[\w-]*)\.svc", ns.get("DINOSTREAM_KAFKA__BOOTSTRAP", ""))
    qdrant_ns = re.search(r"\.(\w[\w-]*)\.svc", ns.get("DINOSTREAM_INDEX__QDRANT_URL", ""))
    for role, w in d.workloads().items():
        labels = w["spec"]["template"]["metadata"]["labels"]
        reach = set(_egress_namespaces(d, labels))
        if kafka_ns and kafka_ns.group(1) not in reach:
            problems.append(f"k8s {role}: no NetworkPolicy lets it reach Kafka in {kafka_ns.group(1)!r}")
        if role in ROLE_SECRETS["DINOSTREAM_INDEX__QDRANT_API_KEY"] and qdrant_ns and qdrant_ns.group(1) not in reach:
            problems.append(f"k8s {role}: no NetworkPolicy lets it reach Qdrant in {qdrant_ns.group(1)!r}")
        if w["spec"]["template"]["spec"].get("automountServiceAccountToken") is not False:
            # checkov CKV_K8S_38: a stolen pod would carry a token for the API server.
            problems.append(f"k8s {role}: a service-account token is mounted (no role talks to the Kubernetes API)")
    return problems


def check_images(root: Path) -> list[str]:
    """Images: CUDA torch from a pinned PyTorch index, dependencies from a constraints file in a layer
    before the code, a CPU image for the CPU roles, names set once (kustomization) and never a bare
    Docker Hub name."""
    d, problems = Deploy(root), []
    text = re.sub(r"\\\n", " ", d.dockerfile)
    args = dict(re.findall(r'^ARG (\w+)="?([^"\n]*)"?', text, re.M))
    if not re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", args.get("TORCH_INDEX_URL", "")):
        problems.append("Dockerfile: torch's CUDA build is not pinned to a PyTorch index (ARG TORCH_INDEX_URL)")
    steps = [line.split(None, 1) for line in text.splitlines() if line and not line.startswith("#")]
    code_copy = next((i for i, s in enumerate(steps) if s[0] == "COPY" and s[1].startswith(". ")), None)
    dep_install = next((i for i, s in enumerate(steps) if s[0] == "RUN" and " -c " in s[1] and "-r " in s[1]), None)
    if dep_install is None or (root / "constraints.txt").exists() is False:
        problems.append("Dockerfile: dependencies not installed from a constraints file (deploy/constraints.txt)")
    elif code_copy is None or dep_install > code_copy:
        problems.append("Dockerfile: the code is copied before the dependencies are installed")
    else:
        pins = {
            re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
            for line in (root / "constraints.txt").read_text().split()
            if "==" in line
        }
        project = tomllib.loads((root.parent / "pyproject.toml").read_text())["project"]["dependencies"]
        for dep in project:
            name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0]).lower()
            if name != "torch" and name not in pins:
                problems.append(f"constraints.txt: no pin for {name} (deploy/update_constraints.py)")
    compose = d.compose_roles()
    cpu_roles = [r for r in compose if r != "ingest"]
    for role in cpu_roles:
        url = str(compose[role].get("build", {}).get("args", {}).get("TORCH_INDEX_URL", ""))
        if not url.endswith("/whl/cpu"):
            problems.append(f"compose {role}: not the CPU image (TORCH_INDEX_URL {url or 'unset'})")
    for role, service in compose.items():
        if service.get("pull_policy") != "build" and "/" not in str(service.get("image", "")):
            problems.append(f"compose {role}: image {service.get('image')} would be pulled from Docker Hub")
    kustomization = root / "k8s" / "kustomization.yaml"
    names = (
        {i["name"] for i in yaml.safe_load(kustomization.read_text()).get("images", [])}
        if kustomization.exists()
        else set()
    )
    for role, w in d.workloads().items():
        image = container(w)["image"]
        if image not in names:
            problems.append(f"k8s {role}: image {image} is not named in k8s/kustomization.yaml")
    images = {r: container(w)["image"] for r, w in d.workloads().items()}
    if "ingest" in images and any(images[r] == images["ingest"] for r in images if r != "ingest"):
        problems.append("k8s: the CPU roles run the CUDA image")
    return problems


def check_index_settings(root: Path) -> list[str]:
    """Every shipped deployment bounds the index (retention) and keeps Qdrant's vectors out of RAM."""
    d, problems = Deploy(root), []
    envs = [(f"compose {r}", compose_env(s)) for r, s in d.compose_roles().items()]
    envs += [(f"k8s {r}", d.k8s_env(w)) for r, w in d.workloads().items()]
    for where, env in envs:
        s = role_settings(env)
        if s.index.retention_days is None:
            problems.append(f"{where}: index.retention_days unset (Qdrant grows without limit)")
        if not (s.index.qdrant_on_disk_vectors and s.index.qdrant_quantization == "int8"):
            problems.append(f"{where}: Qdrant vectors all in RAM (qdrant_on_disk_vectors, qdrant_quantization)")
    return problems


def check_worker_session(root: Path) -> list[str]:
    """Workers on a real cluster get a session timeout that outlasts a busy event loop (Kafka's 45 s
    default; the 10 s of the embedded broker rebalanced a worker busy in a processor or a Qdrant call)."""
    d, problems = Deploy(root), []
    envs = [("compose", compose_env(d.compose_roles()["worker"])), ("k8s", d.k8s_env(d.workloads()["worker"]))]
    for where, env in envs:
        s = role_settings(env)
        timeout = s.kafka.worker_session_timeout_s or s.kafka.session_timeout_s
        if timeout < 30:
            problems.append(f"{where} worker: session timeout {timeout:g} s (kafka.worker_session_timeout_s)")
    return problems


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "worker-session": check_worker_session,
    "secrets-and-dependencies": check_secrets_and_dependencies,
    "topics": check_topics,
    "record-budget": check_record_budget,
    "probes": check_probes,
    "writable-paths": check_writable_paths,
    "scaling": check_scaling,
    "network": check_network,
    "images": check_images,
    "index-settings": check_index_settings,
    "kafka-security": check_kafka_security,
}
