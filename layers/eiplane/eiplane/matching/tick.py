"""MatchCapacity's steps: one tick lists its fleets; per fleet, lease -> observe and plan ->
act (scale out through ProvisionFleet, or drain then terminate) -> record -> release.

Every step is safe to retry: the lease belongs to the tick's execution, the scale-out
execution is named after the tick, and draining / terminating re-read each slot first.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import ClientError

from eiplane.aws import aws_errors, client, error_code
from eiplane.capacity.policy import Decision, Observation, PolicySettings, plan
from eiplane.errors import CapacityMatchingFailed, FleetNotRegistered, TargetsStillDraining
from eiplane.matching import lease as leases
from eiplane.matching.fleet_view import pending_slots, policy_slots, slot_index
from eiplane.matching.observe import Sources, balancer_dimension, observe
from eiplane.matching.surge_alarm import upsert_surge_alarm
from eiplane.models.launch import IN_PROGRESS
from eiplane.models.matching import (
    CapacityPlan,
    DrainResult,
    FleetOutcome,
    FleetTick,
    Lease,
    Observed,
    PlanInput,
    RecordInput,
    ReleaseInput,
    ReplaceResult,
    ScaleOutResult,
    SummarizeTickInput,
    TerminateDrainedInput,
    TerminateResult,
    Tick,
    TickPlan,
    TickRequest,
    TickSummary,
)
from eiplane.models.spec import FleetSpec
from eiplane.observability import logger, metrics
from eiplane.provisioning.lifecycle import failure_reason, record_state, stop_into_pool
from eiplane.provisioning.plan import (
    execution_running,
    fleet_instances,
    instance_states,
    orphaned,
    running_slot_instances,
)
from eiplane.settings import get_settings
from eiplane.state import (
    DELETING,
    load_prerequisites,
    load_registration,
    load_slots,
    registered_fleets,
    save_decision,
    update_registration,
)

# CloudWatch keeps 1-minute datapoints for 15 days: enough for two weeks of weekly seasonality.
HISTORY_MINUTES = 15 * 1440 - 1


def list_fleets(request: TickRequest) -> TickPlan:
    tick = Tick.of(request)
    settings = get_settings()
    with aws_errors():
        event = request.event
        if event.alarm_name is not None:
            fleet = event.alarm_name.removeprefix(settings.surge_alarm_prefix)
            registration = load_registration(fleet) if fleet != event.alarm_name else None
            if registration is None:
                return TickPlan(tick=tick, fleets=[], note=f"alarm {event.alarm_name} names no registered fleet")
            if registration.get("status") == DELETING:
                return TickPlan(tick=tick, fleets=[], note=f"alarm {event.alarm_name}: {fleet} is being deleted")
            return TickPlan(tick=tick, fleets=[fleet], note=f"surge alarm {event.alarm_name}")
        if event.fleets is not None:
            registrations = {name: load_registration(name) for name in sorted(set(event.fleets))}
            unknown = [name for name, item in registrations.items() if item is None]
            if unknown:
                raise FleetNotRegistered(f"not registered (no ProvisionFleet execution has applied them): "
                                         f"{', '.join(unknown)}")
            # a fleet DeleteFleet has marked is left to it (it holds the fleet's lease too)
            deleting = [name for name, item in registrations.items() if item and item.get("status") == DELETING]
            note = "fleets named in the input" + (f" ({', '.join(deleting)} being deleted)" if deleting else "")
            return TickPlan(tick=tick, fleets=[n for n in registrations if n not in deleting], note=note)
        return TickPlan(tick=tick, fleets=registered_fleets(), note="every registered fleet")


def acquire_lease(request: FleetTick) -> Lease:
    owner = request.tick.execution_id
    with aws_errors():
        settings = get_settings()
        registration = load_registration(request.fleet)
        # The lease outlives the longest step it covers: the drain, the fleet's deregistration delay.
        drain = FleetSpec.model_validate(registration["spec"]).serving.deregistration_delay_s if registration else 0
        if leases.acquire(request.fleet, owner, leases.term_seconds(settings.lease_seconds, drain)):
            return Lease(acquired=True, owner=owner)
        held_by = leases.holder(request.fleet)
    logger.info(f"{request.fleet}: another tick holds the lease ({held_by}); skipping")
    return Lease(acquired=False, owner=owner, held_by=held_by)


def _registered_spec(fleet: str) -> tuple[FleetSpec, dict[str, Any]]:
    registration = load_registration(fleet)
    if registration is None:
        raise FleetNotRegistered(f"{fleet} is not registered")
    return FleetSpec.model_validate_json(json.dumps(registration["spec"])), registration


def policy_settings(spec: FleetSpec) -> PolicySettings:
    settings = get_settings()
    return PolicySettings(launch_minutes=settings.launch_minutes, interval_minutes=settings.match_interval_minutes,
                          drain_minutes=math.ceil(spec.serving.deregistration_delay_s / 60),
                          target_utilisation=spec.scaling.target_utilisation)


def observe_and_plan(request: FleetTick) -> CapacityPlan:
    """Observe and plan in one step: the demand history (up to 15 days of minutes) is far larger
    than the 256 KB a state may pass on, and the policy is pure, so it never leaves the function."""
    settings = get_settings()
    with aws_errors():
        spec, registration = _registered_spec(request.fleet)
        desired_before = int(registration.get("desired", spec.capacity.desired))
        records = load_slots(spec.name)
        running = running_slot_instances(records, spec.region)
        owners = {str(r["execution"]) for r in records.values() if r.get("execution") and (
            r.get("state") == "planned" or (r.get("state") in IN_PROGRESS and r.get("instance_id") in running))}
        active = registration.get("active_execution")
        executions_running = {arn for arn in owners | ({active} if active else set()) if execution_running(arn)}
        serving, configured = spec.model.precisions[0], spec.scaling.capacity_per_instance_rps
        in_service = {index: str(r["instance_id"]) for index, r in records.items()
                      if r.get("state") == "in_service" and r.get("instance_id") in running}
        prerequisites = load_prerequisites(spec.name) or {}
        health = target_states(spec, prerequisites.get("target_group_arn"), list(in_service.values()))
        # A served instance the balancer finds unhealthy (its server crashed, its device hung) serves
        # nothing: replaced before anything is sized (ReplaceUnhealthy, then ScaleOut to the same size).
        unhealthy = sorted(index for index, instance in in_service.items() if health.get(instance) == "unhealthy")
        # Reconcile the table with the account: a slot in service whose instance is gone (terminated or
        # stopped by hand, lost to a host failure) is provisioned again; an instance tagged with the fleet that
        # no slot accounts for, and that no running execution is launching, is terminated (it bills, serves
        # nothing and no scale-in would ever reach it).
        gone = sorted(index for index, r in records.items() if r.get("state") == "in_service" and index not in in_service)
        orphans = orphaned(None, records, fleet_instances(spec))
        if unhealthy or gone or orphans:
            said = []
            if unhealthy:
                said.append(f"slot(s) {', '.join(map(str, unhealthy))} in service but unhealthy at the load balancer")
            if gone:
                said.append(f"slot(s) {', '.join(map(str, gone))} in service but their instance is gone")
            if orphans:
                said.append(f"instance(s) {', '.join(orphans)} tagged with the fleet but no slot's")
            return CapacityPlan(
                action="replace", code="unhealthy_targets" if unhealthy else "reconcile", desired=desired_before,
                desired_before=desired_before, ready=len(in_service) - len(unhealthy), launching=0,
                replace=sorted({*unhealthy, *gone}), orphans=orphans,
                reason="; ".join(said) + ": slots taken out and provisioned again, orphans terminated")
        # (after the repairs: a fleet that keeps its size still gets its lost slots back and its orphans removed)
        if not spec.scaling.enabled:
            return CapacityPlan(action="skip", code="scaling_disabled", desired=desired_before,
                                desired_before=desired_before, ready=len(in_service), launching=0,
                                reason="scaling.enabled is false in the fleet's spec: it keeps capacity.desired")
        slots = policy_slots(records, running, executions_running, settings.launch_minutes, serving, configured)
        if active in executions_running:
            slots += pending_slots(max(0, desired_before - len(slots)), settings.launch_minutes)
        balancer = prerequisites.get("load_balancer_arn")
        sources = Sources(load_balancer=balancer_dimension(str(balancer)) if balancer else None,
                          instance_ids=tuple(sorted(in_service.values())),
                          healthy_targets=sum(state == "healthy" for state in health.values()))
        history = observe(spec.name, spec.region, HISTORY_MINUTES, sources, now=request.tick.at)

    values = history.demand_rps
    present = [i for i, v in enumerate(values) if v is not None]
    first, last = (present[0], present[-1]) if present else (0, -1)
    start_minute = int(history.start.timestamp() // 60)
    now_minute = start_minute + len(values) - 1
    observed = Observed(
        demand_rps=values[last] if present else None,
        newest_minute=(history.start + timedelta(minutes=last)).isoformat() if present else None,
        history_minutes=len(present),
        latency_p99_ms=_newest(history.latency_p99_ms), utilization_pct=_newest(history.utilization_pct),
        errors_5xx=_newest(history.errors_5xx), broken=history.broken, healthy_targets=sources.healthy_targets)
    measured = [s.throughput_rps for s in slots if s.throughput_rps is not None]
    if configured is None and not measured:
        return CapacityPlan(action="skip", code="no_capacity_figure", desired=desired_before,
                            desired_before=desired_before, ready=0, launching=0, observed=observed,
                            reason="no instance has been validated yet and scaling.capacity_per_instance_rps is "
                                   "not set: there is no per-instance capacity to size the fleet with")
    observation = Observation(
        # from the first datapoint to the newest: the minutes after it are late (the policy holds if
        # that is more than stale_after_minutes), the ones before it a fleet that did not exist yet
        history=values[first:last + 1], history_end_minute=start_minute + last if present else now_minute,
        now_minute=now_minute, slots=slots,
        # the measured throughput wins where there is one (the policy takes the slots' median)
        capacity_per_instance_rps=configured if configured is not None else max(measured),
        min_size=spec.capacity.min, max_size=spec.capacity.max,
        last_scale_out_minute=registration.get("last_scale_out_minute"),
        last_scale_in_minute=registration.get("last_scale_in_minute"))
    decision = plan(observation, policy_settings(spec))
    result = _capacity_plan(decision, desired_before, observed)
    logger.info(f"{spec.name}: {result.code}: {result.reason}",
                extra={"decision": result.model_dump(mode="json", exclude={"reason"})})
    return result


def target_states(spec: FleetSpec, target_group: str | None, instance_ids: list[str]) -> dict[str, str]:
    """Each instance's target state in the fleet's target group (healthy, unhealthy, initial, ...)."""
    if not target_group or not instance_ids:
        return {}
    described = client("elbv2", spec.region).describe_target_health(
        TargetGroupArn=target_group, Targets=[{"Id": i, "Port": spec.serving.port} for i in instance_ids])
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described["TargetHealthDescriptions"]}


def replace_unhealthy(request: PlanInput) -> ReplaceResult:
    """Take the plan's slots out: deregistered (the balancer already sends them nothing), their instance
    terminated where it still exists, recorded failed, so the ScaleOut that follows provisions them
    again; and terminate the plan's orphans (checked again: still the fleet's, still no slot's)."""
    replaced, instance_ids = [], []
    with aws_errors():
        spec, _ = _registered_spec(request.fleet)
        records = load_slots(spec.name)
        target_group = target_group_of(spec.name)
        # one DescribeInstances for every slot taken out (a terminated instance is listed a while, then gone)
        states = instance_states([str(records[i]["instance_id"]) for i in request.plan.replace
                                  if records.get(i, {}).get("instance_id")], spec.region)
        for index in request.plan.replace:
            record = records.get(index, {})
            instance = record.get("instance_id")
            if record.get("state") != "in_service" or not instance:
                continue  # a retried step: already done
            state = states.get(str(instance))
            exists = state not in (None, "shutting-down", "terminated")
            why = "unhealthy at the load balancer" if state in ("pending", "running") else f"its instance is {state or 'gone'}"
            record_state(spec, index, str(instance), "failed",
                         {"reason": f"{why} at {request.tick.at.isoformat()}: replaced"}, tag=exists)
            if exists:  # (the balancer deregisters a terminated instance itself)
                if target_group:
                    client("elbv2", spec.region).deregister_targets(
                        TargetGroupArn=target_group, Targets=[{"Id": str(instance), "Port": spec.serving.port}])
                client("ec2", spec.region).terminate_instances(InstanceIds=[str(instance)])
            replaced.append(index)
            instance_ids.append(str(instance))
        # (the plan found them launched by no running execution; here: still the fleet's, still named by no slot)
        named = {str(r["instance_id"]) for r in records.values() if r.get("instance_id")}
        orphans = [] if not request.plan.orphans else sorted(
            i for i in fleet_instances(spec) if i in request.plan.orphans and i not in named)
        if orphans:
            client("ec2", spec.region).terminate_instances(InstanceIds=orphans)
    if replaced:
        logger.warning(f"{spec.name}: replacing slot(s) {replaced}", extra={"instances": instance_ids})
    if orphans:
        logger.warning(f"{spec.name}: terminated {len(orphans)} instance(s) tagged with the fleet that no slot "
                       f"accounts for: {', '.join(orphans)}", extra={"orphans": orphans})
    return ReplaceResult(replaced=replaced, instance_ids=instance_ids, orphans_terminated=orphans,
                         provision_again=bool(replaced))


def _newest(values: list[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _capacity_plan(decision: Decision, desired_before: int, observed: Observed) -> CapacityPlan:
    terminate = [i for i in (slot_index(s) for s in decision.terminate) if i is not None]
    action = "scale_out" if decision.launch else "scale_in" if terminate else "hold"
    fc = decision.forecast
    return CapacityPlan(action=action, code=decision.code.value, reason=decision.reason, desired=decision.desired,
                        desired_before=desired_before, ready=decision.ready, launching=decision.launching,
                        launch=decision.launch, terminate=terminate,
                        capacity_per_instance_rps=decision.capacity_per_instance_rps,
                        forecast_method=fc.method if fc else None, headroom=fc.headroom if fc else None,
                        observed=observed)


def scale_out(request: PlanInput) -> ScaleOutResult:
    """Launch and validate the new slots through ProvisionFleet itself (no second launch path):
    the registered spec with the new desired size, in an execution named after this tick."""
    settings = get_settings()
    if settings.provision_state_machine is None:
        raise ValueError("EIPLANE_PROVISION_STATE_MACHINE is not set")
    with aws_errors():
        spec, _ = _registered_spec(request.fleet)
        desired = request.plan.desired
        wanted = spec.model_copy(update={"capacity": spec.capacity.model_copy(update={"desired": desired})})
        name = f"{spec.name}-out-{request.tick.id}"[:80]
        arn = settings.provision_state_machine.replace(":stateMachine:", ":execution:") + f":{name}"
        started = True
        try:
            arn = client("stepfunctions", settings.region).start_execution(
                stateMachineArn=settings.provision_state_machine, name=name,
                input=wanted.model_dump_json())["executionArn"]
        except ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            started = False  # this tick's step ran before and started it
        update_registration(spec.name, {"desired": desired, "last_scale_out_minute": request.tick.minute,
                                        "active_execution": arn})
    logger.info(f"{spec.name}: scaling out to {desired} through {arn}", extra={"started": started})
    return ScaleOutResult(execution_arn=arn, desired=desired, started=started)


def drain_slots(request: PlanInput) -> DrainResult:
    """Take the chosen slots out of service: in-service ones drain (state and eiplane:state tag
    "draining", and deregistered from the load balancer, which sends them no new request and lets
    the ones in flight finish for the target group's deregistration delay) and are terminated after it;
    on-their-way ones no execution drives are terminated at once. A slot that an execution is
    validating is never touched, whatever the plan said (it may have started since)."""
    draining, cancelled, skipped = [], [], []
    with aws_errors():
        spec, _ = _registered_spec(request.fleet)
        target_group = target_group_of(spec.name)
        records = load_slots(spec.name)
        running = running_slot_instances(records, spec.region)
        for index in request.plan.terminate:
            record = records.get(index, {})
            instance, state = record.get("instance_id"), record.get("state")
            if instance not in running:
                skipped.append(f"slot {index}: no running instance")
            elif state == "in_service":
                drain_slot(spec, target_group, index, instance,
                           f"scale-in ({request.plan.code}) at {request.tick.at.isoformat()}")
                draining.append(index)
            elif state in IN_PROGRESS and not (record.get("execution") and execution_running(str(record["execution"]))):
                record_state(spec, index, instance, "terminated", {"reason": "cancelled by scale-in before validation"})
                client("ec2", spec.region).terminate_instances(InstanceIds=[instance])
                cancelled.append(index)
            else:
                skipped.append(f"slot {index}: {state}" + (" (an execution is validating it)" if state in IN_PROGRESS
                                                            else ""))
        update_registration(spec.name, {"desired": max(spec.capacity.min, request.plan.desired_before
                                                       - len(draining) - len(cancelled)),
                                        "last_scale_in_minute": request.tick.minute})
    if skipped:
        logger.warning(f"{spec.name}: scale-in left {len(skipped)} slot(s) alone", extra={"skipped": skipped})
    return DrainResult(draining=draining, cancelled=cancelled, skipped=skipped,
                       drain_seconds=spec.serving.deregistration_delay_s if draining else 0)


def target_group_of(fleet: str) -> str | None:
    """The fleet's target group, as its prerequisites stage recorded it."""
    record = load_prerequisites(fleet) or {}
    return record.get("target_group_arn")


def drain_slot(spec: FleetSpec, target_group: str | None, index: int, instance: str, reason: str) -> None:
    """Take an in-service slot out: recorded and tagged "draining", deregistered from the load balancer
    (which sends it no new request and lets those in flight finish for the deregistration delay)."""
    record_state(spec, index, instance, "draining", {"reason": reason})
    if target_group:
        client("elbv2", spec.region).deregister_targets(
            TargetGroupArn=target_group, Targets=[{"Id": instance, "Port": spec.serving.port}])


def ensure_drained(spec: FleetSpec, target_group: str | None, instance_ids: list[str], drain_seconds: int) -> None:
    """TargetsStillDraining (retried by the ASL) while the load balancer still reports any of these targets
    draining: requests are in flight, nothing may be terminated or stopped yet."""
    still = sorted(i for i, state in target_states(spec, target_group, instance_ids).items() if state == "draining")
    if still:
        raise TargetsStillDraining(f"{', '.join(still)} still draining after {drain_seconds} s: requests are in flight")


def terminate_drained(request: TerminateDrainedInput) -> TerminateResult:
    """After the drain: each drained instance is stopped into the warm pool while the pool holds
    fewer than scaling.warm_pool_size, and terminated otherwise; not one while the load balancer
    still reports its target draining (TargetsStillDraining, retried): no request in flight is cut."""
    terminated, pooled, instance_ids = [], [], []
    with aws_errors():
        spec, _ = _registered_spec(request.fleet)
        records = load_slots(spec.name)
        target_group = target_group_of(spec.name)
        drained = [str(records[i]["instance_id"]) for i in request.drain.draining
                   if records.get(i, {}).get("state") == "draining" and records[i].get("instance_id")]
        ensure_drained(spec, target_group, drained, request.drain.drain_seconds)
        states = instance_states([r["instance_id"] for r in records.values() if r.get("instance_id")], spec.region)
        pool = sum(r.get("state") == "warm" and states.get(r.get("instance_id", "")) in ("stopping", "stopped")
                   for r in records.values())
        for index in request.drain.draining:
            record = records.get(index, {})
            if record.get("state") != "draining" or not record.get("instance_id"):
                continue  # a retried step: already done
            instance = str(record["instance_id"])
            if pool < spec.scaling.warm_pool_size:
                stop_into_pool(spec, index, instance, f"scaled in after draining {request.drain.drain_seconds} s")
                pool += 1
                pooled.append(index)
            else:
                record_state(spec, index, instance, "terminated",
                             {"reason": f"scaled in after draining {request.drain.drain_seconds} s"})
                client("ec2", spec.region).terminate_instances(InstanceIds=[instance])
                terminated.append(index)
            instance_ids.append(instance)
    return TerminateResult(terminated=terminated, pooled=pooled, instance_ids=instance_ids)


def record_decision(request: RecordInput) -> FleetOutcome:
    """The decision in the state table (30 days) and as metrics; the surge alarm follows the
    ready capacity, so the fast path fires as soon as demand goes beyond it."""
    plan_ = request.plan
    observed = plan_.observed
    drained = (request.drain.draining + request.drain.cancelled) if request.drain else []
    pooled = request.terminated.pooled if request.terminated else []
    desired = plan_.desired_before - len(drained) if request.drain else plan_.desired
    replaced = request.replaced.replaced if request.replaced else []
    orphans = request.replaced.orphans_terminated if request.replaced else []
    with aws_errors():
        spec, _ = _registered_spec(request.fleet)
        save_decision(spec.name, request.tick.at, {
            "tick": request.tick.id, "execution": request.tick.execution_id, "action": plan_.action,
            "code": plan_.code, "reason": plan_.reason, "desired": desired, "desired_before": plan_.desired_before,
            "ready": plan_.ready, "launching": plan_.launching,
            "demand_rps": observed.demand_rps if observed else None,
            "latency_p99_ms": observed.latency_p99_ms if observed else None,
            "utilization_pct": observed.utilization_pct if observed else None,
            "capacity_per_instance_rps": plan_.capacity_per_instance_rps,
            "scale_out_execution": request.scale_out.execution_arn if request.scale_out else None,
            "drained": drained or None, "pooled": pooled or None,
            "replaced": replaced or None, "orphans_terminated": orphans or None,
        })
        balancer = (load_prerequisites(spec.name) or {}).get("load_balancer_arn")
        if plan_.capacity_per_instance_rps and spec.scaling.enabled and balancer:
            upsert_surge_alarm(spec, plan_.ready * plan_.capacity_per_instance_rps, balancer_dimension(str(balancer)))
    metrics.add_dimension(name="Fleet", value=spec.name)
    if observed and observed.demand_rps is not None:
        metrics.add_metric(name="DemandRps", unit=MetricUnit.CountPerSecond, value=observed.demand_rps)
    metrics.add_metric(name="ReadyInstances", unit=MetricUnit.Count, value=plan_.ready)
    metrics.add_metric(name="LaunchingInstances", unit=MetricUnit.Count, value=plan_.launching)
    metrics.add_metric(name="DesiredInstances", unit=MetricUnit.Count, value=desired)
    with single_metric(name="Decisions", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as decision:
        decision.add_dimension(name="Fleet", value=spec.name)
        decision.add_dimension(name="Reason", value=plan_.code)
    return FleetOutcome(fleet=spec.name, status="skipped" if plan_.action == "skip" else "decided",
                        action=plan_.action, code=plan_.code, reason=plan_.reason, desired=desired, ready=plan_.ready,
                        launching=plan_.launching, demand_rps=observed.demand_rps if observed else None,
                        execution_arn=request.scale_out.execution_arn if request.scale_out else None, drained=drained,
                        pooled=pooled, replaced=replaced, orphans_terminated=orphans)


def release_lease(request: ReleaseInput) -> FleetOutcome:
    """Give the lease back; the fleet's outcome (a lease held elsewhere, or a failed step, included)."""
    lease = request.lease
    if lease is not None and lease.acquired:
        with aws_errors():
            if not leases.release(request.fleet, lease.owner):
                logger.warning(f"{request.fleet}: the lease had expired before the tick ended")
    if request.error is not None:
        reason = failure_reason(request.error)
        logger.error(f"{request.fleet}: tick failed: {reason}")
        return FleetOutcome(fleet=request.fleet, status="failed", reason=reason)
    if lease is not None and not lease.acquired:
        return FleetOutcome(fleet=request.fleet, status="skipped", code="lease_held",
                            reason=f"another tick holds the fleet's lease ({lease.held_by or 'it has just expired'})")
    if request.outcome is None:
        raise ValueError("release_lease needs an outcome, an error or a lease not acquired")
    return request.outcome


def summarize_tick(request: SummarizeTickInput) -> TickSummary:
    outcomes = request.outcomes
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {status: sum(o.status == status for o in outcomes) for status in ("decided", "skipped", "failed")}
    message = (f"{len(outcomes)} fleet(s): {counts['decided']} decided, {counts['skipped']} skipped, "
               f"{counts['failed']} failed")
    if failed:
        message += "; " + "; ".join(f"{o.fleet}: {o.reason}" for o in failed)
    summary = TickSummary(tick=request.tick, fleets=len(outcomes), outcomes=outcomes, message=message, **counts)
    if failed:
        raise CapacityMatchingFailed(message)
    return summary
