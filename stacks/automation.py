"""The Pulumi Automation API behind `python -m stacks env`: every call to the Pulumi CLI and
backend is in this module (tests marked `cloud` exercise it; the rest is tested offline).

The workspace is this repository (Pulumi.yaml, `stackConfigDir: stacks`), so an on-demand
stack runs exactly the program and policy the long-lived ones run, and its stack file is
`stacks/Pulumi.<stack>.yaml` next to theirs (git-ignored: `<base>-<name>` files).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pulumi import automation as auto

from stacks.env_backend import BackendError, Progress, StackInfo, UpdateEvent
from stacks.loader import STACKS_DIR, stack_file

ROOT = STACKS_DIR.parent
# Self-managed backends name every stack's organization this way in StackReferences.
DIY_ORGANIZATION = "organization"
DIY_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "postgres://")
T = TypeVar("T")


class PulumiBackend:
    """EnvBackend on the Pulumi CLI: the backend it is logged in to, this repository's
    program, the policy pack in `policy/` on every update."""

    def __init__(self, root: Path = ROOT, policy_pack: Path | None = None) -> None:
        self.root = root
        self.policy_pack = policy_pack or root / "policy"

    @functools.cached_property
    def workspace(self) -> auto.LocalWorkspace:
        return _checked(lambda: auto.LocalWorkspace(work_dir=str(self.root)), "open workspace")

    def organization(self) -> str:
        """The organization StackReferences name: the Cloud user's, or the DIY constant."""
        who = _checked(self.workspace.who_am_i, "pulumi whoami")
        if who.url is None or who.url.startswith(DIY_SCHEMES):
            return DIY_ORGANIZATION
        return who.user

    def stacks(self) -> list[StackInfo]:
        found = []
        for summary in _checked(self.workspace.list_stacks, "pulumi stack ls"):
            name = summary.name.rsplit("/", 1)[-1]
            found.append(
                StackInfo(
                    name=name,
                    tags=self._tags(summary.name),
                    resource_count=summary.resource_count,
                    updating=bool(summary.update_in_progress),
                    last_update=summary.last_update,
                )
            )
        return found

    def create(self, stack: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        _checked(lambda: self.workspace.create_stack(stack), f"pulumi stack init {stack}")
        self.write_config(stack, config)
        self.set_tags(stack, tags)

    def has_config(self, stack: str) -> bool:
        return self._stack_file(stack).is_file()

    def read_config(self, stack: str) -> dict[str, Any]:
        config: dict[str, Any] = self._stack_document(stack).get("config") or {}
        return config

    def write_config(self, stack: str, config: Mapping[str, Any]) -> None:
        # Keep what `pulumi stack init` wrote (secrets provider, encryption salt or key).
        document = {**self._stack_document(stack), "config": dict(config)}
        header = (
            "# An on-demand environment, written by `python -m stacks env create` (README,\n"
            "# On-demand environments); `env extend` rewrites mlops-platform:on_demand.\n"
        )
        text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
        self._stack_file(stack).write_text(header + text, encoding="utf-8")

    def set_tags(self, stack: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            with _failures(f"pulumi stack tag set {key} -s {stack}"):
                self.workspace.set_tag(stack, key, value)

    def _tags(self, stack: str) -> dict[str, str]:
        with _failures(f"pulumi stack tag ls -s {stack}"):
            return dict(self.workspace.list_tags(stack))

    def up(self, stack: str, progress: Progress) -> dict[str, int]:
        selected = self._select(stack)
        with _failures(f"pulumi up {stack}"):
            result = selected.up(
                on_event=_events(progress), policy_packs=[str(self.policy_pack)], color="never"
            )
        changes = result.summary.resource_changes or {}
        return {str(getattr(op, "value", op)): count for op, count in changes.items()}

    def destroy(self, stack: str, progress: Progress) -> list[str]:
        selected = self._select(stack)
        with _failures(f"pulumi stack export {stack}"):
            resources = (selected.export_stack().deployment or {}).get("resources") or []
        retained = [r["urn"] for r in resources if r.get("custom") and r.get("retainOnDelete")]
        with _failures(f"pulumi destroy {stack}"):
            selected.destroy(on_event=_events(progress), color="never")
        return retained

    def remove(self, stack: str) -> None:
        _checked(lambda: self.workspace.remove_stack(stack), f"pulumi stack rm {stack}")
        self._stack_file(stack).unlink(missing_ok=True)

    def _select(self, stack: str) -> auto.Stack:
        return _checked(
            lambda: auto.Stack.select(stack, self.workspace), f"pulumi stack select {stack}"
        )

    def _stack_file(self, stack: str) -> Path:
        return stack_file(stack, self.root / STACKS_DIR.name)

    def _stack_document(self, stack: str) -> dict[str, Any]:
        path = self._stack_file(stack)
        if not path.is_file():
            return {}
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return document if isinstance(document, dict) else {}


def _checked(call: Callable[[], T], what: str) -> T:
    with _failures(what):
        return call()


@contextmanager
def _failures(what: str) -> Iterator[None]:
    """CLI failures as one BackendError naming the command and the CLI's own words."""
    try:
        yield
    except auto.CommandError as exc:
        detail = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
        raise BackendError(f"{what} failed: {' / '.join(detail[-3:]) or exc}") from None
    except FileNotFoundError as exc:
        raise BackendError(f"{what}: the Pulumi CLI is not installed ({exc})") from None


def _events(progress: Progress) -> Callable[[auto.EngineEvent], None]:
    def on_event(event: auto.EngineEvent) -> None:
        for kind, step in (
            ("started", event.resource_pre_event),
            ("done", event.res_outputs_event),
            ("failed", event.res_op_failed_event),
        ):
            if step is not None:
                meta = step.metadata
                name = meta.urn.rsplit("::", 1)[-1]
                progress(UpdateEvent(kind, f"{meta.type}::{name}", str(meta.op.value)))
        diagnostic = event.diagnostic_event
        if diagnostic is not None and diagnostic.severity in ("warning", "error"):
            progress(
                UpdateEvent(
                    "diagnostic", message=diagnostic.message.strip(), severity=diagnostic.severity
                )
            )

    return on_event
