"""Inputs and outputs of the launch and validation states (one Map iteration per slot)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eiplane.models.prerequisites import (
    BackendSummary,
    ExecutionContext,
    Placement,
    PrerequisitesReport,
    PrerequisitesSummary,
)
from eiplane.models.spec import FleetSpec

# A slot's instance moves forward through these; a failed step terminates it ("failed").
# "planned": PlanLaunch has reserved the slot for its execution; no instance yet.
# Capacity matching takes an in-service slot out: draining (tagged, no new requests), then
# terminated, or stopped into the fleet's warm pool ("warm": validated, stopped, resumed first on
# the next scale-out).
SlotState = Literal["planned", "launching", "registered", "artifact_verified", "validated", "in_service",
                    "failed", "draining", "terminated", "warm"]
LIFECYCLE: tuple[SlotState, ...] = ("launching", "registered", "artifact_verified", "validated", "in_service")
IN_PROGRESS: frozenset[str] = frozenset(("launching", "registered", "artifact_verified", "validated"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtifactRef(_Model):
    bucket: str
    prefix: str
    manifest_key: str
    manifest_sha256: str
    formats: list[str]
    torch_version: str


class AgentRef(_Model):
    """The instance bundle (validation agent, model server, its wheels) in the artifacts bucket."""

    prefix: str = Field(description="fleets/<fleet>/agent/<sha256 of sha256sums>/: every file under it")
    sha256sums: str = Field(description="each file's digest as `sha256sum -c` reads it: the instance checks them")


class LaunchShared(_Model):
    """What every slot of this execution launches with."""

    image_id: str
    image_parameter: str
    root_device_name: str
    device: Literal["cuda", "neuron", "eia", "cpu"]
    artifact: ArtifactRef
    agent: AgentRef
    results_prefix: str
    instance_profile_arn: str
    security_group_id: str
    target_group_arn: str = Field(description="the fleet's target group: in service means registered and healthy there")


class SlotPlan(_Model):
    index: int = Field(ge=0)
    generation: int = Field(ge=0, description="bumped each time a failed slot is provisioned again")
    resume_instance_id: str | None = Field(default=None, description="an instance of this slot still on its way")
    warm_instance_id: str | None = Field(default=None, description="a stopped instance of the warm pool to start")
    into_pool: bool = Field(default=False, description="validate, then stop into the warm pool (prefill)")


class LaunchPlanOutput(_Model):
    shared: LaunchShared | None = Field(description="None when the fleet wants no instance")
    slots: list[SlotPlan]
    already_in_service: list[int]
    in_flight: list[int] = Field(default_factory=list, description="slots other running executions provision")
    mutating_calls: list[str]


class LaunchResult(_Model):
    instance_id: str
    instance_type: str
    subnet_id: str
    availability_zone: str
    image_id: str
    attempts: list[str] = Field(description="each launch attempt that failed, and why")
    resumed: bool
    mutating_calls: list[str]


class AgentReady(_Model):
    mutating_calls: list[str]


class CommandRef(_Model):
    command_id: str
    result_key: str
    mutating_calls: list[str]


class ValidationOutput(_Model):
    result_key: str
    summary: dict[str, Any]
    mutating_calls: list[str]


class SlotOutcome(_Model):
    index: int
    generation: int
    state: SlotState
    instance_id: str | None = None
    instance_type: str | None = None
    availability_zone: str | None = None
    image_id: str | None = None
    model_name: str | None = Field(default=None, description="the model the instance validated and serves")
    model_version: str | None = None
    manifest_sha256: str | None = Field(default=None, description="the digest of that version's manifest.json")
    reason: str | None = Field(default=None, description="why the slot failed (the error and its message)")
    validation: dict[str, Any] | None = None
    attempts: list[str] = Field(default_factory=list)
    mutating_calls: list[str] = Field(default_factory=list)


REASON_CHARS = 400  # of a slot's failure, in what passes between states (the whole reason is in the report)


class SlotRef(_Model):
    """What one slot's iteration passes on: a reference, of a size independent of what happened
    to it. Its outcome (validation numbers, attempts, calls) is in the slot's record."""

    index: int
    generation: int
    state: SlotState
    instance_id: str | None = None
    reason: str | None = Field(default=None, max_length=REASON_CHARS)


class ReportRef(_Model):
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class FleetSummary(_Model):
    """ProvisionFleet's output: counts and references, of a size independent of the fleet's. The
    whole report (every prerequisite, every slot with its validation numbers, every mutating call)
    is the S3 object `report` names."""

    fleet: str
    region: str
    backend: BackendSummary
    vpc_id: str
    summary: PrerequisitesSummary
    execution_id: str
    image_id: str | None
    artifact_manifest_sha256: str | None
    desired: int
    in_service: int
    warm_pool: int
    failed: int
    provisioned: int = Field(description="slots this execution launched or resumed")
    complete: bool
    message: str = Field(max_length=4096)
    mutating_call_count: int
    report: ReportRef


class FleetReport(PrerequisitesReport):
    """The whole report of a ProvisionFleet execution (in S3, see FleetSummary): the prerequisites
    report plus every slot."""

    image_id: str | None
    artifact_manifest_sha256: str | None
    desired: int
    in_service: int
    instances: list[SlotOutcome]
    warm_pool: int = Field(default=0, description="instances this execution stopped into the warm pool")
    complete: bool
    message: str


# --- state inputs -------------------------------------------------------------------------

class PlanLaunchInput(_Model):
    spec: FleetSpec
    placement: Placement
    context: ExecutionContext
    instance_profile_arn: str
    security_group_id: str
    target_group_arn: str


class SlotInput(BaseModel):
    """A Map iteration's state: each step receives all of it (extra keys are earlier steps'
    results, ignored unless the step's model names them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    spec: FleetSpec
    placement: Placement
    context: ExecutionContext
    launch: LaunchShared
    slot: SlotPlan


class AwaitAgentInput(SlotInput):
    instance: LaunchResult


class SendValidationInput(AwaitAgentInput):
    pass


class AwaitValidationInput(AwaitAgentInput):
    command: CommandRef


class PutInServiceInput(AwaitValidationInput):
    agent: AgentReady
    validation: ValidationOutput
    attempt: int = Field(default=0, ge=0, description="$$.State.RetryCount: how many health checks waits came before")


class TerminateSlotInput(SlotInput):
    instance: LaunchResult | None = None
    error: dict[str, Any] = Field(description="the caught error: {Error, Cause}")


class SummarizeFleetInput(_Model):
    spec: FleetSpec
    context: ExecutionContext
    report: PrerequisitesReport
    launch: LaunchPlanOutput
