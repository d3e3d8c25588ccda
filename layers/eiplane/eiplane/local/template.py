"""Reads template.yaml the way CloudFormation does, for the parts the embedded AWS deploys:
short-form intrinsics (!Ref, !Sub, !GetAtt), SAM Globals, and the references between
resources. Nothing here is a second copy of the template: the engine deploys what it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags turned into their long form."""


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
    return dict(yaml.load(path.read_text(), Loader=_CfnLoader))  # noqa: S506 (SafeLoader subclass)


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
