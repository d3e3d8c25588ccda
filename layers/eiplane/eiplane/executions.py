"""Step Functions executions as the CLI, the demo and the tests read them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass
class ExecutionResult:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]

    def error_message(self) -> str | None:
        """The cause's errorMessage when it is a Lambda error payload, else the cause."""
        if not self.cause:
            return None
        try:
            return str(json.loads(self.cause).get("errorMessage", self.cause))
        except (ValueError, AttributeError):
            return self.cause



def wait_for_execution(sfn: BaseClient, execution_arn: str, timeout_s: float = 120,
                       poll_s: float = 0.02) -> ExecutionResult:
    deadline = time.monotonic() + timeout_s
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still {described['status']} after {timeout_s} s")
        time.sleep(poll_s)
    events = list(_history(sfn, execution_arn))
    output = described.get("output")
    return ExecutionResult(
        arn=execution_arn, status=described["status"], output=json.loads(output) if output else None,
        error=described.get("error"), cause=described.get("cause"), events=events,
    )


def _history(sfn: BaseClient, execution_arn: str) -> Any:
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        yield from page["events"]
