"""Reads template.yaml the way CloudFormation does, for the parts the embedded AWS deploys:
short-form intrinsics (!Ref, !Sub, !GetAtt), SAM Globals, and the references between
resources. Nothing here is a second copy of the template: the engine deploys what it reads.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser where PyYAML has it (about ten times faster on the template): the engine reads it
# at every start.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags turned into their long form."""

    # Its own tables: aws-sam-translator adds a catch-all "!" constructor to yaml.SafeLoader itself,
    # which would otherwise turn an unknown tag here into an intrinsic instead of an error.
    yaml_constructors = dict(yaml.SafeLoader.yaml_constructors)
    yaml_multi_constructors: dict[str, Any] = {}


def _intrinsic(name: str) -> Any:
    def construct(loader: _CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}
    return construct


for _tag, _name in {"!Ref": "Ref", "!Sub": "Fn::Sub", "!GetAtt": "Fn::GetAtt", "!Join": "Fn::Join",
                    "!If": "Fn::If", "!Equals": "Fn::Equals", "!Not": "Fn::Not", "!Select": "Fn::Select",
                    "!Split": "Fn::Split", "!FindInMap": "Fn::FindInMap", "!ImportValue": "Fn::ImportValue",
                    "!GetAZs": "Fn::GetAZs", "!Condition": "Condition"}.items():
    _CfnLoader.add_constructor(_tag, _intrinsic(_name))


def load_template(path: Path) -> dict[str, Any]:
    """The template, parsed (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed(path.read_text()))


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> dict[str, Any]:
    return dict(yaml.load(text, Loader=_CfnLoader))  # noqa: S506 (SafeLoader subclass)


def load_yaml(text: str) -> Any:
    """Plain YAML (an ASL definition), with libyaml where there is one."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 (a safe loader)


class UnresolvedReference(Exception):
    pass


@dataclass
class References:
    """Physical ids (Ref) and attributes (GetAtt) of deployed resources, and pseudo parameters."""

    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)  # "Logical.Attr" -> value

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self._attribute(".".join(arg))
            if key == "Fn::Sub":
                template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self._sub(template, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in arg[1])
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> str:
        if name not in self.refs:
            raise UnresolvedReference(f"!Ref {name}: not deployed in the embedded AWS")
        return self.refs[name]

    def _attribute(self, name: str) -> str:
        if name not in self.attributes:
            raise UnresolvedReference(f"!GetAtt {name}: not deployed in the embedded AWS")
        return self.attributes[name]

    def _sub(self, template: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is CloudFormation's escape for a literal ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            return self._attribute(name) if "." in name and not name.startswith("AWS::") else self._ref(name)
        return re.sub(r"\$\{([^}]+)\}", replace, template)


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def conditions(template: dict[str, Any], refs: References) -> dict[str, bool]:
    """The template's Conditions, evaluated as CloudFormation does (Fn::Equals, Fn::Not, Fn::And, Fn::Or,
    Condition) with the parameters' values in `refs`."""
    definitions = template.get("Conditions") or {}
    values: dict[str, bool] = {}

    def evaluate(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Condition":
                return named(arg)
            if key == "Fn::Equals":
                return evaluate(arg[0]) == evaluate(arg[1])
            if key == "Fn::Not":
                return not evaluate(arg[0])
            if key == "Fn::And":
                return all(evaluate(a) for a in arg)
            if key == "Fn::Or":
                return any(evaluate(a) for a in arg)
        return refs.resolve(value)

    def named(name: str) -> bool:
        if name not in values:
            values[name] = bool(evaluate(definitions[name]))
        return values[name]

    return {name: named(name) for name in definitions}


def function_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties with SAM Globals merged in, as SAM merges them: maps merge,
    lists are added to (Globals first), scalars are replaced."""
    return _merge(dict(template.get("Globals", {}).get("Function", {})),
                  template["Resources"][logical_id].get("Properties", {}))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


def substitute_definition(definition: str, substitutions: dict[str, str]) -> str:
    """DefinitionSubstitutions, as Step Functions applies them; an unknown ${Name} is an error."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in substitutions:
            raise UnresolvedReference(f"${{{name}}} in the definition has no DefinitionSubstitutions entry")
        return substitutions[name]
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", replace, definition)


@functools.cache
def _sam_transform(text: str, region: str, account: str, stack: str) -> dict[str, Any]:
    """The CloudFormation SAM makes of the template (aws-sam-translator, what `sam deploy` and
    CloudFormation's AWS::Serverless transform run). Local code and definition paths stand in as S3
    locations, as `sam package` would make them."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(text)
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "DefinitionUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://embedded-sam-package/{name}"

    class _ManagedPolicies:  # the only AWS managed policy SAM attaches by name
        @staticmethod
        def load() -> dict[str, str]:
            return {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}

    parameters = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws", "AWS::StackName": stack}
    return dict(transform(template, parameters, _ManagedPolicies()))  # type: ignore[arg-type]


def sam_roles(path: Path, region: str, account: str, stack: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every IAM role of the transformed template: logical id -> (the logical id of the resource that
    runs as it: a function, a state machine or an EventBridge rule; the role's properties)."""
    transformed = _sam_transform(path.read_text(), region, account, stack)
    resources = transformed["Resources"]
    owners: dict[str, str] = {}
    for name, resource in resources.items():
        properties = resource.get("Properties") or {}
        references = [properties.get("Role"), properties.get("RoleArn"),
                      *(t.get("RoleArn") for t in properties.get("Targets") or [])]
        for reference in references:
            if isinstance(reference, dict) and "Fn::GetAtt" in reference:
                owners[reference["Fn::GetAtt"][0]] = name
    return {name: (owners.get(name, name), copy.deepcopy(resource["Properties"]))
            for name, resource in resources.items() if resource["Type"] == "AWS::IAM::Role"}
