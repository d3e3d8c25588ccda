"""RolloutFleet: a new model version replaces the one a fleet serves, batch by batch.

Each batch's new instances are launched, validated and put in service by a ProvisionFleet execution
(the one launch path) given the new spec at the batch's size; the rollout's record in the state table
(sk ROLLOUT) lets that execution count only the new version's instances and keeps it from registering
a spec the rollout may still roll back. The batch bakes while the guardrails are watched, then its old
instances drain (the target group's deregistration delay) and are terminated. A batch that fails or a
guardrail that fires rolls back: the new instances drain and go, and the old version is restored to the
fleet's size where instances were taken out. The fleet's lease (the one capacity matching takes) is the
rollout's from start to end, so no tick resizes the fleet meanwhile.

Every step re-reads the record and the slots, so each is safe to retry and the state it passes on holds
counts only, whatever the fleet's size.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from eiplane.aws import aws_errors, client, error_code
from eiplane.errors import (
    BatchFailed,
    BatchInProgress,
    FleetBusy,
    FleetNotRegistered,
    GuardrailFired,
    NothingToRollOut,
    RolloutBlocked,
)
from eiplane.executions import cause_message
from eiplane.matching import lease as leases
from eiplane.matching.observe import balancer_dimension
from eiplane.matching.tick import drain_slot, ensure_drained, target_group_of
from eiplane.models.launch import IN_PROGRESS
from eiplane.models.rollout import (
    AwaitBatchInput,
    Bake,
    BatchExecution,
    BatchOutcome,
    BatchPlan,
    DrainResult,
    FinishInput,
    GuardrailInput,
    ModelVersion,
    RetireResult,
    RolloutReport,
    RolloutState,
    RolloutStep,
    SlotGroupInput,
    StartBatchInput,
    StartRolloutInput,
)
from eiplane.models.spec import FleetSpec, parse_fleet_spec
from eiplane.observability import logger
from eiplane.provisioning.lifecycle import failure_reason, record_state
from eiplane.provisioning.plan import execution_running, read_artifact, running_slot_instances, serves_version
from eiplane.settings import get_settings
from eiplane.state import (
    ROLLOUT_ACTIVE,
    begin_rollout,
    load_prerequisites,
    load_registration,
    load_rollout,
    load_slots,
    now,
    register_fleet,
    save_rollout,
)

# Between two guardrail checks of a bake: a fired guardrail rolls back within this long.
CHECK_INTERVAL_SECONDS = 30
# A p99 latency from fewer requests than this says nothing: the latency guardrail waits for them.
MIN_REQUESTS_FOR_P99 = 20
# How long a batch's ProvisionFleet may take (launch, agent, validation, health checks): the lease
# outlives it, and is renewed by every step.
BATCH_ALLOWANCE_SECONDS = 3600


def version_of(spec: FleetSpec) -> ModelVersion:
    return ModelVersion(name=spec.model.name, version=spec.model.version)


def _serves(record: dict[str, Any], version: ModelVersion) -> bool:
    return serves_version(record, version.name, version.version)


def _lease_term(spec: FleetSpec) -> int:
    settings = get_settings()
    return (leases.term_seconds(settings.lease_seconds, spec.serving.deregistration_delay_s)
            + spec.rollout.bake_seconds + BATCH_ALLOWANCE_SECONDS)


def _hold(fleet: str, owner: str, spec: FleetSpec) -> None:
    """Renew the rollout's lease (its own: the conditional write succeeds for its owner)."""
    if not leases.acquire(fleet, owner, _lease_term(spec)):
        raise FleetBusy(f"{fleet}'s lease was taken by {leases.holder(fleet)} while this rollout held it "
                        "(it expired: a step ran longer than the lease's term)")


def _in_service(fleet: str, region: str) -> dict[int, dict[str, Any]]:
    records = load_slots(fleet)
    running = running_slot_instances(records, region)
    return {i: r for i, r in records.items() if r.get("state") == "in_service" and r.get("instance_id") in running}


class _Rollout:
    """The fleet's rollout record, read once per step."""

    def __init__(self, state: RolloutState) -> None:
        record = load_rollout(state.fleet)
        if record is None or record.get("execution") != state.execution_id:
            raise NothingToRollOut(f"{state.fleet} has no rollout record of {state.execution_id}: another rollout "
                                   "replaced it")
        self.state = state
        self.record = record
        self.before = FleetSpec.model_validate(record["from_spec"])
        self.after = FleetSpec.model_validate(record["to_spec"])

    def save(self, fields: dict[str, Any]) -> None:
        save_rollout(self.state.fleet, fields)
        self.record.update(fields)


def start_rollout(request: StartRolloutInput) -> RolloutState:
    """Check the new spec and the fleet, take the fleet's lease and write the rollout record; nothing
    else changes here. A re-run of the same execution resumes its record."""
    spec = parse_fleet_spec(request.spec)
    own = request.context.execution_id
    after = version_of(spec)
    with aws_errors():
        registration = load_registration(spec.name)
        if registration is None:
            raise FleetNotRegistered(f"{spec.name} is not registered: apply it with ProvisionFleet first")
        if registration.get("status") == "deleting":
            raise FleetBusy(f"{spec.name} is being deleted (by {registration.get('deleting_by', 'unknown')})")
        registered = FleetSpec.model_validate(registration["spec"])
        before = version_of(registered)
        if registered.region != spec.region:
            raise NothingToRollOut(f"{spec.name} runs in {registered.region}, the spec names {spec.region}: a "
                                   "rollout replaces a fleet's model, not its region")
        current = load_rollout(spec.name)
        resuming = current is not None and current.get("execution") == own
        if not resuming:
            _check_idle(spec.name, registration, current)
        read_artifact(spec, get_settings().artifacts_bucket)  # ArtifactNotFound before anything changes
        in_service = _in_service(spec.name, spec.region)
        old = [i for i, r in in_service.items() if not _serves(r, after)]
        if not resuming and not in_service:
            raise NothingToRollOut(f"{spec.name} has no instance in service: apply the spec with ProvisionFleet")
        desired = min(max(int(registration.get("desired", registered.capacity.desired)), spec.capacity.min),
                      spec.capacity.max)
        _take_lease(spec, own)
        if not resuming and not begin_rollout(spec.name, own, {
                "status": "running", "phase": "started", "batch": 0, "from_spec": registered.model_dump(mode="json"),
                "to_spec": spec.model_dump(mode="json"), "from_version": str(before), "to_version": str(after),
                "desired": desired, "started_at": now(), "reason": ""},
                replacing=str(current["execution"]) if current else None):
            # (only a rollout that took the lease after ours expired gets here: ours is no longer held)
            raise FleetBusy(f"another rollout of {spec.name} started meanwhile")
    logger.info(f"{spec.name}: rolling out {after} over {before}: {len(old)} of {len(in_service)} instance(s) "
                f"to replace", extra={"desired": desired, "resuming": resuming})
    bake = spec.rollout.bake_seconds
    return RolloutState(fleet=spec.name, execution_id=own, version_before=before, version_after=after,
                        desired=desired, old_in_service=len(old),
                        drain_seconds=max(spec.serving.deregistration_delay_s,
                                          registered.serving.deregistration_delay_s),
                        check_interval_seconds=min(CHECK_INTERVAL_SECONDS, bake))


def _take_lease(spec: FleetSpec, own: str) -> None:
    """The fleet's lease, or FleetBusy. A lease left by a rollout whose execution has ended (aborted,
    timed out) is taken over rather than waited out: a rollout's lasts hours."""
    term = _lease_term(spec)
    if leases.acquire(spec.name, own, term):
        return
    holder = leases.holder(spec.name)
    if holder and holder.count(":") >= 7 and holder.split(":")[-2].endswith("-RolloutFleet") and \
            not execution_running(holder) and leases.take_over(spec.name, own, holder, term):
        logger.warning(f"{spec.name}: took over the lease {holder} left when it ended")
        return
    raise FleetBusy(f"{spec.name}'s lease is held by {holder} (a capacity-matching tick or a deletion): the "
                    "rollout waits for it")


def _check_idle(fleet: str, registration: dict[str, Any], current: dict[str, Any] | None) -> None:
    if current is not None and current.get("status") in ROLLOUT_ACTIVE and \
            execution_running(str(current.get("execution"))):
        raise FleetBusy(f"rollout {current['execution']} of {fleet} is running")
    active = registration.get("active_execution")
    if active and execution_running(str(active)):
        raise FleetBusy(f"{fleet} is being provisioned by {active}: the rollout starts once it ends")


def plan_batch(request: RolloutStep) -> BatchPlan:
    """The next batch: rollout.batch_percent of the fleet's size; up to max_surge launched beside the old
    ones, the rest of the batch taken out first, never below min_healthy_percent. Its slots go to the
    record; a retried step returns the batch it planned."""
    with aws_errors():
        rollout = _Rollout(request.rollout)
        record, spec = rollout.record, rollout.after
        if record.get("phase") == "planned":
            return BatchPlan.model_validate(record["plan"])
        _hold(spec.name, request.rollout.execution_id, spec)
        in_service = _in_service(spec.name, spec.region)
        after = request.rollout.version_after
        old = sorted(i for i, r in in_service.items() if not _serves(r, after))
        new = [i for i in in_service if i not in old]
        if not old:
            return BatchPlan(batch=0, done=True, new_in_service=len(new))
        desired = request.rollout.desired
        size = min(len(old), max(1, math.ceil(spec.rollout.batch_percent * desired / 100)))
        floor = math.ceil(spec.rollout.min_healthy_percent * desired / 100)
        surge = min(spec.rollout.max_surge, size)
        take_out = min(size - surge, max(0, len(in_service) - floor))
        if surge + take_out == 0:
            raise RolloutBlocked(f"{spec.name}: {len(in_service)} in service and min_healthy_percent "
                                 f"{spec.rollout.min_healthy_percent} of {desired} keeps {floor}: with max_surge 0 "
                                 "no instance can be taken out to make room for its replacement")
        plan = BatchPlan(batch=int(record.get("batch", 0)) + 1, done=False, take_out_first=take_out,
                         launch=surge + take_out, retire=surge, new_in_service=len(new), old_in_service=len(old))
        rollout.save({"phase": "planned", "batch": plan.batch, "plan": plan.model_dump(mode="json"),
                      "take_out_first": old[:take_out], "retire": old[take_out:take_out + surge],
                      "new_target": len(new) + plan.launch, "batch_execution": "", "bake_started_at": "",
                      "bake_baseline": {}})
    logger.info(f"{spec.name}: batch {plan.batch}: {plan.launch} new, {take_out} old out first, {surge} old "
                f"after the bake ({len(old)} old and {len(new)} new in service)")
    return plan


def drain_group(request: SlotGroupInput) -> DrainResult:
    """Deregister a group of the rollout's slots from the target group (they finish their requests for
    the deregistration delay): the batch's old instances (taken out first, or retired after the bake),
    or, rolling back, the new version's. Rolling back also stops the batch's ProvisionFleet if it still
    runs and terminates the new instances it had not put in service yet."""
    terminated = 0
    with aws_errors():
        rollout = _Rollout(request.rollout)
        spec = rollout.after
        target_group = target_group_of(spec.name)
        records = load_slots(spec.name)
        running = running_slot_instances(records, spec.region)
        if request.group == "rollback":
            indexes, terminated = _roll_back_new(rollout, records, running, target_group)
        else:
            indexes = list(rollout.record.get(request.group) or [])
        draining = []
        for index in indexes:
            record = records.get(index, {})
            instance = record.get("instance_id")
            if record.get("state") == "draining":
                draining.append(index)  # a retried step
            elif record.get("state") == "in_service" and instance in running:
                why = ("rolled back" if request.group == "rollback"
                       else f"replaced by {request.rollout.version_after}")
                drain_slot(spec, target_group, index, str(instance), f"rollout: {why}")
                draining.append(index)
        if request.group == "rollback":
            rollout.save({"rollback": draining})
    return DrainResult(draining=len(draining), terminated=terminated,
                       drain_seconds=request.rollout.drain_seconds if draining else 0)


def _roll_back_new(rollout: _Rollout, records: dict[int, dict[str, Any]], running: set[str],
                   target_group: str | None) -> tuple[list[int], int]:
    """Stop the batch's execution, terminate the new instances on their way, return the in-service ones."""
    spec, state = rollout.after, rollout.state
    if rollout.record.get("status") != "rolling_back":
        rollout.save({"status": "rolling_back"})
    batch = str(rollout.record.get("batch_execution") or "")
    if batch and execution_running(batch):
        try:
            client("stepfunctions", get_settings().region).stop_execution(
                executionArn=batch, error="RolledBack", cause=f"rollout {state.execution_id} is rolling back")
        except ClientError as exc:
            if error_code(exc) != "ExecutionDoesNotExist":
                raise
    on_the_way = sorted(i for i, r in records.items() if r.get("state") in IN_PROGRESS
                        and r.get("execution") == batch and batch and r.get("instance_id") in running)
    for index in on_the_way:
        instance = str(records[index]["instance_id"])
        record_state(spec, index, instance, "failed", {"reason": "rollout rolled back before it was in service"})
        if target_group:
            client("elbv2", spec.region).deregister_targets(
                TargetGroupArn=target_group, Targets=[{"Id": instance, "Port": spec.serving.port}])
    if on_the_way:
        client("ec2", spec.region).terminate_instances(
            InstanceIds=[str(records[i]["instance_id"]) for i in on_the_way])
    in_service = sorted(i for i, r in records.items() if r.get("state") in ("in_service", "draining")
                        and r.get("instance_id") in running and _serves(r, state.version_after)
                        and state.version_after != state.version_before)
    return in_service, len(on_the_way)


def retire_group(request: SlotGroupInput) -> RetireResult:
    """Terminate a drained group once the load balancer has let its requests finish (TargetsStillDraining,
    retried, until then: no request in flight is cut)."""
    with aws_errors():
        rollout = _Rollout(request.rollout)
        spec = rollout.after
        records = load_slots(spec.name)
        group = [i for i in (rollout.record.get(request.group) or [])
                 if records.get(i, {}).get("state") == "draining" and records[i].get("instance_id")]
        instances = {i: str(records[i]["instance_id"]) for i in group}
        ensure_drained(spec, target_group_of(spec.name), list(instances.values()), request.rollout.drain_seconds)
        why = {"take_out_first": "taken out for its replacement (max_surge)", "retire": "replaced",
               "rollback": "rolled back"}[request.group]
        for index, instance in instances.items():
            record_state(spec, index, instance, "terminated", {"reason": f"rollout: {why}"})
        if instances:
            client("ec2", spec.region).terminate_instances(InstanceIds=sorted(instances.values()))
        fields: dict[str, Any] = {"phase": "retired"} if request.group == "retire" else {}
        if request.group != "rollback" and instances:
            fields["retired"] = int(rollout.record.get("retired", 0)) + len(instances)
        if fields:
            rollout.save(fields)
    return RetireResult(terminated=len(instances))


def start_batch(request: StartBatchInput) -> BatchExecution:
    """Start ProvisionFleet for the batch (the new spec, sized to the new version's instances after it),
    or for the restore (the old spec at the fleet's size), in an execution named after the rollout."""
    settings = get_settings()
    if settings.provision_state_machine is None:
        raise ValueError("EIPLANE_PROVISION_STATE_MACHINE is not set")
    with aws_errors():
        rollout = _Rollout(request.rollout)
        state = request.rollout
        if request.purpose == "batch":
            spec, target = rollout.after, int(rollout.record["new_target"])
            launch = target - sum(_serves(r, state.version_after)
                                  for r in _in_service(state.fleet, spec.region).values())
            suffix = f"b{rollout.record['batch']}"
        else:
            spec, target = rollout.before, state.desired
            launch = target - sum(_serves(r, state.version_before)
                                  for r in _in_service(state.fleet, spec.region).values())
            suffix = "restore"
            if launch <= 0:
                return BatchExecution(purpose="restore", started=False, launch=0)
        _hold(state.fleet, state.execution_id, rollout.after)
        sized = spec.model_copy(update={"capacity": spec.capacity.model_copy(update={
            "desired": target, "min": min(spec.capacity.min, target), "max": max(spec.capacity.max, target)})})
        digest = hashlib.sha256(state.execution_id.encode()).hexdigest()[:10]
        name = f"{state.fleet}-rollout-{digest}-{suffix}"
        arn = settings.provision_state_machine.replace(":stateMachine:", ":execution:") + f":{name}"
        started = True
        try:
            arn = client("stepfunctions", settings.region).start_execution(
                stateMachineArn=settings.provision_state_machine, name=name,
                input=json.dumps(sized.model_dump(mode="json")))["executionArn"]
        except ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            started = False  # this step ran before and started it
        rollout.save({"batch_execution": arn, "phase": "launched"} if request.purpose == "batch"
                     else {"restore_execution": arn})
    logger.info(f"{state.fleet}: {suffix}: {max(0, launch)} instance(s) of {version_of(spec)} through {arn}")
    return BatchExecution(purpose=request.purpose, execution_arn=arn, started=started, launch=max(0, launch))


def await_batch(request: AwaitBatchInput) -> BatchOutcome:
    """BatchInProgress while the batch's ProvisionFleet runs (the ASL's Retry is the wait); once it has
    succeeded the bake starts; a batch that failed rolls the rollout back, with ProvisionFleet's reason."""
    launch = request.launch
    if launch.execution_arn is None:
        return BatchOutcome(purpose=launch.purpose, execution_arn=None, status="NOTHING_TO_LAUNCH")
    with aws_errors():
        rollout = _Rollout(request.rollout)
        described = client("stepfunctions", get_settings().region).describe_execution(
            executionArn=launch.execution_arn)
        status = described["status"]
        if status == "RUNNING":
            _hold(request.rollout.fleet, request.rollout.execution_id, rollout.after)
            raise BatchInProgress(f"{launch.execution_arn} is running")
        if status != "SUCCEEDED":
            what = f"batch {rollout.record.get('batch')}" if launch.purpose == "batch" else "the restore"
            raise BatchFailed(f"{what} ({launch.execution_arn.rsplit(':', 1)[-1]}) {status}: "
                              f"{described.get('error', '')}: {cause_message(described.get('cause')) or ''}")
        if launch.purpose == "batch" and not rollout.record.get("bake_started_at"):
            # The balancer's metrics are whole minutes: what the minute the bake starts in already holds (the
            # old version's requests, an earlier rollout's) is the baseline the checks count from.
            started = datetime.now(UTC)
            requests, errors_5xx, _ = _target_group_traffic(
                rollout.after, load_prerequisites(request.rollout.fleet) or {}, started)
            rollout.save({"bake_started_at": started.isoformat(),
                          "bake_baseline": {"requests": requests, "errors_5xx": errors_5xx}})
    return BatchOutcome(purpose=launch.purpose, execution_arn=launch.execution_arn, status=status)


def guardrail_verdict(spec: FleetSpec, requests: int, errors_5xx: int, latency_p99_ms: float | None,
                      alarms_in_alarm: list[str]) -> str | None:
    """Why the bake fails, or None: an alarm the spec names in ALARM, the 5xx share of the target group's
    requests above rollout.max_5xx_percent, or its p99 latency above serving.latency_p99_ms (once there
    are enough requests for a p99 to mean something)."""
    reasons = []
    if alarms_in_alarm:
        reasons.append(f"alarm(s) in ALARM: {', '.join(alarms_in_alarm)}")
    if requests and errors_5xx and 100 * errors_5xx / requests > spec.rollout.max_5xx_percent:
        reasons.append(f"{errors_5xx} of {requests} requests answered 5xx ({100 * errors_5xx / requests:.2f}% > "
                       f"rollout.max_5xx_percent {spec.rollout.max_5xx_percent})")
    if latency_p99_ms is not None and requests >= MIN_REQUESTS_FOR_P99 and \
            latency_p99_ms > spec.serving.latency_p99_ms:
        reasons.append(f"p99 latency {latency_p99_ms:.1f} ms > serving.latency_p99_ms {spec.serving.latency_p99_ms}")
    return "; ".join(reasons) or None


def check_guardrails(request: GuardrailInput) -> Bake:
    """One check of the batch's bake: the target group's requests and 5xx since the bake started (beyond
    the baseline of its first minute), its p99 latency over those minutes, and the spec's alarms.
    GuardrailFired rolls back; `baked` once the checks have covered rollout.bake_seconds (counted in the
    ASL's waits, so the bake lasts what its Waits last)."""
    checks = request.bake.checks + 1
    with aws_errors():
        rollout = _Rollout(request.rollout)
        spec = rollout.after
        prerequisites = load_prerequisites(spec.name) or {}
        started = datetime.fromisoformat(str(rollout.record.get("bake_started_at") or datetime.now(UTC).isoformat()))
        requests, errors_5xx, p99 = _target_group_traffic(spec, prerequisites, started)
        baseline = rollout.record.get("bake_baseline") or {}
        requests = max(0, requests - int(baseline.get("requests", 0)))
        errors_5xx = max(0, errors_5xx - int(baseline.get("errors_5xx", 0)))
        alarms = _alarms_in_alarm(spec)
        reason = guardrail_verdict(spec, requests, errors_5xx, p99, alarms)
        if reason:  # (the rollback's FinishRollback records it, from the error)
            raise GuardrailFired(f"batch {rollout.record.get('batch')} of {version_of(spec)}: {reason}")
        _hold(spec.name, request.rollout.execution_id, spec)
    baked = checks * request.rollout.check_interval_seconds >= spec.rollout.bake_seconds
    return Bake(checks=checks, baked=baked, requests=requests, errors_5xx=errors_5xx,
                error_rate_percent=round(100 * errors_5xx / requests, 3) if requests else None,
                latency_p99_ms=p99, alarms_in_alarm=alarms)


def target_group_dimension(target_group_arn: str) -> str:
    """arn:...:targetgroup/<name>/<id> -> targetgroup/<name>/<id>, as AWS/ApplicationELB names it."""
    return "targetgroup/" + target_group_arn.split(":targetgroup/", 1)[1]


def _target_group_traffic(spec: FleetSpec, prerequisites: dict[str, Any], since: datetime
                          ) -> tuple[int, int, float | None]:
    balancer, group = prerequisites.get("load_balancer_arn"), prerequisites.get("target_group_arn")
    if not balancer or not group:
        return 0, 0, None
    dimensions = [{"Name": "LoadBalancer", "Value": balancer_dimension(str(balancer))},
                  {"Name": "TargetGroup", "Value": target_group_dimension(str(group))}]
    start = since.replace(second=0, microsecond=0)
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    cloudwatch = client("cloudwatch", spec.region)

    def points(metric: str, **statistic: Any) -> list[dict[str, Any]]:
        return list(cloudwatch.get_metric_statistics(
            Namespace="AWS/ApplicationELB", MetricName=metric, Dimensions=dimensions, StartTime=start, EndTime=end,
            Period=60, **statistic)["Datapoints"])

    requests = int(sum(p["Sum"] for p in points("RequestCount", Statistics=["Sum"])))
    errors_5xx = int(sum(p["Sum"] for p in points("HTTPCode_Target_5XX_Count", Statistics=["Sum"])))
    latencies = [p["ExtendedStatistics"]["p99"] for p in points("TargetResponseTime", ExtendedStatistics=["p99"])
                 if "p99" in p.get("ExtendedStatistics", {})]
    return requests, errors_5xx, round(1000 * max(latencies), 3) if latencies else None


def _alarms_in_alarm(spec: FleetSpec) -> list[str]:
    if not spec.rollout.alarms:
        return []
    found = client("cloudwatch", spec.region).describe_alarms(AlarmNames=list(spec.rollout.alarms))
    return sorted(a["AlarmName"] for a in found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])
                  if a.get("StateValue") == "ALARM")


def finish(request: FinishInput) -> RolloutReport:
    """The end: the fleet registered with the version it serves now (capacity matching scales that one
    from here) at the rollout's size, the record closed with the outcome and its reason, the lease given
    back."""
    state = request.rollout
    with aws_errors():
        rollout = _Rollout(state)
        serving = rollout.after if request.outcome == "succeeded" else rollout.before
        registered = serving.model_copy(update={"capacity": serving.capacity.model_copy(update={
            "desired": state.desired, "min": min(serving.capacity.min, state.desired),
            "max": max(serving.capacity.max, state.desired)})})
        register_fleet(registered, state.execution_id)
        in_service = _in_service(state.fleet, serving.region)
        serving_now = sum(_serves(r, version_of(serving)) for r in in_service.values())
        reasons = [failure_reason(e) for e in (request.error, request.rollback_error) if e]
        if request.outcome == "succeeded":
            reason = (f"{serving_now} of {state.desired} instance(s) serve {state.version_after}"
                      if state.old_in_service else f"the fleet already served {state.version_after}")
        else:
            reason = "; ".join(reasons) + f"; {serving_now} of {state.desired} instance(s) serve {state.version_before}"
        retired = int(rollout.record.get("retired", 0))
        rollout.save({"status": request.outcome, "phase": "ended", "ended_at": now(), "reason": reason[:2000]})
        leases.release(state.fleet, state.execution_id)
    report = RolloutReport(fleet=state.fleet, outcome=request.outcome, version_before=str(state.version_before),
                           version_after=str(state.version_after), serving=str(version_of(serving)),
                           batches=int(rollout.record.get("batch", 0)), replaced=retired, in_service=len(in_service),
                           desired=state.desired, reason=reason[:4000])
    log = logger.info if request.outcome == "succeeded" else logger.error
    log(f"{state.fleet}: rollout {request.outcome}: {report.reason}")
    return report
