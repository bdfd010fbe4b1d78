"""Names of on-demand environments: `<base>-<name>` stacks whose resource names still fit.

The stack name is part of every physical name (`mlops-<stack>-...`), and AWS caps many of
them: buckets at 63 characters (with the account and region in them), roles and Lambdas at
64, feature groups at 64, endpoints at 63. `name_problems` asks the same naming code the
program uses for each name this environment would create, so the refusal happens before
anything is created, and names the limit that was hit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from components.artifact_store import ACCESS_LOGS, DATA_BUCKETS
from components.aws_context import AwsContext
from components.naming import InvalidName, Names
from stacks.settings import Settings

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
MAX_ENDPOINT_NAME = 63  # SageMaker endpoint (and endpoint config) names


class EnvNameError(ValueError):
    """An on-demand environment name that cannot be used; the message is for the user."""


def stack_name(base: str, name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise EnvNameError(
            f"name {name!r}: use lowercase letters and digits joined by '-', starting with a "
            "letter (alice, exp-42)"
        )
    return f"{base}-{name}"


def name_problems(stack: str, settings: Settings) -> list[str]:
    """Every physical name of this environment that breaks an AWS limit, as messages."""
    context = AwsContext(account_id=settings.aws.account_id, region=settings.aws.region)
    try:
        names = Names(stack=stack, context=context)
    except InvalidName as exc:
        return [str(exc)]
    # (naming function, its argument) for every limited name the environment creates.
    checks: list[tuple[Callable[[str], str], str]] = [
        (names.bucket, purpose) for purpose in (*DATA_BUCKETS, ACCESS_LOGS)
    ]
    checks.append((names.event_rule, "failed-executions"))
    for model, model_settings in settings.models.items():
        checks += [(names.feature_group, model), (names.model_package_group, model)]
        deployment = model_settings.deployment
        if deployment is not None:
            checks += [
                (names.event_rule, f"{model}-approved"),
                (functools.partial(_endpoint, names), model),
            ]
            if deployment.retrain_on_drift:
                checks += [
                    (names.function, f"{model}-retrain"),
                    (names.event_rule, f"{model}-drift"),
                ]
    for team in settings.cluster.teams:
        checks.append((names.team_role, team))
        if settings.cluster.mode == "shared":
            checks.append((names.shared_namespace, team))
    problems = []
    for name_of, argument in checks:
        try:
            name_of(argument)
        except InvalidName as exc:
            problems.append(str(exc))
    return problems


def _endpoint(names: Names, model: str) -> str:
    # The deployment pipeline names the endpoint mlops-<stack>-<model> (pipelines/deployment.py).
    name = f"{names.base}-{model}"
    if len(name) > MAX_ENDPOINT_NAME:
        raise InvalidName(
            f"endpoint name {name!r} is {len(name)} characters, over the limit of "
            f"{MAX_ENDPOINT_NAME}; use a shorter stack name than {names.stack!r}"
        )
    return name


def longest_name(base: str, settings: Settings) -> int:
    """The longest environment name whose names all fit (0: none does)."""
    longest = 0
    for length in range(1, 64):
        if name_problems(stack_name(base, "a" * length), settings):
            break
        longest = length
    return longest
