"""PlanLaunch: what this execution launches, with what image, artifact and agent.

It writes only the validation agent (content-addressed, so once per agent version) and a
reservation for each new slot it chooses (see _reserve). A slot already in service with its
instance running is left alone, which is what makes re-running the same input add no instance
and make no mutating call.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from botocore.exceptions import ClientError

from eiplane import naming
from eiplane.aws import aws_errors, client, error_code, record_api_calls
from eiplane.errors import ArtifactNotFound, ImageNotFound, PlanConflict, RolloutRequired
from eiplane.models.launch import IN_PROGRESS, AgentRef, ArtifactRef, LaunchPlanOutput, LaunchShared, PlanLaunchInput, SlotPlan
from eiplane.models.spec import FleetSpec, looks_like_ami_id
from eiplane.observability import logger
from eiplane.settings import get_settings
from eiplane.state import ROLLOUT_ACTIVE, fleet_key, load_rollout, load_slots, now, slot_key

DEVICES = {"gpu": "cuda", "inferentia": "neuron", "eia": "eia"}
_RUNNING = {"pending", "running"}


def plan_launch(request: PlanLaunchInput) -> LaunchPlanOutput:
    spec = request.spec
    with record_api_calls() as calls, aws_errors():
        slots = load_slots(spec.name)
        instances = fleet_instances(spec)
        orphans = terminate_orphans(request, slots, instances)
        states = {i: v["state"] for i, v in instances.items() if i not in orphans}
        states |= instance_states([s["instance_id"] for s in slots.values()
                                   if s.get("instance_id") and s["instance_id"] not in instances], spec.region)
        check_one_version(spec, slots, states)
        in_service, in_flight, to_provision = _choose_slots(request, slots, states)
        shared = _shared(request) if to_provision else None
        _reserve(request, slots, to_provision)
    resumed = sum(s.warm_instance_id is not None for s in to_provision)
    logger.info(f"launch plan: {len(to_provision)} slot(s) to provision ({resumed} from the warm pool), "
                f"{len(in_service)} in service, {len(in_flight)} on their way in other executions",
                extra={"slots": [s.model_dump() for s in to_provision], "in_service": in_service, "in_flight": in_flight})
    return LaunchPlanOutput(shared=shared, slots=to_provision, already_in_service=in_service, in_flight=in_flight,
                            mutating_calls=calls.mutating)


def _choose_slots(request: PlanLaunchInput, slots: dict[int, dict], states: dict[str, str]
                  ) -> tuple[list[int], list[int], list[SlotPlan]]:
    """capacity.desired is a count of instances: those in service, then those another running
    execution is provisioning, count towards it; the rest are provisioned here: an earlier
    execution's unfinished instances (resumed) first, then the warm pool's stopped instances
    (started: minutes instead of a launch), then new slots at the lowest free indexes. A new
    fleet with a warm pool to prefill also gets that many slots that are validated, then stopped.
    Slots being drained or above the count are capacity matching's to remove, not this plan's."""
    spec = request.spec
    desired = spec.capacity.desired
    live = {i: s for i, s in slots.items() if states.get(s.get("instance_id", "")) in _RUNNING}
    # (only instances serving the spec's version count: during a rollout the others are its to retire)
    in_service = sorted(i for i, s in live.items() if s.get("state") == "in_service"
                        and serves_version(s, spec.model.name, spec.model.version))[:desired]
    in_progress = sorted(i for i, s in live.items() if s.get("state") in IN_PROGRESS)
    own = request.context.execution_id
    in_flight = [i for i in in_progress
                 if slots[i].get("execution") not in (None, own) and execution_running(str(slots[i]["execution"]))]
    # slots another running execution has planned but not launched yet (see _reserve)
    in_flight += [i for i, s in slots.items() if s.get("state") == "planned" and i not in live
                  and s.get("execution") not in (None, own) and execution_running(str(s["execution"]))]
    resumable = [i for i in in_progress if i not in in_flight]
    warm = sorted((i for i, s in slots.items() if s.get("state") == "warm"
                   and states.get(s.get("instance_id", "")) == "stopped"),
                  key=lambda i: (str(slots[i].get("updated_at", "")), i))  # the longest stopped first
    wanted = max(0, desired - len(in_service) - len(in_flight))
    chosen = [SlotPlan(index=i, generation=int(slots[i].get("generation", 0)),
                       resume_instance_id=slots[i]["instance_id"]) for i in resumable[:wanted]]
    chosen += [SlotPlan(index=i, generation=int(slots[i].get("generation", 0)),
                        warm_instance_id=slots[i]["instance_id"]) for i in warm[:wanted - len(chosen)]]
    taken = set(live) | set(warm) | set(in_flight)
    free = (i for i in itertools.count() if i not in taken)

    def new_slot(into_pool: bool = False) -> SlotPlan:
        index = next(free)
        record = slots.get(index)
        if record is not None and record.get("state") == "planned" and record.get("execution") == own:
            generation = int(record.get("generation", 0))  # this execution's own plan, retried
        else:
            # Failed, drained, or in service on an instance that is gone: a new generation.
            generation = 0 if record is None else int(record.get("generation", 0)) + 1
        return SlotPlan(index=index, generation=generation, into_pool=into_pool)

    chosen += [new_slot() for _ in range(wanted - len(chosen))]
    if not slots and spec.scaling.warm_pool_prefill:  # a new fleet: fill its warm pool once
        chosen += [new_slot(into_pool=True) for _ in range(spec.scaling.warm_pool_size)]
    return in_service, in_flight, sorted(chosen, key=lambda slot: slot.index)


def serves_version(record: dict[str, Any], model_name: str, model_version: str) -> bool:
    """Whether a slot's instance serves this version; a record from before slots named their version
    (no model_version) is taken to serve the fleet's."""
    if not record.get("model_version"):
        return True
    return bool(record.get("model_name") == model_name and record.get("model_version") == model_version)


def check_one_version(spec: FleetSpec, slots: dict[int, dict[str, Any]], states: dict[str, str]) -> None:
    """A fleet serves one version: a spec naming another than its in-service instances serve launches
    nothing (RolloutRequired), except for the rollout that is replacing them (its batches launch the new
    version; its rollback restores the old one)."""
    others = sorted({f"{r.get('model_name')}:{r.get('model_version')}" for r in slots.values()
                     if r.get("state") == "in_service" and states.get(r.get("instance_id", "")) in _RUNNING
                     and not serves_version(r, spec.model.name, spec.model.version)})
    if not others:
        return
    rollout = load_rollout(spec.name)
    if rollout is not None and rollout.get("status") in ROLLOUT_ACTIVE and \
            execution_running(str(rollout.get("execution"))):
        launches = rollout.get("to_version") if rollout["status"] == "running" else rollout.get("from_version")
        if launches == f"{spec.model.name}:{spec.model.version}":
            return
    raise RolloutRequired(
        f"{spec.name} serves {', '.join(others)}; this spec names {spec.model.name}:{spec.model.version}. Nothing "
        "was launched: start RolloutFleet with the spec (`eiplane fleet rollout SPEC`), which replaces the "
        "instances in batches and rolls back if the new version fails")


def _reserve(request: PlanLaunchInput, slots: dict[int, dict], chosen: list[SlotPlan]) -> None:
    """Record each new slot as "planned" by this execution before any instance exists, so an
    execution that plans in the meantime (a scale-out right after another) counts it as on its
    way instead of launching it again. A plan whose execution stops is a free slot again.

    The reservation is conditional on the slot being as this plan read it: two executions that
    plan at the same moment cannot both take a slot (the second gets PlanConflict, and the ASL
    runs its plan again, which then sees the first's reservations)."""
    own = request.context.execution_id
    settings = get_settings()
    dynamodb = client("dynamodb", settings.region)
    for slot in chosen:
        if slot.resume_instance_id or slot.warm_instance_id:
            continue
        record = slots.get(slot.index, {})
        if record.get("state") == "planned" and record.get("execution") == own:
            continue  # a retried step: already reserved
        seen = record.get("updated_at")
        try:
            dynamodb.update_item(
                TableName=settings.state_table, Key=fleet_key(request.spec.name, slot_key(slot.index)),
                UpdateExpression="SET #state = :planned, #execution = :own, #generation = :generation, "
                                 "#reason = :none, #updated = :now",
                ConditionExpression="attribute_not_exists(#updated)" if seen is None else "#updated = :seen",
                ExpressionAttributeNames={"#state": "state", "#execution": "execution", "#generation": "generation",
                                          "#reason": "reason", "#updated": "updated_at"},
                ExpressionAttributeValues={":planned": {"S": "planned"}, ":own": {"S": own},
                                           ":generation": {"N": str(slot.generation)}, ":none": {"S": ""},
                                           ":now": {"S": now()}, **({} if seen is None else {":seen": {"S": seen}})})
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            raise PlanConflict(f"slot {slot.index} of {request.spec.name} changed while this execution planned "
                               "(another execution is planning the fleet): planning again") from exc


KEPT_STATES = {*IN_PROGRESS, "in_service", "draining", "warm"}


def fleet_instances(spec: FleetSpec) -> dict[str, dict[str, Any]]:
    """Every live instance tagged as the fleet's (found by tags, not only by the state table):
    id -> {state, slot, generation}."""
    found: dict[str, dict[str, Any]] = {}
    for page in client("ec2", spec.region).get_paginator("describe_instances").paginate(Filters=[
            {"Name": f"tag:{naming.TAG_FLEET}", "Values": [spec.name]},
            {"Name": f"tag:{naming.TAG_MANAGED_BY}", "Values": [naming.PROJECT]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = naming.from_aws_tags(instance.get("Tags"))
                found[instance["InstanceId"]] = {
                    "state": instance["State"]["Name"],
                    "slot": int(tags["eiplane:slot"]) if tags.get("eiplane:slot", "").isdigit() else None,
                    "generation": int(tags["eiplane:generation"]) if tags.get("eiplane:generation", "").isdigit() else None}
    return found


def orphaned(own_execution: str | None, slots: dict[int, dict[str, Any]],
             instances: dict[str, dict[str, Any]]) -> list[str]:
    """Instances of the fleet that no slot accounts for: their slot names another instance, or failed
    (a compensation whose termination failed), or they are a launch no running execution drives any more
    (a launch whose answer was lost, a step that timed out after RunInstances). An instance whose launch an
    execution still drives (its id not recorded yet) is never one: that is the grace it gets, however long
    the launch takes."""
    orphans = []
    for instance_id, found in instances.items():
        record = slots.get(found["slot"]) if found["slot"] is not None else None
        if found["slot"] is None:
            continue  # tagged as the fleet's by hand: not a slot's, not eiplane's to remove
        if record is not None and record.get("instance_id") == instance_id and record.get("state") in KEPT_STATES:
            continue
        launching = record is not None and record.get("generation") == found["generation"] and \
            record.get("state") in ("planned", "launching") and record.get("execution") not in (None, "") and (
                record["execution"] == own_execution or execution_running(str(record["execution"])))
        if launching:
            continue  # launched by a step still on its way, its instance id not recorded yet
        orphans.append(instance_id)
    return sorted(orphans)


def terminate_orphans(request: PlanLaunchInput, slots: dict[int, dict[str, Any]],
                      instances: dict[str, dict[str, Any]]) -> list[str]:
    orphans = orphaned(request.context.execution_id, slots, instances)
    if orphans:
        logger.warning(f"terminating {len(orphans)} instance(s) of fleet {request.spec.name} that no slot accounts "
                       f"for: {', '.join(orphans)}", extra={"orphans": orphans})
        client("ec2", request.spec.region).terminate_instances(InstanceIds=orphans)
    return orphans


def execution_running(execution_arn: str) -> bool:
    try:
        status = client("stepfunctions", get_settings().region).describe_execution(executionArn=execution_arn)["status"]
    except ClientError as exc:
        if error_code(exc) == "ExecutionDoesNotExist":
            return False
        raise
    return status == "RUNNING"


def instance_states(instance_ids: list[str], region: str) -> dict[str, str]:
    """Each instance's state name (pending, running, stopping, stopped, ...); gone ones are absent."""
    if not instance_ids:
        return {}
    found: dict[str, str] = {}
    for page in client("ec2", region).get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": instance_ids}]):
        for reservation in page["Reservations"]:
            found |= {i["InstanceId"]: i["State"]["Name"] for i in reservation["Instances"]}
    return found


def running_instances(instance_ids: list[str], region: str) -> set[str]:
    return {i for i, state in instance_states(instance_ids, region).items() if state in _RUNNING}


def running_slot_instances(records: dict[int, dict[str, Any]], region: str) -> set[str]:
    """The instances the slot records name that are pending or running (one DescribeInstances)."""
    return running_instances([r["instance_id"] for r in records.values() if r.get("instance_id")], region)


def _shared(request: PlanLaunchInput) -> LaunchShared:
    spec = request.spec
    bucket = get_settings().artifacts_bucket
    image_id = resolve_image(spec)
    return LaunchShared(
        image_id=image_id,
        root_device_name=root_device_name(spec, image_id),
        image_parameter=spec.backend.resolved_image_parameter,
        device=DEVICES[spec.backend.type],  # type: ignore[arg-type]
        artifact=read_artifact(spec, bucket),
        agent=publish_agent(spec.name, bucket),
        results_prefix=f"{naming.artifact_prefix(spec.name)}results/",
        instance_profile_arn=request.instance_profile_arn,
        security_group_id=request.security_group_id,
        target_group_arn=request.target_group_arn,
    )


def resolve_image(spec: FleetSpec) -> str:
    parameter = spec.backend.resolved_image_parameter
    try:
        value = client("ssm", spec.region).get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            raise ImageNotFound(
                f"SSM parameter {parameter} does not exist in {spec.region}: AWS retires framework-versioned "
                "image names; set backend.image_parameter to a current one") from exc
        raise
    if not looks_like_ami_id(value):  # a parameter of the account may hold anything: never quoted
        raise ImageNotFound(f"SSM parameter {parameter} in {spec.region} does not hold an AMI id ('ami-' and hex "
                            "digits); its value is not shown")
    return str(value)


def root_device_name(spec: FleetSpec, image_id: str) -> str:
    named = image_id if looks_like_ami_id(image_id) else "a value that is not an AMI id (not shown)"
    try:
        images = client("ec2", spec.region).describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:  # InvalidAMIID.Malformed / NotFound quote the id they were given
        if not error_code(exc).startswith("InvalidAMIID."):
            raise
        images = []
    if not images:
        raise ImageNotFound(f"{spec.backend.resolved_image_parameter} names {named}, which does not exist "
                            f"in {spec.region} (or is not shared with this account)")
    return str(images[0].get("RootDeviceName", "/dev/sda1"))


def read_artifact(spec: FleetSpec, bucket: str) -> ArtifactRef:
    from eiplane.artifacts.manifest import Manifest

    prefix = naming.model_prefix(spec.name, spec.model.name, spec.model.version)
    key = f"{prefix}manifest.json"
    try:
        body = client("s3", get_settings().region).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise ArtifactNotFound(
                f"s3://{bucket}/{key} does not exist: pack the model and push it with "
                f"`eiplane artifact push DIR --fleet {spec.name}`") from exc
        raise
    manifest = Manifest.model_validate(json.loads(body))
    return ArtifactRef(bucket=bucket, prefix=prefix, manifest_key=key,
                       manifest_sha256=hashlib.sha256(body).hexdigest(),
                       formats=sorted(manifest.formats.present()), torch_version=manifest.torch_version)


def publish_agent(fleet: str, bucket: str) -> AgentRef:
    """The instance bundle this layer carries (the validation agent, the model server and the wheels
    of its dependencies), stored under the digest of its file list, under the fleet's prefix: the fleet's
    instance role may read that prefix and nothing else of the bucket. Each file is written once."""
    from eiplane.agent import bundle_files, bundle_sha256sums

    files = bundle_files()
    sums = bundle_sha256sums()
    prefix = f"{naming.artifact_prefix(fleet)}agent/{hashlib.sha256(sums.encode()).hexdigest()}/"
    s3 = client("s3", get_settings().region)
    present = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
               for o in page.get("Contents", [])}
    for name, path in sorted(files.items()):
        if f"{prefix}{name}" not in present:
            body = path.read_bytes()
            s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=body, ChecksumAlgorithm="SHA256",
                          Metadata={"sha256": hashlib.sha256(body).hexdigest()})
    return AgentRef(prefix=prefix, sha256sums=sums)
