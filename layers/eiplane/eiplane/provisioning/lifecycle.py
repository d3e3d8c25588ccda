"""A slot's lifecycle: launching -> registered -> artifact_verified -> validated -> in_service,
or failed. Each step is recorded in the state table and as the instance's eiplane:state tag,
so both the table and the EC2 console say where every instance stands."""

from __future__ import annotations

from typing import Any

from eiplane import naming
from eiplane.aws import aws_errors, client, record_api_calls
from eiplane.errors import FleetConverging, TargetNeverHealthy, TargetNotHealthy
from eiplane.executions import cause_message
from eiplane.models.launch import (
    IN_PROGRESS,
    REASON_CHARS,
    FleetReport,
    FleetSummary,
    LaunchResult,
    PutInServiceInput,
    ReportRef,
    SlotInput,
    SlotOutcome,
    SlotRef,
    SlotState,
    SummarizeFleetInput,
    TerminateSlotInput,
)
from eiplane.models.spec import FleetSpec
from eiplane.observability import logger
from eiplane.provisioning.plan import execution_running
from eiplane.settings import get_settings
from eiplane.state import ROLLOUT_ACTIVE, load_rollout, load_slots, register_fleet, save_slot


def record_state(spec: FleetSpec, index: int, instance_id: str | None, state: SlotState,
                 fields: dict[str, Any] | None = None, tag: bool = True) -> None:
    save_slot(spec.name, index, {"state": state, "instance_id": instance_id, **(fields or {})})
    if tag and instance_id:
        client("ec2", spec.region).create_tags(Resources=[instance_id], Tags=[{"Key": "eiplane:state", "Value": state}])
    logger.info(f"slot {index}: {instance_id or 'no instance'} {state}", extra={"slot": index, "state": state})


def slot_model(request: SlotInput) -> dict[str, str]:
    """The version a slot's instance is launched, validated and put in service with: its record's fields."""
    model = request.spec.model
    return {"model_name": model.name, "model_version": model.version,
            "manifest_sha256": request.launch.artifact.manifest_sha256}


def _outcome(request: SlotInput, instance: LaunchResult | None, state: SlotState, mutating_calls: list[str],
             **fields: Any) -> SlotOutcome:
    """The slot's outcome, with where its instance ran (if it got one) and every call it changed."""
    where = {} if instance is None else {
        "instance_id": instance.instance_id, "instance_type": instance.instance_type,
        "availability_zone": instance.availability_zone, "image_id": instance.image_id, "attempts": instance.attempts,
        **slot_model(request)}
    earlier = instance.mutating_calls if instance else []
    return SlotOutcome(index=request.slot.index, generation=request.slot.generation, state=state, **where,
                       mutating_calls=[*earlier, *mutating_calls], **fields)


def _finish(request: SlotInput, outcome: SlotOutcome) -> SlotRef:
    """The slot's outcome goes to its record (read by SummarizeFleet into the report); what the
    iteration passes on is a reference of bounded size, however many numbers validation measured."""
    with aws_errors():
        save_slot(request.spec.name, request.slot.index, {
            "outcome": {**outcome.model_dump(mode="json"), "execution": request.context.execution_id}})
    reason = outcome.reason[:REASON_CHARS] if outcome.reason else None
    return SlotRef(index=outcome.index, generation=outcome.generation, state=outcome.state,
                   instance_id=outcome.instance_id, reason=reason)


# The ASL's Retry interval for TargetNotHealthy (BackoffRate 1): attempt n has waited n times this.
HEALTH_WAIT_SECONDS = 10


def put_in_service(request: PutInServiceInput) -> SlotRef:
    """Register the validated instance with the fleet's target group (again on every attempt:
    registering a registered target changes nothing) and put it in service only once the load
    balancer's health checks of its model server pass: `healthy`, so it is already taking requests."""
    instance, spec = request.instance, request.spec
    target_group = request.launch.target_group_arn
    target = {"Id": instance.instance_id, "Port": spec.serving.port}
    with record_api_calls() as calls, aws_errors():
        elbv2 = client("elbv2", spec.region)
        elbv2.register_targets(TargetGroupArn=target_group, Targets=[target])
        health = elbv2.describe_target_health(TargetGroupArn=target_group, Targets=[target])["TargetHealthDescriptions"]
        state = health[0]["TargetHealth"] if health else {"State": "unknown"}
        if state["State"] != "healthy":
            waited = request.attempt * HEALTH_WAIT_SECONDS
            why = f"{state['State']}" + (f" ({state.get('Reason')}: {state.get('Description', '')})"
                                         if state.get("Reason") else "")
            if waited >= spec.serving.healthy_deadline_s:
                raise TargetNeverHealthy(f"{instance.instance_id} is still {why} after {waited} s of health checks "
                                         f"(serving.healthy_deadline_s {spec.serving.healthy_deadline_s})")
            raise TargetNotHealthy(f"{instance.instance_id} is {why} after {waited} s")
        record_state(spec, request.slot.index, instance.instance_id, "in_service")
    steps = [*request.agent.mutating_calls, *request.command.mutating_calls, *request.validation.mutating_calls]
    return _finish(request, _outcome(request, instance, "in_service", [*steps, *calls.mutating],
                                     validation=request.validation.summary))


def put_in_warm_pool(request: PutInServiceInput) -> SlotRef:
    """A slot launched to prefill the warm pool: validated like any, then stopped (it costs its
    EBS volume only until a scale-out starts it again)."""
    instance = request.instance
    with record_api_calls() as calls, aws_errors():
        stop_into_pool(request.spec, request.slot.index, instance.instance_id, "validated, then stopped (prefill)")
    steps = [*request.agent.mutating_calls, *request.command.mutating_calls, *request.validation.mutating_calls]
    return _finish(request, _outcome(request, instance, "warm", [*steps, *calls.mutating],
                                     validation=request.validation.summary))


def stop_into_pool(spec: FleetSpec, index: int, instance_id: str, why: str) -> None:
    # Recorded (and tagged) first: a stop that fails leaves the slot marked warm, and the next
    # plan sees its instance is not stopped and does not resume it.
    record_state(spec, index, instance_id, "warm", {"reason": why})
    client("ec2", spec.region).stop_instances(InstanceIds=[instance_id])


def failure_reason(error: dict[str, Any]) -> str:
    return f"{error.get('Error', 'Failed')}: {cause_message(error.get('Cause')) or ''}"


def terminate_slot(request: TerminateSlotInput) -> SlotRef:
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
            # Out of the load balancer first (deregistering a target that was never registered
            # succeeds), so no request is sent to an instance on its way down.
            client("elbv2", spec.region).deregister_targets(
                TargetGroupArn=request.launch.target_group_arn,
                Targets=[{"Id": i, "Port": spec.serving.port} for i in ids])
            ec2.terminate_instances(InstanceIds=ids)
    logger.warning(f"slot {request.slot.index} failed: {reason}")
    return _finish(request, _outcome(request, instance, "failed", calls.mutating, reason=reason))


MESSAGE_FAILURES = 10  # failed slots named in the summary's message; the report has them all


def summarize(request: SummarizeFleetInput) -> FleetSummary:
    """The fleet as it is now: this execution's slots (their outcomes from their records), the
    slots already in service, and those another running execution was provisioning, once they
    have settled (FleetConverging until then). The whole report goes to S3; the execution's
    output is its summary, of a size independent of the fleet's."""
    spec, launch, own = request.spec, request.launch, request.context.execution_id
    with record_api_calls() as calls, aws_errors():
        records = load_slots(spec.name)
        waiting = [i for i in launch.in_flight if records.get(i, {}).get("state") in {*IN_PROGRESS, "planned"}
                   and execution_running(str(records[i].get("execution")))]
        if waiting:
            raise FleetConverging(f"slots {', '.join(map(str, waiting))} are still being provisioned by "
                                  f"{records[waiting[0]].get('execution')}; this summary waits for them")
        # capacity matching looks after every fleet ProvisionFleet has applied; a rollout's batch (or its
        # restore) is not the fleet's spec yet: the rollout registers the version it ends with
        rollout = load_rollout(spec.name)
        if not (rollout and rollout.get("status") in ROLLOUT_ACTIVE
                and own in (rollout.get("batch_execution"), rollout.get("restore_execution"))):
            register_fleet(spec, own)
    outcomes: dict[int, SlotOutcome] = {}
    for slot in launch.slots:
        record = records.get(slot.index, {})
        stored = record.get("outcome") or {}
        if stored.get("execution") == own:
            outcomes[slot.index] = SlotOutcome.model_validate({k: v for k, v in stored.items() if k != "execution"})
        else:  # no outcome recorded (the iteration ended in a way that wrote none): what the record says
            outcomes[slot.index] = _from_record(slot.index, record, default_state="failed")
    for index in [*launch.already_in_service, *launch.in_flight]:
        outcomes.setdefault(index, _from_record(index, records.get(index, {}), default_state="failed"))
    instances = [outcomes[i] for i in sorted(outcomes)]
    in_service = sum(o.state == "in_service" for o in instances)
    warm = sum(o.state == "warm" for o in instances)
    failed = [o for o in instances if o.state not in ("in_service", "warm")]
    desired = spec.capacity.desired
    message = f"{in_service} of {desired} instances in service"
    others = [i for i in launch.in_flight if outcomes.get(i) and outcomes[i].state == "in_service"]
    if others:
        message += f" ({len(others)} provisioned by another execution)"
    if warm:
        message += f", {warm} validated and stopped into the warm pool"
    if failed:
        named = "; ".join(f"slot {o.index}: {(o.reason or o.state)[:REASON_CHARS]}" for o in failed[:MESSAGE_FAILURES])
        message += "; " + named + (f"; and {len(failed) - MESSAGE_FAILURES} more (see the report)"
                                   if len(failed) > MESSAGE_FAILURES else "")
    shared = launch.shared
    mutating = [*request.report.mutating_calls, *launch.mutating_calls,
                *(c for o in outcomes.values() if o.index in {s.index for s in launch.slots} for c in o.mutating_calls),
                *calls.mutating]
    complete = in_service >= desired and not failed
    report = FleetReport(
        **{**request.report.model_dump(), "mutating_calls": mutating},
        image_id=shared.image_id if shared else None,
        artifact_manifest_sha256=shared.artifact.manifest_sha256 if shared else None,
        desired=desired, in_service=in_service, instances=instances, warm_pool=warm,
        complete=complete, message=message,
    )
    where = save_report(spec.name, own, report)
    return FleetSummary(
        fleet=spec.name, region=spec.region, backend=request.report.backend, vpc_id=request.report.vpc_id,
        summary=request.report.summary, execution_id=own, image_id=report.image_id,
        artifact_manifest_sha256=report.artifact_manifest_sha256, desired=desired, in_service=in_service,
        warm_pool=warm, failed=len(failed), provisioned=len(launch.slots), complete=complete,
        message=message[:4096], mutating_call_count=len(mutating), report=where)


def _from_record(index: int, record: dict[str, Any], default_state: SlotState) -> SlotOutcome:
    state = record.get("state") if record.get("state") in ("in_service", "warm", "failed") else default_state
    return SlotOutcome(
        index=index, generation=int(record.get("generation", 0)), state=state,
        instance_id=record.get("instance_id"), instance_type=record.get("instance_type"),
        availability_zone=record.get("availability_zone"), image_id=record.get("image_id"),
        model_name=record.get("model_name"), model_version=record.get("model_version"),
        manifest_sha256=record.get("manifest_sha256"),
        validation=record.get("validation"), reason=record.get("reason") or None)


def save_report(fleet: str, execution_id: str, report: FleetReport) -> ReportRef:
    """The whole report, beside the fleet's other objects: fleets/<fleet>/reports/<execution>.json."""
    settings = get_settings()
    key = f"{naming.artifact_prefix(fleet)}reports/{execution_id.rsplit(':', 1)[-1]}.json"
    client("s3", settings.region).put_object(Bucket=settings.artifacts_bucket, Key=key,
                                             Body=report.model_dump_json().encode(), ContentType="application/json")
    return ReportRef(bucket=settings.artifacts_bucket, key=key)
