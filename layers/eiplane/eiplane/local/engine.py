"""The embedded AWS: template.yaml deployed on moto, the real ASL run by moto's Step
Functions interpreter, the real handlers run in-process. No account, no Docker.

Two forms share this code: in-process (`EmbeddedAws()`: tests, the demo, `fleet apply
--local`) and a loopback server (`EmbeddedAws(server_port=...)`, behind `eiplane local up`)
that the AWS CLI and any SDK reach with --endpoint-url.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import logging
import os
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from botocore.client import BaseClient

from eiplane.executions import ExecutionResult, wait_for_execution
from eiplane.local import moto_gaps
from eiplane.local.eventbridge import EventBus, Rule, event_matches, status_changes
from eiplane.local.iam.catalogue import AuthRequest
from eiplane.local.iam.enforcer import Denied, IamEnforcer, role_session_key
from eiplane.local.iam.evaluator import PolicyEvaluator
from eiplane.local.instances import EmbeddedInstances
from eiplane.local.lambda_runtime import (
    LocalFunction,
    LocalLambdaRuntime,
    routed_stdout,
    sandboxes,
)
from eiplane.local.template import (
    References,
    conditions,
    function_properties,
    load_template,
    load_yaml,
    resources_of_type,
    sam_roles,
    substitute_definition,
)

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "us-east-1"
STACK_NAME = "eiplane-local"
ID_SEED = 20260415
# The operator's credentials (the engine itself, tests, `local up` users): the account's administrator.
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing"}


def function_credentials(function_name: str) -> dict[str, str]:
    """A function's own credentials, as Lambda puts its execution role's session in the environment:
    every call the function makes is made, and authorised, as that function."""
    digest = hashlib.sha256(function_name.encode()).hexdigest()[:16].upper()
    return {"AWS_ACCESS_KEY_ID": f"ASIA{digest}", "AWS_SECRET_ACCESS_KEY": "embedded",
            "AWS_SESSION_TOKEN": f"embedded-lambda/{function_name}"}


# What Step Functions needs of a state machine's role to deliver its logs (Step Functions Developer Guide, "IAM
# policies for logging to CloudWatch Logs"). Which of them each CreateStateMachine checks is not documented: the
# embedded AWS checks all of them when it creates a state machine that logs.
LOG_DELIVERY_ACTIONS = ("logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                        "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                        "logs:DescribeResourcePolicies", "logs:DescribeLogGroups")


class InvalidLoggingConfiguration(Exception):
    """CreateStateMachine's answer when the state machine's role may not deliver its logs."""


_CLIENTS: dict[tuple[str, str, str | None, str | None], BaseClient] = {}
_CLIENTS_LOCK = threading.Lock()
_EVALUATORS: dict[Path, PolicyEvaluator] = {}
_EVALUATORS_LOCK = threading.Lock()


def shared_evaluator(root: Path) -> PolicyEvaluator:
    """One policy evaluator (a Node.js process) per checkout for the life of this process: every
    embedded AWS it starts shares it, and its cache of decisions."""
    with _EVALUATORS_LOCK:
        if root not in _EVALUATORS:
            _EVALUATORS[root] = PolicyEvaluator(root / ".tools" / "node")
            atexit.register(_EVALUATORS[root].close)
        return _EVALUATORS[root]


def versioned(document: dict[str, Any]) -> dict[str, Any]:
    """SAM's policy templates carry no Version, which IAM reads as 2008-10-17; moto accepts only
    2012-10-17. The two differ only in policy variables (${aws:username}), which 2008-10-17 leaves as
    text: a document without a Version that has one is refused rather than read another way."""
    if "Version" in document:
        return document
    if "${" in json.dumps(document):
        raise ValueError(f"a policy document without a Version uses a policy variable: {document}")
    return {"Version": "2012-10-17", **document}


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding template.yaml: the checkout, wherever the command runs from in it."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").is_file() and (candidate / "statemachines").is_dir():
            return candidate
    package_root = Path(__file__).resolve().parents[4]  # layers/eiplane/eiplane/local/engine.py
    if (package_root / "template.yaml").is_file():
        return package_root
    raise FileNotFoundError("template.yaml not found: run from the eiplane checkout")


@dataclass
class DeployedStack:
    name: str
    region: str
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    skipped: list[str] = field(default_factory=list)  # "Logical (Type)" with no local equivalent
    # The state machines' EventBridge events (SAM `Events`): the engine delivers them itself.
    schedules: list[EventSource] = field(default_factory=list)
    rules: list[EventSource] = field(default_factory=list)


@dataclass(frozen=True)
class EventSource:
    """A state machine's `Schedule` or `EventBridgeRule` event from the template."""

    state_machine: str  # logical id
    name: str  # the event's key under Events
    rule_arn: str
    schedule: str | None = None
    pattern: dict[str, Any] | None = None
    enabled: bool = True
    role_logical_id: str | None = None  # the role EventBridge starts the execution as


class EmbeddedAws:
    def __init__(self, project_root: Path | None = None, region: str = DEFAULT_REGION,
                 stack_name: str = STACK_NAME, server_port: int | None = None, echo_logs: bool = False) -> None:
        self.root = project_root or find_project_root()
        self.region = region
        self.stack_name = stack_name
        self.server_port = server_port
        self.clock = moto_gaps.VirtualClock()
        self.stack = DeployedStack(name=stack_name, region=region)
        self._echo_logs = echo_logs
        self._exit = contextlib.ExitStack()
        self.runtime: LocalLambdaRuntime | None = None
        self.instances: EmbeddedInstances | None = None
        self._instance_port: int | None = None
        self._instance_server_lock = threading.Lock()
        self.iam: IamEnforcer | None = None
        self.roles: dict[str, str] = {}  # the role's logical id (SAM's transform) -> its name
        # The template's AWS::Events::Rule resources and what they delivered (eiplane/local/eventbridge.py).
        self.events: EventBus | None = None
        from eiplane.local.load_balancers import LoadBalancers

        def serving_address(instance_id: str, port: int) -> tuple[str, int] | None:
            """Where an embedded instance's server on `port` listens on this machine (None: nothing does)."""
            serving = getattr(self.instances, "serving_address", None)
            return serving(instance_id, port) if serving is not None else None

        # The ALBs' data plane (health checks, a proxy per listener, AWS/ApplicationELB metrics).
        self.load_balancers = LoadBalancers(self.clock, serving_address, ACCOUNT_ID, region)

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> EmbeddedAws:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str | None:
        return f"http://127.0.0.1:{self.server_port}" if self.server_port is not None else None

    def start(self) -> None:
        from moto import mock_aws
        from moto.moto_api._internal import mock_random

        try:
            # The account's images are the engine's (seed_images): moto's thousands of default AMIs
            # would cost a quarter of a second per embedded AWS.
            for name, value in {**_FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": self.region,
                                "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
                self._exit.enter_context(_env(name, value))
            # moto's Step Functions interpreter logs every caught error at WARNING with a
            # full repr of the state: the execution history already says it better.
            logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
            stdout = self._exit.enter_context(routed_stdout())
            self._exit.enter_context(sandboxes())
            self.runtime = LocalLambdaRuntime(stdout, self.clock, echo_logs=self._echo_logs)
            self.instances = EmbeddedInstances(self.clock, self._instance_endpoint, self.region)
            self._exit.callback(self.instances.close)
            self._exit.enter_context(moto_gaps.patched(self.runtime, self.clock, self.instances))
            self._exit.enter_context(self.load_balancers.patched())
            self.iam = IamEnforcer(shared_evaluator(self.root), ACCOUNT_ID)
            self.instances.enforcer = self.iam
            self._exit.enter_context(self.iam.patched())
            self.events = EventBus(ACCOUNT_ID, self.iam.service_allowed, self._publish, self._topic_facts)
            self._exit.enter_context(status_changes(self.events.put))
            config = {"stepfunctions": {"execute_state_machine": True}}
            if self.server_port is None:
                self._exit.enter_context(mock_aws(config=config))  # type: ignore[call-overload]
            else:
                self._start_server(config)
            # Seeded ids: the default VPC and subnets get the same ids in every run, so the
            # demo is reproducible and events/ can name them.
            mock_random.seed(ID_SEED)
            # (Clients the handlers made in an earlier embedded AWS are kept: each is keyed by the
            # credentials and endpoint it signs for, and building one loads its service model.)
            seed_account(self.client("ec2"))
            self._deploy()
            seed_images(self.client("ec2"), self.region)
        except BaseException:
            self._exit.close()
            raise

    def stop(self) -> None:
        self._exit.close()

    def _loopback_server(self, port: int) -> int:
        """A moto server of this process's backends on 127.0.0.1; returns its port (0: any free one)."""
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._exit.callback(server.stop)
        return server.get_host_and_port()[1]  # start() returns once it listens

    def _start_server(self, config: dict[str, Any]) -> None:
        from moto.core.config import default_user_config

        for section, values in config.items():
            self._exit.enter_context(mock.patch.dict(default_user_config[section], values))  # type: ignore[literal-required]
        self.server_port = self._loopback_server(self.server_port or 0)
        # The interpreter's own Lambda client calls localhost:MOTO_PORT (AWS-FACTS.md).
        self._exit.enter_context(_env("MOTO_PORT", str(self.server_port)))
        self._exit.enter_context(_env("AWS_ENDPOINT_URL", self.endpoint_url or ""))

    def _publish(self, topic_arn: str, message: str) -> str:
        """A message to a topic, published as an AWS service does (inside the account, no API call to authorise)."""
        from moto.sns.models import sns_backends

        return str(sns_backends[ACCOUNT_ID][self.region].publish(message=message, arn=topic_arn))

    def _topic_facts(self, topic_arn: str) -> tuple[dict[str, Any] | None, str | None, dict[str, Any] | None]:
        """A topic's policy, its KMS key and that key's policy, as the account holds them now (an operator may have
        changed them since the deploy)."""
        attributes = self.client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]
        policy = json.loads(attributes["Policy"]) if attributes.get("Policy") else None
        key_id = attributes.get("KmsMasterKeyId")
        if not key_id:
            return policy, None, None
        kms = self.client("kms")
        try:
            key = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
            key_policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
        except kms.exceptions.NotFoundException:  # an AWS managed alias: its policy names no EventBridge
            return policy, f"arn:aws:kms:{self.region}:{ACCOUNT_ID}:{key_id}", None
        return policy, str(key), key_policy

    def _instance_endpoint(self) -> str:
        """Where embedded instances' AWS CLI calls go: this server, or (in-process) a loopback
        server of the same backends, started the first time an instance runs a command."""
        if self.endpoint_url:
            return self.endpoint_url
        with self._instance_server_lock:  # two slots' instances may ask at once
            if self._instance_port is None:
                self._instance_port = self._loopback_server(0)
        return f"http://127.0.0.1:{self._instance_port}"

    def client(self, service: str, access_key: str | None = None) -> BaseClient:
        """One client per service (and signer) for the engine's life (creating one loads its service
        model). The operator's by default: the account's administrator; with `access_key`, a principal's."""
        key = (service, self.region, self.endpoint_url, access_key)
        with _CLIENTS_LOCK:  # kept across embedded AWSs of this process: moto's backends are reset, not clients
            if key not in _CLIENTS:
                credentials = {} if access_key is None else {
                    "aws_access_key_id": access_key, "aws_secret_access_key": "embedded",
                    "aws_session_token": "embedded"}
                _CLIENTS[key] = boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url,
                                             **credentials)
            return _CLIENTS[key]

    # --- deployment -----------------------------------------------------------------------

    def _deploy(self) -> None:
        template = load_template(self.root / "template.yaml")
        refs = References(refs={
            "AWS::StackName": self.stack_name, "AWS::Region": self.region, "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
        })
        for name, parameter in template.get("Parameters", {}).items():
            refs.refs[name] = str(parameter.get("Default", ""))
        # A resource whose Condition is false is not created, as CloudFormation does.
        enabled = conditions(template, refs)
        template["Resources"] = {name: resource for name, resource in template["Resources"].items()
                                 if resource.get("Condition") is None or enabled[resource["Condition"]]}
        handled = {"AWS::Serverless::LayerVersion", "AWS::Serverless::Function", "AWS::Serverless::StateMachine",
                   "AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup",
                   "AWS::IAM::ManagedPolicy", "AWS::KMS::Key", "AWS::SNS::Topic", "AWS::SNS::TopicPolicy",
                   "AWS::SNS::Subscription", "AWS::Events::Rule", "AWS::CloudWatch::Dashboard"}

        # The layer is this process's own eiplane package; the functions import it as on Lambda.
        for name in resources_of_type(template, "AWS::Serverless::LayerVersion"):
            refs.refs[name] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:layer:{self.stack_name}-{name}:1"
        for name, resource in resources_of_type(template, "AWS::Logs::LogGroup").items():
            group = refs.resolve(resource["Properties"]["LogGroupName"])
            self.client("logs").create_log_group(logGroupName=group)
            refs.refs[name] = group
            refs.attributes[f"{name}.Arn"] = f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{group}:*"
        for name, resource in resources_of_type(template, "AWS::S3::Bucket").items():
            bucket = f"{self.stack_name}-{name.lower()}-{ACCOUNT_ID}"
            deploy_bucket(self.client("s3"), bucket, resource.get("Properties", {}), self.region)
            refs.refs[name] = bucket
            refs.attributes[f"{name}.Arn"] = f"arn:aws:s3:::{bucket}"
        for name, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
            table = f"{self.stack_name}-{name}"
            deploy_table(self.client("dynamodb"), table, resource["Properties"])
            refs.refs[name] = table
            refs.attributes[f"{name}.Arn"] = f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{table}"
        for name, resource in resources_of_type(template, "AWS::IAM::ManagedPolicy").items():
            properties = refs.resolve(resource["Properties"])
            refs.refs[name] = self.client("iam").create_policy(
                PolicyName=properties.get("ManagedPolicyName", f"{self.stack_name}-{name}"),
                Path=properties.get("Path", "/"), Description=properties.get("Description", ""),
                PolicyDocument=json.dumps(properties["PolicyDocument"]))["Policy"]["Arn"]
        self._deploy_topics(template, refs)
        for resource in resources_of_type(template, "AWS::S3::BucketPolicy").values():
            # Evaluated by the embedded AWS's IAM, with its conditions; not handed to moto, whose S3
            # applies a bucket policy's Deny without reading its conditions (the TLS-only Deny would
            # then refuse every request).
            properties = refs.resolve(resource["Properties"])
            assert self.iam is not None
            self.iam.bucket_policies[properties["Bucket"]] = properties["PolicyDocument"]

        # Names and ARNs first: policies name functions and state machines (and ScaleOut starts ProvisionFleet).
        machines = resources_of_type(template, "AWS::Serverless::StateMachine")
        names = {name: str(refs.resolve(resource["Properties"].get("Name", f"{self.stack_name}-{name}")))
                 for name, resource in machines.items()}
        for name, machine_name in names.items():
            refs.refs[name] = f"arn:aws:states:{self.region}:{ACCOUNT_ID}:stateMachine:{machine_name}"
        for name in resources_of_type(template, "AWS::Serverless::Function"):
            refs.refs[name] = f"{self.stack_name}-{name}"
            refs.attributes[f"{name}.Arn"] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.stack_name}-{name}"
        # Every role SAM makes of the template (a function's inline statements and the basic execution
        # role, a state machine's policy templates, an event's role), as CloudFormation would create it.
        role_arns: dict[str, str] = {}
        owners: dict[str, str] = {}
        for logical_id, (owner, properties) in sam_roles(self.root / "template.yaml", self.region, ACCOUNT_ID,
                                                          self.stack_name).items():
            role_arns[logical_id] = self._deploy_role(logical_id, refs.resolve(properties))
            owners[owner] = logical_id
        for name in resources_of_type(template, "AWS::Serverless::Function"):
            self._deploy_function(template, name, refs, role_arns[owners[name]])
            function_name = f"{self.stack_name}-{name}"
            assert self.iam is not None
            self.iam.add_role_principal(function_credentials(function_name)["AWS_ACCESS_KEY_ID"], "function",
                                        function_name, self.roles[owners[name]], function_name)
        for name, resource in machines.items():
            properties = resource["Properties"]
            # YAML or JSON, as SAM takes it; Step Functions gets JSON.
            definition = json.dumps(load_yaml((self.root / properties["DefinitionUri"]).read_text()))
            substitutions = {k: str(refs.resolve(v)) for k, v in properties.get("DefinitionSubstitutions", {}).items()}
            arn = refs.refs[name]
            assert self.iam is not None
            self.iam.add_role_principal(role_session_key("state-machine", arn), "state-machine", arn,
                                        self.roles[owners[name]], f"embedded-{names[name]}")
            logging_configuration = self._logging_configuration(arn, refs.resolve(properties.get("Logging")))
            arn = self.client("stepfunctions").create_state_machine(
                name=names[name], definition=substitute_definition(definition, substitutions),
                roleArn=role_arns[owners[name]], type=properties.get("Type", "STANDARD"),
                **({"loggingConfiguration": logging_configuration} if logging_configuration else {}),
            )["stateMachineArn"]
            refs.refs[name] = arn
            self.stack.state_machines[name] = arn
            self._event_sources(name, properties.get("Events", {}), refs, owners)
        self._deploy_operations(template, refs)
        self.stack.skipped = [f"{n} ({r['Type']})" for n, r in template["Resources"].items() if r["Type"] not in handled]
        for name, output in template.get("Outputs", {}).items():
            self.stack.outputs[name] = str(refs.resolve(output["Value"]))

    def _deploy_topics(self, template: dict[str, Any], refs: References) -> None:
        """KMS keys and SNS topics (the embedded EventBridge checks the topic's key policy when it publishes)."""
        for name, resource in resources_of_type(template, "AWS::KMS::Key").items():
            properties = refs.resolve(resource["Properties"])
            kms = self.client("kms")
            key = kms.create_key(Description=properties.get("Description", ""),
                                 Policy=json.dumps(properties["KeyPolicy"]))["KeyMetadata"]
            if properties.get("EnableKeyRotation"):
                kms.enable_key_rotation(KeyId=key["KeyId"])
            refs.refs[name] = key["KeyId"]
            refs.attributes[f"{name}.Arn"] = key["Arn"]
        for name, resource in resources_of_type(template, "AWS::SNS::Topic").items():
            properties = refs.resolve(resource.get("Properties") or {})
            topic = str(properties.get("TopicName", f"{self.stack_name}-{name}"))
            attributes = {key: str(properties[key]) for key in ("DisplayName", "KmsMasterKeyId") if key in properties}
            arn = self.client("sns").create_topic(Name=topic, Attributes=attributes)["TopicArn"]
            refs.refs[name] = arn
            refs.attributes[f"{name}.TopicName"] = topic
            refs.attributes[f"{name}.TopicArn"] = arn

    def _logging_configuration(self, arn: str, logging: dict[str, Any] | None) -> dict[str, Any] | None:
        """A state machine's Logging as CreateStateMachine takes it; refused, as Step Functions refuses it, if the
        machine's role may not deliver logs."""
        if not logging:
            return None
        level = str(logging.get("Level", "OFF"))
        assert self.iam is not None
        principal = self.iam.principal(role_session_key("state-machine", arn), self.region)
        if level != "OFF" and self.iam.enabled and principal is not None:
            try:
                self.iam.authorize("logs", "states:CreateStateMachine", principal,
                                   [AuthRequest(action, "*", None) for action in LOG_DELIVERY_ACTIONS], self.region)
            except Denied as denied:
                raise InvalidLoggingConfiguration(
                    f"The state machine IAM Role is not authorized to access the Log Destination ({arn}: "
                    f"{denied.message})") from None
        return {"level": level, "includeExecutionData": bool(logging.get("IncludeExecutionData", False)),
                "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
                                 for d in logging.get("Destinations") or []]}

    def _deploy_operations(self, template: dict[str, Any], refs: References) -> None:
        """What the on-call engineer has: the stack's EventBridge rules (delivered by eiplane/local/eventbridge.py),
        topic policies and subscriptions, dashboards. After the state machines, whose ARNs they name."""
        assert self.events is not None
        events, sns = self.client("events"), self.client("sns")
        for name, resource in resources_of_type(template, "AWS::Events::Rule").items():
            properties = refs.resolve(resource["Properties"])
            rule = str(properties.get("Name", f"{self.stack_name}-{name}"))[:64]
            state = str(properties.get("State", "ENABLED"))
            arn = events.put_rule(Name=rule, EventPattern=json.dumps(properties["EventPattern"]), State=state,
                                  Description=properties.get("Description", ""))["RuleArn"]
            targets = properties.get("Targets") or []
            if targets:
                events.put_targets(Rule=rule, Targets=targets)
            refs.refs[name] = rule
            refs.attributes[f"{name}.Arn"] = arn
            self.events.rules.append(Rule(name, rule, arn, properties["EventPattern"], state == "ENABLED",
                                          tuple(targets)))
        for resource in resources_of_type(template, "AWS::SNS::TopicPolicy").values():
            properties = refs.resolve(resource["Properties"])
            for topic in properties["Topics"]:
                sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                                         AttributeValue=json.dumps(properties["PolicyDocument"]))
        for name, resource in resources_of_type(template, "AWS::SNS::Subscription").items():
            properties = refs.resolve(resource["Properties"])
            refs.refs[name] = sns.subscribe(TopicArn=properties["TopicArn"], Protocol=properties["Protocol"],
                                            Endpoint=properties["Endpoint"])["SubscriptionArn"]
        for name, resource in resources_of_type(template, "AWS::CloudWatch::Dashboard").items():
            properties = refs.resolve(resource["Properties"])
            dashboard = str(properties.get("DashboardName", f"{self.stack_name}-{name}"))
            self.client("cloudwatch").put_dashboard(DashboardName=dashboard, DashboardBody=properties["DashboardBody"])
            refs.refs[name] = dashboard

    def _event_sources(self, machine: str, events: dict[str, Any], refs: References, owners: dict[str, str]) -> None:
        for event_name, event in events.items():
            properties = refs.resolve(event.get("Properties", {}))
            rule_arn = f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{self.stack_name}-{machine}-{event_name}"
            role = owners.get(f"{machine}{event_name}")  # SAM names the event's rule <machine><event>
            if role is not None:
                assert self.iam is not None
                self.iam.add_role_principal(role_session_key("rule", rule_arn), "rule", rule_arn, self.roles[role],
                                            "embedded-eventbridge")
            if event["Type"] in ("Schedule", "ScheduleV2"):
                enabled = properties.get("State", "ENABLED") == "ENABLED" and properties.get("Enabled", True)
                self.stack.schedules.append(EventSource(machine, event_name, rule_arn,
                                                        schedule=properties.get("Schedule"), enabled=bool(enabled),
                                                        role_logical_id=role))
            elif event["Type"] in ("EventBridgeRule", "CloudWatchEvent"):
                self.stack.rules.append(EventSource(machine, event_name, rule_arn, pattern=properties["Pattern"],
                                                    enabled=properties.get("State", "ENABLED") == "ENABLED",
                                                    role_logical_id=role))

    def _deploy_role(self, logical_id: str, properties: dict[str, Any]) -> str:
        """As CloudFormation creates a role. Through moto's IAM backend, as its CreateRole, PutRolePolicy and
        AttachRolePolicy answers would: a template's 53 roles through the API (each call signed, parsed and
        serialised) were a tenth of each test's deploy, and the deploy is CloudFormation's, not a caller's."""
        from moto.iam.models import iam_backends

        iam = iam_backends[ACCOUNT_ID]["aws"]
        name = f"{self.stack_name}-{logical_id}"[:64]
        # (no description, no tags, an hour's sessions: what CreateRole passes its backend when the call names none)
        role = iam.create_role(name, json.dumps(properties["AssumeRolePolicyDocument"]), properties.get("Path", "/"),
                               properties.get("PermissionsBoundary") or None, None, [], 3600)  # type: ignore[arg-type]
        for policy in properties.get("Policies", []):
            iam.put_role_policy(name, policy["PolicyName"], json.dumps(versioned(policy["PolicyDocument"])))
        for policy_arn in properties.get("ManagedPolicyArns", []):
            iam.attach_role_policy(policy_arn, name)
        self.roles[logical_id] = name
        return str(role.arn)

    def _deploy_function(self, template: dict[str, Any], name: str, refs: References, role: str) -> None:
        assert self.runtime is not None
        properties = function_properties(template, name)
        function_name = f"{self.stack_name}-{name}"
        code_dir = self.root / properties["CodeUri"]
        variables = {k: str(v) for k, v in refs.resolve(properties.get("Environment", {}).get("Variables", {})).items()}
        log_group = refs.resolve(properties.get("LoggingConfig", {}).get("LogGroup", f"/aws/lambda/{function_name}"))
        timeout, memory = int(properties.get("Timeout", 3)), int(properties.get("MemorySize", 128))
        environment = {
            **variables,
            # What Lambda sets (the function sees nothing of this process's own environment), and
            # what differs in the embedded AWS.
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{properties['Runtime']}", "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": "/var/runtime", "TZ": ":UTC", "LANG": "en_US.UTF-8",
            "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin", "_HANDLER": properties["Handler"],
            "EIPLANE_RUNTIME": "embedded", **function_credentials(function_name),
        }
        if self.endpoint_url:
            environment["AWS_ENDPOINT_URL"] = self.endpoint_url
        arn = self.client("lambda").create_function(
            FunctionName=function_name, Runtime=properties["Runtime"], Role=role, Handler=properties["Handler"],
            Code={"ZipFile": _zip_folder(code_dir)}, Timeout=timeout, MemorySize=memory,
            Environment={"Variables": {**variables, "EIPLANE_RUNTIME": "embedded"}},
        )["FunctionArn"]
        refs.refs[name] = function_name
        refs.attributes[f"{name}.Arn"] = arn
        self.stack.functions[name] = function_name
        self.runtime.register(LocalFunction(
            name=function_name, arn=arn, code_dir=code_dir, handler=properties["Handler"], environment=environment,
            timeout_s=timeout, memory_mb=memory,
        ))

    # --- executions -----------------------------------------------------------------------

    def state_machine_arn(self, logical_id: str = "ProvisionFleetStateMachine") -> str:
        return self.stack.state_machines[logical_id]

    def start_execution(self, execution_input: Any, name: str, logical_id: str = "ProvisionFleetStateMachine",
                        as_rule: EventSource | None = None) -> str:
        """StartExecution as the operator, or as an EventBridge rule of the stack (with its role)."""
        body = execution_input if isinstance(execution_input, str) else json.dumps(execution_input)
        sfn = self.client("stepfunctions")
        if as_rule is not None and as_rule.role_logical_id is not None:
            sfn = self.client("stepfunctions", access_key=role_session_key("rule", as_rule.rule_arn))
        return str(sfn.start_execution(
            stateMachineArn=self.state_machine_arn(logical_id), name=name, input=body)["executionArn"])

    def progress(self) -> tuple[Any, ...]:
        """Changes while anything runs: Lambda invocations, commands on instances, the virtual clock."""
        invocations = len(self.runtime.invocations) if self.runtime else 0
        commands = len(self.instances.commands_run) if self.instances else 0
        return invocations, commands, self.clock.seconds

    def wait(self, execution_arn: str, timeout_s: float | None = None) -> ExecutionResult:
        """Until the execution ends: as long as it makes progress (a slow machine is slower, not failed);
        `timeout_s` is for tests that must not wait past a bound whatever happens."""
        from moto.stepfunctions.responses import get_backend

        def status() -> str:  # the backend's own record: no request, no IAM evaluation, no serialising
            state = get_backend(ACCOUNT_ID, self.region).describe_execution(execution_arn).status
            return str(getattr(state, "value", state))  # the interpreter's executions keep an enum

        return wait_for_execution(self.client("stepfunctions"), execution_arn, timeout_s, progress=self.progress,
                                  status=status)

    def run(self, execution_input: Any, name: str, logical_id: str = "ProvisionFleetStateMachine") -> ExecutionResult:
        return self.wait(self.start_execution(execution_input, name, logical_id))

    # --- EventBridge and CloudWatch alarms, which moto does not deliver ------------------------

    def schedule_tick(self, at: datetime) -> list[str]:
        """What each enabled schedule of the template would start at `at`: the same
        "Scheduled Event" EventBridge sends. Returns the executions started."""
        started = []
        for source in self.stack.schedules:
            if not source.enabled:
                continue
            event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                     "account": ACCOUNT_ID, "time": _iso(at), "region": self.region, "resources": [source.rule_arn],
                     "detail": {}}
            started.append(self.start_execution(event, f"{source.name}-{at:%Y%m%dT%H%M%SZ}", source.state_machine,
                                                as_rule=source))
        return started

    def evaluate_alarms(self, at: datetime) -> list[str]:
        """Evaluate every metric alarm on the minute before `at`, as CloudWatch would (Sum or
        the alarm's statistic over its period, missing data as the alarm says), set the new
        states, and deliver each state change to the template's EventBridge rules.
        Returns the executions started."""
        cloudwatch = self.client("cloudwatch")
        started = []
        for alarm in cloudwatch.describe_alarms(AlarmTypes=["MetricAlarm"])["MetricAlarms"]:
            state = _alarm_state(cloudwatch, alarm, at)
            if state is None or state == alarm["StateValue"]:
                continue
            reason = f"evaluated by the embedded AWS at {_iso(at)}"
            cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason)
            event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "CloudWatch Alarm State Change",
                     "source": "aws.cloudwatch", "account": ACCOUNT_ID, "time": _iso(at), "region": self.region,
                     "resources": [alarm["AlarmArn"]],
                     "detail": {"alarmName": alarm["AlarmName"], "state": {"value": state, "reason": reason},
                                "previousState": {"value": alarm["StateValue"]}}}
            for rule in self.stack.rules:
                if rule.enabled and rule.pattern is not None and event_matches(rule.pattern, event):
                    name = f"{rule.name}-{at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
                    started.append(self.start_execution(event, name, rule.state_machine, as_rule=rule))
        return started


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _alarm_state(cloudwatch: BaseClient, alarm: dict[str, Any], at: datetime) -> str | None:
    if "MetricName" not in alarm:
        return None  # metric-math alarms: not evaluated here
    period = int(alarm["Period"])
    end = at.astimezone(UTC).replace(second=0, microsecond=0)
    points = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"], MetricName=alarm["MetricName"], Dimensions=alarm.get("Dimensions", []),
        StartTime=end - timedelta(seconds=period * int(alarm["EvaluationPeriods"])), EndTime=end, Period=period,
        Statistics=[alarm["Statistic"]])["Datapoints"]
    if not points:
        missing = alarm.get("TreatMissingData", "missing")
        return {"breaching": "ALARM", "notBreaching": "OK"}.get(missing)
    compare = {"GreaterThanThreshold": float.__gt__, "GreaterThanOrEqualToThreshold": float.__ge__,
               "LessThanThreshold": float.__lt__, "LessThanOrEqualToThreshold": float.__le__}[alarm["ComparisonOperator"]]
    breaching = sum(compare(float(p[alarm["Statistic"]]), float(alarm["Threshold"])) for p in points)
    return "ALARM" if breaching >= int(alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])) else "OK"


# --- the account the embedded AWS starts as -----------------------------------------------

def seed_account(ec2: BaseClient) -> None:
    """Make moto's account look like a new real one: its default VPC reaches the internet
    through an internet gateway (moto's has no route). `seed_images` adds the public images."""
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    attached = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])
    if not attached["InternetGateways"]:
        gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
        main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                  {"Name": "association.main", "Values": ["true"]}])
        ec2.create_route(RouteTableId=main["RouteTables"][0]["RouteTableId"],
                         DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)


# Images the public SSM parameters name, registered so DescribeImages knows them.
IMAGES = {
    "gpu": ("Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.9 (Ubuntu 24.04)", "/dev/sda1"),
    "inferentia": ("Deep Learning AMI Neuron (Ubuntu 24.04)", "/dev/sda1"),
    "eia": ("al2023-ami-2023-kernel-6.1-x86_64", "/dev/xvda"),
}


def seed_images(ec2: BaseClient, region: str) -> dict[str, str]:
    from eiplane.backends import DEFAULT_IMAGE_PARAMETERS

    values = {}
    for backend, (name, root) in IMAGES.items():
        image = ec2.register_image(Name=name, RootDeviceName=root, Architecture="x86_64", VirtualizationType="hvm",
                                   BlockDeviceMappings=[{"DeviceName": root, "Ebs": {"VolumeSize": 75}}])["ImageId"]
        values[DEFAULT_IMAGE_PARAMETERS[backend]] = image  # type: ignore[index]
    moto_gaps.seed_public_parameters(ACCOUNT_ID, region, values)
    return values


def deploy_bucket(s3: BaseClient, bucket: str, properties: dict[str, Any], region: str) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    if "BucketEncryption" in properties:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                       "BucketKeyEnabled": r.get("BucketKeyEnabled", False)}
                      for r in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]]})
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(Bucket=bucket,
                                   PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"])
    if "VersioningConfiguration" in properties:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=properties["VersioningConfiguration"])


def deploy_table(dynamodb: BaseClient, table: str, properties: dict[str, Any]) -> None:
    dynamodb.create_table(
        TableName=table, KeySchema=properties["KeySchema"], AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode=properties.get("BillingMode", "PROVISIONED"),
        SSESpecification={"Enabled": bool(properties.get("SSESpecification", {}).get("SSEEnabled", False))},
    )


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.py")):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


@contextlib.contextmanager
def _env(name: str, value: str) -> Any:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous

