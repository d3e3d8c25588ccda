"""A slot's lifecycle: launching -> registered -> artifact_verified -> validated -> in_service,
or failed. Each step is recorded in the state table and as the instance's eiplane:state tag,
so both the table and the EC2 console say where every instance stands."""

from __future__ import annotations

from typing import Any

from eiplane.aws import aws_errors, client, record_api_calls
from eiplane.executions import cause_message
from eiplane.models.launch import (
    FleetReport,
    LaunchResult,
    PutInServiceInput,
    SlotInput,
    SlotOutcome,
    SlotState,
    SummarizeFleetInput,
    TerminateSlotInput,
)
from eiplane.models.spec import FleetSpec
from eiplane.observability import logger
from eiplane.state import load_slots, register_fleet, save_slot


def record_state(spec: FleetSpec, index: int, instance_id: str | None, state: SlotState,
                 fields: dict[str, Any] | None = None, tag: bool = True) -> None:
    save_slot(spec.name, index, {"state": state, "instance_id": instance_id, **(fields or {})})
    if tag and instance_id:
        client("ec2", spec.region).create_tags(Resources=[instance_id], Tags=[{"Key": "eiplane:state", "Value": state}])
    logger.info(f"slot {index}: {instance_id or 'no instance'} {state}", extra={"slot": index, "state": state})


def _outcome(request: SlotInput, instance: LaunchResult | None, state: SlotState, mutating_calls: list[str],
             **fields: Any) -> SlotOutcome:
    """The slot's outcome, with where its instance ran (if it got one) and every call it changed."""
    where = {} if instance is None else {
        "instance_id": instance.instance_id, "instance_type": instance.instance_type,
        "availability_zone": instance.availability_zone, "image_id": instance.image_id, "attempts": instance.attempts}
    earlier = instance.mutating_calls if instance else []
    return SlotOutcome(index=request.slot.index, generation=request.slot.generation, state=state, **where,
                       mutating_calls=[*earlier, *mutating_calls], **fields)


def put_in_service(request: PutInServiceInput) -> SlotOutcome:
    instance = request.instance
    with record_api_calls() as calls, aws_errors():
        record_state(request.spec, request.slot.index, instance.instance_id, "in_service")
    steps = [*request.agent.mutating_calls, *request.command.mutating_calls, *request.validation.mutating_calls]
    return _outcome(request, instance, "in_service", [*steps, *calls.mutating], validation=request.validation.summary)


def put_in_warm_pool(request: PutInServiceInput) -> SlotOutcome:
    """A slot launched to prefill the warm pool: validated like any, then stopped (it costs its
    EBS volume only until a scale-out starts it again)."""
    instance = request.instance
    with record_api_calls() as calls, aws_errors():
        stop_into_pool(request.spec, request.slot.index, instance.instance_id, "validated, then stopped (prefill)")
    steps = [*request.agent.mutating_calls, *request.command.mutating_calls, *request.validation.mutating_calls]
    return _outcome(request, instance, "warm", [*steps, *calls.mutating], validation=request.validation.summary)


def stop_into_pool(spec: FleetSpec, index: int, instance_id: str, why: str) -> None:
    # Recorded (and tagged) first: a stop that fails leaves the slot marked warm, and the next
    # plan sees its instance is not stopped and does not resume it.
    record_state(spec, index, instance_id, "warm", {"reason": why})
    client("ec2", spec.region).stop_instances(InstanceIds=[instance_id])


def failure_reason(error: dict[str, Any]) -> str:
    return f"{error.get('Error', 'Failed')}: {cause_message(error.get('Cause')) or ''}"


def terminate_slot(request: TerminateSlotInput) -> SlotOutcome:
    """The compensation every failed step of a slot is caught into: terminate the instance
    (so nothing runs that is not in service) and record why. A step that failed before its
    result reached the state (a launch whose answer was lost, a Lambda that timed out right
    after RunInstances) leaves no instance id here: the slot's instances are found by its tags."""
    from eiplane.provisioning.launch import slot_instances

    reason = failure_reason(request.error)
    instance = request.instance
    spec, slot = request.spec, request.slot
    ec2 = client("ec2", spec.region)
    with record_api_calls() as calls, aws_errors():
        ids = [instance.instance_id] if instance is not None else sorted(
            i["InstanceId"] for i in slot_instances(ec2, spec, slot.index, slot.generation))
        # Recorded (and tagged) first: a termination that fails leaves the slot marked failed.
        record_state(spec, slot.index, ids[0] if ids else None, "failed",
                     {"reason": reason, "generation": slot.generation})
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
    logger.warning(f"slot {request.slot.index} failed: {reason}")
    return _outcome(request, instance, "failed", calls.mutating, reason=reason)


def summarize(request: SummarizeFleetInput) -> FleetReport:
    spec = request.spec
    outcomes = {o.index: o for o in request.slots}
    with record_api_calls() as calls, aws_errors():
        records = load_slots(spec.name) if request.launch.already_in_service else {}
        # capacity matching looks after every fleet ProvisionFleet has applied
        register_fleet(spec, request.context.execution_id)
    for index in request.launch.already_in_service:
        record = records[index]
        outcomes[index] = SlotOutcome(
            index=index, generation=int(record.get("generation", 0)), state="in_service",
            instance_id=record.get("instance_id"), instance_type=record.get("instance_type"),
            availability_zone=record.get("availability_zone"), image_id=record.get("image_id"),
            validation=record.get("validation"))
    instances = [outcomes[i] for i in sorted(outcomes)]
    in_service = sum(o.state == "in_service" for o in instances)
    warm = sum(o.state == "warm" for o in instances)
    failed = [o for o in instances if o.state not in ("in_service", "warm")]
    desired = spec.capacity.desired
    message = f"{in_service} of {desired} instances in service"
    if warm:
        message += f", {warm} validated and stopped into the warm pool"
    if failed:
        message += "; " + "; ".join(f"slot {o.index}: {o.reason}" for o in failed)
    shared = request.launch.shared
    mutating = [*request.report.mutating_calls, *request.launch.mutating_calls,
                *(c for o in request.slots for c in o.mutating_calls), *calls.mutating]
    return FleetReport(
        **{**request.report.model_dump(), "mutating_calls": mutating},
        image_id=shared.image_id if shared else None,
        artifact_manifest_sha256=shared.artifact.manifest_sha256 if shared else None,
        desired=desired, in_service=in_service, instances=instances, warm_pool=warm,
        complete=in_service == desired and not failed, message=message,
    )
