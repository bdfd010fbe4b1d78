"""Reading SageMaker pipeline definitions (the JSON text of `aws:sagemaker/pipeline:Pipeline`'s
`pipelineDefinition`) and telling a missing value from one that cannot be known yet.

A definition is `{"Version": ..., "Parameters": [...], "Steps": [...]}`; each step has a
`Name`, a `Type` and `Arguments` shaped like the API call the step makes (CreateTrainingJob
for "Training", CreateProcessingJob for "Processing", ...). Condition steps nest their
branches under `Arguments.IfSteps` / `Arguments.ElseSteps`. Any value in a definition may be
a SageMaker expression such as `{"Get": "Parameters.InstanceCount"}` or `{"Std:Join": ...}`,
resolved only when the pipeline runs: the rules read those as "cannot tell".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .model import Resource, StackView, parse_json

PIPELINE = "aws:sagemaker/pipeline:Pipeline"

TRAINING = "Training"
PROCESSING = "Processing"
TRANSFORM = "Transform"
TUNING = "Tuning"
CONDITION = "Condition"
# Step types whose Arguments are a CreateProcessingJob request: the check steps run their
# baselining job as a processing job (sagemaker.mlops.workflow._check_job_request).
PROCESSING_SHAPED = (PROCESSING, "QualityCheck", "ClarifyCheck")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


# Returned by `lookup` where a key is absent (as opposed to None: present but unknown).
MISSING: Final = _Missing()


def is_expression(value: Any) -> bool:
    """A SageMaker pipeline expression (`{"Get": ...}`, `{"Std:Join": ...}`), resolved at run
    time."""
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and all(key == "Get" or str(key).startswith("Std:") for key in value)
    )


def lookup(value: Any, *path: str) -> Any:
    """The value at `path` in resource props or step arguments.

    MISSING where a key on the way is absent; None where a value on the way (or the value) is
    unknown (a preview) or a run-time expression; otherwise the value itself.
    """
    for key in path:
        if value is None or is_expression(value):
            return None
        if not isinstance(value, Mapping) or key not in value:
            return MISSING
        value = value[key]
    return None if is_expression(value) else value


def unset(value: Any) -> bool:
    """True where a looked-up value is definitely absent or empty (never for unknowns)."""
    if value is MISSING or value is False:
        return True
    return isinstance(value, str | list | Mapping) and not value


@dataclass(frozen=True)
class JobStep:
    """One job a pipeline runs: a step, or one training job definition of a tuning step."""

    pipeline: Resource
    name: str
    type: str
    arguments: Mapping[str, Any]
    # the step as written (RetryPolicies, CacheConfig, ...)
    step: Mapping[str, Any]

    def get(self, *path: str) -> Any:
        return lookup(self.arguments, *path)

    @property
    def label(self) -> str:
        return f"pipeline step {self.name!r} ({self.type})"


def load(pipeline: Resource) -> Mapping[str, Any] | None:
    """The parsed definition, or None where it is unknown, unparsable or kept in S3."""
    definition = parse_json(pipeline.props.get("pipelineDefinition"))
    return _without_nulls(definition) if isinstance(definition, Mapping) else None


def _without_nulls(value: Any) -> Any:
    """A known definition has no unknowns: a JSON null there means "not set", so it is dropped
    (and `lookup` answers MISSING, not None)."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _steps(steps: Any) -> Iterator[Mapping[str, Any]]:
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, Mapping):
            continue
        yield step
        if step.get("Type") == CONDITION:
            arguments = step.get("Arguments")
            if isinstance(arguments, Mapping):
                yield from _steps(arguments.get("IfSteps"))
                yield from _steps(arguments.get("ElseSteps"))


def steps(view: StackView, *types: str) -> Iterator[JobStep]:
    """Every step of one of `types` in every pipeline of the stack, branches included."""
    for pipeline in view.of_type(PIPELINE):
        definition = load(pipeline)
        if definition is None:
            continue
        for step in _steps(definition.get("Steps")):
            arguments = step.get("Arguments")
            if step.get("Type") in types and isinstance(arguments, Mapping):
                yield JobStep(
                    pipeline, str(step.get("Name", "?")), str(step["Type"]), arguments, step
                )


def training_jobs(view: StackView) -> Iterator[JobStep]:
    """Every training job the pipelines run: Training steps (CreateTrainingJob arguments) and
    the training job definitions of Tuning steps (CreateHyperParameterTuningJob's
    TrainingJobDefinition(s), which carry the same VpcConfig/ResourceConfig/... fields)."""
    for step in steps(view, TRAINING, TUNING):
        if step.type == TRAINING:
            yield step
            continue
        single = step.arguments.get("TrainingJobDefinition")
        several = step.arguments.get("TrainingJobDefinitions")
        for definition in [single, *(several if isinstance(several, list) else [])]:
            if isinstance(definition, Mapping):
                yield JobStep(step.pipeline, step.name, step.type, definition, step.step)


def processing_jobs(view: StackView) -> Iterator[JobStep]:
    """Every step whose arguments are a CreateProcessingJob request."""
    yield from steps(view, *PROCESSING_SHAPED)
