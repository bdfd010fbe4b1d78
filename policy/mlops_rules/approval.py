"""Rule A5 registration-pending: outside dev, no execution can put a model into approval
past the gate or approve it itself.

Anyone allowed to start a pipeline execution sets its Parameters. If the gate's threshold or
the approval status is a Parameter, or the registering role may create packages in any
status, a run with `QualityThreshold=0` and `ModelApprovalStatus=Approved` registers an
approved model that never passed the gate. So outside dev the definitions carry neither
Parameter, register as PendingManualApproval literally, and the roles that may
CreateModelPackage are denied any other status (sagemaker:ModelApprovalStatus, Service
Authorization Reference).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .iam import identity_documents
from .iam_eval import Request, allows
from .model import StackView, statements_of
from .pipeline_definitions import PIPELINE, load
from .registry import Finding, rule

PENDING = "PendingManualApproval"
RUN_TIME_GATE = ("QualityThreshold", "ModelApprovalStatus")
CREATE_PACKAGE = "sagemaker:CreateModelPackage"


def _approval_values(value: Any) -> Iterator[Any]:
    """Every ModelApprovalStatus a definition's steps set, at any depth."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key == "ModelApprovalStatus":
                yield inner
            else:
                yield from _approval_values(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _approval_values(inner)


def _definition_findings(view: StackView) -> Iterator[Finding]:
    for pipeline in view.of_type(PIPELINE):
        definition = load(pipeline)
        if definition is None:
            continue  # unknown during a preview
        names = {p.get("Name") for p in definition.get("Parameters") or []}
        for parameter in RUN_TIME_GATE:
            if parameter in names:
                yield (
                    pipeline,
                    f"Parameter {parameter} lets a run change the gate or the approval "
                    "outside dev; fix it in the definition",
                )
        for status in _approval_values(definition.get("Steps")):
            if status != PENDING:
                yield pipeline, f"registers with ModelApprovalStatus {status!r}, not {PENDING}"


def _role_findings(view: StackView) -> Iterator[Finding]:
    for holder, document in identity_documents(view):
        statements = statements_of(document)
        if not isinstance(document, dict) or not statements:
            continue  # computed during a preview
        for statement in statements:
            if statement.get("Effect") != "Allow":
                continue
            resources = statement.get("Resource") or []
            for resource in resources if isinstance(resources, list) else [resources]:
                probe = Request(
                    CREATE_PACKAGE,
                    str(resource),
                    context={"sagemaker:ModelApprovalStatus": "Approved"},
                )
                if allows(statements, probe) and allows([statement], probe):
                    yield (
                        holder,
                        f"may {CREATE_PACKAGE} as Approved on {resource}: deny any status "
                        f"but {PENDING} outside dev",
                    )


@rule("A5", "registration-pending", "Outside dev, versions register pending, past a fixed gate")
def registration_pending(view: StackView) -> Iterator[Finding]:
    if view.tier == "dev":
        return
    yield from _definition_findings(view)
    yield from _role_findings(view)
