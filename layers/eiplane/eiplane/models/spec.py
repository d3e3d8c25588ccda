"""The fleet spec: the input of a ProvisionFleet execution."""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from typing import Annotated, Any, ClassVar, Literal

import boto3
import botocore
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from eiplane import backends
from eiplane.errors import InvalidFleetSpec, json_chars

FLEET_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$"
MAX_FLEET_SIZE = 100
MAX_USER_TAGS = 40  # EC2 allows 50 per resource; eiplane adds its own
# What PlanLaunch's role may read (template.yaml, its ResolveImageParameters statement): the
# public parameters, and the account's own under /eiplane/. Path segments of SSM's name characters.
IMAGE_PARAMETER_PREFIXES = ("/aws/service/", "/eiplane/")
IMAGE_PARAMETER_PATTERN = r"^/(aws/service|eiplane)(/[A-Za-z0-9_.-]+)+$"
AMI_ID_PATTERN = r"^ami-[0-9a-f]{8,17}$"
# The partitions eiplane writes ARNs for (eiplane.prerequisites.iam.partition_of).
SUPPORTED_PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b")
# An input value quoted in a problem: at most this many of its characters, and at most this many
# once JSON-escaped (an emoji is 12), so that no input makes a problem long.
QUOTE_CHARS = 80
QUOTE_JSON_CHARS = 240

# Every scalar is strict (pydantic's StrictStr / StrictInt / StrictBool, and these): lax mode would
# take true, "1" and 1.0 for a count, and "no" for a boolean. Per field, not model-wide: a strict
# model would refuse JSON arrays for the tuples.
# A JSON integer is a number too (strict floats take ints, never bools or strings); no inf or NaN.
StrictNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
InstanceType = Annotated[str, Field(strict=True, min_length=1, max_length=32)]


def quoted(value: object) -> str:
    """An input value as a problem quotes it: repr (control characters escaped), at most QUOTE_CHARS
    of it (and QUOTE_JSON_CHARS JSON-escaped), so that no input makes a message long."""
    text = value if isinstance(value, str) else repr(value)
    shown, cost = 0, 0
    for character in text[:QUOTE_CHARS]:
        cost += json_chars(character)
        if cost > QUOTE_JSON_CHARS:
            break
        shown += 1
    if shown == len(text):
        return repr(text) if isinstance(value, str) else text
    head = text[:shown]
    return f"{head!r}... ({len(text)} characters)" if isinstance(value, str) else f"{head}... ({len(text)} characters)"


def looks_like_ami_id(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(AMI_ID_PATTERN, value) is not None


@functools.cache
def known_regions() -> dict[str, tuple[str, ...]]:
    """Every partition's EC2 regions, from botocore's endpoint data (maintained with botocore:
    a region launched after this botocore is unknown until it is upgraded)."""
    session = boto3.session.Session()
    return {partition: tuple(session.get_available_regions("ec2", partition_name=partition))
            for partition in session.get_available_partitions()}


def partition_of_region(region: str) -> str:
    """The partition a region's name implies: the one whose regions share its stem ("us-gov" of
    us-gov-west-1, "cn" of cn-north-1); else aws."""
    stem = region.rsplit("-", 2)[0]
    for partition, regions in known_regions().items():
        if any(known.rsplit("-", 2)[0] == stem for known in regions):
            return partition
    return "aws"


def check_region(region: str) -> str:
    partition = partition_of_region(region)
    if partition not in SUPPORTED_PARTITIONS:
        raise ValueError(f"{quoted(region)} is in the {partition} partition, which eiplane does not support "
                         f"({', '.join(SUPPORTED_PARTITIONS)})")
    regions = known_regions()[partition]
    if region not in regions:
        first = region.split("-", 1)[0] + "-"
        alike = [known for known in regions if known.startswith(first)]
        listed = f"its {first} regions: {', '.join(alike)}; {len(regions)} in all" if alike else \
            f"its regions: {', '.join(regions)}"
        raise ValueError(f"{quoted(region)} is not a region of the {partition} partition ({listed}, "
                         f"per botocore {botocore.__version__}'s endpoint data)")
    return region


def _tag_character(character: str) -> bool:
    """AWS's tag character set (EC2 and IAM: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$): letters, separators
    (spaces), numbers and _ . : / = + - @. Python's re has no \\p{}: Unicode categories instead."""
    return character in "_.:/=+-@" or unicodedata.category(character)[0] in "LZN"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_instance_type(value: str, backend: backends.BackendType) -> str:
    if not value.isprintable() or value.strip() != value:  # backends' messages quote it as it is
        raise ValueError(f"{quoted(value)} is not an instance type")
    return backends.check_instance_type(value, backend)


class _BackendBase(_Strict):
    BACKEND: ClassVar[backends.BackendType]

    instance_type: InstanceType
    # Tried in order when the preferred type has no capacity (see the launch stage).
    fallback_instance_types: tuple[InstanceType, ...] = Field(default=(), max_length=5)
    image_parameter: StrictStr | None = Field(
        default=None, max_length=1011,
        description="SSM parameter holding the AMI id, under /aws/service/ or /eiplane/ (what PlanLaunch "
                    "may read); the backend's default if unset"
    )
    root_volume_gib: StrictInt = Field(default=100, ge=30, le=4096, description="encrypted gp3 root volume")

    @property
    def instance_types(self) -> list[str]:
        return [self.instance_type, *self.fallback_instance_types]

    @property
    def resolved_image_parameter(self) -> str:
        return self.image_parameter or backends.DEFAULT_IMAGE_PARAMETERS[self.BACKEND]

    @field_validator("instance_type")
    @classmethod
    def _instance_type_of_backend(cls, value: str) -> str:
        return _check_instance_type(value, cls.BACKEND)

    @field_validator("image_parameter")
    @classmethod
    def _image_parameter_plan_launch_reads(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(IMAGE_PARAMETER_PATTERN, value):
            raise ValueError(f"{quoted(value)} is not an SSM parameter under {' or '.join(IMAGE_PARAMETER_PREFIXES)} "
                             "(what PlanLaunch may read), named of letters, digits and _ . - /")
        return value

    @field_validator("fallback_instance_types")
    @classmethod
    def _fallbacks_of_backend(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        problems = []
        for value in values:
            try:
                _check_instance_type(value, cls.BACKEND)
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
    instance_type: InstanceType = "m5.large"
    accelerator: Literal["eia2.medium", "eia2.large", "eia2.xlarge"] = "eia2.medium"


class GpuBackend(_BackendBase):
    BACKEND: ClassVar[backends.BackendType] = "gpu"
    type: Literal["gpu"]
    instance_type: InstanceType = "g5.xlarge"


class InferentiaBackend(_BackendBase):
    BACKEND: ClassVar[backends.BackendType] = "inferentia"
    type: Literal["inferentia"]
    instance_type: InstanceType = "inf2.xlarge"


Backend = Annotated[EiaBackend | GpuBackend | InferentiaBackend, Field(discriminator="type")]


class NetworkSpec(_Strict):
    """Where the fleet runs. No VPC and no subnets: the region's default VPC and its
    default subnets. Subnets alone: their VPC. A VPC needs its subnets named."""

    vpc_id: StrictStr | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    subnet_ids: tuple[Annotated[str, Field(strict=True, pattern=r"^subnet-[0-9a-f]{8,17}$")], ...] = Field(
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
    min: StrictInt = Field(default=1, ge=0, le=MAX_FLEET_SIZE)
    desired: StrictInt = Field(default=1, ge=0, le=MAX_FLEET_SIZE)
    max: StrictInt = Field(default=1, ge=1, le=MAX_FLEET_SIZE)

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

    enabled: StrictBool = Field(default=True, description="False: the fleet keeps capacity.desired; ticks skip it")
    capacity_per_instance_rps: StrictNumber | None = Field(
        default=None, gt=0,
        description="requests/s one instance serves through your model server; the policy uses the smaller of "
                    "it and the batch-1 throughput measured at validation (the model alone is at most as fast as "
                    "measured, the server in front of it may be slower); unset: the measured figure")
    target_utilisation: StrictNumber = Field(default=1.0, gt=0, le=1,
                                      description="of the per-instance capacity: below 1 keeps spare room")
    warm_pool_size: StrictInt = Field(
        default=0, ge=0, le=MAX_FLEET_SIZE,
        description="at most this many validated instances are kept stopped (paying for their EBS volume only) and "
                    "resumed first on scale-out, in minutes instead of a launch; scale-in stops instances into the "
                    "pool while it has room. Not counted in capacity.max")
    warm_pool_prefill: StrictBool = Field(
        default=True, description="a new fleet's first ProvisionFleet also launches, validates and stops "
                                  "warm_pool_size instances, so the pool is full before the first surge")


# The serving port may not be one the instance's own services use (SSH, the SSM agent's local
# ports are outbound only, the CloudWatch agent's EMF listener).
RESERVED_PORTS = (22, 25888)
ACM_CERTIFICATE_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
SECURITY_GROUP_PATTERN = r"^sg-[0-9a-f]{8,17}$"


class HealthCheck(_Strict):
    """The target group's health check of each instance's `GET /ping` (ALB limits in brackets)."""

    interval_s: StrictInt = Field(default=10, ge=5, le=300, description="between checks [5-300]")
    timeout_s: StrictInt = Field(default=5, ge=2, le=120, description="a check slower than this fails [2-120]")
    healthy_threshold: StrictInt = Field(default=2, ge=2, le=10, description="passes in a row to turn healthy")
    unhealthy_threshold: StrictInt = Field(default=2, ge=2, le=10, description="failures in a row to turn unhealthy")

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        if self.timeout_s >= self.interval_s:  # the ALB refuses it (ValidationError)
            raise ValueError(f"timeout_s ({self.timeout_s}) must be less than interval_s ({self.interval_s})")
        return self


class Serving(_Strict):
    """How the fleet serves: a model server on each instance behind an internal Application Load
    Balancer in the fleet's subnets, reachable only from the sources listed here."""

    port: StrictInt = Field(default=8080, ge=1024, le=65535, description="the model server's port on each instance")
    listener_port: StrictInt | None = Field(
        default=None, ge=1, le=65535, description="the load balancer's port; default 443 with a certificate, else 80")
    certificate_arn: StrictStr | None = Field(
        default=None, pattern=ACM_CERTIFICATE_PATTERN, max_length=2048,
        description="an ACM certificate of the fleet's region: the listener is HTTPS (TLS 1.2+)")
    allowed_cidrs: tuple[Annotated[str, Field(strict=True, max_length=43)], ...] = Field(
        default=(), max_length=20,
        description="who may call the endpoint; with allowed_security_groups empty too: the VPC's own CIDR blocks")
    allowed_security_groups: tuple[Annotated[str, Field(strict=True, pattern=SECURITY_GROUP_PATTERN)], ...] = Field(
        default=(), max_length=20, description="security groups (of the fleet's VPC) whose members may call it")
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    deregistration_delay_s: StrictInt = Field(
        default=30, ge=0, le=3600,
        description="scale-in: a deregistered instance finishes its requests this long (draining) before it stops")
    healthy_deadline_s: StrictInt = Field(
        default=600, ge=60, le=3600,
        description="a registered instance that has not turned healthy by then is taken out and its slot fails")
    max_batch_size: StrictInt | None = Field(
        default=None, ge=1, le=1024,
        description="dynamic batching: at most this many requests per forward pass; default the largest batch "
                    "size the manifest was validated at")
    max_queue_delay_ms: StrictNumber = Field(
        default=5, ge=0, le=1000, description="dynamic batching: how long a request may wait for others")
    max_queue: StrictInt = Field(default=64, ge=1, le=10_000,
                                 description="requests waiting per instance beyond which it answers 503 at once")
    latency_p99_ms: StrictNumber = Field(
        default=100, gt=0, le=60_000,
        description="the latency objective: an instance's capacity is the highest request rate at which its p99 stays "
                    "under it (measured at validation); capacity matching keeps the fleet under it")

    @property
    def effective_listener_port(self) -> int:
        return self.listener_port or (443 if self.certificate_arn else 80)

    @property
    def protocol(self) -> Literal["HTTP", "HTTPS"]:
        return "HTTPS" if self.certificate_arn else "HTTP"

    @field_validator("port")
    @classmethod
    def _not_reserved(cls, port: int) -> int:
        if port in RESERVED_PORTS:
            raise ValueError(f"{port} is reserved on the instances ({', '.join(map(str, RESERVED_PORTS))})")
        return port

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        problems = []
        for value in values:
            try:
                network = ipaddress.ip_network(value, strict=True)
            except ValueError:
                problems.append(f"{quoted(value)} is not a CIDR block (address/prefix, host bits zero)")
                continue
            if network.prefixlen == 0:
                problems.append(f"{value} opens the endpoint to the whole internet: list the networks that call it")
        if len(set(values)) != len(values):
            problems.append("repeats a CIDR block")
        if problems:
            raise ValueError("; ".join(problems))
        return values

    @field_validator("allowed_security_groups")
    @classmethod
    def _groups(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(values)) != len(values):
            raise ValueError("repeats a security group")
        return values


# CloudWatch alarm names: 1-255 printable characters (no control characters).
ALARM_NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,255}$"


class Rollout(_Strict):
    """How a new model version replaces the one a fleet serves (the RolloutFleet workflow): in
    batches, each launched through ProvisionFleet, validated, put in service, baked while the
    guardrails are watched, then the batch's old instances drain and stop; a guardrail that fires
    or a batch that fails rolls the new instances back and keeps (or restores) the old version."""

    batch_percent: StrictInt = Field(default=50, ge=1, le=100,
                                     description="of the fleet's size replaced per batch (at least one instance)")
    max_surge: StrictInt = Field(
        default=1, ge=0, le=MAX_FLEET_SIZE,
        description="new instances launched beside the old ones per batch; 0: an old instance is taken out first "
                    "(never below min_healthy_percent), for fleets that cannot get a spare accelerator")
    min_healthy_percent: StrictInt = Field(
        default=100, ge=0, le=100,
        description="of the fleet's size that stays in service throughout (a rollout with no capacity for the new "
                    "version never takes the fleet below it)")
    bake_seconds: StrictInt = Field(default=300, ge=0, le=3600,
                                    description="each batch serves this long, guardrails watched, before the old go")
    max_5xx_percent: StrictNumber = Field(
        default=1.0, ge=0, le=100,
        description="guardrail: the target group's 5xx responses, as a percentage of its requests during the bake")
    alarms: tuple[Annotated[str, Field(strict=True, pattern=ALARM_NAME_PATTERN)], ...] = Field(
        default=(), max_length=10,
        description="guardrails: CloudWatch alarms (of the fleet's region) that roll the batch back when in ALARM")

    @model_validator(mode="after")
    def _can_proceed(self) -> Rollout:
        if self.max_surge == 0 and self.min_healthy_percent == 100:
            raise ValueError("max_surge 0 takes an old instance out before its replacement is ready, which "
                             "min_healthy_percent 100 forbids: lower min_healthy_percent or allow a surge")
        return self


Precision = Literal["fp32", "fp16", "bf16"]


class ModelArtifactRef(_Strict):
    """A packed artifact (`eiplane artifact pack` / `push`) in the fleet's prefix of the
    artifacts bucket, and the precisions each instance must reproduce its outputs in."""

    name: StrictStr = Field(pattern=SLUG_PATTERN)
    version: StrictStr = Field(pattern=SLUG_PATTERN)
    precisions: tuple[Precision, ...] = Field(default=("fp32",), min_length=1)

    @field_validator("precisions")
    @classmethod
    def _distinct(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(values)) != len(values):
            raise ValueError("repeats a precision")
        return values


class FleetSpec(_Strict):
    name: StrictStr = Field(pattern=FLEET_NAME_PATTERN, description="lower-case letters, digits, '-'; 3-32 chars")
    region: StrictStr = Field(pattern=REGION_PATTERN, description="a region of botocore's endpoint data")
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    backend: Backend
    capacity: Capacity = Field(default_factory=Capacity)
    scaling: Scaling = Field(default_factory=Scaling)
    model: ModelArtifactRef
    serving: Serving = Field(default_factory=Serving)
    rollout: Rollout = Field(default_factory=Rollout)
    tags: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    dry_run: StrictBool = Field(default=False, description="plan the prerequisites, change nothing")

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        return check_region(region)

    @model_validator(mode="after")
    def _certificate_of_the_region(self) -> FleetSpec:
        certificate = self.serving.certificate_arn
        if certificate is not None and certificate.split(":")[3] != self.region:
            raise ValueError(f"serving.certificate_arn is in {certificate.split(':')[3]}, the fleet in {self.region}: "
                             "a load balancer takes a certificate of its own region")
        return self

    @field_validator("tags")
    @classmethod
    def _user_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        problems = []
        if len(tags) > MAX_USER_TAGS:
            problems.append(f"at most {MAX_USER_TAGS} tags (got {len(tags)})")
        for key, value in list(tags.items())[:MAX_USER_TAGS + 1]:  # a few problems name enough tags
            if not 1 <= len(key) <= 128:
                problems.append(f"key {quoted(key)} must be 1-128 characters")
            if key.lower().startswith(("aws:", "eiplane:")):
                problems.append(f"key {quoted(key)} uses a reserved prefix (aws:, eiplane:)")
            if len(value) > 256:
                problems.append(f"value of {quoted(key)} is longer than 256 characters")
            refused = sorted({c for c in key[:129] + value[:257] if not _tag_character(c)})
            if refused:
                problems.append(f"tag {quoted(key)} has characters EC2 and IAM tags do not allow: "
                                f"{quoted(''.join(refused))} (allowed: letters, numbers, spaces and _ . : / = + - @)")
        if problems:
            raise ValueError("; ".join(problems))
        return tags


MAX_LOCATION_PART_CHARS = 40
MAX_DETAIL_CHARS = 560


def location_part(part: str | int) -> str:
    """A field name as given, or quoted when it is long or unprintable (extra keys are input too)."""
    text = str(part)
    if len(text) <= MAX_LOCATION_PART_CHARS and text.isprintable() and text.strip() == text:
        return text
    return quoted(text)


def _describe(error: Any) -> str:
    location = ".".join(location_part(part) for part in error["loc"]) or "spec"
    if error["type"] == "union_tag_invalid":  # pydantic's message quotes the tag whole
        context = error["ctx"]
        message = (f"Input tag {quoted(str(context['tag']))} found using {context['discriminator']} does not match "
                   f"any of the expected tags: {context['expected_tags']}")
    else:
        message = error["msg"].removeprefix("Value error, ")
    if len(message) > MAX_DETAIL_CHARS:
        message = message[:MAX_DETAIL_CHARS] + f"... ({len(message) - MAX_DETAIL_CHARS} more characters)"
    return f"{location}: {message}"


def parse_fleet_spec(raw: Any) -> FleetSpec:
    """Parse an execution input, raising InvalidFleetSpec with every problem at once."""
    if not isinstance(raw, dict):
        raise InvalidFleetSpec([f"spec: must be a JSON object, got {type(raw).__name__}"])
    try:
        return FleetSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidFleetSpec([_describe(e) for e in exc.errors()]) from None
