"""A minimal Kubernetes API client for the launcher Lambda: the standard library's urllib and
ssl, and botocore (in every Lambda Python runtime) for the EKS token.

Why not the official client: the launcher needs five calls (create, get, list, patch
annotations, and the token), and the official client with its dependencies would be most of
the Lambda's package and cold start.

- Authentication: the bearer token `aws eks get-token` prints (awscli's
  customizations/eks/get_token.py, aws-iam-authenticator's format): `k8s-aws-v1.` and the
  base64url (no padding) of a presigned STS GetCallerIdentity URL in the Lambda's region,
  valid 60 s, with the header `x-k8s-aws-id: <cluster name>` signed in. EKS's authenticator
  calls STS with it and maps the Lambda's role through its access entry. The URL is only
  signed here, locally: nothing calls STS from the Lambda.
- TLS: verified against the cluster's CA (the base64 PEM `certificateAuthority.data`), the
  host name included; no proxy is ever used (the endpoint is private to the VPC).
- Errors: KubernetesError with the HTTP status and the API's Status reason and message
  (`exceeded quota: team-quota, ...`, `jobs.batch "x" already exists`), and whether trying
  again later can help (`retryable`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.environment_variables import (
    MLOPS_CLUSTER_CA,
    MLOPS_CLUSTER_ENDPOINT,
    MLOPS_CLUSTER_NAME,
)

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the format's prefix, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# As awscli's get-token: the presigned URL is valid 60 s; a token is made for every request.
TOKEN_URL_EXPIRY_S = 60
REQUEST_TIMEOUT_S = 15.0
# The plural (URL) name of each kind the launcher handles.
PLURALS = {
    ("batch/v1", "Job"): "jobs",
    ("kubeflow.org/v1", "PyTorchJob"): "pytorchjobs",
}
# Statuses after which the same request may succeed later: none came (no answer), a timeout,
# throttling, the server's own trouble. Every other refusal (400 bad request, 401 no access,
# 403 forbidden or over quota, 404 no namespace, 409 exists, 422 invalid) stays as it is.
RETRYABLE_STATUSES = frozenset({408, 429})
SERVER_ERRORS = 500
# A wrong CA is a configuration error: answering "try again" would only delay the failure.
CERTIFICATE_REJECTED = "CertificateRejected"

TokenProvider = Callable[[], str]


class KubernetesError(Exception):
    """The API refused a request, or did not answer (`status` None)."""

    def __init__(self, status: int | None, reason: str, message: str) -> None:
        super().__init__(f"{status or 'no answer'} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (no answer, a timeout, throttling, a
        server error); False for a refusal the request itself caused."""
        if self.status is None:
            return self.reason != CERTIFICATE_REJECTED
        return self.status in RETRYABLE_STATUSES or self.status >= SERVER_ERRORS

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"


def eks_token_provider(cluster_name: str, region: str, session: Any = None) -> TokenProvider:
    """A function returning a fresh EKS bearer token for `cluster_name`, signed with the
    credentials of `session` (a botocore session; the default one when None) in `region`."""
    import botocore.session  # type: ignore[import-untyped]

    session = session or botocore.session.get_session()
    sts = session.create_client("sts", region_name=region)

    # awscli's way: the cluster name travels as a parameter the API model does not know,
    # taken out before validation and put into the request as a header before signing.
    def keep_cluster_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if CLUSTER_ID_HEADER in params:
            context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)

    def add_cluster_header(request: Any, **_: Any) -> None:
        if CLUSTER_ID_HEADER in request.context:
            request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", keep_cluster_id)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)

    def token() -> str:
        url: str = sts.generate_presigned_url(
            "get_caller_identity",
            Params={CLUSTER_ID_HEADER: cluster_name},
            ExpiresIn=TOKEN_URL_EXPIRY_S,
            HttpMethod="GET",
        )
        encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
        return TOKEN_PREFIX + encoded

    return token


def ca_pem(ca_data: str) -> str:
    """The PEM text of EKS's `certificateAuthority.data` (base64 of the PEM); PEM text itself
    is taken as it is."""
    if "-----BEGIN" in ca_data:
        return ca_data
    try:
        return base64.b64decode(ca_data, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError(f"the cluster CA is neither PEM nor base64 PEM: {error}") from None


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The URL path of a namespaced object (or of its collection, without `name`)."""
    plural = PLURALS.get((api_version, kind))
    if plural is None:
        known = ", ".join(f"{a} {k}" for a, k in PLURALS)
        raise ValueError(f"no URL known for {api_version} {kind} (known: {known})")
    root = "/apis" if "/" in api_version else "/api"
    path = f"{root}/{api_version}/namespaces/{_segment(namespace)}/{plural}"
    return f"{path}/{_segment(name)}" if name is not None else path


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class KubernetesClient:
    """The calls the launcher makes, on namespaced objects of the kinds in PLURALS."""

    def __init__(
        self,
        base_url: str,
        token: TokenProvider,
        ca_data: str | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        if not base_url.startswith("https://"):
            raise ValueError(f"the cluster endpoint {base_url!r} is not an https:// URL")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        context = ssl.create_default_context(cadata=ca_pem(ca_data) if ca_data else None)
        # Never a proxy: the endpoint is private to the VPC, and a proxy from the environment
        # would see the token.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

    @classmethod
    def from_environment(cls, region: str) -> KubernetesClient:
        """The cluster of MLOPS_CLUSTER_NAME / _ENDPOINT / _CA, with EKS tokens for `region`."""
        name, endpoint = MLOPS_CLUSTER_NAME.get(), MLOPS_CLUSTER_ENDPOINT.get()
        if name is None or endpoint is None:
            unset = [v.name for v in (MLOPS_CLUSTER_NAME, MLOPS_CLUSTER_ENDPOINT) if not v.get()]
            raise RuntimeError(f"{', '.join(unset)} not set")
        return cls(endpoint, eks_token_provider(name, region), MLOPS_CLUSTER_CA.get())

    # -- the calls ------------------------------------------------------------------------

    def create(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Creates `manifest` in `namespace` (its apiVersion and kind choose the URL). Unknown
        fields are refused (fieldValidation=Strict), not silently dropped."""
        path = resource_path(manifest["apiVersion"], manifest["kind"], namespace)
        return self._call("POST", path, {"fieldValidation": "Strict"}, manifest)

    def get(self, namespace: str, api_version: str, kind: str, name: str) -> dict[str, Any]:
        return self._call("GET", resource_path(api_version, kind, namespace, name))

    def list_objects(
        self, namespace: str, api_version: str, kind: str, label_selector: str
    ) -> list[dict[str, Any]]:
        """The objects of `kind` in `namespace` with the labels of `label_selector`
        (`key=value,...`), each with its apiVersion and kind (a list's items lack them)."""
        path = resource_path(api_version, kind, namespace)
        items: list[dict[str, Any]] = []
        query = {"labelSelector": label_selector, "limit": "500"}
        while True:
            page = self._call("GET", path, query)
            for item in page.get("items") or []:
                items.append({"apiVersion": api_version, "kind": kind, **item})
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items
            query = {**query, "continue": cont}

    def patch_annotations(
        self, namespace: str, api_version: str, kind: str, name: str, annotations: dict[str, str]
    ) -> dict[str, Any]:
        """Sets `annotations` on the object (a JSON merge patch: the others stay)."""
        path = resource_path(api_version, kind, namespace, name)
        body = {"metadata": {"annotations": annotations}}
        return self._call("PATCH", path, None, body, "application/merge-patch+json")

    # -- HTTP -----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - https only
        request.add_header("Authorization", f"Bearer {self.token()}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                text = answer.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            raise _refusal(error) from None
        except urllib.error.URLError as error:
            raise _no_answer(method, path, error.reason) from None
        except (TimeoutError, ConnectionError, ssl.SSLError) as error:
            raise _no_answer(method, path, error) from None
        result: dict[str, Any] = json.loads(text) if text else {}
        return result


def _refusal(error: urllib.error.HTTPError) -> KubernetesError:
    """The API's Status (reason and message) from an error answer, else the HTTP reason."""
    try:
        text = error.read().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    try:
        status = json.loads(text)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return KubernetesError(
            error.code,
            str(status.get("reason") or error.reason),
            str(status.get("message") or text),
        )
    return KubernetesError(error.code, str(error.reason), text.strip()[:500] or str(error.reason))


def _no_answer(method: str, path: str, cause: object) -> KubernetesError:
    if isinstance(cause, ssl.SSLCertVerificationError):
        return KubernetesError(
            None,
            CERTIFICATE_REJECTED,
            f"the cluster's certificate does not verify against MLOPS_CLUSTER_CA: {cause}",
        )
    return KubernetesError(None, "Unreachable", f"{method} {path}: {cause}")
