"""The fleet state table (DynamoDB, one item collection per fleet).

pk = "FLEET#<name>"; sk = "PREREQUISITES" (what the instances will use), "SLOT#<index>" (each
slot's lifecycle) and "LEASE" (capacity matching). Writes happen only when something changed,
so a re-run that finds everything in place makes no mutating call at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from eiplane.aws import client
from eiplane.models.prerequisites import PrerequisiteResult
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


# --- slots --------------------------------------------------------------------------------

def slot_key(index: int) -> str:
    return f"SLOT#{index:04d}"


def load_slots(fleet: str) -> dict[int, dict[str, Any]]:
    """Every slot record of the fleet, by index (one Query, every page)."""
    settings = get_settings()
    dynamodb = client("dynamodb", settings.region)
    slots: dict[int, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("query").paginate(
            TableName=settings.state_table, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :slot)",
            ExpressionAttributeValues={":pk": fleet_key(fleet, "")["pk"], ":slot": {"S": "SLOT#"}}):
        for item in page["Items"]:
            record = {k: _plain(v) for k, v in item.items()}
            slots[int(record["sk"].removeprefix("SLOT#"))] = record
    return slots


def save_slot(fleet: str, index: int, fields: dict[str, Any]) -> None:
    """Set the given fields of a slot record (others are kept); JSON-encodes dicts and lists."""
    settings = get_settings()
    values = {k: v for k, v in fields.items() if v is not None}
    values["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    names = {f"#f{i}": k for i, k in enumerate(values)}
    client("dynamodb", settings.region).update_item(
        TableName=settings.state_table, Key=fleet_key(fleet, slot_key(index)),
        UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": _attribute(v) for i, v in enumerate(values.values())},
    )


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, dict | list):
        return {"S": json.dumps(value, sort_keys=True)}
    return {"S": str(value)}


def _plain(attribute: dict[str, Any]) -> Any:
    (kind, value), = attribute.items()
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "S" and value[:1] in ("[", "{"):
        return json.loads(value)
    return value
