"""Security and quality rules for template.yaml, samconfig.toml and the thin handlers in functions/.

Each rule is a function returning a list of problems; the tests assert the real files give
none, and that a copy of the real template broken in one place gives the expected problem.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from eiplane.local.template import function_properties, load_template, resources_of_type
from tests.static import checks
from tests.static.checks import FUNCTIONS, ROOT, SAMCONFIG, as_list

pytestmark = pytest.mark.static

ALLOWED_RUNTIMES = {"python3.12", "python3.13"}
SSE_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}
MAX_HANDLER_LINES = 25


# --- rules -------------------------------------------------------------------------------

def runtime_problems(template: dict[str, Any]) -> list[str]:
    problems = []
    runtime = template.get("Globals", {}).get("Function", {}).get("Runtime")
    if runtime not in ALLOWED_RUNTIMES:
        problems.append(f"Globals.Function.Runtime is {runtime!r}, expected one of {sorted(ALLOWED_RUNTIMES)}")
    functions = resources_of_type(template, "AWS::Serverless::Function")
    used = set()
    for logical_id in functions:
        own = function_properties(template, logical_id).get("Runtime")
        used.add(own)
        if own not in ALLOWED_RUNTIMES:
            problems.append(f"{logical_id}: Runtime {own!r}, expected one of {sorted(ALLOWED_RUNTIMES)}")
    for logical_id, layer in resources_of_type(template, "AWS::Serverless::LayerVersion").items():
        compatible = set(layer.get("Properties", {}).get("CompatibleRuntimes") or [])
        if not used <= compatible:
            problems.append(f"{logical_id}: CompatibleRuntimes {sorted(compatible)} lacks {sorted(used - compatible)}")
    return problems


def _refers_to(value: Any, logical_id: str) -> bool:
    return value == {"Ref": logical_id}


def bucket_problems(template: dict[str, Any]) -> list[str]:
    problems = []
    buckets = resources_of_type(template, "AWS::S3::Bucket")
    if not buckets:
        return ["no AWS::S3::Bucket in the template"]
    policies = resources_of_type(template, "AWS::S3::BucketPolicy")
    for logical_id, bucket in buckets.items():
        props = bucket.get("Properties", {}) or {}
        rules = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
        algorithms = [(r.get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") for r in rules]
        if not algorithms or any(a not in SSE_ALGORITHMS for a in algorithms):
            problems.append(f"{logical_id}: BucketEncryption missing or without an SSEAlgorithm ({algorithms})")
        block = props.get("PublicAccessBlockConfiguration") or {}
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            if block.get(flag) is not True:
                problems.append(f"{logical_id}: PublicAccessBlockConfiguration.{flag} is not true")
        statements = [
            statement
            for policy in policies.values()
            if _refers_to(policy["Properties"].get("Bucket"), logical_id)
            for statement in as_list(policy["Properties"].get("PolicyDocument", {}).get("Statement", []))
        ]
        if not any(_denies_insecure_transport(s, logical_id) for s in statements):
            problems.append(f"{logical_id}: no bucket policy statement denies s3:* on the bucket and its "
                            "objects when aws:SecureTransport is false")
    return problems


def _denies_insecure_transport(statement: dict[str, Any], bucket: str) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    principal = statement.get("Principal")
    resources = as_list(statement.get("Resource"))
    arn = {"Fn::GetAtt": [bucket, "Arn"]}
    objects = {"Fn::Sub": f"${{{bucket}.Arn}}/*"}
    return (
        statement.get("Effect") == "Deny"
        and str(condition.get("aws:SecureTransport")).lower() == "false"
        and principal in ("*", {"AWS": "*"})
        and "s3:*" in as_list(statement.get("Action"))
        and arn in resources
        and objects in resources
    )


def table_problems(template: dict[str, Any]) -> list[str]:
    problems = [f"{t}: AWS::Serverless::SimpleTable cannot turn on point-in-time recovery; "
                "use AWS::DynamoDB::Table" for t in resources_of_type(template, "AWS::Serverless::SimpleTable")]
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    if not tables:
        problems.append("no AWS::DynamoDB::Table in the template")
    for logical_id, table in tables.items():
        props = table.get("Properties", {}) or {}
        if (props.get("SSESpecification") or {}).get("SSEEnabled") is not True:
            problems.append(f"{logical_id}: SSESpecification.SSEEnabled is not true")
        pitr = props.get("PointInTimeRecoverySpecification") or {}
        if pitr.get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{logical_id}: PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled is not true")
    return problems


def function_code_problems(template: dict[str, Any]) -> list[str]:
    problems = []
    functions = resources_of_type(template, "AWS::Serverless::Function")
    if not functions:
        return ["no AWS::Serverless::Function in the template"]
    for logical_id in functions:
        props = function_properties(template, logical_id)
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str) or not (ROOT / code_uri).is_dir():
            problems.append(f"{logical_id}: CodeUri {code_uri!r} is not a folder in the repository")
            continue
        module, _, function = str(props.get("Handler", "")).rpartition(".")
        source = ROOT / code_uri / (module.replace(".", "/") + ".py")
        if not module or not source.is_file():
            problems.append(f"{logical_id}: Handler {props.get('Handler')!r}: {source.relative_to(ROOT)} not found")
        elif not checks.handler_function(source, function):
            problems.append(f"{logical_id}: {source.relative_to(ROOT)} defines no top-level {function}()")
    return problems


def function_dir_problems(template: dict[str, Any]) -> list[str]:
    users: dict[Path, list[str]] = {d.resolve(): [] for d in FUNCTIONS.iterdir() if d.is_dir()
                                    and not d.name.startswith((".", "__"))}
    for logical_id in resources_of_type(template, "AWS::Serverless::Function"):
        code_uri = function_properties(template, logical_id).get("CodeUri")
        if isinstance(code_uri, str):
            users.setdefault((ROOT / code_uri).resolve(), []).append(logical_id)
    return [f"{d.relative_to(ROOT)}/ is the CodeUri of {len(ids)} functions {ids}, expected exactly 1"
            for d, ids in sorted(users.items()) if d.parent == FUNCTIONS.resolve() and len(ids) != 1]


def state_machine_problems(template: dict[str, Any]) -> list[str]:
    machines = resources_of_type(template, "AWS::Serverless::StateMachine")
    problems = [] if machines else ["no AWS::Serverless::StateMachine in the template"]
    for logical_id, machine in machines.items():
        props = machine.get("Properties", {}) or {}
        if props.get("Type") != "STANDARD":
            problems.append(f"{logical_id}: Type is {props.get('Type')!r}, expected STANDARD")
        if "Definition" in props:
            problems.append(f"{logical_id}: inline Definition; keep the ASL in statemachines/ (DefinitionUri)")
        uri = props.get("DefinitionUri")
        if not (isinstance(uri, str) and uri.startswith("statemachines/") and (ROOT / uri).is_file()):
            problems.append(f"{logical_id}: DefinitionUri {uri!r} is not a file under statemachines/")
    return problems


def output_problems(template: dict[str, Any]) -> list[str]:
    values = [o.get("Value") for o in (template.get("Outputs") or {}).values()]
    problems = []
    for logical_id in resources_of_type(template, "AWS::Serverless::StateMachine"):
        arns = ({"Ref": logical_id}, {"Fn::GetAtt": [logical_id, "Arn"]})
        if not any(v in arns for v in values):
            problems.append(f"Outputs: no output gives {logical_id}'s ARN")
    for logical_id in resources_of_type(template, "AWS::S3::Bucket"):
        if {"Ref": logical_id} not in values:
            problems.append(f"Outputs: no output gives {logical_id}'s name")
    return problems


# --- the real template -------------------------------------------------------------------

def test_runtime_is_python_312_or_313(template: dict[str, Any]) -> None:
    assert runtime_problems(template) == []


def test_buckets_are_encrypted_private_and_tls_only(template: dict[str, Any]) -> None:
    assert bucket_problems(template) == []


def test_tables_are_encrypted_with_point_in_time_recovery(template: dict[str, Any]) -> None:
    assert table_problems(template) == []


def test_no_ingress_open_to_the_world(template: dict[str, Any]) -> None:
    assert checks.open_ingress(template) == []


def test_wildcard_writes_are_explained(template: dict[str, Any], raw_template: str) -> None:
    assert checks.unexplained_wildcard_writes(template, raw_template) == []


def test_functions_point_at_code_with_the_handler(template: dict[str, Any]) -> None:
    assert function_code_problems(template) == []


def test_every_function_folder_is_used_by_exactly_one_function(template: dict[str, Any]) -> None:
    assert function_dir_problems(template) == []


def test_state_machines_are_standard_with_definition_uri(template: dict[str, Any]) -> None:
    assert state_machine_problems(template) == []


def test_outputs_give_the_state_machine_arn_and_bucket_name(template: dict[str, Any]) -> None:
    assert output_problems(template) == []


# --- the rules catch a broken template ------------------------------------------------------

def _only(template: dict[str, Any], resource_type: str) -> str:
    ids = list(resources_of_type(template, resource_type))
    assert ids, f"template has no {resource_type} to break"
    return ids[0]


def test_runtime_rule_rejects_an_old_runtime(template: dict[str, Any]) -> None:
    bad = copy.deepcopy(template)
    bad["Globals"]["Function"]["Runtime"] = "python3.9"
    problems = runtime_problems(bad)
    assert any(p.startswith("Globals.Function.Runtime is 'python3.9'") for p in problems), problems


def test_bucket_rule_rejects_each_gap(template: dict[str, Any]) -> None:
    bucket = _only(template, "AWS::S3::Bucket")
    bad = copy.deepcopy(template)
    props = bad["Resources"][bucket]["Properties"]
    del props["BucketEncryption"]
    props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] = False
    for policy in resources_of_type(bad, "AWS::S3::BucketPolicy").values():
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            statement.get("Condition", {}).get("Bool", {}).pop("aws:SecureTransport", None)
    problems = bucket_problems(bad)
    assert len(problems) == 3, problems


def test_table_rule_rejects_missing_pitr_and_sse(template: dict[str, Any]) -> None:
    table = _only(template, "AWS::DynamoDB::Table")
    bad = copy.deepcopy(template)
    del bad["Resources"][table]["Properties"]["PointInTimeRecoverySpecification"]
    bad["Resources"][table]["Properties"]["SSESpecification"]["SSEEnabled"] = False
    assert len(table_problems(bad)) == 2


def test_ingress_rule_rejects_world_open_groups(template: dict[str, Any]) -> None:
    bad = copy.deepcopy(template)
    bad["Resources"]["OpenGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": "x", "SecurityGroupIngress": [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/8"},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}]}}
    bad["Resources"]["OpenRule"] = {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
        "GroupId": {"Ref": "OpenGroup"}, "IpProtocol": "-1", "CidrIpv6": "::/0"}}
    problems = checks.open_ingress(bad)
    assert "OpenGroup.SecurityGroupIngress[1]: ingress open to 0.0.0.0/0" in problems, problems
    assert "OpenRule: ingress open to ::/0" in problems, problems
    assert not any(p.startswith("OpenGroup.SecurityGroupIngress[0]") for p in problems), problems


def test_wildcard_rule_rejects_the_real_template_without_its_comments(raw_template: str, tmp_path: Path) -> None:
    uncommented = "\n".join(line for line in raw_template.splitlines() if not line.strip().startswith("#"))
    (tmp_path / "template.yaml").write_text(uncommented)
    parsed = load_template(tmp_path / "template.yaml")
    flagged = checks.wildcard_write_statements(parsed)
    assert flagged, "the template has no write on \"*\"; this negative test needs another example"
    problems = checks.unexplained_wildcard_writes(parsed, uncommented)
    assert len(problems) == len(flagged), problems


WILDCARD_YAML = """\
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Sid: ReadAnything
              Effect: Allow
              Action: [ec2:DescribeVpcs, iam:GetRole, s3:ListBucket]
              Resource: "*"
            - Sid: DeleteAnything
              Effect: Allow
              Action: [ec2:DescribeVpcs, ec2:DeleteVpc]
              Resource: ["*"]
            # Explained above the statement.
            - Sid: ExplainedAbove
              Effect: Allow
              Action: ec2:CreateTags
              Resource: "*"
            - Sid: DenyIsFine
              Effect: Deny
              Action: "*"
              Resource: "*"
            - Sid: AllOfS3
              Effect: Allow
              Action: s3:*
              Resource: "*"
"""


def test_wildcard_rule_flags_writes_and_accepts_reads_denies_and_comments() -> None:
    parsed = yaml.safe_load(WILDCARD_YAML)
    flagged = [s["Sid"] for _, s in checks.wildcard_write_statements(parsed)]
    assert flagged == ["DeleteAnything", "ExplainedAbove", "AllOfS3"]
    problems = checks.unexplained_wildcard_writes(parsed, WILDCARD_YAML)
    assert [p.split(":")[0] for p in problems] == ["Fn.DeleteAnything", "Fn.AllOfS3"]


def test_code_rules_reject_a_missing_folder_and_a_shared_folder(template: dict[str, Any]) -> None:
    functions = list(resources_of_type(template, "AWS::Serverless::Function"))
    assert len(functions) >= 2
    bad = copy.deepcopy(template)
    first, second = (bad["Resources"][f]["Properties"] for f in functions[:2])
    orphaned = Path(first["CodeUri"]).as_posix()  # as_posix drops the trailing slash
    shared = Path(second["CodeUri"]).as_posix()
    first["CodeUri"] = "functions/no_such_function/"
    bad["Resources"]["Twin"] = copy.deepcopy(bad["Resources"][functions[1]])
    assert any("'functions/no_such_function/' is not a folder" in p for p in function_code_problems(bad))
    problems = function_dir_problems(bad)
    assert any(p.startswith(f"{orphaned}/ is the CodeUri of 0 functions") for p in problems), problems
    assert any(p.startswith(f"{shared}/ is the CodeUri of 2 functions") for p in problems), problems


def test_state_machine_and_output_rules_reject_inline_express_machines(template: dict[str, Any]) -> None:
    machine = _only(template, "AWS::Serverless::StateMachine")
    bad = copy.deepcopy(template)
    props = bad["Resources"][machine]["Properties"]
    props["Type"] = "EXPRESS"
    props["Definition"] = {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
    del props["DefinitionUri"]
    bad["Outputs"] = {}
    assert len(state_machine_problems(bad)) == 3
    machines_and_buckets = [*resources_of_type(bad, "AWS::Serverless::StateMachine"),
                            *resources_of_type(bad, "AWS::S3::Bucket")]
    assert len(output_problems(bad)) == len(machines_and_buckets)


# --- samconfig.toml ------------------------------------------------------------------------

def _all_keys(table: dict[str, Any]) -> set[str]:
    keys = set()
    for key, value in table.items():
        keys.add(key)
        if isinstance(value, dict):
            keys |= _all_keys(value)
    return keys


def test_samconfig_resolves_its_own_bucket() -> None:
    config = tomllib.loads(SAMCONFIG.read_text())
    assert config["default"]["deploy"]["parameters"].get("resolve_s3") is True
    assert "s3_bucket" not in _all_keys(config), "samconfig.toml hard-codes an s3_bucket; use resolve_s3"


# --- thin handlers ---------------------------------------------------------------------------

HANDLERS = sorted(FUNCTIONS.glob("*/app.py"))


def test_there_are_handlers() -> None:
    assert HANDLERS, "no functions/*/app.py"


@pytest.mark.parametrize("path", HANDLERS, ids=[p.parent.name for p in HANDLERS])
def test_handler_is_thin_and_uses_eiplane(path: Path) -> None:
    source = path.read_text()
    lines = checks.logic_lines(source)
    assert lines <= MAX_HANDLER_LINES, (
        f"{path.relative_to(ROOT)}: {lines} lines of code; keep handlers thin and move logic into eiplane"
    )
    assert checks.imports_from(source, "eiplane"), f"{path.relative_to(ROOT)} imports nothing from eiplane"


def test_thin_handler_rules_can_fail() -> None:
    fat = '"""Doc\nstring."""\n# comment\n\nimport json\n' + "".join(f"x{i} = {i}\n" for i in range(30))
    assert checks.logic_lines(fat) == 31
    assert checks.imports_from(fat, "eiplane") == set()
    assert checks.imports_from("from eiplane.prerequisites import stage\n", "eiplane") == {"eiplane.prerequisites"}
    assert checks.imports_from("import eiplanex\n", "eiplane") == set()


# --- operations: alerts, execution logs, the dashboard --------------------------------------------

STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
ALERT_STATUSES = {"FAILED", "TIMED_OUT", "ABORTED"}
LOG_LEVELS = {"ALL", "ERROR", "FATAL", "OFF"}


def _state_machines(template: dict[str, Any]) -> list[str]:
    return [name for kind in STATE_MACHINE_TYPES for name in resources_of_type(template, kind)]


def _arn_of(value: Any) -> str | None:
    """The logical id a !Ref or !GetAtt X.Arn names (a state machine's Ref is its ARN)."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value and value["Fn::GetAtt"][1:] == ["Arn"]:
        return str(value["Fn::GetAtt"][0])
    return None


def alert_problems(template: dict[str, Any]) -> list[str]:
    """Every state machine is in an aws.states status-change rule for FAILED, TIMED_OUT and ABORTED whose target is
    a KMS-encrypted SNS topic that only that rule may publish to (aws:SourceArn)."""
    topics = resources_of_type(template, "AWS::SNS::Topic")
    policies = resources_of_type(template, "AWS::SNS::TopicPolicy")
    covered: set[str] = set()
    problems = []
    for rule_id, rule in resources_of_type(template, "AWS::Events::Rule").items():
        props = rule.get("Properties", {}) or {}
        pattern = props.get("EventPattern") or {}
        if pattern.get("source") != ["aws.states"]:
            continue
        detail = pattern.get("detail") or {}
        if pattern.get("detail-type") != ["Step Functions Execution Status Change"]:
            problems.append(f"{rule_id}: detail-type is not Step Functions Execution Status Change")
        if set(detail.get("status") or []) != ALERT_STATUSES:
            problems.append(f"{rule_id}: status {detail.get('status')}, expected {sorted(ALERT_STATUSES)}")
        covered |= {arn for arn in map(_arn_of, detail.get("stateMachineArn") or []) if arn}
        for target in props.get("Targets") or []:
            topic = _arn_of(target.get("Arn"))
            if topic not in topics:
                problems.append(f"{rule_id}: target {target.get('Id')} is not an SNS topic of the template")
                continue
            if not (topics[topic].get("Properties") or {}).get("KmsMasterKeyId"):
                problems.append(f"{topic}: not encrypted with a KMS key (KmsMasterKeyId)")
            statements = [s for p in policies.values() if {"Ref": topic} in p["Properties"].get("Topics", [])
                          for s in as_list(p["Properties"]["PolicyDocument"]["Statement"])]
            if not any(s.get("Principal") == {"Service": "events.amazonaws.com"}
                       and ((s.get("Condition") or {}).get("ArnEquals") or {}).get("aws:SourceArn")
                       == {"Fn::GetAtt": [rule_id, "Arn"]} for s in statements):
                problems.append(f"{topic}: no topic policy lets events.amazonaws.com publish only from {rule_id}")
    problems += [f"{name}: no aws.states rule alerts on its failed, timed-out or aborted executions"
                 for name in _state_machines(template) if name not in covered]
    return problems


def logging_problems(template: dict[str, Any]) -> list[str]:
    """Every state machine logs at a level parameter (default ERROR) to a log group under /aws/vendedlogs/states/,
    without execution data, and its role may deliver logs."""
    from eiplane.local.engine import LOG_DELIVERY_ACTIONS

    problems = []
    parameters = template.get("Parameters") or {}
    groups = resources_of_type(template, "AWS::Logs::LogGroup")
    for name in _state_machines(template):
        props = template["Resources"][name].get("Properties") or {}
        logging = props.get("Logging") or props.get("LoggingConfiguration") or {}
        level = logging.get("Level")
        parameter = parameters.get(level["Ref"], {}) if isinstance(level, dict) and "Ref" in level else None
        if parameter is None:
            problems.append(f"{name}: Logging.Level is {level!r}, not a parameter")
        elif parameter.get("Default") != "ERROR" or set(parameter.get("AllowedValues") or []) != LOG_LEVELS:
            problems.append(f"{name}: its level parameter {level['Ref']} must default to ERROR and allow {sorted(LOG_LEVELS)}")
        if logging.get("IncludeExecutionData") is not False:
            problems.append(f"{name}: IncludeExecutionData is not false")
        destinations = [_arn_of((d.get("CloudWatchLogsLogGroup") or {}).get("LogGroupArn"))
                        for d in logging.get("Destinations") or []]
        if not destinations or any(d not in groups or not str(
                (groups[d]["Properties"].get("LogGroupName") or {}).get("Fn::Sub", "")).startswith(
                "/aws/vendedlogs/states/") for d in destinations):
            problems.append(f"{name}: no destination log group named under /aws/vendedlogs/states/")
        granted = {action for policy in as_list(props.get("Policies") or []) if isinstance(policy, dict)
                   for statement in as_list(policy.get("Statement", [])) for action in as_list(statement.get("Action"))}
        missing = [a for a in LOG_DELIVERY_ACTIONS if a not in granted]
        if missing:
            problems.append(f"{name}: its role lacks the log-delivery actions {missing}")
    return problems


_SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\}(?P<terms>[^']*)',\s*'(?P<stat>[^']+)'")


def _powertools_dimensions(*names: str) -> set[str]:
    """The dimension set Powertools publishes a metric with, given the dimensions eiplane adds (it adds `service`)."""
    from aws_lambda_powertools import Metrics

    metrics = Metrics(namespace="probe", service="eiplane")
    for name in names:
        metrics.add_dimension(name=name, value="x")
    metrics.add_metric(name="Probe", unit="Count", value=1)
    dimensions = metrics.serialize_metric_set()["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
    metrics.clear_metrics()
    return set(dimensions)


def dashboard_families(template: dict[str, Any]) -> dict[tuple[str, str], tuple[frozenset[str], str]]:
    """(namespace, metric) -> (the dimensions and the statistic the dashboard searches it with), for every fleet
    metric family: eiplane's own (record_decision), the load balancers' and the model servers'."""
    from eiplane.agent.model_server import NAMESPACE as SERVING

    ours = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    per_fleet, per_reason = frozenset(_powertools_dimensions("Fleet")), frozenset(_powertools_dimensions("Fleet", "Reason"))
    per_instance, balancer = frozenset({"Fleet", "InstanceId"}), frozenset({"LoadBalancer"})
    return {
        (ours, "DemandRps"): (per_fleet, "Average"), (ours, "ReadyInstances"): (per_fleet, "Average"),
        (ours, "DesiredInstances"): (per_fleet, "Average"), (ours, "Decisions"): (per_reason, "Sum"),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): (balancer, "Sum"),
        ("AWS/ApplicationELB", "TargetResponseTime"): (balancer, "p99"),
        (SERVING, "Requests"): (per_instance, "Sum"), (SERVING, "Errors"): (per_instance, "Sum"),
        (SERVING, "LatencyP99"): (per_instance, "Maximum"),
    }


def dashboard_problems(template: dict[str, Any]) -> list[str]:
    """Each dashboard's body is JSON once its ${...} are substituted, and finds every fleet metric family with a
    SEARCH on the dimensions it is published with (so a fleet created after the deploy appears)."""
    dashboards = resources_of_type(template, "AWS::CloudWatch::Dashboard")
    if not dashboards:
        return ["no AWS::CloudWatch::Dashboard in the template"]
    problems = []
    wanted = dashboard_families(template)
    for name, dashboard in dashboards.items():
        body = dashboard["Properties"]["DashboardBody"]
        text = body.get("Fn::Sub") if isinstance(body, dict) else body
        try:
            parsed = json.loads(re.sub(r"\$\{[^}]+\}", "substituted", str(text)))
        except ValueError as exc:
            problems.append(f"{name}: DashboardBody is not JSON after substitution: {exc}")
            continue
        found: dict[tuple[str, str], tuple[frozenset[str], str]] = {}
        for widget in parsed.get("widgets", []):
            for line in (widget.get("properties") or {}).get("metrics", []):
                for item in line:
                    match = _SEARCH.search(str(item.get("expression", ""))) if isinstance(item, dict) else None
                    metric = re.search(r'MetricName="([^"]+)"', match.group("terms")) if match else None
                    if match and metric:
                        namespace, *dimensions = [s.strip() for s in match.group("schema").split(",")]
                        found[(namespace, metric.group(1))] = (frozenset(dimensions), match.group("stat"))
        problems += [f"{name}: no SEARCH for {namespace} {metric} on {sorted(dims)} ({stat})"
                     for (namespace, metric), (dims, stat) in wanted.items()
                     if found.get((namespace, metric)) != (dims, stat)]
    return problems


def test_every_state_machine_alerts_through_an_encrypted_topic_only_its_rule_publishes_to(
        template: dict[str, Any]) -> None:
    assert alert_problems(template) == []


def test_every_state_machine_logs_at_the_level_parameter(template: dict[str, Any]) -> None:
    assert logging_problems(template) == []


def test_the_dashboard_is_json_and_searches_every_fleet_metric_family(template: dict[str, Any]) -> None:
    assert dashboard_problems(template) == []


def test_a_new_state_machine_without_alerts_or_logs_is_found(template: dict[str, Any]) -> None:
    machine = _only(template, "AWS::Serverless::StateMachine")
    bad = copy.deepcopy(template)
    bad["Resources"]["NewStateMachine"] = copy.deepcopy(bad["Resources"][machine])
    del bad["Resources"]["NewStateMachine"]["Properties"]["Logging"]
    assert alert_problems(bad) == ["NewStateMachine: no aws.states rule alerts on its failed, timed-out or aborted "
                                   "executions"]
    assert [p.split(":")[0] for p in logging_problems(bad)] == ["NewStateMachine"] * 3


def test_alert_and_logging_rules_reject_each_gap(template: dict[str, Any]) -> None:
    bad = copy.deepcopy(template)
    rule = _only(bad, "AWS::Events::Rule")
    bad["Resources"][rule]["Properties"]["EventPattern"]["detail"]["status"] = ["FAILED"]
    topic = _only(bad, "AWS::SNS::Topic")
    del bad["Resources"][topic]["Properties"]["KmsMasterKeyId"]
    for policy in resources_of_type(bad, "AWS::SNS::TopicPolicy").values():
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            statement.pop("Condition", None)
    assert len(alert_problems(bad)) == 3, alert_problems(bad)
    machine = _only(bad, "AWS::Serverless::StateMachine")
    bad["Resources"][machine]["Properties"]["Logging"]["Level"] = "ALL"
    bad["Parameters"]["StateMachineLogLevel"]["Default"] = "ALL"
    assert any(p.startswith(f"{machine}: Logging.Level is 'ALL'") for p in logging_problems(bad))
    other = [m for m in resources_of_type(bad, "AWS::Serverless::StateMachine") if m != machine]
    assert all(any("must default to ERROR" in p for p in logging_problems(bad) if p.startswith(m)) for m in other)


def test_dashboard_rule_rejects_invalid_json_and_a_fixed_or_mistaken_metric(template: dict[str, Any]) -> None:
    dashboard = _only(template, "AWS::CloudWatch::Dashboard")
    bad = copy.deepcopy(template)
    body = bad["Resources"][dashboard]["Properties"]["DashboardBody"]
    body["Fn::Sub"] = body["Fn::Sub"].replace('"widgets": [', '"widgets": [,', 1)
    assert [p.split(":")[1].strip() for p in dashboard_problems(bad)] == ["DashboardBody is not JSON after substitution"]
    bad = copy.deepcopy(template)
    body = bad["Resources"][dashboard]["Properties"]["DashboardBody"]
    body["Fn::Sub"] = (body["Fn::Sub"].replace("{eiplane,Fleet,service} MetricName=\\\"DemandRps\\\"",
                                               "{eiplane,Fleet} MetricName=\\\"DemandRps\\\"")
                       .replace("'p99'", "'Average'"))
    problems = dashboard_problems(bad)
    assert len(problems) == 2, problems
    assert "eiplane DemandRps" in problems[0] and "TargetResponseTime" in problems[1]
