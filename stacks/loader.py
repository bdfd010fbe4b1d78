"""Turn a stack's config (from the Pulumi engine or straight from its stack file) into Settings.

Every problem becomes one `SettingsError` whose message names the stack file, each bad key
as it is written in that file (`mlops-platform:network.az_count`, `aws:region`) and what is
allowed; callers print it and stop, never a traceback.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from stacks.settings import PROJECT, Settings
from stacks.settings_base import InvalidKeys

STACKS_DIR = Path(__file__).resolve().parent
# `aws:` keys the program reads, by their name in the stack file -> field of AwsSettings.
AWS_KEYS = {"region": "region", "allowedAccountIds": "allowed_account_ids"}
# Namespaces a stack file may hold besides the project's own. Other `aws:` keys (profile,
# skipCredentialsValidation, ...) configure the provider for the person running Pulumi.
PASS_THROUGH_NAMESPACES = ("aws", "pulumi")


class SettingsError(Exception):
    """Invalid stack settings; the message is complete and meant for the user."""


def stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    """The stack file of a stack name; a path given where a name belongs is refused, with
    the name it points at."""
    if "/" in stack or stack.endswith((".yaml", ".yml")):
        match = re.fullmatch(r"Pulumi\.(.+)\.ya?ml", Path(stack).name)
        hint = f"; name the stack: {match.group(1)}" if match else ""
        raise SettingsError(f"{stack!r} is a path, not a stack name{hint}")
    return stacks_dir / f"Pulumi.{stack}.yaml"


def shown(path: Path) -> str:
    """A path as messages show it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def committed_stacks(stacks_dir: Path = STACKS_DIR) -> list[str]:
    """Long-lived stacks (those with a committed stack file), sorted. Their names have no
    '-': a `<base>-<name>` file is an on-demand environment's, written by `env create` and
    git-ignored."""
    names = (p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))
    return sorted(name for name in names if "-" not in name)


class DuplicateKey(ValueError):
    """A mapping names a key twice; YAML keeps the last silently, Pulumi's parser refuses."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKey(f"key {key!r} appears twice, on lines {seen[key]} and {line}")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_stack_config(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file, as YAML gives it."""
    if not path.is_file():
        known = ", ".join(committed_stacks(path.parent)) or "none"
        raise SettingsError(f"{shown(path)}: no such stack file (stacks with a file: {known})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{shown(path)}: not UTF-8 text: {exc}") from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except DuplicateKey as exc:
        raise SettingsError(f"{shown(path)}: {exc} (Pulumi refuses duplicate keys)") from None
    except RecursionError:
        raise SettingsError(f"{shown(path)}: not valid YAML: nested too deeply") from None
    except Exception as exc:
        # yaml.YAMLError, and whatever PyYAML's constructors let through on a malformed
        # scalar: ValueError (`2001-13-01`, `!!int x`), IndexError (`!!int` with no digits), ...
        raise SettingsError(
            f"{shown(path)}: not valid YAML: {str(exc) or type(exc).__name__}"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise SettingsError(
            f"{shown(path)}: expected a mapping with a 'config:' mapping at the top"
        )
    config: dict[str, Any] = document["config"]
    return config


def load_stack_settings(stack: str, stacks_dir: Path = STACKS_DIR) -> Settings:
    path = stack_file(stack, stacks_dir)
    return settings_from_config(read_stack_config(path), source=shown(path))


def settings_from_config(config: Mapping[Any, Any], source: str) -> Settings:
    """Validate a stack's config map (`namespace:key` -> value) into Settings.

    Values may be native (read from YAML) or strings the engine passes (objects as JSON).
    """
    raw: dict[str, Any] = {"aws": {}}
    problems: list[str] = []
    for full_key, value in config.items():
        namespace, sep, key = str(full_key).partition(":")
        if not sep or not key:
            problems.append(f"{full_key}: config keys are written 'namespace:key'")
        elif namespace == PROJECT and key == "aws":
            # Would replace the provider keys collected under `aws` below.
            problems.append(
                f"{full_key}: unknown key; {_allowed_keys((key,))}; "
                f"the provider's keys are written aws:{', aws:'.join(AWS_KEYS)}"
            )
        elif namespace == PROJECT:
            raw[key] = _decode(value)
        elif namespace == "aws":
            if key in AWS_KEYS:
                raw["aws"][AWS_KEYS[key]] = _decode(value)
        elif namespace not in PASS_THROUGH_NAMESPACES:
            allowed = ", ".join((PROJECT, *PASS_THROUGH_NAMESPACES))
            problems.append(f"{full_key}: unknown namespace {namespace!r}; use one of {allowed}")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems.extend(line for error in exc.errors() for line in _describe(error))
        settings = None
    if problems:
        listing = "\n".join(f"  - {line}" for line in problems)
        raise SettingsError(f"{source}: invalid settings:\n{listing}")
    assert settings is not None
    return settings


def _decode(value: Any) -> Any:
    """Objects and lists arrive from the engine as JSON text; YAML gives them natively."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def _describe(error: Any) -> list[str]:
    """One line per problem: a cross-field check may find several, each at its own key."""
    loc = tuple(error["loc"])
    invalid = (error.get("ctx") or {}).get("error")
    if isinstance(invalid, InvalidKeys):
        return [
            f"{_key_name(loc + tuple(path.split('.')))}: {message}"
            for path, message in invalid.problems
        ]
    key = _key_name(loc)
    if error["type"] == "extra_forbidden":
        return [f"{key}: unknown key; {_allowed_keys(loc)}"]
    if error["type"] == "missing":
        return [f"{key}: required key is missing"]
    message = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    if isinstance(given, (str, int, float, bool)) and str(given) not in message:
        message += f" (got {given!r})"
    return [f"{key}: {message}"]


def _key_name(loc: tuple[Any, ...]) -> str:
    """The key as written in the stack file: `aws:region`, `mlops-platform:network.cidr`."""
    if not loc:
        return f"{PROJECT}:<settings>"
    head, *rest = loc
    if head == "aws":
        aws_names = {field: name for name, field in AWS_KEYS.items()}
        head_name = f"aws:{aws_names.get(rest[0], rest[0])}" if rest else "aws:region"
        rest = rest[1:]
    else:
        head_name = f"{PROJECT}:{head}"
    text = head_name
    for i, part in enumerate(rest):
        # An int followed by "[key]" is a mapping key that YAML read as a number, not an index.
        if isinstance(part, int) and rest[i + 1 : i + 2] != ["[key]"]:
            text += f"[{part}]"
        elif part == "[key]":
            text += " (the key itself)"
        else:
            text += f".{part}"
    return text


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "this mapping takes no such key"
    names = [name for name in model.model_fields if not (model is Settings and name == "aws")]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"allowed keys: {', '.join(names)}{hint}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings model that validates the mapping found at `loc`."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        found = _model_in(field.annotation)
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for member in typing.get_args(annotation):
            found = _model_in(member)
            if found is not None:
                return found
    return None
