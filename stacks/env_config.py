"""An on-demand environment's config, derived from its base stack file.

`derive(request, base_config, ...)` copies the base stack's config and changes what makes a
copy cheap, fast and disposable:

- the VPC, the training cluster and the MLflow tracking server are the base environment's,
  read through StackReferences (`network.shared_stack`, `cluster.mode: shared`,
  `registry.mlflow.mode: shared`): nothing that takes minutes to create is created;
- schedules are disabled, endpoints are serverless (or off), drift retraining is off;
- nothing is protected or retained and buckets are emptied on destroy, so it goes away whole;
- `owner` is the person who asked for it and `on_demand` records its base and expiry
  (tags on every resource).

`--set key=value` overrides come last; the result is validated like any stack file. Every
refusal (a prod or on-demand base, a taken name, a name too long for AWS's limits, a bad
override) is an `EnvError` whose message names the argument, and nothing is created.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import yaml

from stacks.env_names import EnvNameError, longest_name, name_problems, stack_name
from stacks.lifetime import expiry
from stacks.loader import SettingsError, settings_from_config, shown, stack_file
from stacks.on_demand_settings import tag_time
from stacks.settings import PROJECT, Settings

Endpoints = Literal["serverless", "off"]


class EnvError(Exception):
    """A request for an on-demand environment that cannot be met; the message is for users."""


@dataclass(frozen=True)
class EnvRequest:
    name: str
    base: str
    owner: str
    ttl: timedelta
    # Pulumi organization of the base stack: StackReferences name `<org>/<project>/<stack>`.
    organization: str
    overrides: tuple[str, ...] = ()
    endpoints: Endpoints = "serverless"


@dataclass(frozen=True)
class DerivedEnv:
    stack: str
    config: dict[str, Any]
    settings: Settings
    changes: list[str] = field(default_factory=list)  # what differs from the base, for users


def derive(
    request: EnvRequest,
    base_config: Mapping[str, Any],
    now: datetime,
    existing_stacks: Iterable[str] = (),
) -> DerivedEnv:
    try:
        stack = stack_name(request.base, request.name)
    except EnvNameError as exc:
        raise EnvError(str(exc)) from None
    base_settings = _base_settings(request.base, base_config)
    if stack in set(existing_stacks):
        raise EnvError(f"name {request.name!r}: stack {stack!r} already exists; pick another name")
    config = copy.deepcopy(dict(base_config))
    changes = _make_disposable(config, request, base_settings, tag_time(expiry(now, request.ttl)))
    for text in request.overrides:
        changes.append(apply_override(config, text))
    source = f"{shown(stack_file(stack))} (derived from {shown(stack_file(request.base))})"
    try:
        settings = settings_from_config(config, source=source)
    except SettingsError as exc:
        raise EnvError(str(exc)) from None
    problems = name_problems(stack, settings)
    if problems:
        longest = longest_name(request.base, settings)
        listing = "\n".join(f"  - {p}" for p in problems)
        raise EnvError(
            f"name {request.name!r} makes names AWS refuses:\n{listing}\n"
            f"names from {request.base!r} may have at most {longest} characters"
        )
    return DerivedEnv(stack=stack, config=config, settings=settings, changes=changes)


def _base_settings(base: str, base_config: Mapping[str, Any]) -> Settings:
    try:
        settings = settings_from_config(base_config, source=shown(stack_file(base)))
    except SettingsError as exc:
        raise EnvError(f"--from {base}: the base stack file is invalid:\n{exc}") from None
    if settings.on_demand is not None:
        raise EnvError(
            f"--from {base}: an on-demand environment cannot be a base; "
            f"use the stack it was copied from ({settings.on_demand.base})"
        )
    if settings.environment == "prod" or base == "prod":
        raise EnvError(
            f"--from {base}: on-demand environments copy dev or test, never prod "
            "(prod data and approvals stay in prod)"
        )
    return settings


def _make_disposable(
    config: dict[str, Any], request: EnvRequest, base: Settings, expires_at: str
) -> list[str]:
    def key(name: str) -> str:
        return f"{PROJECT}:{name}"

    reference = f"{request.organization}/{PROJECT}/{request.base}"
    changes = []
    config[key("owner")] = request.owner
    config[key("on_demand")] = {"base": request.base, "expires_at": expires_at}
    config[key("protection")] = {"protect": False, "retain_on_delete": False}
    config[key("artifact_store")] = {**config[key("artifact_store")], "force_destroy": True}
    changes.append(f"owner {request.owner}, expires {expires_at}; nothing protected or retained")

    network = {
        k: v for k, v in config[key("network")].items() if k not in ("existing_vpc", "nat_gateways")
    }
    config[key("network")] = {**network, "shared_stack": reference}
    changes.append(f"VPC: {reference}'s")

    mlflow = base.registry.mlflow
    shared_mlflow = mlflow.shared_stack if mlflow.mode == "shared" else reference
    registry = dict(config.get(key("registry")) or {})
    registry["mlflow"] = {"mode": "shared", "shared_stack": shared_mlflow}
    config[key("registry")] = registry
    changes.append(f"MLflow tracking server: {shared_mlflow}'s")

    cluster = base.cluster
    if cluster.mode != "disabled":
        owner = cluster.shared_stack if cluster.mode == "shared" else reference
        teams = (config.get(key("cluster")) or {}).get("teams", {})
        config[key("cluster")] = {"mode": "shared", "shared_stack": owner, "teams": teams}
        changes.append(f"training cluster: {owner}'s (team namespaces only)")

    models = copy.deepcopy(config.get(key("models")) or {})
    for name, model in models.items():
        if model.get("schedule"):
            model["schedule"] = {**model["schedule"], "enabled": False}
            changes.append(f"models.{name}: schedule disabled")
        if model.get("deployment") is not None:
            model["deployment"] = _endpoint(model["deployment"], request.endpoints)
            changes.append(f"models.{name}: endpoint {request.endpoints}")
    if models:
        config[key("models")] = models
    return changes


def _endpoint(deployment: Mapping[str, Any], endpoints: Endpoints) -> dict[str, Any] | None:
    if endpoints == "off":
        return None
    # A copy: `--set` may change it. An instance endpoint gets ServerlessSettings' defaults.
    serverless = dict(deployment.get("serverless") or {})
    kept = {k: deployment[k] for k in ("latency_p99_ms",) if k in deployment}
    return {**kept, "serverless": serverless}


def apply_override(config: dict[str, Any], text: str) -> str:
    """`--set models.digits.training.instance_type=ml.g5.2xlarge`: set one (nested) key.

    The key is a project key path (or `aws:<key>`); the value is read as YAML, so numbers,
    booleans, lists and `null` (remove the key) are written as in a stack file.
    """
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise EnvError(f"--set {text!r}: write key=value (models.digits.auto_approve=false)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise EnvError(f"--set {text!r}: the value is not valid YAML: {exc}") from None
    full = path.strip()
    if ":" not in full.split(".", 1)[0]:
        full = f"{PROJECT}:{full}"
    head, *rest = full.split(".")
    if head == f"{PROJECT}:on_demand":
        raise EnvError(f"--set {text!r}: on_demand is set by env create and env extend")
    target: dict[str, Any] = config
    parts = [head, *rest]
    for depth, part in enumerate(parts[:-1]):
        child = target.get(part)
        if child is None:
            child = target[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise EnvError(f"--set {text!r}: {where} is not a mapping; it holds {child!r}")
        target = child
    if value is None:
        target.pop(parts[-1], None)
    else:
        target[parts[-1]] = value
    return f"--set {full}={raw}"
