"""Step Functions executions as the CLI, the demo and the tests read them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def cause_message(cause: str | None) -> str | None:
    """A failure's message: the errorMessage of a Lambda error payload, else the cause itself."""
    if not cause:
        return cause
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    return str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else cause


@dataclass
class ExecutionResult:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]

    @classmethod
    def of(cls, described: dict[str, Any], events: list[dict[str, Any]]) -> ExecutionResult:
        """From a DescribeExecution answer and the whole history."""
        output = described.get("output")
        return cls(arn=described["executionArn"], status=described["status"],
                   output=json.loads(output) if output else None, error=described.get("error"),
                   cause=described.get("cause"), events=events)

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]

    def error_message(self) -> str | None:
        return cause_message(self.cause) or None



def wait_for_execution(sfn: BaseClient, execution_arn: str, timeout_s: float | None = None,
                       poll_s: float = 0.02, progress: Callable[[], Any] | None = None,
                       stall_s: float = 900, status: Callable[[], str] | None = None) -> ExecutionResult:
    """Wait until the execution ends. With `progress` (a function whose value changes while the work
    goes on: the embedded AWS's invocations and virtual clock), it waits as long as the execution keeps
    moving and gives up only after `stall_s` with no progress at all: a slow machine takes longer, it
    does not fail. `timeout_s` (a real account's deadline) bounds the wait whatever the progress.
    `status` looks at the execution between polls instead of DescribeExecution (the embedded AWS reads
    its own backend: a call through the API every `poll_s` was a tenth of a test run's CPU); the
    answer returned is the API's either way."""
    started = last_change = time.monotonic()
    seen = progress() if progress else None

    def current_status() -> str:
        return status() if status is not None else str(sfn.describe_execution(executionArn=execution_arn)["status"])

    while (state := current_status()) not in TERMINAL:
        now = time.monotonic()
        if progress is not None:
            current = progress()
            if current != seen:
                seen, last_change = current, now
            if now - last_change > stall_s:
                raise TimeoutError(f"{execution_arn} still {state}: no progress in {stall_s:.0f} s")
        if timeout_s is not None and now - started > timeout_s:
            raise TimeoutError(f"{execution_arn} still {state} after {timeout_s} s")
        time.sleep(poll_s)
    return ExecutionResult.of(sfn.describe_execution(executionArn=execution_arn), history(sfn, execution_arn))


PAYLOAD_FIELDS = {  # event type -> (details key, payload key): what Step Functions measures against 256 KB
    "stateEnteredEventDetails": "input", "stateExitedEventDetails": "output",
    "lambdaFunctionScheduledEventDetails": "input", "lambdaFunctionSucceededEventDetails": "output",
    "taskScheduledEventDetails": "parameters", "taskSucceededEventDetails": "output",
    "executionStartedEventDetails": "input", "executionSucceededEventDetails": "output",
}


def payload_bytes(text: str) -> int:
    """A payload's size as AWS measures it: compact JSON, UTF-8."""
    try:
        return len(json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False).encode())
    except ValueError:
        return len(text.encode())


def largest_state(events: list[dict[str, Any]]) -> tuple[int, str]:
    """The largest payload any state of the execution passed on (input, output, a task's parameters or
    result), in bytes, and where: what must stay under Step Functions' 262,144."""
    largest, where = 0, ""
    names: dict[int, str] = {}
    for event in events:
        details_name = (event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails") or {}).get("name")
        if details_name:
            names[event["id"]] = details_name
        for key, field in PAYLOAD_FIELDS.items():
            details = event.get(key)
            if details and isinstance(details.get(field), str):
                size = payload_bytes(details[field])
                if size > largest:
                    largest = size
                    where = f"{event['type']} {details_name or names.get(event.get('previousEventId', -1), '')}".strip()
    return largest, where


def history(sfn: BaseClient, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of the execution, every page."""
    return [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
            for e in page["events"]]
