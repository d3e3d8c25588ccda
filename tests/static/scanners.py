"""The outside scanners of `make test`: checkov, cfn-lint's serverless rules and parliament.

Pure functions over the scanners' output and the template, so each rule can be shown to fail on
a small broken input, and the tool paths. checkov and parliament live in tools venvs of their own
(Makefile: CHECKOV_VERSION, PARLIAMENT_VERSION); cfn-lint-serverless is in .venv (pyproject's dev).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.static.checks import ROOT, TEMPLATE

CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
PARLIAMENT = ROOT / ".tools" / "parliament" / "bin" / "parliament"
MAKEFILE = ROOT / "Makefile"

# cfn-lint loads the rules of awslabs/serverless-rules from this module (`-a`); their ids are
# ES/WS and four digits, which cfn-lint's own rules (E, W, I and digits) never are.
SERVERLESS_RULES = "cfn_lint_serverless.rules"
SERVERLESS_RULE_ID = re.compile(r"^[EW]S\d{4}$")


def makefile_pin(name: str) -> str:
    """The value of `NAME := value` in the Makefile."""
    match = re.search(rf"^{re.escape(name)}\s*:=\s*(\S+)\s*$", MAKEFILE.read_text(), re.MULTILINE)
    assert match, f"{name} is not set in the Makefile"
    return match.group(1)


# --- the template as CloudFormation sees it -------------------------------------------------

def sam_transformed(path: Path = TEMPLATE) -> dict[str, Any]:
    """The CloudFormation SAM makes of the template (what the embedded AWS deploys: functions,
    their roles, the state machines and their event rules), for the scanners that judge only plain
    CloudFormation resources.

    A SAM resource's Metadata (checkov skips, cfn-lint ignores) stays on the resource of its own
    name; SAM does not copy it to what it generates from it. Here it is copied onto those too (the
    function's role, the state machine's role and event rules: each named with the SAM resource's
    name as prefix), as SAM copies Condition: a reason given on a function covers its role."""
    from eiplane.local.engine import ACCOUNT_ID, DEFAULT_REGION, STACK_NAME
    from eiplane.local.template import _sam_transform

    # The translator asks boto for a region even when it is given one.
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = DEFAULT_REGION
    try:
        transformed = copy.deepcopy(_sam_transform(path.read_text(), DEFAULT_REGION, ACCOUNT_ID, STACK_NAME))
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved
    originals = _load(path).get("Resources") or {}
    for logical_id, resource in transformed["Resources"].items():
        source = generated_from(originals, logical_id)
        if source and source != logical_id and "Metadata" in (originals[source] or {}):
            resource.setdefault("Metadata", copy.deepcopy(originals[source]["Metadata"]))
    return transformed


def _load(path: Path) -> dict[str, Any]:
    from eiplane.local.template import load_template

    return load_template(path)


def generated_from(originals: Iterable[str], logical_id: str) -> str | None:
    """The template resource a transformed resource comes from: itself, or the longest logical id
    of the template that its name starts with (SAM names what it generates after its source)."""
    if logical_id in originals:
        return logical_id
    prefixes = [name for name in originals if logical_id.startswith(name)]
    return max(prefixes, key=len) if prefixes else None


# --- checkov --------------------------------------------------------------------------------

def checkov_reports(stdout: str) -> list[dict[str, Any]]:
    """checkov's `-o json`: one report, or a list of them (one per framework that ran)."""
    parsed = json.loads(stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    return [r for r in reports if isinstance(r, dict)]


def _checkov_line(result: Mapping[str, Any]) -> str:
    lines = result.get("file_line_range") or []
    where = f"{result.get('file_path', '?')}:{lines[0]}" if lines else str(result.get("file_path", "?"))
    return f"{result['check_id']} {result.get('check_name', '')}: {result.get('resource')} ({where})"


def checkov_failures(reports: list[dict[str, Any]]) -> list[str]:
    return [_checkov_line(r) for report in reports for r in (report.get("results") or {}).get("failed_checks", [])]


def checkov_parsing_errors(reports: list[dict[str, Any]]) -> list[str]:
    return [str(e) for report in reports for e in (report.get("results") or {}).get("parsing_errors", [])]


def checkov_skips(template: dict[str, Any]) -> list[tuple[str, Any]]:
    """(logical id, skip entry) for every `Metadata: checkov: skip:` entry of the template."""
    out = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        metadata = (resource or {}).get("Metadata") or {}
        skips = (metadata.get("checkov") or {}).get("skip") if isinstance(metadata, dict) else None
        for entry in skips or []:
            out.append((logical_id, entry))
    return out


def checkov_skip_problems(template: dict[str, Any]) -> list[str]:
    """Every skip must name a check and say why (checkov itself accepts a skip without a comment)."""
    problems = []
    for logical_id, entry in checkov_skips(template):
        if not isinstance(entry, dict) or not str(entry.get("id") or "").strip():
            problems.append(f"{logical_id}: a checkov skip without an id: {entry!r}")
            continue
        if not str(entry.get("comment") or "").strip():
            problems.append(f"{logical_id}: checkov skip {entry['id']} has no comment saying why")
    return problems


def checkov_unused_skips(template: dict[str, Any], reports: list[dict[str, Any]]) -> list[str]:
    """Skips that matched no check of checkov on their resource (or on what SAM made of it): a
    misspelt id, or a check that does not apply to the resource's type."""
    originals = set(template.get("Resources") or {})
    used = set()
    for report in reports:
        for result in (report.get("results") or {}).get("skipped_checks", []):
            source = generated_from(originals, str(result.get("resource", "")).split(".", 1)[-1])
            used.add((source, result.get("check_id")))
    return [f"{logical_id}: checkov skip {entry.get('id')} matched no check on it"
            for logical_id, entry in checkov_skips(template)
            if isinstance(entry, dict) and (logical_id, entry.get("id")) not in used]


# --- cfn-lint -------------------------------------------------------------------------------

def cfn_lint_matches(stdout: str) -> list[dict[str, Any]]:
    return list(json.loads(stdout)) if stdout.strip() else []


def cfn_lint_line(match: Mapping[str, Any]) -> str:
    start = (match.get("Location") or {}).get("Start") or {}
    return (f"{match['Rule']['Id']} {match.get('Message', '')} "
            f"({Path(str(match.get('Filename', '?'))).name}:{start.get('LineNumber', '?')})")


def serverless_rule_matches(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in matches if SERVERLESS_RULE_ID.match(str(m["Rule"]["Id"]))]


def cfn_lint_ignores(template: dict[str, Any]) -> dict[str, list[str]]:
    """logical id -> the rule ids its `Metadata: cfn-lint: config: ignore_checks` lists."""
    out = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        metadata = (resource or {}).get("Metadata") or {}
        config = ((metadata.get("cfn-lint") or {}).get("config") or {}) if isinstance(metadata, dict) else {}
        ignores = config.get("ignore_checks")
        if ignores:
            out[logical_id] = [str(i) for i in (ignores if isinstance(ignores, list) else [ignores])]
    return out


def _resource_lines(raw: str, logical_id: str) -> list[str]:
    """The template text of one resource: from `  Name:` to the next resource or section."""
    lines = raw.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(rf"  {re.escape(logical_id)}:\s*", line):
            block = [line]
            for nxt in lines[i + 1:]:
                if nxt.strip() and not nxt.lstrip().startswith("#") and len(nxt) - len(nxt.lstrip()) <= 2:
                    break
                block.append(nxt)
            return block
    return []


def _is_comment(line: str) -> bool:
    return line.strip().startswith("#") and bool(line.strip().lstrip("#").strip())


def cfn_lint_ignore_problems(template: dict[str, Any], raw: str) -> list[str]:
    """Each ignored rule needs a YAML comment on the line above it saying why: above its `- ID`
    item, or (for `ignore_checks: [A, B]`) above the key, naming every id it explains."""
    problems = []
    for logical_id, ids in cfn_lint_ignores(template).items():
        block = _resource_lines(raw, logical_id)
        key = next((i for i, line in enumerate(block) if re.match(r"\s*ignore_checks:", line)), None)
        if key is None:
            problems.append(f"{logical_id}: ignore_checks not found in the template text")
            continue
        inline = block[key].split(":", 1)[1].strip()
        for rule in ids:
            if inline:
                above = block[key - 1] if key else ""
                if not (_is_comment(above) and (len(ids) == 1 or rule in above)):
                    problems.append(f"{logical_id}: ignore of {rule} has no comment above it saying why")
                continue
            item = next((i for i in range(key + 1, len(block))
                         if re.fullmatch(rf"\s*-\s*[\"']?{re.escape(rule)}[\"']?\s*(#.*)?", block[i])), None)
            if item is None or not _is_comment(block[item - 1]):
                problems.append(f"{logical_id}: ignore of {rule} has no comment above it saying why")
    return problems


# --- parliament -----------------------------------------------------------------------------

def statements_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return list(statements) if isinstance(statements, list) else [statements]


def policy_text(document: Mapping[str, Any]) -> str:
    """The policy as JSON with each statement on a line of its own (line 2 + i for statement i),
    so the line parliament reports names the statement."""
    head = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in document.items() if k != "Statement")
    statements = [json.dumps(s) for s in statements_of(document)]
    return "{" + head + (", " if head else "") + '"Statement": [\n' + ",\n".join(statements) + "\n]}\n"


@dataclass(frozen=True)
class PolicyFinding:
    where: str  # the policy: a role's logical id, a managed policy, or a run-time policy
    sid: str  # the statement's Sid (Statement[i] without one); "-" for the policy as a whole
    issue: str
    subjects: frozenset[str]  # the actions (or the detail) it is about, lower case
    text: str

    def __str__(self) -> str:
        return f"{self.where} {self.sid}: {self.issue} {sorted(self.subjects)} ({self.text})"


def _subjects(finding: Mapping[str, Any]) -> frozenset[str]:
    detail, location = finding.get("detail"), finding.get("location") or {}
    items: list[str] = []
    if isinstance(detail, list):
        items += [str(d.get("action", json.dumps(d))) if isinstance(d, dict) else str(d) for d in detail]
    elif detail:
        items.append(str(detail))
    items += [str(a) for a in location.get("actions", [])]
    return frozenset(i.lower() for i in items) or frozenset({str(finding.get("issue", "")).lower()})


def parliament_findings(stdout: str, policies: Mapping[str, tuple[str, Mapping[str, Any]]]) -> list[PolicyFinding]:
    """parliament's `--json` lines, each tied to its policy and statement. `policies`: the name of
    the file parliament read (its stem) -> (where, the document written with policy_text)."""
    out = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        finding = json.loads(line)
        location = finding.get("location") or {}
        where, document = policies[Path(str(location.get("filepath", ""))).stem]
        statements = statements_of(document)
        index = int(location["line"]) - 2 if isinstance(location.get("line"), int) else -1
        sid = (str(statements[index].get("Sid") or f"Statement[{index}]")
               if 0 <= index < len(statements) else "-")
        text = f"{finding.get('severity', '?')}: {finding.get('title', '')}"
        out.append(PolicyFinding(where, sid, str(finding["issue"]), _subjects(finding), text))
    return out


Allowance = tuple[frozenset[str], str]  # (the subjects it covers, why)


def unexplained_findings(findings: Iterable[PolicyFinding],
                         allowed: Mapping[tuple[str, str, str], Allowance]) -> list[str]:
    problems = []
    for finding in findings:
        allowance = allowed.get((finding.where, finding.sid, finding.issue))
        if allowance is None or not finding.subjects <= {s.lower() for s in allowance[0]}:
            problems.append(str(finding))
    return sorted(set(problems))


def unused_allowances(findings: Iterable[PolicyFinding],
                      allowed: Mapping[tuple[str, str, str], Allowance]) -> list[str]:
    seen = {(f.where, f.sid, f.issue) for f in findings}
    return [f"{key}: allowed, but parliament no longer finds it" for key in allowed if key not in seen]
