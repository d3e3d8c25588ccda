"""Where moto (pinned in pyproject.toml) falls short of AWS, and what the engine does instead.

Each patch replaces one private moto function, so each is named here and checked by
tests/integration/test_moto_canary.py, which fails loudly when a moto upgrade moves them.

- Lambda: moto runs function code only in Docker. Invoke goes to LocalLambdaRuntime.
- Step Functions: Wait states and Retry intervals sleep for real. They are fast-forwarded
  and the virtual seconds are counted (VirtualClock), so a 10-minute endpoint wait costs no
  wall time but still shows in the execution history as the retries it took.
- EC2 ModifyVpcEndpoint ignores PrivateDnsEnabled. It is applied.
- IAM knows AWS managed policies only if it loads all ~1,300 of them (a second per engine).
  It loads the few that eiplane attaches, or that tests attach as "too broad".
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import moto
from moto.awslambda.models import LambdaFunction
from moto.ec2.responses.vpcs import VPCs as Ec2VpcResponses
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import AWSManagedPolicy, IAMBackend
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from eiplane.local.lambda_runtime import LocalLambdaRuntime

SUPPORTED_MOTO = "5.2.5"
AWS_MANAGED_POLICIES = ("AmazonSSMManagedInstanceCore", "AdministratorAccess", "AmazonEC2ReadOnlyAccess")


@functools.cache
def _managed_policy_data() -> dict[str, Any]:
    everything = json.loads(aws_managed_policies_data)
    return {name: everything[name] for name in AWS_MANAGED_POLICIES}


class VirtualClock:
    """Seconds that Wait states and Retry intervals would have slept."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.seconds += max(0.0, float(seconds))


class _RetrierTime:
    """Stands in for the `time` module inside moto's retrier: only `sleep` is used there."""

    def __init__(self, clock: VirtualClock) -> None:
        self.sleep = clock.sleep


def check_moto_version() -> None:
    if moto.__version__ != SUPPORTED_MOTO:
        raise RuntimeError(
            f"the embedded AWS is built for moto {SUPPORTED_MOTO}, found {moto.__version__}: "
            "re-check eiplane/local/moto_gaps.py and tests/integration/test_moto_canary.py, then re-pin"
        )


@contextlib.contextmanager
def patched(runtime: LocalLambdaRuntime, clock: VirtualClock) -> Iterator[None]:
    check_moto_version()

    def invoke_in_process(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        invocation = runtime.invoke(function.function_name, event if event is not None else {})
        if invocation.logs:
            # Into the log group the template's LoggingConfig names, as Lambda would.
            group = runtime.functions[function.function_name].environment.get(
                "AWS_LAMBDA_LOG_GROUP_NAME", function.logs_group_name)
            stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
            function.logs_backend.ensure_log_group(group)
            function.logs_backend.create_log_stream(group, stream)
            now_ms = int(time.time() * 1000)
            function.logs_backend.put_log_events(group, stream, [
                {"timestamp": now_ms, "message": line} for line in invocation.logs.splitlines()])
        return invocation.payload, invocation.errored, invocation.logs

    def wait_virtually(self: WaitFunction, env: Any, wait_seconds: int) -> None:
        clock.sleep(wait_seconds)

    original_modify = Ec2VpcResponses.modify_vpc_endpoint

    def modify_vpc_endpoint(self: Ec2VpcResponses) -> Any:
        result = original_modify(self)
        private_dns = self._get_param("PrivateDnsEnabled")
        if private_dns is not None:
            endpoint = self.ec2_backend.describe_vpc_endpoints(
                vpc_end_point_ids=[self._get_param("VpcEndpointId")])[0]
            endpoint.private_dns_enabled = str(private_dns).lower() == "true"
        return result

    def some_aws_managed_policies(self: IAMBackend) -> list[AWSManagedPolicy]:
        return [AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
                for name, data in _managed_policy_data().items()]

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(IAMBackend, "_init_aws_policies", some_aws_managed_policies))
        stack.enter_context(mock.patch.object(LambdaFunction, "_invoke_lambda", invoke_in_process))
        stack.enter_context(mock.patch.object(WaitFunction, "_wait_interval", wait_virtually))
        stack.enter_context(mock.patch.object(retrier_decl, "time", _RetrierTime(clock)))
        stack.enter_context(mock.patch.object(Ec2VpcResponses, "modify_vpc_endpoint", modify_vpc_endpoint))
        yield
