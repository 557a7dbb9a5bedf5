"""deploy/ against what a production cluster needs (issue 20), offline: each check of deploy_checks runs
on today's deploy/ (no problems) and on the manifests as they were before issue 20
(tests/unit/deploy/before_issue20/, where each finds what the issue reported), so no check passes
vacuously. The topic resources are compared with the code's own topic specs, and the record-size budget
with the model the deployment runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dinostream.core.settings import Settings
from tests.unit.deploy import deploy_checks
from tests.unit.deploy.deploy_checks import CHECKS, model_hidden_size, record_bytes

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
BEFORE = Path(__file__).resolve().parent / "before_issue20" / "deploy"
# What the record budget cannot find in the old manifests: they ran ViT-S at 224, which fits.
PASSES_BEFORE = {"record-budget"}


@pytest.mark.parametrize("name", CHECKS)
def test_deploy_passes(name: str) -> None:
    assert CHECKS[name](DEPLOY) == []


@pytest.mark.parametrize("name", sorted(set(CHECKS) - PASSES_BEFORE))
def test_the_check_finds_the_problems_of_the_manifests_before_issue_20(name: str) -> None:
    problems = CHECKS[name](BEFORE)
    assert problems, f"{name} passes on the manifests before issue 20"


def test_what_the_old_manifests_got_wrong_is_named() -> None:
    secrets = deploy_checks.check_secrets_and_dependencies(BEFORE)
    assert (
        "k8s index: no HF_TOKEN from a Secret (reads the model's config.json for the vector size "
        "(embedding.model_dims))" in secrets
    )
    assert any(p.startswith("k8s worker: no DINOSTREAM_INDEX__QDRANT_API_KEY") for p in secrets)
    assert "compose worker: does not wait for qdrant to be healthy" in secrets
    assert "compose gateway: publishes 8000:8000 beyond 127.0.0.1" in deploy_checks.check_network(BEFORE)
    assert "k8s worker: /cache is on no volume" in deploy_checks.check_writable_paths(BEFORE)
    assert "k8s ingest: liveness probes /api/v1/health, not /livez" in deploy_checks.check_probes(BEFORE)
    kafka = deploy_checks.check_kafka_security(BEFORE)
    assert "k8s worker: Kafka without TLS and SASL (security_protocol PLAINTEXT)" in kafka
    assert "k8s index: no DINOSTREAM_KAFKA__SASL_PASSWORD from a Secret" in kafka
    assert "compose kafka: topic auto-creation is on (KAFKA_AUTO_CREATE_TOPICS_ENABLE)" in deploy_checks.check_topics(
        BEFORE
    )


def test_the_index_needs_hf_token_unless_told_the_vector_size(tmp_path: Path) -> None:
    """The shipped index reads nothing from the Hub (index.vector_dims); without the setting it needs the
    token again, and a size that is not the model's is named."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    configmap = copy / "k8s" / "01-configmap.yaml"
    text = configmap.read_text()
    assert 'DINOSTREAM_INDEX__VECTOR_DIMS: "384"' in text
    configmap.write_text(text.replace('DINOSTREAM_INDEX__VECTOR_DIMS: "384"', 'DINOSTREAM_INDEX__VECTOR_DIMS: "768"'))
    assert deploy_checks.check_secrets_and_dependencies(copy) == [
        "k8s index: index.vector_dims 768 is not the size of facebook/dinov3-vits16-pretrain-lvd1689m's vectors (384)"
    ]
    configmap.write_text("\n".join(line for line in text.splitlines() if "VECTOR_DIMS" not in line) + "\n")
    assert deploy_checks.check_secrets_and_dependencies(copy) == [
        "k8s index: no HF_TOKEN from a Secret (reads the model's config.json for the vector size "
        "(embedding.model_dims))"
    ]


def test_the_record_budget_catches_vitb_at_448() -> None:
    """The issue's case: ViT-B at 448 makes records over the 1 MB default, which the producer drops."""
    s = Settings.model_validate({"model": {"model": "facebook/dinov3-vitb16-pretrain-lvd1689m", "image_size": 448}})
    assert model_hidden_size(s.model.model) == 768
    assert record_bytes(s, 768) > s.kafka.max_message_bytes
    small = Settings.model_validate({"model": {"model": "facebook/dinov3-vits16-pretrain-lvd1689m"}})
    assert record_bytes(small, 384) < small.kafka.max_message_bytes


def test_the_topic_resources_are_the_generators_output() -> None:
    """deploy/k8s/kafka/topics.yaml is what topics.py renders today (regenerate it when a topic changes)."""
    out = subprocess.run(
        [sys.executable, str(DEPLOY / "k8s" / "kafka" / "topics.py")], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == (DEPLOY / "k8s" / "kafka" / "topics.yaml").read_text()


def test_yaml_lint() -> None:
    exe = Path(sys.executable).parent / "yamllint"
    if not exe.exists():
        pytest.fail(f"yamllint is not installed next to {sys.executable}: pip install -e '.[test]'")
    files = [DEPLOY / "docker-compose.yml", *sorted((DEPLOY / "k8s").rglob("*.yaml"))]
    out = subprocess.run(
        [str(exe), "-c", str(DEPLOY / ".yamllint"), *map(str, files)], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "hadolint"
    if not exe.exists():
        pytest.fail(f"hadolint is not installed next to {sys.executable}: pip install -e '.[test]'")
    return subprocess.run(
        [str(exe), "--no-color", "-c", str(DEPLOY / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_dockerfile_lint(tmp_path: Path) -> None:
    """hadolint finds nothing in deploy/Dockerfile, and with the same configuration still finds a
    floating base image and an apt install without pinned versions (so the linter really ran)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    found = _hadolint(bad)
    assert found.returncode != 0 and "DL3007" in found.stdout and "DL3008" in found.stdout, found.stdout
    out = _hadolint(DEPLOY / "Dockerfile")
    assert out.returncode == 0, out.stdout + out.stderr
