"""Inputs and outputs of the prerequisites stage's states."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eiplane.models.spec import FleetSpec

Outcome = Literal["found", "created", "repaired"]
Kind = Literal[
    "region_support", "vpc_dns", "security_group", "iam_role", "instance_profile", "vpc_endpoint",
    "load_balancer", "target_group", "listener",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExecutionContext(_Model):
    execution_id: str = Field(description="the Step Functions execution ARN; the logs' correlation id")


class SubnetPlacement(_Model):
    subnet_id: str
    availability_zone: str
    route_table_id: str
    internet_route: bool = Field(description="the route table sends 0.0.0.0/0 to an internet or NAT gateway")


class Placement(_Model):
    vpc_id: str
    default_vpc: bool
    vpc_cidrs: list[str] = Field(description="the VPC's IPv4 CIDR blocks: who may call a fleet that lists no callers")
    subnets: list[SubnetPlacement]

    @property
    def private_subnets(self) -> list[SubnetPlacement]:
        return [s for s in self.subnets if not s.internet_route]

    @property
    def availability_zones(self) -> list[str]:
        return sorted({s.availability_zone for s in self.subnets})


class PrerequisiteResult(_Model):
    """One prerequisite as the stage left it. In a plan, `outcome` is what applying would do."""

    kind: Kind
    name: str
    id: str = Field(description="AWS id or ARN; '(new)' in a plan for what does not exist yet")
    outcome: Outcome
    changes: list[str] = Field(default_factory=list, description="each change made (or, in a plan, to make), imperative")
    billable: bool = Field(default=False, description="bills while it exists (interface endpoints, per AZ-hour)")


class StepOutput(_Model):
    results: list[PrerequisiteResult]
    mutating_calls: list[str] = Field(description="'service:Operation' of every call that changed something")


# --- state inputs -------------------------------------------------------------------------

class ValidateFleetSpecInput(_Model):
    spec: Any = Field(description="the raw execution input; validated by the step, not by the parser")
    context: ExecutionContext


class FleetStepInput(_Model):
    spec: FleetSpec
    placement: Placement
    context: ExecutionContext


class EnsureVpcEndpointsInput(FleetStepInput):
    network: NetworkOutput


class AwaitVpcEndpointsInput(FleetStepInput):
    endpoints: EndpointsOutput


class EnsureLoadBalancerInput(FleetStepInput):
    network: NetworkOutput


class AwaitLoadBalancerInput(FleetStepInput):
    load_balancer: LoadBalancerOutput


class RecordPrerequisitesInput(FleetStepInput):
    plan: PlanOutput
    network: NetworkOutput
    iam: IamOutput
    endpoints: EndpointsOutput
    load_balancer: LoadBalancerOutput
    endpoint: ServingEndpoint


# --- state outputs ------------------------------------------------------------------------

class ValidatedFleet(_Model):
    spec: FleetSpec
    placement: Placement


class PlanOutput(StepOutput):
    dry_run: bool
    to_create: int
    to_repair: int


class NetworkOutput(StepOutput):
    instance_security_group_id: str
    load_balancer_security_group_id: str
    endpoint_security_group_id: str | None = Field(
        description="set when the fleet needs interface endpoints (eia, or subnets without internet)"
    )


class IamOutput(StepOutput):
    role_arn: str
    instance_profile_arn: str
    instance_profile_name: str


class EndpointsOutput(StepOutput):
    endpoint_ids: list[str]


class AwaitEndpointsOutput(_Model):
    available: list[str]


class LoadBalancerOutput(StepOutput):
    load_balancer_arn: str
    target_group_arn: str
    listener_arn: str


class ServingEndpoint(_Model):
    """Where the fleet answers: the load balancer's DNS name (resolves in the fleet's VPC only: the
    balancer is internal) and its listener."""

    dns_name: str
    protocol: Literal["HTTP", "HTTPS"]
    port: int
    url: str
    load_balancer_arn: str
    target_group_arn: str


class BackendSummary(_Model):
    type: str
    instance_types: list[str]
    accelerator: str
    image_parameter: str


class PrerequisitesSummary(_Model):
    found: int
    created: int
    repaired: int


class PrerequisitesReport(_Model):
    """The stage's report: the execution output and the record kept in the state table."""

    fleet: str
    region: str
    backend: BackendSummary
    vpc_id: str
    subnet_ids: list[str]
    prerequisites: list[PrerequisiteResult]
    summary: PrerequisitesSummary
    mutating_calls: list[str] = Field(description="every changing AWS call of this execution, in order")
    instance_profile_arn: str
    instance_security_group_id: str
    endpoint: ServingEndpoint
    execution_id: str
    state_record: Literal["written", "unchanged"]


EnsureVpcEndpointsInput.model_rebuild()
AwaitVpcEndpointsInput.model_rebuild()
RecordPrerequisitesInput.model_rebuild()
EnsureLoadBalancerInput.model_rebuild()
AwaitLoadBalancerInput.model_rebuild()
