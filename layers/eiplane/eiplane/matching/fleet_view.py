"""The fleet as the policy sees it: slot records and running instances -> policy slots.

- in service on a running instance: READY, with the throughput measured at validation;
- on its way (launching .. validated) while the execution that launched it still runs:
  VALIDATING (coming; scale-in never touches it);
- on its way with no execution driving it (an execution that was stopped): LAUNCHING, which
  scale-in may cancel first;
- slots a running execution has planned (reserved) but not launched yet, and slots a running
  scale-out has not even planned yet (desired above what is recorded): VALIDATING;
- draining, failed, terminated: not counted.
"""

from __future__ import annotations

from typing import Any

from eiplane.capacity.policy import Slot, SlotState
from eiplane.models.launch import IN_PROGRESS

# How far from ready a slot is, by its lifecycle stage, as a fraction of launch-to-ready
# (the policy only uses it to cancel the furthest-from-ready first).
_STAGE_REMAINING = {"launching": 1.0, "registered": 0.6, "artifact_verified": 0.3, "validated": 0.1}


def slot_id(index: int) -> str:
    return f"slot-{index:04d}"


def slot_index(policy_id: str) -> int | None:
    return int(policy_id.removeprefix("slot-")) if policy_id.startswith("slot-") else None


def measured_throughput(validation: dict[str, Any] | None, precision: str = "fp32") -> float | None:
    """Requests/s one instance serves: what the load test of its started model server found at
    validation (the highest rate whose p99 stayed under serving.latency_p99_ms, through its own HTTP
    path and batching). A record validated before the server was load-tested: the batch-1 throughput
    of the model alone, in the precision the fleet serves in, with the faster format that passed."""
    if not validation or not validation.get("passed"):
        return None
    serving = validation.get("serving") or {}
    if serving.get("ready") and serving.get("capacity_rps"):
        return float(serving["capacity_rps"])
    rates = []
    for fmt in (validation.get("formats") or {}).values():
        result = (fmt.get("precisions") or {}).get(precision) or {}
        single = (result.get("latency") or {}).get("1") or {}
        if result.get("passed") and single.get("throughput_per_s"):
            rates.append(float(single["throughput_per_s"]))
    return max(rates) if rates else None


def policy_slots(records: dict[int, dict[str, Any]], running: set[str], executions_running: set[str],
                 launch_minutes: int, precision: str = "fp32", configured_rps: float | None = None) -> list[Slot]:
    """`executions_running`: the executions recorded on slots that still run; `configured_rps`: the spec's
    capacity_per_instance_rps, which caps what validation measured (the model alone is at most
    as fast as measured; the server in front of it can be slower)."""
    slots = []
    for index, record in sorted(records.items()):
        state = record.get("state")
        if state == "planned" and record.get("execution") in executions_running:
            # reserved by a running ProvisionFleet, not launched yet: coming
            slots.append(Slot(id=slot_id(index), state=SlotState.VALIDATING, minutes_until_ready=float(launch_minutes)))
            continue
        if record.get("instance_id") not in running:
            continue
        if state == "in_service":
            measured = measured_throughput(record.get("validation"), precision)
            if measured is not None and configured_rps is not None:
                measured = min(measured, configured_rps)
            slots.append(Slot(id=slot_id(index), state=SlotState.READY, throughput_rps=measured))
        elif state in IN_PROGRESS:
            driven = record.get("execution") in executions_running
            slots.append(Slot(id=slot_id(index), state=SlotState.VALIDATING if driven else SlotState.LAUNCHING,
                              minutes_until_ready=launch_minutes * _STAGE_REMAINING.get(str(state), 1.0)))
    return slots


def pending_slots(count: int, launch_minutes: int) -> list[Slot]:
    """Slots a running scale-out will add that have no record yet: coming, never touched."""
    return [Slot(id=f"pending-{k}", state=SlotState.VALIDATING, minutes_until_ready=float(launch_minutes))
            for k in range(count)]
