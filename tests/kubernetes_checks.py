"""Checks of Kubernetes manifests (SECURITY.md A7): the cluster version's schema, and checkov.

`created_manifests` takes the objects the stack creates directly out of a recording,
`schema_errors` validates one against a Kubernetes version's strict schema
(kubernetes-validate, in the main virtualenv), and `checkov_findings` scans a set with
checkov's Kubernetes checks, offline, from its own virtualenv (tools/checkov/venv).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import VersionNotSupportedError

from stacks.offline import StackRecording

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / "tools" / "checkov" / "venv" / "bin" / "checkov"
KUBERNETES_TYPE_PREFIX = "kubernetes:"
# Helm releases are rendered and applied by the provider: not objects this program writes.
HELM_TYPE_PREFIX = "kubernetes:helm.sh/"
CORE_GROUP_PREFIX = "core/"
# checkov exits 1 when a check failed; anything else but 0 means it did not scan.
CHECKOV_FOUND_FAILURES = 1
CHECKOV_TIMEOUT_S = 300
# Offline: no platform mapping or guidelines download, no version check, no API key.
CHECKOV_ENV = {
    "BC_SKIP_MAPPING": "TRUE",
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
    "LOG_LEVEL": "WARNING",
}


class Finding(NamedTuple):
    check_id: str
    resource: str  # Kind.namespace.name, as checkov names it
    file: str  # the manifest's file name in the scanned folder


def created_manifests(recording: StackRecording) -> list[dict[str, Any]]:
    """The Kubernetes objects the stack creates directly, as manifests (the typed resources'
    inputs), in creation order; Helm releases and providers left out."""
    manifests = []
    for resource in recording.custom_resources:
        if not resource.type.startswith(KUBERNETES_TYPE_PREFIX) or resource.type.startswith(
            HELM_TYPE_PREFIX
        ):
            continue
        _, group_version, kind = resource.type.split(":")
        api_version = group_version.removeprefix(CORE_GROUP_PREFIX)
        manifest = copy.deepcopy(resource.inputs)
        if (manifest.get("apiVersion"), manifest.get("kind")) != (api_version, kind):
            raise ValueError(
                f"{resource.name} ({resource.type}): its inputs are not a {api_version} {kind} "
                f"manifest (apiVersion {manifest.get('apiVersion')!r}, kind "
                f"{manifest.get('kind')!r}); is it created some other way than create_object?"
            )
        manifests.append(manifest)
    return manifests


def describe(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata", {})
    where = f"{metadata['namespace']}/" if "namespace" in metadata else ""
    return f"{manifest.get('kind')} {where}{metadata.get('name')}"


def schema_errors(manifest: dict[str, Any], version: str) -> list[str]:
    """Why `manifest` is not valid for Kubernetes `version` ("1.34") under its strict schema
    (no unknown fields); empty when it is. kubernetes-validate stops at the first error, so
    the list holds at most one."""
    try:
        validated = kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path) or "(top level)"
        return [f"{describe(manifest)}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{describe(manifest)}: {error.message}"]
    except VersionNotSupportedError:
        return [
            f"kubernetes-validate {kubernetes_validate.__version__} has no schema for "
            f"Kubernetes {version}: upgrade it (requirements-dev.in)"
        ]
    # It falls back to the newest schema not newer than the version asked for.
    if validated != version:
        return [f"{describe(manifest)}: validated against {validated}, not {version}"]
    return []


def _file_name(index: int, manifest: dict[str, Any]) -> str:
    name = manifest.get("metadata", {}).get("name", "unnamed")
    return f"{index:03d}-{str(manifest.get('kind', 'unknown')).lower()}-{name}.yaml"


def checkov_findings(manifests: list[dict[str, Any]], skip: dict[str, str]) -> list[Finding]:
    """The checks checkov's Kubernetes framework fails on `manifests` (one file each), with
    the checks in `skip` (check id -> why it is accepted) not run. Never touches the network."""
    if not CHECKOV.exists():
        message = "tools/checkov/venv is missing: `make test` creates it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="checkov-") as folder:
        scanned = Path(folder) / "manifests"
        scanned.mkdir()
        for index, manifest in enumerate(manifests):
            text = yaml.safe_dump(manifest, sort_keys=False)
            (scanned / _file_name(index, manifest)).write_text(text)
        command = [str(CHECKOV), "--framework", "kubernetes", "--skip-download", "--quiet"]
        command += ["--compact", "-o", "json", "-d", str(scanned)]
        if skip:
            command += ["--skip-check", ",".join(sorted(skip))]
        # A clean environment and home: no API key, proxy or .checkov.yaml of the user's.
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": folder, **CHECKOV_ENV}
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
            timeout=CHECKOV_TIMEOUT_S,
            check=False,
        )
    if result.returncode not in (0, CHECKOV_FOUND_FAILURES):
        raise RuntimeError(f"checkov exited {result.returncode}:\n{result.stderr}")
    report = json.loads(result.stdout)
    # One framework: one report (a bare summary when it found no resources at all).
    summary = report.get("summary", report)
    if summary["parsing_errors"] or summary["resource_count"] != len(manifests):
        raise RuntimeError(
            f"checkov read {summary['resource_count']} of {len(manifests)} manifests "
            f"({summary['parsing_errors']} parsing errors):\n{result.stdout}"
        )
    return [
        Finding(check["check_id"], check["resource"], check["file_path"].lstrip("/"))
        for check in report["results"]["failed_checks"]
    ]
