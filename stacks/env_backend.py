"""What `python -m stacks env` needs from a Pulumi backend, as an interface.

`stacks/automation.py` implements it with the Pulumi Automation API (the CLI and a backend:
Pulumi Cloud or a self-managed one). Everything above it (`stacks/env_commands.py`) decides
from these records alone, so those decisions are tested without the CLI.

An on-demand stack is recognised by its stack tags, which live in the backend and so are
seen from any checkout (CI reaps from a fresh clone): `on-demand-base`, `owner`,
`created-at` and `expires-at`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

TAG_BASE = "on-demand-base"
TAG_OWNER = "owner"
TAG_CREATED = "created-at"
TAG_EXPIRES = "expires-at"


@dataclass(frozen=True)
class StackInfo:
    name: str
    tags: Mapping[str, str]
    resource_count: int | None  # None: never deployed
    updating: bool
    last_update: datetime | None


@dataclass(frozen=True)
class UpdateEvent:
    """One engine event, reduced to what progress display needs."""

    kind: str  # "started", "done", "failed", "diagnostic"
    resource: str = ""  # type::name
    operation: str = ""  # create, update, delete, replace, same, ...
    message: str = ""
    severity: str = ""  # diagnostics: info, warning, error


Progress = Callable[[UpdateEvent], None]


class BackendError(Exception):
    """The Pulumi CLI or backend refused an operation; the message says which and why."""


class EnvBackend(Protocol):
    def organization(self) -> str:
        """The Pulumi organization StackReferences name the base stack with."""
        ...

    def stacks(self) -> list[StackInfo]:
        """Every stack of the project in the backend, with its tags."""
        ...

    def create(self, stack: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        """Create the stack, write its stack file from `config`, set its tags."""
        ...

    def has_config(self, stack: str) -> bool:
        """Whether this checkout holds the stack's stack file."""
        ...

    def write_config(self, stack: str, config: Mapping[str, Any]) -> None: ...

    def read_config(self, stack: str) -> dict[str, Any]: ...

    def set_tags(self, stack: str, tags: Mapping[str, str]) -> None: ...

    def up(self, stack: str, progress: Progress) -> dict[str, int]:
        """Deploy; returns the operation counts (create, update, same, ...)."""
        ...

    def destroy(self, stack: str, progress: Progress) -> list[str]:
        """Destroy every resource; returns those left in AWS (retain_on_delete), as URNs."""
        ...

    def remove(self, stack: str) -> None:
        """Delete the (empty) stack and its stack file."""
        ...
