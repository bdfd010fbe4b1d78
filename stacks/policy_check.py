"""Run the policy rules (policy/mlops_rules) over an offline recording of a stack."""

from __future__ import annotations

from policy.mlops_rules import Report, Resource, StackView, evaluate
from stacks.offline import StackRecording


def stack_view(recording: StackRecording) -> StackView:
    """The recording as the rules see it (the same shape the CrossGuard pack builds)."""
    providers = {
        r.urn: r.inputs for r in recording.resources if r.type.startswith("pulumi:providers:")
    }
    return StackView(
        Resource(
            urn=r.urn,
            type=r.type,
            name=r.name,
            props=r.inputs,
            parent=r.parent,
            property_dependencies=r.property_dependencies,
            # A provider reference is "<provider URN>::<provider id>".
            provider_props=providers.get((r.provider or "").rsplit("::", 1)[0]),
            protect=r.protect,
            retain_on_delete=r.retain_on_delete,
        )
        for r in recording.resources
    )


def check(recording: StackRecording) -> Report:
    return evaluate(stack_view(recording))
