"""Step Functions executions as the CLI, the demo and the tests read them."""

from __future__ import annotations

import json
import time
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
    return ExecutionResult.of(described, history(sfn, execution_arn))


def history(sfn: BaseClient, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of the execution, every page."""
    return [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
            for e in page["events"]]
