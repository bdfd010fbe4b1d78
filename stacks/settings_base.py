"""Building blocks every settings module shares: the strict base model, cross-field errors
with key paths, and pattern-checked text types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class InvalidKeys(ValueError):
    """Cross-field problems, each with the key path (relative to the model) it belongs to."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))
        self.problems = problems


class StrictModel(BaseModel):
    """Base for every settings model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def matching(pattern: str, looks_like: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must look like {looks_like}")
        return value

    return AfterValidator(check)


StackName = Annotated[str, matching(r"[\w.-]+/[\w.-]+/[\w.-]+", "organization/project/stack")]
Email = Annotated[str, matching(r"[^@\s]+@[^@\s]+\.[^@\s]+", "name@example.com")]
