"""LaunchInstance: one slot's instance, placed where there is capacity, launched once.

Candidates are tried in order: the preferred instance type in each of the fleet's zones
(starting at a zone that depends on the slot, to spread slots), then the next allowed type.
Capacity and unsupported-type errors move on to the next candidate; a quota error stops at
once and names the quota; throttling and server errors are botocore's and then the ASL's to
retry; a profile EC2 cannot see yet is the ASL's to retry briefly.

A slot generation launches at most one instance, however often its step runs (a retried step,
a lost RunInstances answer, a state write that failed after the launch, a Lambda that timed out):
- an instance already tagged with the slot and generation is taken, not launched again;
- each candidate's RunInstances carries a ClientToken derived from (fleet, region, slot,
  generation, instance type, subnet): retried, the same request gets the same instance back;
- the candidate is recorded in the slot before it is tried, and a step that runs again resumes
  at the recorded candidate instead of walking the list from the start (a retried step could
  otherwise launch in the first candidate after an earlier run launched in the second).
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from eiplane import naming
from eiplane.aws import aws_errors, client, error_code, record_api_calls
from eiplane.errors import InstanceProfileNotReady, NoCapacity, QuotaExceeded
from eiplane.models.launch import LaunchResult, SlotInput
from eiplane.models.prerequisites import SubnetPlacement
from eiplane.models.spec import EiaBackend, FleetSpec
from eiplane.observability import logger
from eiplane.prerequisites.placement import offered_zones
from eiplane.provisioning.lifecycle import record_state, slot_model
from eiplane.state import load_slot, save_slot

NEXT_CANDIDATE = {"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported",
                  "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity"}
QUOTA = {"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded"}
# The Service Quotas names, so the message says exactly what to raise.
QUOTA_NAMES = {
    "g": "Running On-Demand G and VT instances",
    "inf": "Running On-Demand Inf instances",
    "m": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
    "c": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
}


def quota_name(instance_type: str) -> str:
    family = instance_type.split(".")[0]
    prefix = "inf" if family.startswith("inf") else family[0]
    return QUOTA_NAMES.get(prefix, "Running On-Demand instances (vCPU-based)")


def client_token(spec: FleetSpec, index: int, generation: int, instance_type: str, subnet: str) -> str:
    digest = hashlib.sha256(
        f"{spec.region}/{spec.name}/{index}/{generation}/{instance_type}/{subnet}".encode()).hexdigest()
    return f"eiplane-{digest[:48]}"  # ClientToken: at most 64 ASCII characters


LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def slot_instances(ec2: Any, spec: FleetSpec, index: int, generation: int | None = None,
                   states: list[str] | None = None) -> list[dict[str, Any]]:
    """The fleet's instances tagged with this slot (and generation), in `states` (live ones by default)."""
    filters = [{"Name": f"tag:{naming.TAG_FLEET}", "Values": [spec.name]},
               {"Name": f"tag:{naming.TAG_MANAGED_BY}", "Values": [naming.PROJECT]},
               {"Name": "tag:eiplane:slot", "Values": [str(index)]},
               {"Name": "instance-state-name", "Values": states or LIVE_STATES}]
    if generation is not None:
        filters.append({"Name": "tag:eiplane:generation", "Values": [str(generation)]})
    return [i for page in ec2.get_paginator("describe_instances").paginate(Filters=filters)
            for r in page["Reservations"] for i in r["Instances"]]


def candidates(spec: FleetSpec, subnets: list[SubnetPlacement], index: int,
               offered: dict[str, set[str]]) -> list[tuple[str, SubnetPlacement]]:
    start = index % len(subnets)
    rotated = subnets[start:] + subnets[:start]
    return [(t, s) for t in spec.backend.instance_types for s in rotated if s.availability_zone in offered.get(t, set())]


def launch_instance(request: SlotInput) -> LaunchResult:
    spec, slot, shared = request.spec, request.slot, request.launch
    ec2 = client("ec2", spec.region)
    with record_api_calls() as calls, aws_errors():
        if slot.resume_instance_id:
            result = _resumed(ec2, slot.resume_instance_id)
            # this execution carries the slot on now: the one that launched it is over
            save_slot(spec.name, slot.index, {"execution": request.context.execution_id})
        elif slot.warm_instance_id:
            # From the warm pool: started, then registered and validated again like any instance, with the
            # version this execution pushes (whatever it validated before it was stopped).
            _start_pooled(ec2, spec, slot.index, slot.warm_instance_id)
            result = _resumed(ec2, slot.warm_instance_id)
            ec2.create_tags(Resources=[result.instance_id], Tags=naming.as_aws_tags(naming.model_tags(**slot_model(request))))
            record_state(spec, slot.index, result.instance_id, "launching", {
                "execution": request.context.execution_id, "reason": "started from the warm pool",
                **slot_model(request)})
        else:
            result = _launch(ec2, request)
            record_state(spec, slot.index, result.instance_id, "launching", {
                "generation": slot.generation, "instance_type": result.instance_type,
                "subnet_id": result.subnet_id, "availability_zone": result.availability_zone,
                "image_id": result.image_id, "image_parameter": shared.image_parameter,
                "launch_attempts": result.attempts, "reason": "", "execution": request.context.execution_id,
                **slot_model(request),
            }, tag=False)  # launched with its tags
    return result.model_copy(update={"mutating_calls": calls.mutating})


def _start_pooled(ec2: Any, spec: FleetSpec, index: int, instance_id: str) -> None:
    """A stopped instance of the warm pool starts where it stopped, in its zone and type only: with
    no capacity there it is terminated (a stopped instance kept for a zone without capacity helps no
    scale-out) and the slot fails, to be launched anew, wherever there is capacity, by the next
    provisioning."""
    try:
        ec2.start_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        code = error_code(exc)
        if code not in NEXT_CANDIDATE:
            raise
        record_state(spec, index, instance_id, "terminated", {"reason": f"could not start from the warm pool: {code}"})
        ec2.terminate_instances(InstanceIds=[instance_id])
        raise NoCapacity(f"slot {index}: warm-pool instance {instance_id} could not start ({code}); it was "
                         "terminated, and the slot is launched anew by the next provisioning") from exc


def _resumed(ec2: Any, instance_id: str) -> LaunchResult:
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return LaunchResult(instance_id=instance_id, instance_type=instance["InstanceType"], subnet_id=instance["SubnetId"],
                        availability_zone=instance["Placement"]["AvailabilityZone"], image_id=instance["ImageId"],
                        attempts=[], resumed=True, mutating_calls=[])


def _launch(ec2: Any, request: SlotInput) -> LaunchResult:
    spec, slot, shared = request.spec, request.slot, request.launch
    subnets = request.placement.subnets
    existing = slot_instances(ec2, spec, slot.index, slot.generation)
    if existing:  # this slot generation launched before (an earlier run of this step): take it
        instance = sorted(existing, key=lambda i: i["InstanceId"])[0]
        logger.info(f"slot {slot.index}: {instance['InstanceId']} was launched by an earlier run of this step")
        return LaunchResult(instance_id=instance["InstanceId"], instance_type=instance["InstanceType"],
                            subnet_id=instance["SubnetId"], availability_zone=instance["Placement"]["AvailabilityZone"],
                            image_id=instance["ImageId"], attempts=[], resumed=False, mutating_calls=[])
    offered = offered_zones(spec, request.placement.availability_zones)
    attempts: list[str] = []
    ordered = candidates(spec, subnets, slot.index, offered)
    recorded = (load_slot(spec.name, slot.index) or {}).get("launch_attempt") or {}
    if recorded.get("generation") == slot.generation:  # resume at the candidate tried last, not the first
        keys = [f"{t}/{s.subnet_id}" for t, s in ordered]
        if recorded.get("candidate") in keys:
            ordered = ordered[keys.index(recorded["candidate"]):]
    for instance_type, subnet in ordered:
        where = f"{instance_type} in {subnet.availability_zone}"
        save_slot(spec.name, slot.index, {"launch_attempt": {
            "generation": slot.generation, "candidate": f"{instance_type}/{subnet.subnet_id}",
            "execution": request.context.execution_id}})
        try:
            reservation = ec2.run_instances(**run_request(request, instance_type, subnet.subnet_id))
        except ClientError as exc:
            code = error_code(exc)
            if code in NEXT_CANDIDATE:
                attempts.append(f"{where}: {code}")
                logger.warning(f"no capacity for {where} ({code}); trying the next candidate")
                continue
            if code in QUOTA:
                raise QuotaExceeded(
                    f"{code} launching {where}: raise the Service Quotas quota "
                    f"'{quota_name(instance_type)}' in {spec.region} (EC2), then re-run") from exc
            if code == "InvalidParameterValue" and "profile" in str(exc).lower():
                raise InstanceProfileNotReady(f"EC2 does not see {shared.instance_profile_arn} yet: {exc}") from exc
            raise
        instance = reservation["Instances"][0]
        logger.info(f"slot {slot.index}: launched {instance['InstanceId']} ({where}, {subnet.subnet_id})",
                    extra={"attempts": attempts})
        return LaunchResult(instance_id=instance["InstanceId"], instance_type=instance_type, subnet_id=subnet.subnet_id,
                            availability_zone=subnet.availability_zone, image_id=shared.image_id, attempts=attempts,
                            resumed=False, mutating_calls=[])
    tried = "; ".join(attempts) or "no allowed instance type is offered in the fleet's zones"
    raise NoCapacity(f"slot {slot.index}: no capacity for {', '.join(spec.backend.instance_types)} "
                     f"in {', '.join(request.placement.availability_zones)} ({tried})")


def run_request(request: SlotInput, instance_type: str, subnet_id: str) -> dict[str, Any]:
    spec, slot, shared = request.spec, request.slot, request.launch
    tags = naming.as_aws_tags({**naming.tags_for("instance", spec), "Name": f"eiplane-{spec.name}-{slot.index}",
                               "eiplane:slot": str(slot.index), "eiplane:generation": str(slot.generation),
                               "eiplane:state": "launching", "eiplane:image-id": shared.image_id,
                               **naming.model_tags(**slot_model(request))})
    run: dict[str, Any] = {
        "ImageId": shared.image_id,
        "InstanceType": instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": subnet_id,
        "SecurityGroupIds": [shared.security_group_id],
        "IamInstanceProfile": {"Arn": shared.instance_profile_arn},
        "ClientToken": client_token(spec, slot.index, slot.generation, instance_type, subnet_id),
        # IMDSv2 only; one hop, so containers on the host cannot reach the instance's credentials.
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [{"DeviceName": shared.root_device_name, "Ebs": {
            "VolumeSize": spec.backend.root_volume_gib, "VolumeType": "gp3", "Encrypted": True,
            "DeleteOnTermination": True}}],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    }
    if isinstance(spec.backend, EiaBackend):
        run["ElasticInferenceAccelerators"] = [{"Type": spec.backend.accelerator, "Count": 1}]
    return run
