"""The fleet state table (DynamoDB, one item collection per fleet).

pk = "FLEET#<name>"; sk = "PREREQUISITES" (what the instances will use) and, from the
provisioning stage on, "INSTANCE#<slot>". Writes happen only when something changed, so a
re-run that finds everything in place makes no mutating call at all.
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


def load_prerequisites(fleet: str) -> dict[str, Any] | None:
    settings = get_settings()
    item = client("dynamodb", settings.region).get_item(
        TableName=settings.state_table, Key=fleet_key(fleet, "PREREQUISITES"), ConsistentRead=True).get("Item")
    if item is None:
        return None
    record = {k: v["S"] for k, v in item.items()}
    record["inventory"] = json.loads(record["inventory"])
    return record
