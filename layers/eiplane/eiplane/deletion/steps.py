"""One function per state of DeleteFleet; the handlers call these. Each deleting step writes its items to
S3 (a part of the report, deletions/<fleet>/<execution>/) and passes on counts only."""

from __future__ import annotations

import json
from collections.abc import Callable

from botocore.exceptions import ClientError

from eiplane.aws import aws_errors, client, error_code, paginate, record_api_calls
from eiplane.deletion import stages
from eiplane.deletion.stages import Deleter, Fleet
from eiplane.errors import FleetBusy, InvalidDeleteRequest
from eiplane.matching import lease as leases
from eiplane.models.deletion import (
    BeginDeletionInput,
    Deletion,
    DeletionItem,
    DeletionReport,
    DeletionStepInput,
    DeletionSummary,
    DrainResult,
    LoopInput,
    LoopResult,
    PartRef,
    StepResult,
    parse_delete_request,
)
from eiplane.models.spec import FleetSpec
from eiplane.observability import logger
from eiplane.provisioning.plan import execution_running
from eiplane.settings import get_settings
from eiplane.state import DELETING, load_prerequisites, load_registration, now, registry_key

# How long the deletion holds the fleet's lease beyond the fleet's drain: longer than its instances take to
# terminate and its groups to be released (the ASL's waits), so no tick takes the fleet meanwhile.
DELETION_LEASE_SECONDS = 3 * 3600
REPORT_PREFIX = "deletions/"


def _execution_name(execution_id: str) -> str:
    return execution_id.rsplit(":", 1)[-1]


def part_prefix(fleet: str, execution_id: str) -> str:
    # Outside fleets/<fleet>/: purging the artifacts does not delete the report of the purge.
    return f"{REPORT_PREFIX}{fleet}/{_execution_name(execution_id)}/"


def _fleet(request: DeletionStepInput) -> Fleet:
    return stages.fleet_of(request.deletion.fleet, request.deletion.region, request.context.execution_id)


def _save_part(fleet: Fleet, name: str, items: list[DeletionItem]) -> PartRef:
    settings = get_settings()
    key = f"{part_prefix(fleet.name, fleet.execution_id)}{name}.json"
    body = json.dumps([item.model_dump(mode="json") for item in items]).encode()
    client("s3", settings.region).put_object(Bucket=settings.artifacts_bucket, Key=key, Body=body,
                                             ContentType="application/json")
    return PartRef(bucket=settings.artifacts_bucket, key=key)


def _carry_over(fleet: Fleet, name: str, deleter: Deleter) -> None:
    """A retried step (the wait for instances or groups to be released) finds gone what its earlier run
    deleted: those stay "deleted" in its part, not "absent"."""
    settings = get_settings()
    key = f"{part_prefix(fleet.name, fleet.execution_id)}{name}.json"
    try:
        earlier = json.loads(client("s3", settings.region).get_object(Bucket=settings.artifacts_bucket,
                                                                      Key=key)["Body"].read())
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return
        raise
    deleted = {(i["kind"], i["id"]) for i in earlier if i["action"] == "deleted"}
    deleter.items = [i.model_copy(update={"action": "deleted", "reason": i.reason or "deleted by an earlier attempt"})
                     if i.action == "absent" and (i.kind, i.id) in deleted else i for i in deleter.items]


def _result(fleet: Fleet, name: str, deleter: Deleter) -> StepResult:
    _carry_over(fleet, name, deleter)
    return StepResult(deleted=sum(i.action == "deleted" for i in deleter.items),
                      kept=sum(i.action == "kept" for i in deleter.items),
                      absent=sum(i.action == "absent" for i in deleter.items), part=_save_part(fleet, name, deleter.items))


# --- begin and plan -----------------------------------------------------------------------------

def begin(request: BeginDeletionInput) -> Deletion:
    """Check the request; then (unless it is a dry run) take the fleet's lease, the one capacity matching's
    ticks take, so no tick acts on it meanwhile, mark its registry item "deleting" (ProvisionFleet refuses
    it, ticks skip it) and wait for ProvisionFleet executions of the fleet already running (FleetBusy)."""
    wanted = parse_delete_request(request.request)
    own = request.context.execution_id
    settings = get_settings()
    with aws_errors():
        registration = load_registration(wanted.fleet)
        record = load_prerequisites(wanted.fleet) or {}
        spec = FleetSpec.model_validate(registration["spec"]) if registration and registration.get("spec") else None
        applied = spec.region if spec else record.get("region")
        if wanted.region and applied and wanted.region != applied:
            raise InvalidDeleteRequest(f"fleet {wanted.fleet} runs in {applied}, not {wanted.region}: leave region out")
        region = wanted.region or applied or settings.region
        deletion = Deletion(fleet=wanted.fleet, region=str(region), dry_run=wanted.dry_run,
                            purge_artifacts=wanted.purge_artifacts, vpc_id=record.get("vpc_id"),
                            registered=registration is not None)
        if wanted.dry_run:
            return deletion
        drain = spec.serving.deregistration_delay_s if spec else 0
        _take_lease(wanted.fleet, own, settings.lease_seconds + drain + DELETION_LEASE_SECONDS)
        client("dynamodb", settings.region).update_item(
            TableName=settings.state_table, Key=registry_key(wanted.fleet),
            UpdateExpression="SET #status = :deleting, deleting_by = :own, deleting_at = :at",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":deleting": {"S": DELETING}, ":own": {"S": own}, ":at": {"S": now()}})
        running = running_provisions(wanted.fleet)
    if running:
        raise FleetBusy(f"ProvisionFleet execution(s) of {wanted.fleet} still running: {', '.join(running[:5])}; "
                        "the deletion waits for them (new ones are refused from now on)")
    logger.info(f"deleting fleet {wanted.fleet} in {region}", extra={"deletion": deletion.model_dump()})
    return deletion


def _take_lease(fleet: str, owner: str, ttl_s: int) -> None:
    if leases.acquire(fleet, owner, ttl_s):
        return
    holder = leases.holder(fleet)
    if holder is not None and execution_running(holder):
        raise FleetBusy(f"{holder} holds the lease of {fleet} (a capacity-matching tick acting on it): the deletion "
                        "waits for it to end")
    # the holder ended without releasing it (a failed deletion, a tick that died): take it over
    if (holder is None and leases.acquire(fleet, owner, ttl_s)) or (holder is not None and leases.take_over(
            fleet, owner, holder, ttl_s)):
        return
    raise FleetBusy(f"the lease of {fleet} changed hands while the deletion took it: retried")


def running_provisions(fleet: str) -> list[str]:
    """ProvisionFleet executions still running for the fleet (their input names it)."""
    machine = get_settings().provision_state_machine
    if machine is None:
        raise ValueError("EIPLANE_PROVISION_STATE_MACHINE is not set")
    sfn = client("stepfunctions", get_settings().region)
    running = []
    for execution in paginate(sfn, "list_executions", "executions", stateMachineArn=machine, statusFilter="RUNNING"):
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        try:
            named = json.loads(described.get("input") or "{}").get("name")
        except (ValueError, AttributeError):
            continue
        if named == fleet and described["status"] == "RUNNING":
            running.append(str(execution["executionArn"]))
    return sorted(running)


def plan(request: DeletionStepInput) -> StepResult:
    """Every stage's look-up, and no change: what would be deleted, kept (and why), or is absent already."""
    fleet = _fleet(request)
    deleter = Deleter(apply=False)
    with record_api_calls() as calls, aws_errors():
        stages.instances(fleet, deleter)
        stages.load_balancer(fleet, deleter)
        stages.alarms(fleet, deleter)
        stages.network(fleet, deleter)
        stages.iam(fleet, deleter)
        stages.artifacts(fleet, deleter, request.deletion.purge_artifacts)
        stages.state_items(fleet, deleter)
        part = _save_part(fleet, "00-plan", deleter.items)
    assert not [c for c in calls.mutating if not c.startswith("s3:PutObject")], calls.mutating
    return StepResult(deleted=sum(i.action == "delete" for i in deleter.items),
                      kept=sum(i.action == "keep" for i in deleter.items),
                      absent=sum(i.action == "absent" for i in deleter.items), part=part)


# --- the deleting steps -------------------------------------------------------------------------

def drain(request: DeletionStepInput) -> DrainResult:
    with aws_errors():
        return DrainResult(drain_seconds=stages.drain(_fleet(request)))


def _step(request: DeletionStepInput, name: str, stage: Callable[[Fleet, Deleter], None]) -> StepResult:
    fleet = _fleet(request)
    deleter = Deleter(apply=True)
    with aws_errors():
        try:
            stage(fleet, deleter)
        finally:  # what was done before a retried error is in the report too (the retry rewrites the part)
            result = _result(fleet, name, deleter)
    return result


def terminate_instances(request: DeletionStepInput) -> StepResult:
    return _step(request, "10-instances", stages.instances)


def delete_load_balancer(request: DeletionStepInput) -> StepResult:
    return _step(request, "20-load-balancer", stages.load_balancer)


def delete_alarms(request: DeletionStepInput) -> StepResult:
    return _step(request, "30-alarms", stages.alarms)


def delete_network(request: DeletionStepInput) -> StepResult:
    return _step(request, "40-network", stages.network)


def delete_instance_role(request: DeletionStepInput) -> StepResult:
    return _step(request, "50-iam", stages.iam)


def _loop(request: LoopInput, name: str, stage: Callable[[Fleet, Deleter], bool]) -> LoopResult:
    fleet = _fleet(request)
    deleter = Deleter(apply=True)
    round_ = request.previous.round + 1 if request.previous is not None and request.previous.remaining else 0
    with aws_errors():
        remaining = stage(fleet, deleter)
        result = _result(fleet, f"{name}-{round_:05d}", deleter)
    return LoopResult(**result.model_dump(), remaining=remaining, round=round_)


def delete_artifacts(request: LoopInput) -> LoopResult:
    return _loop(request, "60-artifacts",
                 lambda fleet, deleter: stages.artifacts(fleet, deleter, request.deletion.purge_artifacts))


def delete_state(request: LoopInput) -> LoopResult:
    return _loop(request, "70-state", stages.state_items)


# --- the report -----------------------------------------------------------------------------------

def finish(request: DeletionStepInput) -> DeletionSummary:
    """The whole report from the steps' parts (the plan's alone for a dry run), in S3; the output counts."""
    settings = get_settings()
    deletion, own = request.deletion, request.context.execution_id
    prefix = part_prefix(deletion.fleet, own)
    s3 = client("s3", settings.region)
    with aws_errors():
        keys = sorted(o["Key"] for o in paginate(s3, "list_objects_v2", "Contents", Bucket=settings.artifacts_bucket,
                                                 Prefix=prefix))
        chosen = [k for k in keys if k.endswith("/00-plan.json") == deletion.dry_run]
        items = [DeletionItem.model_validate(item) for key in chosen for item in json.loads(
            s3.get_object(Bucket=settings.artifacts_bucket, Key=key)["Body"].read())]
        words = ("delete", "keep") if deletion.dry_run else ("deleted", "kept")
        counts = [sum(i.action == word for i in items) for word in (*words, "absent")]
        kept = [i for i in items if i.action == words[1]]
        message = (f"{'plan (dry run): ' if deletion.dry_run else ''}{counts[0]} {words[0]}, {counts[1]} {words[1]}, "
                   f"{counts[2]} absent" + ("; kept: " + "; ".join(f"{i.kind} {i.name} ({i.reason})"
                                                                    for i in kept[:10]) if kept else ""))[:4096]
        report = DeletionReport(fleet=deletion.fleet, region=deletion.region, dry_run=deletion.dry_run,
                                purge_artifacts=deletion.purge_artifacts, execution_id=own, items=items,
                                deleted=counts[0], kept=counts[1], absent=counts[2], message=message)
        key = f"{REPORT_PREFIX}{deletion.fleet}/{_execution_name(own)}.json"
        s3.put_object(Bucket=settings.artifacts_bucket, Key=key, Body=report.model_dump_json().encode(),
                      ContentType="application/json")
    return DeletionSummary(fleet=deletion.fleet, region=deletion.region, dry_run=deletion.dry_run, execution_id=own,
                           deleted=counts[0], kept=counts[1], absent=counts[2], message=message,
                           report=PartRef(bucket=settings.artifacts_bucket, key=key))
