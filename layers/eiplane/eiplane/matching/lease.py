"""One tick per fleet at a time: a lease in the state table, taken with a conditional write.

Overlapping ticks (the schedule and the alarm fast path, or a slow tick and the next one)
would otherwise both see "3 ready, want 5" and launch twice. The lease expires on its own, so a
tick that dies does not block the fleet for longer than its time to live.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from eiplane.aws import client, error_code
from eiplane.settings import get_settings
from eiplane.state import fleet_key

LEASE = "LEASE"


def term_seconds(lease_seconds: int, drain_seconds: int) -> int:
    """How long a tick holds its fleet: longer than a tick's work *and* its drain, which the tick waits
    out while holding the lease (a fleet's serving.deregistration_delay_s may be an hour), so the lease cannot expire under it."""
    return lease_seconds + drain_seconds


def acquire(fleet: str, owner: str, ttl_s: int, now: float | None = None) -> bool:
    """True if `owner` now holds the fleet's lease (taken, or already its own)."""
    now = time.time() if now is None else now
    return _write(fleet, owner, ttl_s, now, "attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner",
                  {":now": {"N": str(int(now))}, ":owner": {"S": owner}})


def take_over(fleet: str, owner: str, previous_owner: str, ttl_s: int, now: float | None = None) -> bool:
    """Take the lease from `previous_owner` (an execution that has ended without releasing it: a failed
    deletion, an aborted rollout); False if someone else holds it by now."""
    return _write(fleet, owner, ttl_s, time.time() if now is None else now, "#owner = :previous",
                  {":previous": {"S": previous_owner}})


def _write(fleet: str, owner: str, ttl_s: int, now: float, condition: str, values: dict[str, Any]) -> bool:
    """The lease as `owner`'s for `ttl_s` if `condition` holds; False if it does not."""
    settings = get_settings()
    try:
        client("dynamodb", settings.region).put_item(
            TableName=settings.state_table,
            Item={**fleet_key(fleet, LEASE), "owner": {"S": owner}, "expires_at": {"N": str(int(now + ttl_s))},
                  "ttl": {"N": str(int(now + ttl_s + 86400))}},
            ConditionExpression=condition, ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def release(fleet: str, owner: str) -> bool:
    """Give the lease back if `owner` still holds it; False if it had expired and moved on."""
    settings = get_settings()
    try:
        client("dynamodb", settings.region).delete_item(
            TableName=settings.state_table, Key=fleet_key(fleet, LEASE),
            ConditionExpression="#owner = :owner", ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":owner": {"S": owner}},
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def holder(fleet: str) -> str | None:
    """Who holds the fleet's lease now (None: nobody, or it expired)."""
    settings = get_settings()
    item = client("dynamodb", settings.region).get_item(
        TableName=settings.state_table, Key=fleet_key(fleet, LEASE), ConsistentRead=True).get("Item")
    if not item or int(item["expires_at"]["N"]) < time.time():
        return None
    return str(item["owner"]["S"])
