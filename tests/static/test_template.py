"""Security and quality rules for template.yaml, samconfig.toml and the thin handlers in functions/.

Each rule is a function returning a list of problems; the tests assert the real files give
none, and that a copy of the real template broken in one place gives the expected problem.
"""

from __future__ import annotations

import copy
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
