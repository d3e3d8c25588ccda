"""The fleet state table (DynamoDB, one item collection per fleet).

pk = "FLEET#<name>"; sk = "PREREQUISITES" (what the instances will use), "SLOT#<index>" (each
slot's lifecycle), "LEASE" (one tick, rollout or deletion at a time), "ROLLOUT" (the latest
rollout: both specs, its batches, its outcome) and "DECISION#<time>" (each capacity decision,
kept 30 days). The registry of fleets that capacity matching looks
after is one more collection: pk = "REGISTRY", sk = "FLEET#<name>" (the spec, the desired
size, the last scale-out / scale-in and the scale-out execution in flight). Writes happen only
when something changed, so a re-run that finds everything in place makes no mutating call.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from eiplane.aws import client, error_code
from eiplane.models.prerequisites import PrerequisiteResult
from eiplane.models.spec import FleetSpec
from eiplane.settings import get_settings


def fleet_key(fleet: str, sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": f"FLEET#{fleet}"}, "sk": {"S": sort_key}}


def save_prerequisites(fleet: str, record: dict[str, str], results: list[PrerequisiteResult],
                       execution_id: str) -> Literal["written", "unchanged"]:
    settings = get_settings()
    dynamodb = client("dynamodb", settings.region)
    inventory = json.dumps([{"kind": r.kind, "name": r.name, "id": r.id} for r in results], sort_keys=True)
    wanted = {**{k: {"S": v} for k, v in sorted(record.items())}, "inventory": {"S": inventory}}
    key = fleet_key(fleet, "PREREQUISITES")
    current = dynamodb.get_item(TableName=settings.state_table, Key=key, ConsistentRead=True).get("Item", {})
    if all(current.get(k) == v for k, v in wanted.items()):
        return "unchanged"
    dynamodb.put_item(TableName=settings.state_table, Item={
        **key, **wanted,
        "recorded_by": {"S": execution_id},
        "recorded_at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
    })
    return "written"


def load_prerequisites(fleet: str) -> dict[str, Any] | None:
    """What the fleet's last prerequisites stage recorded (its VPC, groups, profile, load balancer)."""
    settings = get_settings()
    return read_prerequisites(client("dynamodb", settings.region), settings.state_table, fleet)


def read_prerequisites(dynamodb: BaseClient, table: str, fleet: str) -> dict[str, Any] | None:
    """load_prerequisites with the caller's client and table (the CLI reads a stack's table as the operator)."""
    item = dynamodb.get_item(TableName=table, Key=fleet_key(fleet, "PREREQUISITES"), ConsistentRead=True).get("Item")
    return {k: plain(v) for k, v in item.items()} if item else None


# --- registry -----------------------------------------------------------------------------

REGISTRY_PK = "REGISTRY"
DECISION_DAYS = 30


def registry_key(fleet: str) -> dict[str, Any]:
    return {"pk": {"S": REGISTRY_PK}, "sk": {"S": f"FLEET#{fleet}"}}


def register_fleet(spec: FleetSpec, execution_id: str) -> Literal["written", "unchanged"]:
    """Record the spec ProvisionFleet applied: capacity matching ticks read their fleets from here.
    Scaling fields a tick wrote (last scale-out, the execution in flight) are kept."""
    settings = get_settings()
    dynamodb = client("dynamodb", settings.region)
    body = spec.model_dump_json()
    current = dynamodb.get_item(TableName=settings.state_table, Key=registry_key(spec.name),
                                ConsistentRead=True).get("Item", {})
    if current.get("spec") == {"S": body} and current.get("desired") == {"N": str(spec.capacity.desired)}:
        return "unchanged"
    dynamodb.update_item(
        TableName=settings.state_table, Key=registry_key(spec.name),
        UpdateExpression="SET #spec = :spec, desired = :desired, registered_by = :by, updated_at = :at",
        ExpressionAttributeNames={"#spec": "spec"},
        ExpressionAttributeValues={":spec": {"S": body}, ":desired": {"N": str(spec.capacity.desired)},
                                   ":by": {"S": execution_id}, ":at": {"S": now()}},
    )
    return "written"


def load_registration(fleet: str) -> dict[str, Any] | None:
    settings = get_settings()
    item = client("dynamodb", settings.region).get_item(
        TableName=settings.state_table, Key=registry_key(fleet), ConsistentRead=True).get("Item")
    return {k: plain(v) for k, v in item.items()} if item else None


# A registry item DeleteFleet has marked: capacity matching leaves the fleet alone, ProvisionFleet refuses it.
DELETING = "deleting"


def registered_fleets(include_deleting: bool = False) -> list[str]:
    """Every registered fleet's name (one Query, every page); those being deleted only if asked."""
    settings = get_settings()
    names = []
    for page in client("dynamodb", settings.region).get_paginator("query").paginate(
            TableName=settings.state_table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": REGISTRY_PK}}, ProjectionExpression="sk, #status",
            ExpressionAttributeNames={"#status": "status"}):
        names += [item["sk"]["S"].removeprefix("FLEET#") for item in page["Items"]
                  if include_deleting or item.get("status", {}).get("S") != DELETING]
    return sorted(names)


def read_registrations(dynamodb: BaseClient, table: str) -> dict[str, dict[str, Any]]:
    """Every registered fleet's record (spec, desired size, scaling fields), by name: one Query, every page."""
    records = {}
    for page in dynamodb.get_paginator("query").paginate(
            TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": REGISTRY_PK}}):
        for item in page["Items"]:
            record = {k: plain(v) for k, v in item.items()}
            records[record["sk"].removeprefix("FLEET#")] = record
    return dict(sorted(records.items()))


def update_registration(fleet: str, fields: dict[str, Any]) -> None:
    """Set scaling fields of a registered fleet (it must be registered)."""
    settings = get_settings()
    names = {f"#f{i}": k for i, k in enumerate(fields)}
    client("dynamodb", settings.region).update_item(
        TableName=settings.state_table, Key=registry_key(fleet),
        UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": _attribute(v) for i, v in enumerate(fields.values())},
    )


def save_decision(fleet: str, at: datetime, record: dict[str, Any]) -> None:
    settings = get_settings()
    expires = int(at.timestamp()) + DECISION_DAYS * 86400
    item = {**fleet_key(fleet, f"DECISION#{at.isoformat(timespec='seconds')}"),
            **{k: _attribute(v) for k, v in record.items() if v is not None}, "ttl": {"N": str(expires)}}
    client("dynamodb", settings.region).put_item(TableName=settings.state_table, Item=item)


def now() -> str:
    """Microseconds: a slot written twice within a second must still show it changed (reservations
    are conditional on updated_at)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --- slots --------------------------------------------------------------------------------

def slot_key(index: int) -> str:
    return f"SLOT#{index:04d}"


def load_slots(fleet: str) -> dict[int, dict[str, Any]]:
    """Every slot record of the fleet, by index (one Query, every page)."""
    settings = get_settings()
    return read_slots(client("dynamodb", settings.region), settings.state_table, fleet)


def read_slots(dynamodb: BaseClient, table: str, fleet: str) -> dict[int, dict[str, Any]]:
    """load_slots with the caller's client and table."""
    slots: dict[int, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("query").paginate(
            TableName=table, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :slot)",
            ExpressionAttributeValues={":pk": fleet_key(fleet, "")["pk"], ":slot": {"S": "SLOT#"}}):
        for item in page["Items"]:
            record = {k: plain(v) for k, v in item.items()}
            slots[int(record["sk"].removeprefix("SLOT#"))] = record
    return slots


def load_slot(fleet: str, index: int) -> dict[str, Any] | None:
    settings = get_settings()
    item = client("dynamodb", settings.region).get_item(
        TableName=settings.state_table, Key=fleet_key(fleet, slot_key(index)), ConsistentRead=True).get("Item")
    return {k: plain(v) for k, v in item.items()} if item else None


def save_slot(fleet: str, index: int, fields: dict[str, Any]) -> None:
    """Set the given fields of a slot record (others are kept); JSON-encodes dicts and lists."""
    _set_fields(fleet_key(fleet, slot_key(index)), fields)


def _set_fields(key: dict[str, Any], fields: dict[str, Any]) -> None:
    settings = get_settings()
    values = {k: v for k, v in fields.items() if v is not None}
    values["updated_at"] = now()
    names = {f"#f{i}": k for i, k in enumerate(values)}
    client("dynamodb", settings.region).update_item(
        TableName=settings.state_table, Key=key,
        UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": _attribute(v) for i, v in enumerate(values.values())},
    )


# --- rollouts -----------------------------------------------------------------------------

ROLLOUT = "ROLLOUT"
# A rollout in one of these holds the fleet: ProvisionFleet launches the version it names, only for it.
ROLLOUT_ACTIVE = ("running", "rolling_back")


def load_rollout(fleet: str) -> dict[str, Any] | None:
    """The fleet's latest rollout (one record, replaced by the next rollout once this one has ended)."""
    settings = get_settings()
    item = client("dynamodb", settings.region).get_item(
        TableName=settings.state_table, Key=fleet_key(fleet, ROLLOUT), ConsistentRead=True).get("Item")
    return {k: plain(v) for k, v in item.items()} if item else None


def begin_rollout(fleet: str, execution_id: str, fields: dict[str, Any], replacing: str | None) -> bool:
    """Write a new rollout record over the one read before (`replacing`: its execution, which has ended),
    or where there was none; False if another rollout wrote one meanwhile (two rollouts started at once
    cannot both take the fleet)."""
    settings = get_settings()
    item = {**fleet_key(fleet, ROLLOUT), **{k: _attribute(v) for k, v in fields.items() if v is not None},
            "execution": {"S": execution_id}, "updated_at": {"S": now()}}
    try:
        client("dynamodb", settings.region).put_item(
            TableName=settings.state_table, Item=item,
            ConditionExpression="attribute_not_exists(pk)" if replacing is None else "#execution = :replacing",
            **({} if replacing is None else {"ExpressionAttributeNames": {"#execution": "execution"},
                                             "ExpressionAttributeValues": {":replacing": {"S": replacing}}}))
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def save_rollout(fleet: str, fields: dict[str, Any]) -> None:
    _set_fields(fleet_key(fleet, ROLLOUT), fields)


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, dict | list):
        return {"S": json.dumps(value, sort_keys=True)}
    return {"S": str(value)}


def plain(attribute: dict[str, Any]) -> Any:
    (kind, value), = attribute.items()
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "S" and value[:1] in ("[", "{"):
        return json.loads(value)
    return value
