"""Inputs and outputs of the RolloutFleet states. The state they pass on holds counts and references
only: the batches' slot lists, the specs and the times live in the fleet's ROLLOUT record."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eiplane.models.prerequisites import ExecutionContext


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(BaseModel):
    """The execution's state as a step receives it: earlier steps' results under their own keys,
    ignored unless the step's model names them."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ModelVersion(_Model):
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


class StartRolloutInput(_Model):
    spec: Any = Field(description="the fleet spec naming the new model version (parsed by the step)")
    context: ExecutionContext


class RolloutState(_Model):
    """What StartRollout passes on: the rollout and the figures the ASL's Waits and Choices read."""

    fleet: str
    execution_id: str
    version_before: ModelVersion
    version_after: ModelVersion
    desired: int
    old_in_service: int = Field(description="instances serving another version when the rollout started")
    drain_seconds: int
    check_interval_seconds: int = Field(description="between two guardrail checks of a bake")


class RolloutStep(_Step):
    rollout: RolloutState


class BatchPlan(_Model):
    batch: int = Field(description="1-based; 0 once nothing is left to replace")
    done: bool
    take_out_first: int = Field(default=0, description="old instances drained before the launch (max_surge short)")
    launch: int = 0
    retire: int = Field(default=0, description="old instances drained once the batch has baked")
    new_in_service: int = 0
    old_in_service: int = 0


SlotGroup = Literal["take_out_first", "retire", "rollback"]


class SlotGroupInput(_Step):
    rollout: RolloutState
    group: SlotGroup


class DrainResult(_Model):
    draining: int
    terminated: int = Field(default=0, description="rollback: new instances not in service yet, terminated at once")
    drain_seconds: int


class RetireResult(_Model):
    terminated: int


BatchPurpose = Literal["batch", "restore"]


class StartBatchInput(_Step):
    rollout: RolloutState
    purpose: BatchPurpose


class BatchExecution(_Model):
    purpose: BatchPurpose
    execution_arn: str | None = Field(default=None, description="None: nothing to launch")
    started: bool
    launch: int


class AwaitBatchInput(_Step):
    rollout: RolloutState
    launch: BatchExecution


class BatchOutcome(_Model):
    purpose: BatchPurpose
    execution_arn: str | None
    status: str


class BakeSoFar(_Step):
    checks: int = Field(default=0, ge=0)


class GuardrailInput(_Step):
    rollout: RolloutState
    bake: BakeSoFar = Field(default_factory=BakeSoFar)


class Bake(_Model):
    checks: int = Field(description="guardrail checks done in this batch's bake")
    baked: bool
    requests: int
    errors_5xx: int
    error_rate_percent: float | None
    latency_p99_ms: float | None
    alarms_in_alarm: list[str] = Field(default_factory=list)


class FinishInput(_Step):
    """The execution's whole state: an error in it (what a Catch put there) means the rollout rolled back."""

    rollout: RolloutState
    error: dict[str, Any] | None = Field(default=None, description="what rolled the rollout back (its Catch)")
    rollback_error: dict[str, Any] | None = Field(default=None, description="a step of the rollback that failed")

    @property
    def outcome(self) -> Literal["succeeded", "rolled_back"]:
        return "succeeded" if self.error is None and self.rollback_error is None else "rolled_back"


class RolloutReport(_Model):
    """RolloutFleet's output (and its RolledBack failure's cause)."""

    fleet: str
    outcome: Literal["succeeded", "rolled_back"]
    version_before: str
    version_after: str
    serving: str = Field(description="the version the fleet serves now")
    batches: int
    replaced: int = Field(description="old instances retired")
    in_service: int
    desired: int
    reason: str

