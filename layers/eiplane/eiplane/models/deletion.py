"""Inputs and outputs of the DeleteFleet states. What passes between states is a reference to the
fleet and counts; each step's list of resources goes to S3 (a part of the report), so the state does
not grow with the fleet."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eiplane.errors import InvalidDeleteRequest
from eiplane.models.prerequisites import ExecutionContext
from eiplane.models.spec import FLEET_NAME_PATTERN, REGION_PATTERN

# A plan says what applying would do (delete / keep); the real run what it did (deleted / kept / absent:
# a resource the state records name that no longer exists).
Action = Literal["delete", "keep", "deleted", "kept", "absent"]
Kind = Literal["instance", "listener", "load_balancer", "target_group", "alarm", "vpc_endpoint", "security_group",
               "security_group_rule", "instance_profile", "iam_role", "artifacts", "state_items", "registry"]
FLEET_NAME = re.compile(FLEET_NAME_PATTERN)  # the fleet spec's


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(BaseModel):
    """A state of DeleteFleet receives the whole state: earlier steps' results under their keys."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class DeleteFleetRequest(_Model):
    """DeleteFleet's execution input."""

    fleet: str = Field(description="the fleet's name")
    dry_run: bool = Field(default=False, description="plan only: list what would be deleted and kept, change nothing")
    purge_artifacts: bool = Field(default=False, description="also delete every version under fleets/<fleet>/")
    region: str | None = Field(default=None, description="where the fleet runs; default: where it was applied")


def parse_delete_request(raw: Any) -> DeleteFleetRequest:
    """The request, or InvalidDeleteRequest naming every problem (before anything is read or changed)."""
    try:
        request = DeleteFleetRequest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise InvalidDeleteRequest(f"DeleteFleet's input is {{\"fleet\": NAME, \"dry_run\": bool, "
                                   f"\"purge_artifacts\": bool}}: {problems}") from None
    if not FLEET_NAME.match(request.fleet):
        raise InvalidDeleteRequest(f"fleet: {request.fleet[:64]!r} is not a fleet name (3-32 lower-case letters, "
                                   "digits and hyphens, starting with a letter)")
    if request.region is not None and not re.match(REGION_PATTERN, request.region):
        raise InvalidDeleteRequest(f"region: {request.region[:64]!r} is not a region name")
    return request


class BeginDeletionInput(_Model):
    request: Any = Field(description="the raw execution input; validated by the step")
    context: ExecutionContext


class Deletion(_Model):
    """The fleet being deleted, as every later step needs it."""

    fleet: str
    region: str
    dry_run: bool
    purge_artifacts: bool
    vpc_id: str | None = Field(default=None, description="from the fleet's prerequisites record, when there is one")
    registered: bool = Field(description="the fleet had a registry item (ProvisionFleet had applied it)")


class DeletionStepInput(_Step):
    deletion: Deletion
    context: ExecutionContext


class DeletionItem(_Model):
    """One resource of the report: what it is and what was (or, in a plan, would be) done to it."""

    kind: Kind
    name: str
    id: str
    action: Action
    reason: str | None = Field(default=None, description="why it is kept, or what it holds")


class PartRef(_Model):
    bucket: str
    key: str


class StepResult(_Model):
    deleted: int = 0
    kept: int = 0
    absent: int = 0
    part: PartRef | None = Field(default=None, description="this step's items (the report's part), in S3")


class DrainResult(StepResult):
    drain_seconds: int = Field(description="the target group's deregistration delay (0: nothing was in service)")


class LoopResult(StepResult):
    """A step that deletes at most a bounded number of things per invocation: the ASL runs it again
    while `remaining` (artifact versions, state items)."""

    remaining: bool
    round: int = Field(description="which invocation of the step this was (0-based): names its report part")


class LoopInput(DeletionStepInput):
    previous: LoopResult | None = Field(default=None, description="the step's last round, when it loops")


class DeletionSummary(_Model):
    """DeleteFleet's output (plan and real): counts and where the whole report is."""

    fleet: str
    region: str
    dry_run: bool
    execution_id: str
    deleted: int = Field(description="deleted; in a plan, to delete")
    kept: int = Field(description="kept (each item says why); in a plan, to keep")
    absent: int
    message: str
    report: PartRef


class DeletionReport(_Model):
    """The whole report in S3: deletions/<fleet>/<execution>.json."""

    fleet: str
    region: str
    dry_run: bool
    purge_artifacts: bool
    execution_id: str
    items: list[DeletionItem]
    deleted: int
    kept: int
    absent: int
    message: str
    mutating_calls: list[str] = Field(default_factory=list, description="this step's own (the others' are in the log)")
