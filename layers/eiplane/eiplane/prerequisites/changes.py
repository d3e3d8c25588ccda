"""Check-then-change, shared by the plan (read-only) and the ensure steps.

Each prerequisite is reconciled by one function that inspects what exists and asks a
`Changes` for every change it needs. Applying, `Changes` makes the call; planning, it only
records the description. So the plan and the apply can never disagree about what is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from eiplane.models.prerequisites import Kind, Outcome, PrerequisiteResult
from eiplane.observability import logger

T = TypeVar("T")
PLANNED_ID = "(new)"


class Changes:
    def __init__(self, apply: bool) -> None:
        self.apply = apply
        self.descriptions: list[str] = []

    def make(self, description: str, call: Callable[[], T]) -> T | None:
        self.descriptions.append(description)
        return call() if self.apply else None


class Reconciler:
    """Collects one result per prerequisite."""

    def __init__(self, apply: bool) -> None:
        self.apply = apply
        self.results: list[PrerequisiteResult] = []

    def begin(self) -> Changes:
        return Changes(self.apply)

    def done(self, kind: Kind, name: str, resource_id: str | None, changes: Changes, *,
             created: bool = False, billable: bool = False) -> None:
        outcome: Outcome = "created" if created else ("repaired" if changes.descriptions else "found")
        result = PrerequisiteResult(
            kind=kind, name=name, id=resource_id or PLANNED_ID, outcome=outcome,
            changes=list(changes.descriptions), billable=billable,
        )
        self.results.append(result)
        message = f"{kind} {name} {outcome}" if self.apply else f"plan: {kind} {name} would be {outcome}"
        logger.info(message, extra={"prerequisite": result.model_dump()})
