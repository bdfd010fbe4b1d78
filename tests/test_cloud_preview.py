"""With the Pulumi CLI and an AWS account: the engine plans exactly what the harness records."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import recorded

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.cloud
@pytest.mark.parametrize("stack", ["dev"])
def test_engine_preview_matches_offline_recording(stack: str) -> None:
    from pulumi import automation as auto

    planned: set[tuple[str, str]] = set()

    def on_event(event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            metadata = event.resource_pre_event.metadata
            planned.add((metadata.type, metadata.urn.rsplit("::", 1)[-1]))

    workspace_stack = auto.create_or_select_stack(stack_name=stack, work_dir=str(ROOT))
    workspace_stack.preview(on_event=on_event)
    offline = {(r.type, r.name) for r in recorded(stack).resources}
    engine_only = {p for p in planned if p[0] not in ("pulumi:pulumi:Stack",)} - offline
    assert offline - planned == set()
    assert {p for p in engine_only if not p[0].startswith("pulumi:providers:")} == set()
