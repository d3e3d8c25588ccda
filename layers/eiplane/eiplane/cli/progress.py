"""Follow a Step Functions execution as it runs, a line per state, and print its outcome.

Works the same on real AWS and on the embedded AWS: it only reads DescribeExecution and
GetExecutionHistory.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from botocore.client import BaseClient

from eiplane.executions import TERMINAL, ExecutionResult, cause_message, history


def describe_event(event: dict[str, Any], entered: dict[str, float]) -> str | None:
    """One line for the events a person follows; None for the rest."""
    kind = event["type"]
    stamp = event["timestamp"].timestamp() if hasattr(event["timestamp"], "timestamp") else 0.0
    if kind.endswith("StateEntered"):
        name = event["stateEnteredEventDetails"]["name"]
        entered[name] = stamp
        return f"  > {name}"
    if kind.endswith("StateExited"):
        name = event["stateExitedEventDetails"]["name"]
        took = stamp - entered.get(name, stamp)
        return f"  ok {name} ({took:.2f} s)"
    if kind in ("LambdaFunctionFailed", "TaskFailed"):
        details = event.get("lambdaFunctionFailedEventDetails") or event.get("taskFailedEventDetails") or {}
        return f"    ! {details.get('error')}: {cause_message(details.get('cause')) or ''}"
    if kind == "ExecutionFailed":
        details = event.get("executionFailedEventDetails", {})
        return f"  FAILED {details.get('error')}: {cause_message(details.get('cause')) or ''}"
    if kind == "ExecutionSucceeded":
        return "  SUCCEEDED"
    return None


# The whole history is read again each time (only new events would take reverseOrder paging, which moto's
# GetExecutionHistory ignores): at most once a second, however often the status is polled (the embedded AWS
# polls it every 0.1 s, to end promptly).
HISTORY_EVERY_S = 1.0


def follow(sfn: BaseClient, execution_arn: str, out: TextIO | None = None, timeout_s: float = 3600,
           poll_s: float = 1.0, compact: bool = False) -> ExecutionResult:
    """Print each new history event until the execution ends, then return its result.
    Compact: one line, the states' names as they are entered, then the outcome."""
    out = out or sys.stdout
    printed = 0
    entered: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    names_on_line = True  # compact: the caller has begun the line the states' names go on
    read_at = -HISTORY_EVERY_S
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        status = described["status"]
        if status not in TERMINAL and time.monotonic() - read_at < HISTORY_EVERY_S:
            time.sleep(poll_s)
            continue
        read_at = time.monotonic()
        events = history(sfn, execution_arn)  # read after the status: complete once it is terminal
        for event in events[printed:]:
            line = describe_event(event, entered)
            if line and compact:
                if line.startswith("  > "):
                    # after an error's line, the names go on below it, indented as before
                    print((" " if names_on_line else "   ") + line[4:], end="", file=out, flush=True)
                    names_on_line = True
                elif not line.startswith("  ok "):
                    print(("\n" if names_on_line else "") + "  " + line.strip(), file=out, flush=True)
                    names_on_line = False
            elif line:
                print(line, file=out, flush=True)
        printed = len(events)
        if status in TERMINAL:
            return ExecutionResult.of(described, events)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} is still {status}; follow it in the Step Functions console")
        time.sleep(poll_s)


def print_report(report: dict[str, Any], out: TextIO | None = None) -> None:
    """The prerequisites report as a table."""
    out = out or sys.stdout
    backend = report["backend"]
    print(f"fleet {report['fleet']} ({backend['type']}: {', '.join(backend['instance_types'])}; "
          f"{backend['accelerator']}) in {report['region']} {report['vpc_id']}", file=out)
    for item in report["prerequisites"]:
        billable = "  [bills hourly]" if item.get("billable") else ""
        print(f"  {item['outcome']:<9} {item['kind']:<17} {item['name']:<58} {item['id']}{billable}", file=out)
        for change in item.get("changes", []):
            print(f"  {'':<9} {'':<17} - {change}", file=out)
    summary = report["summary"]
    print(f"  found {summary['found']}, created {summary['created']}, repaired {summary['repaired']}; "
          f"mutating AWS calls: {len(report['mutating_calls'])}", file=out)
    if "instances" in report:
        print_instances(report, out)


def print_instances(report: dict[str, Any], out: TextIO) -> None:
    """Each slot: where it runs, its state, and what validation measured on it."""
    print(f"  instances: {report['message']}"
          + (f"; image {report['image_id']}" if report.get("image_id") else ""), file=out)
    for slot in report["instances"]:
        where = f"{slot.get('instance_type') or '-'} {slot.get('availability_zone') or ''}".strip()
        print(f"  slot {slot['index']:<3} {slot['state']:<11} {slot.get('instance_id') or '-':<20} {where}", file=out)
        if slot.get("reason"):
            print(f"            {slot['reason']}", file=out)
        for attempt in slot.get("attempts", []):
            print(f"            tried {attempt}", file=out)
        if slot.get("validation"):
            print_report_validation(slot["validation"], out, indent=" " * 12)


def print_report_validation(validation: dict[str, Any], out: TextIO | None = None, indent: str = "") -> None:
    """What the agent measured: per format and precision, the error and the latencies."""
    out = out or sys.stdout
    device = validation["device"] + (f" ({validation['cuda_device_name']})" if validation.get("cuda_device_name") else "")
    print(f"{indent}validated on {device} (asked: {validation['requested_device']}), "
          f"torch {validation.get('torch_version')}: {'passed' if validation['passed'] else 'FAILED'}", file=out)
    if validation.get("failure"):
        print(f"{indent}{validation['failure']['stage']}: {validation['failure']['message']}", file=out)
    for fmt, numbers in validation.get("formats", {}).items():
        print(f"{indent}{fmt}: loaded in {numbers['load_s']:.2f} s", file=out)
        for precision, result in numbers["precisions"].items():
            latency = "; ".join(f"b{size} p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms {v['throughput_per_s']:.0f}/s"
                                for size, v in sorted(result["latency"].items(), key=lambda kv: int(kv[0])))
            verdict = "ok" if result["passed"] else "FAIL"
            error = result["max_rel_error"]
            error_text = f"{error:.1e}" if error is not None else "-"
            print(f"{indent}  {precision} {verdict} err {error_text} (tol {result['tolerance']:.0e}) {latency}", file=out)
    serving = validation.get("serving")
    if serving:
        if serving.get("ready") and serving.get("capacity_rps") is not None:
            measured = ", ".join(f"{name} {serving[key]:.1f} ms" for name, key in (("p50", "latency_p50_ms"),
                                                                                  ("p99", "latency_p99_ms"))
                                 if serving.get(key) is not None)
            print(f"{indent}serving: {serving['capacity_rps']:.0f} requests/s with p99 under "
                  f"{serving['latency_objective_ms']:g} ms" + (f" ({measured})" if measured else "")
                  + ", through the started model server", file=out)
        elif serving.get("ready"):
            print(f"{indent}serving: ready; no request rate kept p99 under {serving.get('latency_objective_ms')} ms "
                  f"in the load test ({serving.get('error') or 'see the steps in the report'})", file=out)
        else:
            print(f"{indent}serving: {'ready' if serving.get('ready') else 'NOT READY'}: {serving.get('error')}", file=out)


def full_report(s3: BaseClient, summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The whole report a ProvisionFleet summary names (every prerequisite, slot and call), read
    from S3; None when the summary names none (a plan, a failure before SummarizeFleet)."""
    where = (summary or {}).get("report")
    if not where:
        return None
    body = s3.get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read()
    return dict(json.loads(body))


def fleet_summary_from_history(result: ExecutionResult) -> dict[str, Any] | None:
    """SummarizeFleet's output (the fleet's summary): on success the execution output, on
    FleetIncomplete only here."""
    for event in reversed(result.events):
        details = event.get("stateExitedEventDetails")
        if event["type"] == "TaskStateExited" and details and details["name"] == "SummarizeFleet":
            return dict(json.loads(details["output"])["fleet"])
    return None


def print_plan(plan: dict[str, Any], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    words = {"found": "in place", "created": "create", "repaired": "repair"}
    print(f"plan (dry run): {plan['to_create']} to create, {plan['to_repair']} to repair", file=out)
    for item in plan["results"]:
        print(f"  {words[item['outcome']]:<9} {item['kind']:<17} {item['name']:<58} {item['id']}", file=out)
        for change in item.get("changes", []):
            print(f"  {'':<9} {'':<17} - {change}", file=out)
