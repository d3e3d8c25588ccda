"""Inputs and outputs of the MatchCapacity states: one tick, then per fleet (one Map iteration)
lease -> observe and plan -> act -> record -> release."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eiplane.models.prerequisites import ExecutionContext


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(BaseModel):
    """A Map iteration's state: each step receives all of it (earlier steps' results under
    their own keys, ignored unless the step's model names them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Trigger = Literal["schedule", "alarm", "manual"]


class TickEvent(BaseModel):
    """MatchCapacity's input: an EventBridge event (the schedule's "Scheduled Event", or a
    surge alarm's "CloudWatch Alarm State Change"), or a StartExecution of one's own:
    {"fleets": ["name", ...], "time": "2026-11-27T01:05:00Z"} (both optional)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    source: str | None = None
    detail_type: str | None = Field(default=None, alias="detail-type")
    time: datetime | None = Field(default=None, description="the event's time: the tick's clock")
    detail: dict[str, Any] = Field(default_factory=dict)
    fleets: list[str] | None = Field(default=None, description="a manual tick: these fleets only")

    @property
    def trigger(self) -> Trigger:
        if self.source == "aws.cloudwatch":
            return "alarm"
        if self.source in ("aws.events", "aws.scheduler"):
            return "schedule"
        return "manual"

    @property
    def alarm_name(self) -> str | None:
        return str(self.detail["alarmName"]) if self.trigger == "alarm" and "alarmName" in self.detail else None


class TickRequest(_Model):
    """ListFleets' input: the execution's input as it came, and the execution."""

    event: TickEvent
    context: ExecutionContext


class Tick(_Model):
    at: datetime = Field(description="the tick's time (the event's), UTC; demand is read up to its minute")
    trigger: Trigger
    id: str = Field(description="<time>-<trigger>: names the executions this tick starts")
    execution_id: str = Field(description="this MatchCapacity execution: the lease owner, the logs' correlation id")

    @classmethod
    def of(cls, request: TickRequest, now: datetime | None = None) -> Tick:
        at = (request.event.time or now or datetime.now(UTC)).astimezone(UTC)
        trigger = request.event.trigger
        return cls(at=at, trigger=trigger, id=f"{at:%Y%m%dT%H%M%SZ}-{trigger}",
                   execution_id=request.context.execution_id)

    @property
    def minute(self) -> int:
        """Epoch minute of the tick."""
        return int(self.at.timestamp() // 60)


class TickPlan(_Model):
    tick: Tick
    fleets: list[str]
    note: str = ""


class FleetTick(_Step):
    fleet: str
    tick: Tick
    context: ExecutionContext


class Lease(_Model):
    acquired: bool
    owner: str
    held_by: str | None = Field(default=None, description="who holds it, when not acquired")


Action = Literal["scale_out", "scale_in", "hold", "skip", "replace"]


class Observed(_Model):
    demand_rps: float | None = Field(description="the newest minute's demand")
    newest_minute: str | None = Field(description="the newest minute with a datapoint (UTC)")
    history_minutes: int = Field(description="minutes with a datapoint in the window read")
    latency_p99_ms: float | None = None
    utilization_pct: float | None = None
    errors_5xx: float | None = Field(default=None, description="the newest minute's 5xx answers of the servers")
    broken: str | None = Field(default=None, description="why the newest minutes have no demand figure")
    healthy_targets: int | None = Field(default=None, description="in-service instances the balancer finds healthy")


class CapacityPlan(_Model):
    """ObserveAndPlan's output: the policy's decision and what it was based on."""

    action: Action
    code: str
    reason: str
    desired: int
    desired_before: int = Field(description="the registered desired size before this decision")
    ready: int
    launching: int
    launch: int = 0
    terminate: list[int] = Field(default_factory=list, description="slot indexes to drain (in order)")
    replace: list[int] = Field(default_factory=list, description="in-service slots whose target is unhealthy or "
                                                                  "whose instance is gone: taken out and provisioned again")
    orphans: list[str] = Field(default_factory=list, description="instances tagged with the fleet that no slot "
                                                                  "accounts for and no running execution launches: "
                                                                  "terminated")
    capacity_per_instance_rps: float | None = None
    forecast_method: str | None = None
    headroom: float | None = None
    observed: Observed | None = None


class PlanInput(FleetTick):
    plan: CapacityPlan


class ReplaceResult(_Model):
    replaced: list[int] = Field(description="slots taken out (failed), for ScaleOut to provision again")
    instance_ids: list[str]
    orphans_terminated: list[str] = Field(default_factory=list)
    provision_again: bool = Field(default=False, description="slots were taken out: the ASL goes on to ScaleOut")


class ScaleOutResult(_Model):
    execution_arn: str
    desired: int
    started: bool = Field(description="False: this tick had already started it (a retried step)")


class DrainResult(_Model):
    draining: list[int] = Field(description="in-service slots now draining: terminated after drain_seconds")
    # drain_seconds: the fleet's serving.deregistration_delay_s (0 when nothing drains)
    cancelled: list[int] = Field(description="not-yet-ready slots no execution drives, terminated at once")
    skipped: list[str] = Field(default_factory=list, description="chosen slots left alone, and why")
    drain_seconds: int


class TerminateDrainedInput(PlanInput):
    drain: DrainResult


class TerminateResult(_Model):
    terminated: list[int]
    pooled: list[int] = Field(default_factory=list, description="stopped into the warm pool instead")
    instance_ids: list[str]


class RecordInput(PlanInput):
    replaced: ReplaceResult | None = None
    scale_out: ScaleOutResult | None = None
    drain: DrainResult | None = None
    terminated: TerminateResult | None = None


class FleetOutcome(_Model):
    fleet: str
    status: Literal["decided", "skipped", "failed"]
    action: Action | None = None
    code: str | None = None
    reason: str
    desired: int | None = None
    ready: int | None = None
    launching: int | None = None
    demand_rps: float | None = None
    execution_arn: str | None = Field(default=None, description="the ProvisionFleet execution a scale-out started")
    drained: list[int] = Field(default_factory=list)
    pooled: list[int] = Field(default_factory=list, description="drained slots stopped into the warm pool")
    replaced: list[int] = Field(default_factory=list, description="slots taken out to be provisioned again")
    orphans_terminated: list[str] = Field(default_factory=list)


class ReleaseInput(FleetTick):
    lease: Lease | None = None
    outcome: FleetOutcome | None = None
    error: dict[str, Any] | None = Field(default=None, description="the caught error: {Error, Cause}")


class SummarizeTickInput(_Model):
    tick: Tick
    context: ExecutionContext
    outcomes: list[FleetOutcome]


class TickSummary(_Model):
    tick: Tick
    fleets: int
    decided: int
    skipped: int
    failed: int
    outcomes: list[FleetOutcome]
    message: str
