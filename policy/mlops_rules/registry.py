"""Rules: one function per SECURITY.md invariant (or part of one), registered by decorator."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .model import Resource, StackView, Violation

# A rule yields (offending resource or None for the whole stack, message).
Finding = tuple[Resource | None, str]
Check = Callable[[StackView], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str  # the SECURITY.md invariant, e.g. "E2"
    name: str
    description: str
    check: Check

    @property
    def policy_name(self) -> str:
        """The policy's name in the pack: `e2-s3-sse-kms`."""
        return f"{self.id.lower()}-{self.name}"

    def run(self, view: StackView) -> list[Violation]:
        return [
            Violation(self.policy_name, resource.urn if resource else None, message)
            for resource, message in self.check(view)
        ]


RULES: list[Rule] = []


def rule(invariant: str, name: str, description: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        RULES.append(Rule(invariant, name, description, check))
        return check

    return register


@dataclass(frozen=True)
class Report:
    rules_run: int
    mandatory: list[Violation]
    # Violations of rules the stack names as advisory (dev only): shown, never blocking.
    advisory: list[Violation]


def evaluate(view: StackView, rules: Iterable[Rule] | None = None) -> Report:
    chosen = list(RULES if rules is None else rules)
    mandatory: list[Violation] = []
    advisory: list[Violation] = []
    for each in chosen:
        found = each.run(view)
        relaxed = each.id in view.advisory_rules or each.policy_name in view.advisory_rules
        (advisory if relaxed else mandatory).extend(found)
    return Report(rules_run=len(chosen), mandatory=mandatory, advisory=advisory)
