"""An in-process fake of the Kubernetes API server, over HTTPS on 127.0.0.1, for the launcher's
tests (pipelines/steps/launcher.py, pipelines/steps/eks_api.py).

What it does, as the real API server does it for the calls the launcher makes:

- TLS with a certificate for 127.0.0.1 signed by a CA made at test time (`cryptography`), so
  the client's verification against the cluster CA runs for real; bearer tokens required (401
  without one) and recorded.
- Jobs (batch/v1) and, where the training operator is "installed", PyTorchJobs
  (kubeflow.org/v1), per namespace: create (POST), get, list with a label selector, and JSON
  merge patch of metadata (annotations, labels).
- Validation of every created object: each Job is deserialized into the official client's
  models (`kubernetes.client.ApiClient().deserialize(..., "V1Job")`: types, required fields),
  and with `fieldValidation=Strict` any field the models do not know is refused (400, "strict
  decoding error: unknown field ...", as the API server answers); the checks below that the
  models do not make are 422 Invalid. A PyTorchJob's pod templates go through the same models.
  One difference: the official models take quantities as strings only, where the server also
  takes numbers.
- Answers with the API's Status objects: 404 `namespaces "x" not found`, 409 `jobs.batch "x"
  already exists`, 403 `exceeded quota: team-quota, requested: ..., used: ..., limited: ...`.

The quota. The real API server applies a ResourceQuota when the Job controller creates the
*pods*, so an over-quota Job is accepted and its pods wait; this fake refuses the Job itself,
with the real message, standing in for any admission that refuses a job outright (a quota on
job objects, an admission policy). Active jobs (no Complete or Failed condition) count.

Tests drive the rest by hand: `set_condition` finishes a job, `fail_next` answers the next
requests with an error (500 and the like).
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import re
import ssl
import tempfile
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GPU = "nvidia.com/gpu"
QUOTA_NAME = "team-quota"
QUOTA_RESOURCE = f"requests.{GPU}"
BEARER = "Bearer "
MERGE_PATCH = "application/merge-patch+json"
# How often the server looks for shutdown (the default, 0.5 s, would add that to every test).
POLL_INTERVAL_S = 0.02
# (group/version, plural) -> kind, and the kinds' group-qualified plurals for messages.
JOBS = ("batch/v1", "jobs")
PYTORCH_JOBS = ("kubeflow.org/v1", "pytorchjobs")
KINDS = {JOBS: "Job", PYTORCH_JOBS: "PyTorchJob"}
QUALIFIED = {JOBS: "jobs.batch", PYTORCH_JOBS: "pytorchjobs.kubeflow.org"}
PATH = re.compile(
    r"/apis/(?P<group>[a-z0-9.-]+)/(?P<version>v[0-9a-z]+)/namespaces/(?P<namespace>[^/]+)"
    r"/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?"
)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
MAX_LABEL = 63
# A Job's name becomes the value of its pods' `batch.kubernetes.io/job-name` label.
MAX_JOB_NAME = 63
PYTORCH_RESTART_POLICIES = {"Always", "OnFailure", "Never", "ExitCode"}
PYTORCH_REPLICA_TYPES = {"Master", "Worker"}
RUN_POLICY_FIELDS = {
    "cleanPodPolicy",
    "ttlSecondsAfterFinished",
    "activeDeadlineSeconds",
    "backoffLimit",
    "schedulingPolicy",
    "suspend",
    "managedBy",
}
QUANTITY = re.compile(r"(?P<number>\d+(\.\d+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?")
SUFFIX = {
    None: 1,
    "m": 0.001,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class ApiFailure(Exception):
    """An answer with a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def invalid(kind: str, name: str, problems: list[str]) -> ApiFailure:
    """422 Invalid, worded as the API server words field errors."""
    group = "batch" if kind == "Job" else "kubeflow.org"
    return ApiFailure(
        422,
        "Invalid",
        f'{kind}.{group} "{name}" is invalid: ' + ", ".join(problems),
        {"name": name, "group": group, "kind": kind},
    )


# -- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca_pem: str  # the cluster CA (what MLOPS_CLUSTER_CA holds, base64-encoded)
    cert_file: Path  # the server's certificate (127.0.0.1, signed by the CA)
    key_file: Path


def make_certificates(folder: Path) -> Certificates:
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it (P-256)."""
    now = datetime.datetime.now(datetime.UTC)
    valid = {"not_valid_before": now - datetime.timedelta(minutes=5)}
    valid["not_valid_after"] = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kubernetes-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid["not_valid_before"])
        .not_valid_after(valid["not_valid_after"])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid["not_valid_before"])
        .not_valid_after(valid["not_valid_after"])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = folder / "apiserver.crt", folder / "apiserver.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return Certificates(ca_pem, cert_file, key_file)


# -- validation -------------------------------------------------------------------------------


def quantity(text: Any) -> float:
    match = QUANTITY.fullmatch(str(text))
    if match is None:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    return float(match["number"]) * SUFFIX[match["suffix"]]


def _official(manifest: dict[str, Any], model: str) -> dict[str, Any]:
    """`manifest` through the official client's model `model` and back (ValueError: types,
    required fields)."""
    from kubernetes.client import ApiClient

    api = ApiClient()
    parsed = api.deserialize(json.dumps(manifest), model, None)
    result: dict[str, Any] = api.sanitize_for_serialization(parsed)
    return result


def unknown_fields(sent: Any, known: Any, path: str = "") -> list[str]:
    """The paths in `sent` that the round trip through the models dropped."""
    if isinstance(sent, dict) and isinstance(known, dict):
        found = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in known:
                found.append(where)
            else:
                found += unknown_fields(value, known[key], where)
        return found
    if isinstance(sent, list) and isinstance(known, list):
        return [
            where
            for index, (a, b) in enumerate(zip(sent, known, strict=False))
            for where in unknown_fields(a, b, f"{path}[{index}]")
        ]
    return []


def _label_problems(where: str, labels: Any) -> list[str]:
    problems = []
    for key, value in (labels or {}).items():
        _, _, name = str(key).rpartition("/")
        if len(name) > MAX_LABEL or not re.fullmatch(
            r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", name
        ):
            problems.append(f"{where}: Invalid value: {key!r}: not a qualified name")
        if not isinstance(value, str) or len(value) > MAX_LABEL or not LABEL_VALUE.fullmatch(value):
            problems.append(f"{where}: Invalid value: {value!r}: not a valid label value")
    return problems


def pod_problems(where: str, spec: dict[str, Any], restart_policies: set[str]) -> list[str]:
    """What the API server's validation of a pod template finds that the models do not."""
    problems: list[str] = []
    if spec.get("restartPolicy") not in restart_policies:
        problems.append(
            f"{where}.restartPolicy: Unsupported value: {spec.get('restartPolicy')!r}: "
            f"supported values: {', '.join(sorted(restart_policies))}"
        )
    volumes = {volume["name"] for volume in spec.get("volumes") or []}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    if not spec.get("containers"):
        problems.append(f"{where}.containers: Required value")
    names = [container["name"] for container in containers]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"{where}.containers: Duplicate value: {name!r}")
    for container in containers:
        at = f"{where}.containers[{container['name']}]"
        if not DNS_LABEL.fullmatch(container["name"]):
            problems.append(f"{at}.name: Invalid value: {container['name']!r}")
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in volumes:
                problems.append(f"{at}.volumeMounts.name: Not found: {mount['name']!r}")
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        try:
            for resource in set(requests) | set(limits):
                asked, capped = requests.get(resource), limits.get(resource)
                if resource == GPU and asked is not None and asked != capped:
                    problems.append(
                        f"{at}.resources.requests[{GPU}]: Invalid value: {asked!r}: must be "
                        "equal to nvidia.com/gpu limit"
                    )
                elif (
                    asked is not None and capped is not None and quantity(asked) > quantity(capped)
                ):
                    problems.append(
                        f"{at}.resources.requests: Invalid value: {asked!r}: must be less than "
                        f"or equal to {resource} limit of {capped}"
                    )
        except ValueError as error:
            problems.append(f"{at}.resources: Invalid value: {error}")
    return problems


def validate_job(job: dict[str, Any], strict: bool) -> None:
    name = str((job.get("metadata") or {}).get("name", ""))
    try:
        known = _official(job, "V1Job")
    except ValueError as error:
        raise invalid("Job", name, [str(error).replace("\n", " ")]) from None
    unknown = unknown_fields(job, known)
    if unknown and strict:
        raise ApiFailure(
            400,
            "BadRequest",
            "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in unknown),
        )
    problems = _metadata_problems(job, MAX_JOB_NAME)
    spec = job.get("spec") or {}
    template = spec.get("template") or {}
    problems += _label_problems(
        "spec.template.metadata.labels", (template.get("metadata") or {}).get("labels")
    )
    pod = template.get("spec") or {}
    problems += pod_problems("spec.template.spec", pod, {"Never", "OnFailure"})
    if spec.get("podFailurePolicy") and pod.get("restartPolicy") != "Never":
        problems.append(
            'spec.template.spec.restartPolicy: Invalid value: only "Never" is supported when '
            "podFailurePolicy is specified"
        )
    for key in ("activeDeadlineSeconds", "ttlSecondsAfterFinished", "backoffLimit"):
        if key in spec and spec[key] < (1 if key == "activeDeadlineSeconds" else 0):
            problems.append(f"spec.{key}: Invalid value: {spec[key]}")
    if problems:
        raise invalid("Job", name, problems)


def validate_pytorch_job(job: dict[str, Any], strict: bool) -> None:
    name = str((job.get("metadata") or {}).get("name", ""))
    spec = job.get("spec") or {}
    problems = _metadata_problems(job, MAX_LABEL)
    unknown = [
        f"spec.{key}"
        for key in spec
        if key not in {"runPolicy", "pytorchReplicaSpecs", "elasticPolicy", "nprocPerNode"}
    ]
    unknown += [
        f"spec.runPolicy.{key}"
        for key in spec.get("runPolicy") or {}
        if key not in RUN_POLICY_FIELDS
    ]
    replica_specs = spec.get("pytorchReplicaSpecs") or {}
    if "Master" not in replica_specs:
        problems.append("spec.pytorchReplicaSpecs: Required value: a Master replica")
    for replica_type, replica in replica_specs.items():
        where = f"spec.pytorchReplicaSpecs[{replica_type}]"
        if replica_type not in PYTORCH_REPLICA_TYPES:
            problems.append(f"{where}: Unsupported value: {replica_type!r}")
        unknown += [
            f"{where}.{key}"
            for key in replica
            if key not in {"replicas", "restartPolicy", "template"}
        ]
        if replica.get("restartPolicy") not in PYTORCH_RESTART_POLICIES:
            problems.append(
                f"{where}.restartPolicy: Unsupported value: {replica.get('restartPolicy')!r}"
            )
        if not isinstance(replica.get("replicas"), int) or replica["replicas"] < 1:
            problems.append(f"{where}.replicas: Invalid value: {replica.get('replicas')!r}")
        template = replica.get("template") or {}
        try:
            known = _official(template, "V1PodTemplateSpec")
        except ValueError as error:
            raise invalid(
                "PyTorchJob", name, [f"{where}.template: {error}".replace("\n", " ")]
            ) from None
        unknown += [f"{where}.template.{path}" for path in unknown_fields(template, known)]
        containers = [c["name"] for c in (template.get("spec") or {}).get("containers") or []]
        if "pytorch" not in containers:
            problems.append(
                f"{where}.template.spec.containers: Required value: a container named pytorch"
            )
        problems += pod_problems(
            f"{where}.template.spec", template.get("spec") or {}, {"Never", "OnFailure", "Always"}
        )
    if unknown and strict:
        raise ApiFailure(
            400,
            "BadRequest",
            "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown),
        )
    if problems:
        raise invalid("PyTorchJob", name, problems)


def _metadata_problems(job: dict[str, Any], max_name: int) -> list[str]:
    metadata = job.get("metadata") or {}
    name = metadata.get("name")
    problems = []
    if not name:
        problems.append("metadata.name: Required value: name or generateName is required")
    elif len(name) > max_name or not DNS_SUBDOMAIN.fullmatch(name):
        problems.append(
            f"metadata.name: Invalid value: {name!r}: must be no more than {max_name} "
            "characters of lower case letters, digits and '-'"
        )
    problems += _label_problems("metadata.labels", metadata.get("labels"))
    return problems


# -- label selectors and merge patches -----------------------------------------------------------


def matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- the server ---------------------------------------------------------------------------------


@dataclass
class FakeKubernetes:
    """The API server's state. `namespaces` maps each namespace to its GPU quota (None: no
    quota); `operator` says whether the PyTorchJob kind exists."""

    namespaces: dict[str, int | None]
    operator: bool = False
    url: str = ""
    ca_pem: str = ""
    tokens: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    objects: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    failures: list[ApiFailure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _version: int = 0

    # -- for tests --------------------------------------------------------------------------

    def stored(self, namespace: str, plural: tuple[str, str] = JOBS) -> dict[str, dict[str, Any]]:
        """The objects of one kind in `namespace`, by name (copies)."""
        with self.lock:
            return copy.deepcopy(self.objects.get((namespace, *plural), {}))

    def set_condition(
        self,
        namespace: str,
        name: str,
        condition: str,
        reason: str = "",
        message: str = "",
        plural: tuple[str, str] = JOBS,
    ) -> None:
        """Gives the object a status condition (`Failed`, `Complete`, `Running`...), as the
        Job controller (or the training operator) does."""
        with self.lock:
            job = self.objects[(namespace, *plural)][name]
            status = job.setdefault("status", {})
            status.setdefault("conditions", []).append(
                {
                    "type": condition,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": "2026-11-23T12:00:00Z",
                }
            )
            if condition in ("Failed", "Complete", "Succeeded"):
                status["active"] = 0

    def fail_next(self, code: int, reason: str, message: str, count: int = 1) -> None:
        """The next `count` requests are answered with this error."""
        with self.lock:
            self.failures += [ApiFailure(code, reason, message) for _ in range(count)]

    # -- the API ---------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((method, path))
            authorization = headers.get("Authorization") or ""
            if not authorization.startswith(BEARER) or not authorization[len(BEARER) :]:
                raise ApiFailure(401, "Unauthorized", "Unauthorized")
            self.tokens.append(authorization[len(BEARER) :])
            if self.failures:
                raise self.failures.pop(0)
            url = urllib.parse.urlsplit(path)
            query = dict(urllib.parse.parse_qsl(url.query))
            match = PATH.fullmatch(url.path)
            if match is None:
                raise ApiFailure(
                    404, "NotFound", "the server could not find the requested resource"
                )
            resource = (f"{match['group']}/{match['version']}", match["plural"])
            if resource not in KINDS or (resource == PYTORCH_JOBS and not self.operator):
                raise ApiFailure(
                    404, "NotFound", "the server could not find the requested resource"
                )
            namespace, name = match["namespace"], match["name"]
            if namespace not in self.namespaces:
                raise ApiFailure(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            store = self.objects.setdefault((namespace, *resource), {})
            if method == "POST" and name is None:
                return 201, self._create(namespace, resource, store, body, query)
            if method == "GET" and name is None:
                return 200, self._list(resource, store, query.get("labelSelector", ""))
            if name is None:
                raise ApiFailure(405, "MethodNotAllowed", f"{method} is not supported here")
            if name not in store:
                raise ApiFailure(
                    404,
                    "NotFound",
                    f'{QUALIFIED[resource]} "{name}" not found',
                    {"name": name, "kind": resource[1]},
                )
            if method == "GET":
                return 200, copy.deepcopy(store[name])
            if method == "PATCH":
                return 200, self._patch(store, name, headers, body)
            raise ApiFailure(405, "MethodNotAllowed", f"{method} is not supported here")

    def _create(
        self,
        namespace: str,
        resource: tuple[str, str],
        store: dict[str, dict[str, Any]],
        body: bytes,
        query: dict[str, str],
    ) -> dict[str, Any]:
        try:
            manifest = json.loads(body)
        except ValueError as error:
            raise ApiFailure(400, "BadRequest", f"the body is not JSON: {error}") from None
        kind = KINDS[resource]
        if (manifest.get("apiVersion"), manifest.get("kind")) != (resource[0], kind):
            raise ApiFailure(400, "BadRequest", f"the object is not a {resource[0]} {kind}")
        metadata = manifest.setdefault("metadata", {})
        if metadata.setdefault("namespace", namespace) != namespace:
            raise ApiFailure(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        strict = query.get("fieldValidation") == "Strict"
        if kind == "Job":
            validate_job(manifest, strict)
        else:
            validate_pytorch_job(manifest, strict)
        name = metadata["name"]
        if name in store:
            raise ApiFailure(
                409,
                "AlreadyExists",
                f'{QUALIFIED[resource]} "{name}" already exists',
                {"name": name, "kind": resource[1]},
            )
        self._check_quota(namespace, name, resource, manifest)
        self._version += 1
        metadata.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(self._version),
            generation=1,
            creationTimestamp="2026-11-23T11:00:00Z",
        )
        manifest["status"] = {}
        store[name] = manifest
        return copy.deepcopy(manifest)

    def _check_quota(
        self, namespace: str, name: str, resource: tuple[str, str], manifest: dict[str, Any]
    ) -> None:
        hard = self.namespaces[namespace]
        if hard is None:
            return
        requested = gpus(manifest)
        used = sum(
            gpus(job)
            for (ns, *_), jobs in self.objects.items()
            if ns == namespace
            for job in jobs.values()
            if active(job)
        )
        if used + requested > hard:
            raise ApiFailure(
                403,
                "Forbidden",
                f'{QUALIFIED[resource]} "{name}" is forbidden: exceeded quota: {QUOTA_NAME}, '
                f"requested: {QUOTA_RESOURCE}={requested}, used: {QUOTA_RESOURCE}={used}, "
                f"limited: {QUOTA_RESOURCE}={hard}",
                {"name": name, "kind": resource[1]},
            )

    def _list(
        self, resource: tuple[str, str], store: dict[str, dict[str, Any]], selector: str
    ) -> dict[str, Any]:
        items = []
        for name in sorted(store):
            item = copy.deepcopy(store[name])
            if matches(selector, item["metadata"].get("labels") or {}):
                # The items of a list carry no apiVersion and kind.
                item.pop("apiVersion", None)
                item.pop("kind", None)
                items.append(item)
        return {
            "apiVersion": resource[0],
            "kind": KINDS[resource] + "List",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _patch(
        self, store: dict[str, dict[str, Any]], name: str, headers: Any, body: bytes
    ) -> dict[str, Any]:
        if (headers.get("Content-Type") or "").split(";")[0] != MERGE_PATCH:
            raise ApiFailure(
                415, "UnsupportedMediaType", "the body of the request was in an unknown format"
            )
        patch = json.loads(body)
        if set(patch) - {"metadata"} or set(patch.get("metadata") or {}) - {
            "annotations",
            "labels",
        }:
            raise ApiFailure(
                422, "Invalid", "this fake patches metadata.annotations and labels only"
            )
        job = store[name]
        job["metadata"] = merge_patch(job["metadata"], patch["metadata"])
        self._version += 1
        job["metadata"]["resourceVersion"] = str(self._version)
        return copy.deepcopy(job)


def gpus(job: dict[str, Any]) -> int:
    """The GPUs a Job's or PyTorchJob's pods request together."""
    spec = job.get("spec") or {}
    if "template" in spec:
        templates = [(spec["template"], int(spec.get("parallelism", 1)))]
    else:
        templates = [
            (replica["template"], int(replica.get("replicas", 1)))
            for replica in (spec.get("pytorchReplicaSpecs") or {}).values()
        ]
    total = 0
    for template, count in templates:
        for container in (template.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            asked = (resources.get("requests") or {}).get(GPU) or (
                resources.get("limits") or {}
            ).get(GPU)
            total += int(quantity(asked)) * count if asked is not None else 0
    return total


def active(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return not any(
        c.get("type") in ("Complete", "Failed", "Succeeded") and c.get("status") == "True"
        for c in conditions
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            code, answer = self.server.fake.answer(self.command, self.path, self.headers, body)
        except ApiFailure as failure:
            code, answer = failure.code, failure.status()
        data = json.dumps(answer).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815 - the base's names

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeKubernetes


@contextmanager
def running(
    namespaces: dict[str, int | None],
    operator: bool = False,
    certificates: Certificates | None = None,
) -> Iterator[FakeKubernetes]:
    """A fake API server on 127.0.0.1 (HTTPS, a free port) for the block."""
    with tempfile.TemporaryDirectory(prefix="fake-kubernetes-") as folder:
        certificates = certificates or make_certificates(Path(folder))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.cert_file, certificates.key_file)
        server = _Server(("127.0.0.1", 0), _Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        fake = FakeKubernetes(dict(namespaces), operator=operator, ca_pem=certificates.ca_pem)
        fake.url = f"https://127.0.0.1:{server.server_address[1]}"
        server.fake = fake
        thread = threading.Thread(
            target=server.serve_forever,
            args=(POLL_INTERVAL_S,),
            name="fake-kubernetes",
            daemon=True,
        )
        thread.start()
        try:
            yield fake
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
