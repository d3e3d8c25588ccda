"""eiplane.local.template: short-form intrinsics, references, SAM Globals, definition substitutions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from eiplane.local.template import (
    References,
    UnresolvedReference,
    function_properties,
    load_template,
    load_yaml,
    resources_of_type,
    substitute_definition,
)

ROOT = Path(__file__).resolve().parents[2]

SMALL = """\
Globals:
  Function:
    Runtime: python3.12
    Handler: app.lambda_handler
    Timeout: 120
    Environment:
      Variables:
        SHARED: from-globals
        OVERRIDDEN: from-globals
    Tags:
      team: ml
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub '${AWS::StackName}-x'
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn/
      Timeout: 30
      Environment:
        Variables:
          OVERRIDDEN: from-function
          OWN: !Ref Table
      Policies:
        - Statement:
            - Effect: Allow
              Action: s3:GetObject
              Resource: !Sub '${Bucket.Arn}/*'
            - Effect: Allow
              Action: dynamodb:GetItem
              Resource: !GetAtt Table.Arn
  Other:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/other/
      Handler: main.handler
      Description: !Sub
        - '${Prefix}-${AWS::Region}'
        - Prefix: !Ref Table
"""

REFS = References(
    refs={"AWS::StackName": "eiplane", "AWS::Region": "us-east-1", "Bucket": "eiplane-x", "Table": "eiplane-state"},
    attributes={"Bucket.Arn": "arn:aws:s3:::eiplane-x",
                "Table.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/eiplane-state"},
)


@pytest.fixture
def template(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "template.yaml"
    path.write_text(SMALL)
    return load_template(path)


# --- loading ---------------------------------------------------------------------------------

def test_short_forms_become_long_forms(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["Bucket"]["Properties"]["BucketName"] == {"Fn::Sub": "${AWS::StackName}-x"}
    fn = resources["Fn"]["Properties"]
    assert fn["Environment"]["Variables"]["OWN"] == {"Ref": "Table"}
    statements = fn["Policies"][0]["Statement"]
    assert statements[0]["Resource"] == {"Fn::Sub": "${Bucket.Arn}/*"}
    assert statements[1]["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert resources["Other"]["Properties"]["Description"] == {
        "Fn::Sub": ["${Prefix}-${AWS::Region}", {"Prefix": {"Ref": "Table"}}]}


def test_getatt_sequence_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("A: !GetAtt [Fn, Arn]\nB: !Join ['-', [a, !Ref X]]\n")
    assert load_template(path) == {"A": {"Fn::GetAtt": ["Fn", "Arn"]},
                                   "B": {"Fn::Join": ["-", ["a", {"Ref": "X"}]]}}


def test_unknown_tag_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("A: !NotAnIntrinsic x\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="NotAnIntrinsic"):
        load_template(path)


def test_resources_of_type(template: dict[str, Any]) -> None:
    assert sorted(resources_of_type(template, "AWS::Serverless::Function")) == ["Fn", "Other"]
    assert list(resources_of_type(template, "AWS::S3::Bucket")) == ["Bucket"]
    assert resources_of_type(template, "AWS::SQS::Queue") == {}


# --- References.resolve ----------------------------------------------------------------------

def test_resolve_every_intrinsic(template: dict[str, Any]) -> None:
    resolved = REFS.resolve(template["Resources"])
    assert resolved["Bucket"]["Properties"]["BucketName"] == "eiplane-x"
    fn = resolved["Fn"]["Properties"]
    assert fn["Environment"]["Variables"]["OWN"] == "eiplane-state"
    assert fn["Policies"][0]["Statement"][0]["Resource"] == "arn:aws:s3:::eiplane-x/*"
    assert fn["Policies"][0]["Statement"][1]["Resource"] == (
        "arn:aws:dynamodb:us-east-1:123456789012:table/eiplane-state")
    assert resolved["Other"]["Properties"]["Description"] == "eiplane-state-us-east-1"


def test_resolve_passes_plain_values_through() -> None:
    value = {"a": [1, "two", {"b": None}], "c": True}
    assert REFS.resolve(value) == value
    assert REFS.resolve("plain ${NotASub}") == "plain ${NotASub}"  # only Fn::Sub substitutes


def test_sub_variables_shadow_references() -> None:
    assert REFS.resolve({"Fn::Sub": ["${Bucket}/${Table}", {"Bucket": "mine"}]}) == "mine/eiplane-state"


def test_join() -> None:
    assert REFS.resolve({"Fn::Join": [":", ["a", {"Ref": "Table"}, {"Fn::GetAtt": ["Bucket", "Arn"]}]]}) == (
        "a:eiplane-state:arn:aws:s3:::eiplane-x")


@pytest.mark.parametrize(("value", "message"), [
    ({"Ref": "Missing"}, "!Ref Missing: not deployed in the embedded AWS"),
    ({"Fn::GetAtt": ["Missing", "Arn"]}, "!GetAtt Missing.Arn: not deployed in the embedded AWS"),
    ({"Fn::Sub": "${Missing}"}, "!Ref Missing: not deployed in the embedded AWS"),
    ({"Fn::Sub": "${Missing.Arn}"}, "!GetAtt Missing.Arn: not deployed in the embedded AWS"),
    ({"Fn::Sub": "${AWS::AccountId}"}, "!Ref AWS::AccountId: not deployed in the embedded AWS"),
])
def test_unresolved_references(value: dict[str, Any], message: str) -> None:
    with pytest.raises(UnresolvedReference) as caught:
        REFS.resolve(value)
    assert str(caught.value) == message


def test_sub_literal_escape() -> None:
    assert REFS.resolve({"Fn::Sub": "echo ${!HOME} in ${AWS::Region}"}) == "echo ${HOME} in us-east-1"


@pytest.mark.parametrize(("value", "expected"), [
    ({"Fn::Sub": "${!Bucket.Arn}/${Bucket}"}, "${Bucket.Arn}/eiplane-x"),   # escaped names are never looked up
    ({"Fn::Sub": "${!AWS::AccountId}"}, "${AWS::AccountId}"),
    ({"Fn::Sub": "${!Missing}"}, "${Missing}"),                            # no UnresolvedReference either
    ({"Fn::Sub": ["${!Prefix}-${Prefix}", {"Prefix": "p"}]}, "${Prefix}-p"),  # nor a Sub variable
])
def test_sub_literal_escape_is_never_resolved(value: dict[str, Any], expected: str) -> None:
    assert REFS.resolve(value) == expected


# --- SAM Globals -----------------------------------------------------------------------------

def test_function_properties_merges_globals(template: dict[str, Any]) -> None:
    props = function_properties(template, "Fn")
    assert props["Runtime"] == "python3.12"           # from Globals
    assert props["Handler"] == "app.lambda_handler"   # from Globals
    assert props["Timeout"] == 30                     # scalar: the function's wins
    assert props["CodeUri"] == "functions/fn/"
    assert props["Tags"] == {"team": "ml"}
    assert props["Environment"] == {"Variables": {  # maps merge, recursively
        "SHARED": "from-globals", "OVERRIDDEN": "from-function", "OWN": {"Ref": "Table"}}}


def test_function_properties_does_not_change_the_template(template: dict[str, Any]) -> None:
    function_properties(template, "Fn")
    assert template["Globals"]["Function"]["Environment"]["Variables"] == {
        "SHARED": "from-globals", "OVERRIDDEN": "from-globals"}
    assert template["Globals"]["Function"]["Timeout"] == 120


def test_function_override_of_handler(template: dict[str, Any]) -> None:
    props = function_properties(template, "Other")
    assert props["Handler"] == "main.handler"
    assert props["Runtime"] == "python3.12"
    assert props["Timeout"] == 120
    assert props["Environment"]["Variables"]["OVERRIDDEN"] == "from-globals"


def test_function_properties_concatenates_lists() -> None:
    template: dict[str, Any] = {
        "Globals": {"Function": {
            "Layers": ["shared-layer"],
            "VpcConfig": {"SecurityGroupIds": ["sg-global"], "SubnetIds": ["subnet-global"]},
            "Architectures": ["x86_64"],
        }},
        "Resources": {
            "F": {"Type": "AWS::Serverless::Function", "Properties": {
                "Layers": ["own-layer", {"Ref": "Other"}],
                "VpcConfig": {"SecurityGroupIds": ["sg-own"]},
                "Architectures": "arm64",
            }},
            "G": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "h"}},
        },
    }
    assert function_properties(template, "F") == {
        "Layers": ["shared-layer", "own-layer", {"Ref": "Other"}],                   # Globals first
        "VpcConfig": {"SecurityGroupIds": ["sg-global", "sg-own"], "SubnetIds": ["subnet-global"]},  # nested too
        "Architectures": "arm64",                                                    # a scalar replaces a list
    }
    assert function_properties(template, "G") == {
        "Layers": ["shared-layer"],
        "VpcConfig": {"SecurityGroupIds": ["sg-global"], "SubnetIds": ["subnet-global"]},
        "Architectures": ["x86_64"],
        "Handler": "h",
    }
    # the template itself is left as it was
    assert template["Globals"]["Function"]["Layers"] == ["shared-layer"]
    assert template["Globals"]["Function"]["VpcConfig"]["SecurityGroupIds"] == ["sg-global"]
    assert template["Resources"]["F"]["Properties"]["Layers"] == ["own-layer", {"Ref": "Other"}]


def test_function_properties_without_globals() -> None:
    template = {"Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "h"}}}}
    assert function_properties(template, "F") == {"Handler": "h"}


# --- substitute_definition -------------------------------------------------------------------

def test_substitute_definition() -> None:
    definition = '{"Resource": "${FnArn}", "Next": "${FnArn}-${Other_2}"}'
    assert substitute_definition(definition, {"FnArn": "arn:fn", "Other_2": "x"}) == (
        '{"Resource": "arn:fn", "Next": "arn:fn-x"}')


def test_substitute_definition_unknown_name() -> None:
    with pytest.raises(UnresolvedReference) as caught:
        substitute_definition('{"Resource": "${Known}", "Other": "${Unknown}"}', {"Known": "k"})
    assert str(caught.value) == "${Unknown} in the definition has no DefinitionSubstitutions entry"


def test_substitute_definition_leaves_jsonpath_alone() -> None:
    definition = '{"InputPath": "$.spec", "ResultPath": "$.network"}'
    assert substitute_definition(definition, {}) == definition


# --- the real template -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def test_every_function_gets_runtime_and_handler(real_template: dict[str, Any]) -> None:
    functions = resources_of_type(real_template, "AWS::Serverless::Function")
    assert len(functions) >= 7
    for logical_id in functions:
        props = function_properties(real_template, logical_id)
        assert props["Runtime"] == "python3.12", logical_id
        assert props["Handler"] == "app.lambda_handler", logical_id
        assert (ROOT / props["CodeUri"] / "app.py").is_file(), logical_id
        variables = props["Environment"]["Variables"]
        assert variables["EIPLANE_ARTIFACTS_BUCKET"] == {"Ref": "ArtifactsBucket"}
        assert variables["EIPLANE_STATE_TABLE"] == {"Ref": "FleetStateTable"}


def test_state_machine_substitutions_cover_the_definition(real_template: dict[str, Any]) -> None:
    machines = resources_of_type(real_template, "AWS::Serverless::StateMachine")
    assert machines
    functions = set(resources_of_type(real_template, "AWS::Serverless::Function"))
    for machine in machines.values():
        props = machine["Properties"]
        # YAML (the .asl.yaml files) or JSON, as SAM takes it; Step Functions gets JSON.
        definition = json.dumps(load_yaml((ROOT / props["DefinitionUri"]).read_text()))
        substitutions = props["DefinitionSubstitutions"]
        names = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition))
        assert names <= set(substitutions)
        for value in substitutions.values():
            if "Fn::GetAtt" in value:
                assert value["Fn::GetAtt"][0] in functions
        fake = {name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for name in substitutions}
        json.loads(substitute_definition(definition, fake))
