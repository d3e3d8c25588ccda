"""The fleet spec: the input of a ProvisionFleet execution."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eiplane import backends
from eiplane.errors import InvalidFleetSpec

FLEET_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$"
MAX_FLEET_SIZE = 100
MAX_USER_TAGS = 40  # EC2 allows 50 per resource; eiplane adds its own


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _BackendBase(_Strict):
    BACKEND: ClassVar[backends.BackendType]

    instance_type: str
    # Tried in order when the preferred type has no capacity (see the launch stage).
    fallback_instance_types: tuple[str, ...] = Field(default=(), max_length=5)
    image_parameter: str | None = Field(
        default=None, description="SSM parameter holding the AMI id; the backend's default if unset"
    )
    root_volume_gib: int = Field(default=100, ge=30, le=4096, description="encrypted gp3 root volume")

    @property
    def instance_types(self) -> list[str]:
        return [self.instance_type, *self.fallback_instance_types]

    @property
    def resolved_image_parameter(self) -> str:
        return self.image_parameter or backends.DEFAULT_IMAGE_PARAMETERS[self.BACKEND]

    @field_validator("instance_type")
    @classmethod
    def _instance_type_of_backend(cls, value: str) -> str:
        return backends.check_instance_type(value, cls.BACKEND)

    @field_validator("fallback_instance_types")
    @classmethod
    def _fallbacks_of_backend(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        problems = []
        for value in values:
            try:
                backends.check_instance_type(value, cls.BACKEND)
            except ValueError as exc:
                problems.append(str(exc))
        if len(set(values)) != len(values):
            problems.append("repeats an instance type")
        if problems:
            raise ValueError("; ".join(dict.fromkeys(problems)))  # each problem once
        return values

    @model_validator(mode="after")
    def _fallbacks_differ_from_preferred(self) -> _BackendBase:
        if self.instance_type in self.fallback_instance_types:
            raise ValueError(f"fallback_instance_types repeats instance_type {self.instance_type}")
        return self


class EiaBackend(_BackendBase):
    """Legacy Amazon Elastic Inference: an accelerator attached to an m5 / c5 CPU host."""

    BACKEND: ClassVar[backends.BackendType] = "eia"
    type: Literal["eia"]
    instance_type: str = "m5.large"
    accelerator: Literal["eia2.medium", "eia2.large", "eia2.xlarge"] = "eia2.medium"


class GpuBackend(_BackendBase):
    BACKEND: ClassVar[backends.BackendType] = "gpu"
    type: Literal["gpu"]
    instance_type: str = "g5.xlarge"


class InferentiaBackend(_BackendBase):
    BACKEND: ClassVar[backends.BackendType] = "inferentia"
    type: Literal["inferentia"]
    instance_type: str = "inf2.xlarge"


Backend = Annotated[EiaBackend | GpuBackend | InferentiaBackend, Field(discriminator="type")]


class NetworkSpec(_Strict):
    """Where the fleet runs. No VPC and no subnets: the region's default VPC and its
    default subnets. Subnets alone: their VPC. A VPC needs its subnets named."""

    vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    subnet_ids: tuple[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")], ...] = Field(
        default=(), max_length=16
    )

    @model_validator(mode="after")
    def _subnets_with_vpc(self) -> NetworkSpec:
        if self.vpc_id and not self.subnet_ids:
            raise ValueError("subnet_ids must list the fleet's subnets when vpc_id is given")
        if len(set(self.subnet_ids)) != len(self.subnet_ids):
            raise ValueError("subnet_ids repeats a subnet")
        return self


class Capacity(_Strict):
    min: int = Field(default=1, ge=0, le=MAX_FLEET_SIZE)
    desired: int = Field(default=1, ge=0, le=MAX_FLEET_SIZE)
    max: int = Field(default=1, ge=1, le=MAX_FLEET_SIZE)

    @model_validator(mode="after")
    def _ordered(self) -> Capacity:
        if not self.min <= self.desired <= self.max:
            raise ValueError(
                f"must satisfy min <= desired <= max (got min={self.min}, desired={self.desired}, max={self.max})"
            )
        return self


class Scaling(_Strict):
    """Capacity matching (the MatchCapacity workflow): it keeps the fleet between capacity.min and
    capacity.max, sized for the demand the fleet's model server publishes to CloudWatch."""

    enabled: bool = Field(default=True, description="False: the fleet keeps capacity.desired; ticks skip it")
    capacity_per_instance_rps: float | None = Field(
        default=None, gt=0,
        description="requests/s one instance serves through your model server; the policy uses the smaller of "
                    "it and the batch-1 throughput measured at validation (the model alone is at most as fast as "
                    "measured, the server in front of it may be slower); unset: the measured figure")
    target_utilisation: float = Field(default=1.0, gt=0, le=1,
                                      description="of the per-instance capacity: below 1 keeps spare room")
    warm_pool_size: int = Field(
        default=0, ge=0, le=MAX_FLEET_SIZE,
        description="at most this many validated instances are kept stopped (paying for their EBS volume only) and "
                    "resumed first on scale-out, in minutes instead of a launch; scale-in stops instances into the "
                    "pool while it has room. Not counted in capacity.max")
    warm_pool_prefill: bool = Field(
        default=True, description="a new fleet's first ProvisionFleet also launches, validates and stops "
                                  "warm_pool_size instances, so the pool is full before the first surge")


Precision = Literal["fp32", "fp16", "bf16"]


class ModelArtifactRef(_Strict):
    """A packed artifact (`eiplane artifact pack` / `push`) in the fleet's prefix of the
    artifacts bucket, and the precisions each instance must reproduce its outputs in."""

    name: str = Field(pattern=SLUG_PATTERN)
    version: str = Field(pattern=SLUG_PATTERN)
    precisions: tuple[Precision, ...] = Field(default=("fp32",), min_length=1)

    @field_validator("precisions")
    @classmethod
    def _distinct(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(values)) != len(values):
            raise ValueError("repeats a precision")
        return values


class FleetSpec(_Strict):
    name: str = Field(pattern=FLEET_NAME_PATTERN, description="lower-case letters, digits, '-'; 3-32 chars")
    region: str = Field(pattern=REGION_PATTERN)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    backend: Backend
    capacity: Capacity = Field(default_factory=Capacity)
    scaling: Scaling = Field(default_factory=Scaling)
    model: ModelArtifactRef
    tags: dict[str, str] = Field(default_factory=dict)
    dry_run: bool = Field(default=False, description="plan the prerequisites, change nothing")

    @field_validator("tags")
    @classmethod
    def _user_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        problems = []
        if len(tags) > MAX_USER_TAGS:
            problems.append(f"at most {MAX_USER_TAGS} tags (got {len(tags)})")
        for key, value in tags.items():
            if not 1 <= len(key) <= 128:
                problems.append(f"key {key!r} must be 1-128 characters")
            if key.lower().startswith(("aws:", "eiplane:")):
                problems.append(f"key {key!r} uses a reserved prefix (aws:, eiplane:)")
            if len(value) > 256:
                problems.append(f"value of {key!r} is longer than 256 characters")
            if not re.fullmatch(r"[\w\s.:/=+\-@]*", key + value):
                problems.append(f"tag {key!r} has characters EC2 and IAM tags do not allow")
        if problems:
            raise ValueError("; ".join(problems))
        return tags


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "spec"
    message = error["msg"].removeprefix("Value error, ")
    return f"{location}: {message}"


def parse_fleet_spec(raw: Any) -> FleetSpec:
    """Parse an execution input, raising InvalidFleetSpec with every problem at once."""
    if not isinstance(raw, dict):
        raise InvalidFleetSpec([f"spec: must be a JSON object, got {type(raw).__name__}"])
    try:
        return FleetSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidFleetSpec([_describe(e) for e in exc.errors()]) from None
