"""Where moto (pinned in pyproject.toml) falls short of AWS, and what the engine does instead.

Each patch replaces one private moto function, so each is named here and checked by
tests/integration/test_moto_canary.py, which fails loudly when a moto upgrade moves them.

- Lambda: moto runs function code only in Docker. Invoke goes to LocalLambdaRuntime (or fails
  with a Lambda service error a test injected: LocalLambdaRuntime.fail_invocations).
- Step Functions: Wait states and Retry intervals sleep for real. They are fast-forwarded
  and the virtual seconds are counted (VirtualClock), so a 10-minute endpoint wait costs no
  wall time but still shows in the execution history as the retries it took.
- EC2 ModifyVpcEndpoint ignores PrivateDnsEnabled. It is applied.
- IAM knows AWS managed policies only if it loads all ~1,300 of them (a second per engine).
  It loads the few that eiplane attaches, or that tests attach as "too broad".
- EC2 RunInstances ignores ClientToken (here: the same token returns its instances, with other
  parameters it is IdempotentParameterMismatch, for a terminated instance IdempotentInstanceTerminated,
  and DescribeInstances filters on client-token) and ElasticInferenceAccelerators; SSM never runs a
  command, always answers Success, and has no DescribeInstanceInformation; StopInstances and
  TerminateInstances stop nothing that runs on the instance. EmbeddedInstances (local/instances.py)
  does what the instance would (its model server stops as the OS shuts down); the patches below route to it.
- CloudWatch GetMetricData scans every datapoint of the account for every period of every query
  (a 15-day window of minutes is 21,600 periods): MetricStat queries are answered here from the
  datapoints of their own metric, bucketed in one pass (the same statistics, and the exact
  namespace and dimension set, as AWS matches them). Expressions still go to moto.
- CloudWatch PutMetricData takes any namespace; AWS refuses the `AWS/` ones (only AWS services
  publish there): InvalidParameterValue here too. (The embedded load balancer writes its
  AWS/ApplicationELB metrics into the backend, as the ALB does.)
- SSM SendCommand with InstanceIds and no Targets runs on every instance of the account: it
  is narrowed to the instances asked for.
- SSM has none of the public /aws/service/deeplearning or /aws/service/neuron parameters:
  `seed_public_parameters` adds them.
- Step Functions is more lenient than AWS (payload sizes, States.Runtime and
  States.DataLimitExceeded caught by States.ALL, a Choice on a missing path, a missing `.$`
  path, Lambda invoke error names, error/cause lengths, the 25,000-event history): the patches
  of local/sfn_strict.py, entered here, make it fail where AWS fails.
- Elastic Load Balancing has no data plane (no health checks, draining, proxy or metrics), accepts an
  ALB in one zone, refuses to deregister an unknown target; CloudWatch has no percentiles and matches
  dimensions loosely: the patches of local/load_balancers.py (named in its docstring), entered by the
  engine (EmbeddedAws.load_balancers), do what the ALB does. VirtualClock.on_advance runs its health checks.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from unittest import mock

import moto
from moto.awslambda.models import LambdaFunction
from moto.cloudwatch.models import CloudWatchBackend, Statistics
from moto.cloudwatch.responses import CloudWatchResponse as CloudWatchResponses
from moto.core import responses as moto_responses
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ec2 import utils as ec2_utils
from moto.ec2.models import ec2_backends
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.responses.vpcs import VPCs as Ec2VpcResponses
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import AWSManagedPolicy, IAMBackend
from moto.ssm.models import Parameter, ssm_backends
from moto.ssm.models import SimpleSystemManagerBackend as SsmBackend
from moto.ssm.responses import SimpleSystemManagerResponse as SsmResponses
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from eiplane.local import sfn_strict
from eiplane.local.lambda_runtime import LocalLambdaRuntime

if TYPE_CHECKING:
    from eiplane.local.instances import EmbeddedInstances

SUPPORTED_MOTO = "5.2.5"
AWS_MANAGED_POLICIES = ("AmazonSSMManagedInstanceCore", "AdministratorAccess", "AmazonEC2ReadOnlyAccess",
                        "AWSLambdaBasicExecutionRole")


@functools.cache
def _managed_policy_data() -> dict[str, Any]:
    everything = json.loads(aws_managed_policies_data)
    return {name: everything[name] for name in AWS_MANAGED_POLICIES}


class VirtualClock:
    """Seconds that Wait states and Retry intervals would have slept.

    A sleep costs no wall time, except while real work runs beside the state machine (an
    embedded instance running a command): then it lasts until that work is done or the
    interval has passed, so a poll that is retried finds the work as far along as it would be.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._busy = 0
        self._changed = threading.Condition()
        self._listeners: list[Callable[[float, float], None]] = []

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        with self._changed:
            before = self.seconds
            self.seconds += seconds
            after = self.seconds
            if self._busy:
                self._changed.wait_for(lambda: self._busy == 0, timeout=seconds)
        self._notify(before, after)

    def advance(self, seconds: float) -> None:
        """Time passes without anyone waiting for it (a handler's own waits)."""
        with self._changed:
            before = self.seconds
            self.seconds += max(0.0, float(seconds))
            after = self.seconds
        self._notify(before, after)

    def on_advance(self, callback: Callable[[float, float], None]) -> Callable[[], None]:
        """Call `callback(before, after)` each time the clock moves (what falls due in that span:
        health checks, draining timers), in the thread that moved it, after a sleep's wait and
        outside the clock's lock. Returns the function that unsubscribes it."""
        with self._changed:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._changed:
                if callback in self._listeners:
                    self._listeners.remove(callback)
        return unsubscribe

    def _notify(self, before: float, after: float) -> None:
        if after == before:
            return
        with self._changed:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(before, after)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        with self._changed:
            self._busy += 1
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()


class _RetrierTime:
    """Stands in for the `time` module inside moto's retrier: only `sleep` is used there."""

    def __init__(self, clock: VirtualClock) -> None:
        self.sleep = clock.sleep


_PARSE_TREES: dict[str, Any] = {}  # definition -> its ANTLR parse tree (read-only once built)
_PARSE_LOCK = threading.Lock()
_original_parse = AmazonStateLanguageParser.parse


def _parse_once(definition: str) -> tuple[Any, Any]:
    """moto parses a state machine's ASL with ANTLR at creation and again at every execution
    (about 0.1-0.3 s each): keep each definition's parse tree, and build a fresh program from it
    every time (the program holds execution state; the tree does not)."""
    with _PARSE_LOCK:
        tree = _PARSE_TREES.get(definition)
    if tree is None:
        program, tree = _original_parse(definition)  # raises on an invalid definition: never cached
        with _PARSE_LOCK:
            if len(_PARSE_TREES) > 64:
                _PARSE_TREES.clear()
            _PARSE_TREES[definition] = tree
        return program, tree
    return Preprocessor().visit(tree), tree


_VALID_DEFINITIONS: set[str] = set()  # definitions moto's creation-time check has accepted
_original_validate = StepFunctionsParserBackend._validate_definition


def _validate_once(definition: str) -> None:
    """moto checks a definition at every CreateStateMachine by building its program and throwing it away
    (about 0.05 s a state machine, four per deploy): a definition it accepted once is valid for good."""
    if definition in _VALID_DEFINITIONS:
        return
    _original_validate(definition)  # raises InvalidDefinition: never remembered
    _VALID_DEFINITIONS.add(definition)


# Work moto repeats on every request or state, whose result never changes: done once. (Speed only: what
# the embedded AWS answers is the same.)
# - every JSONPath of every state is parsed afresh (jsonpath_ng builds its parser each time); a parsed
#   path is read-only;
_parse_json_path = functools.lru_cache(maxsize=4096)(json_path.parse)
# - every request lists its response class's methods (inspect.getmembers) to find the action's.
_method_names = functools.lru_cache(maxsize=None)(moto_responses.method_names_from_class)


def check_moto_version() -> None:
    if moto.__version__ != SUPPORTED_MOTO:
        raise RuntimeError(
            f"the embedded AWS is built for moto {SUPPORTED_MOTO}, found {moto.__version__}: "
            "re-check eiplane/local/moto_gaps.py and tests/integration/test_moto_canary.py, then re-pin"
        )


@contextlib.contextmanager
def patched(runtime: LocalLambdaRuntime, clock: VirtualClock, instances: EmbeddedInstances) -> Iterator[None]:
    check_moto_version()

    def invoke_in_process(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        failure = runtime.injected_failure(function.function_name)
        if failure is not None:  # the Lambda service itself failed; the handler never ran
            code, status = failure
            error = JsonRESTError(code, f"the Lambda service answered {code} (injected by a test)")
            error.code = status
            raise error
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

    original_run_instances = InstanceResponse.run_instances

    def run_instances(self: InstanceResponse) -> Any:
        token = self._get_param("ClientToken")
        if token:  # AWS: the same token returns the instances it launched, and launches none
            request = json.dumps({k: v for k, v in self.querystring.items() if k not in ("ClientToken", "Action")},
                                 sort_keys=True, default=str)
            for reservation in self.ec2_backend.reservations.values():
                if any(getattr(i, "client_token", None) == token for i in reservation.instances):
                    if getattr(reservation, "eiplane_request", request) != request:
                        raise JsonRESTError("IdempotentParameterMismatch", "Arguments on this idempotent request "
                                            "are inconsistent with arguments used in previous request(s).")
                    if all(i.state == "terminated" for i in reservation.instances):
                        raise JsonRESTError("IdempotentInstanceTerminated", "The client token you have provided is "
                                            "associated with a terminated instance. Please use a different client token.")
                    return ActionResult(reservation)
        result = original_run_instances(self)
        launched: Any = result.result
        if token:
            launched.eiplane_request = request
        instances.launched(list(launched.instances), self._get_param("ElasticInferenceAccelerators", []))
        return result

    original_start_instances = InstanceResponse.start_instances

    def start_instances(self: InstanceResponse) -> Any:
        result = original_start_instances(self)  # a stopped instance boots again: its agent with it
        instances.started(list(self._get_param("InstanceIds", [])))
        return result

    original_stop_instances = InstanceResponse.stop_instances
    original_terminate_instances = InstanceResponse.terminate_instances

    def stop_instances(self: InstanceResponse) -> Any:
        result = original_stop_instances(self)  # the OS shuts down: its services get SIGTERM
        instances.shut_down(list(self._get_param("InstanceIds", [])))
        return result

    def terminate_instances(self: InstanceResponse) -> Any:
        result = original_terminate_instances(self)
        instances.shut_down(list(self._get_param("InstanceIds", [])))
        return result

    original_put_metric_data = CloudWatchResponses.put_metric_data

    def put_metric_data(self: CloudWatchResponses) -> Any:
        namespace = str(self._get_param("Namespace") or "")
        if namespace.startswith("AWS/"):
            raise JsonRESTError("InvalidParameterValue", f"The value {namespace} for parameter Namespace is invalid.")
        return original_put_metric_data(self)

    original_get_metric_data = CloudWatchBackend.get_metric_data

    def get_metric_data(self: CloudWatchBackend, queries: list[dict[str, Any]], start_time: datetime.datetime,
                        end_time: datetime.datetime, scan_by: str = "TimestampAscending") -> list[dict[str, Any]]:
        if not queries or not all("MetricStat" in q for q in queries) or start_time >= end_time:
            return original_get_metric_data(self, queries, start_time, end_time, scan_by)  # its errors, its maths
        return metric_stat_data(self, queries, start_time.replace(microsecond=0), end_time.replace(microsecond=0),
                                scan_by)

    def describe_instance_information(self: SsmResponses) -> Any:
        wanted: list[str] = []
        for entry in [*self._get_param("Filters", []), *self._get_param("InstanceInformationFilterList", [])]:
            if entry.get("Key") in ("InstanceIds", "InstanceId", "instanceIds"):
                wanted += entry.get("Values", entry.get("valueSet", []))
        backend = ec2_backends[self.current_account][self.region]
        return ActionResult({"InstanceInformationList": instances.instance_information(backend, wanted or None)})

    original_send_command = SsmBackend.send_command

    def send_command(self: SsmBackend, **kwargs: Any) -> Any:
        backend = ec2_backends[self.account_id][self.region_name]
        for instance_id in kwargs.get("instance_ids") or []:
            found = [i for r in backend.reservations.values() for i in r.instances if i.id == instance_id]
            if not found or not instances.is_online(backend, found[0]):
                # What AWS answers for an instance whose agent has not registered.
                raise JsonRESTError("InvalidInstanceId", f"Instances [[{instance_id}]] not in a valid state "
                                                         f"for account {self.account_id}")
        asked = set(kwargs.get("instance_ids") or [])  # moto extends that very list
        command = original_send_command(self, **kwargs)
        if asked and not kwargs.get("targets"):
            # moto adds every instance of the account when Targets is empty: keep the ones asked for.
            command.instance_ids = [i for i in command.instance_ids if i in asked]
            command.invocations = [i for i in command.invocations if i["InstanceId"] in asked]
            command.target_count = command.completed_count = len(command.instance_ids)
        if command.document_name == "AWS-RunShellScript":
            for invocation in command.invocations:
                instances.run(command, invocation)
        return command

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(IAMBackend, "_init_aws_policies", some_aws_managed_policies))
        stack.enter_context(mock.patch.object(InstanceResponse, "run_instances", run_instances))
        # DescribeInstances' client-token filter (moto has none): how a launch is found by its token.
        stack.enter_context(mock.patch.dict(ec2_utils.filter_dict_attribute_mapping, {"client-token": "client_token"}))
        stack.enter_context(mock.patch.object(InstanceResponse, "start_instances", start_instances))
        stack.enter_context(mock.patch.object(InstanceResponse, "stop_instances", stop_instances))
        stack.enter_context(mock.patch.object(CloudWatchResponses, "put_metric_data", put_metric_data))
        stack.enter_context(mock.patch.object(CloudWatchBackend, "get_metric_data", get_metric_data))
        stack.enter_context(mock.patch.object(InstanceResponse, "terminate_instances", terminate_instances))
        stack.enter_context(mock.patch.object(SsmResponses, "describe_instance_information",
                                              describe_instance_information, create=True))
        stack.enter_context(mock.patch.object(SsmBackend, "send_command", send_command))
        stack.enter_context(mock.patch.object(LambdaFunction, "_invoke_lambda", invoke_in_process))
        stack.enter_context(mock.patch.object(WaitFunction, "_wait_interval", wait_virtually))
        stack.enter_context(mock.patch.object(retrier_decl, "time", _RetrierTime(clock)))
        stack.enter_context(mock.patch.object(Ec2VpcResponses, "modify_vpc_endpoint", modify_vpc_endpoint))
        stack.enter_context(mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(_parse_once)))
        stack.enter_context(mock.patch.object(StepFunctionsParserBackend, "_validate_definition",
                                              staticmethod(_validate_once)))
        stack.enter_context(mock.patch.object(json_path, "parse", _parse_json_path))
        stack.enter_context(mock.patch.object(moto_responses, "method_names_from_class", _method_names))
        stack.enter_context(sfn_strict.strict_step_functions())
        yield


def seed_public_parameters(account_id: str, region: str, values: dict[str, str]) -> None:
    """Public parameters (names under /aws/service/) cannot be put through the API."""
    parameters = ssm_backends[account_id][region]._parameters
    for name, value in values.items():
        versions = parameters[name]  # a new version where moto already has one (AL2023)
        if not versions or versions[-1].value != value:
            versions.append(Parameter(  # type: ignore[abstract]
                account_id=account_id, name=name, value=value, parameter_type="String", description=None,
                allowed_pattern=None, keyid=None, last_modified_date=datetime.datetime.now(datetime.UTC), version=1,
                data_type="aws:ec2:image"))
            versions[-1].version = len(versions)


def metric_stat_data(backend: CloudWatchBackend, queries: list[dict[str, Any]], start_time: datetime.datetime,
                     end_time: datetime.datetime, scan_by: str) -> list[dict[str, Any]]:
    """GetMetricData's MetricStat queries, as AWS answers them: each query's metric (namespace, name and
    exactly its dimension set), its datapoints in [start, end) bucketed by Period from StartTime, one
    statistic per bucket that has data."""
    def key(namespace: str, name: str, dimensions: Any) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return namespace, name, tuple(sorted(dimensions))

    def utc(moment: datetime.datetime) -> datetime.datetime:  # moto keeps some naive (UTC), some aware
        return moment.astimezone(datetime.UTC).replace(tzinfo=None) if moment.tzinfo else moment

    first, last = utc(start_time), utc(end_time)
    by_metric: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Any]] = {}
    for datum in backend.get_all_metrics():
        if first <= utc(datum.timestamp) < last:
            dimensions = [(d.name, d.value) for d in datum.dimensions]
            by_metric.setdefault(key(datum.namespace, datum.name, dimensions), []).append(datum)
    results = []
    for query in queries:
        stat = query["MetricStat"]
        metric = stat["Metric"]
        period = int(stat["Period"])
        wanted = key(metric["Namespace"], metric["MetricName"],
                     [(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])])
        data = [d for d in by_metric.get(wanted, []) if not stat.get("Unit") or d.unit == stat["Unit"]]
        buckets: dict[int, list[Any]] = {}
        for datum in data:
            buckets.setdefault(int((utc(datum.timestamp) - first).total_seconds() // period), []).append(datum)
        values, timestamps = [], []
        for index in sorted(buckets, reverse=scan_by == "TimestampDescending"):
            statistics = Statistics([stat["Stat"]], start_time + datetime.timedelta(seconds=index * period))
            statistics.metric_data = buckets[index]
            values.append(statistics.get_statistics_for_type(stat["Stat"]))
            timestamps.append(statistics.timestamp)
        if query.get("ReturnData", True):
            results.append({"id": query["Id"], "label": query.get("Label") or f"{metric['MetricName']} {stat['Stat']}",
                            "values": values, "timestamps": timestamps, "status_code": "Complete"})
    return results

