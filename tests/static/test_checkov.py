"""checkov on template.yaml and on the CloudFormation SAM makes of it, as part of `make test`.

`checkov --framework cloudformation` reads template.yaml itself: its Lambda checks take
AWS::Serverless::Function as well as AWS::Lambda::Function, and the bucket, table, log group and
managed policy are plain CloudFormation. It does not expand SAM, so the functions' and state
machines' IAM roles, whose inline policies its IAM checks judge, exist only in the transformed
template: both files go to one run. (`--framework serverless` is the Serverless Framework's
serverless.yml; on template.yaml it has "no runners to run".)

Every finding is fixed in template.yaml or skipped on its resource, with the reason:
`Metadata: checkov: skip: [{id: CKV_AWS_xxx, comment: why}]`; a skip on a SAM resource also
covers what SAM makes of it (tests/static/scanners.py: sam_transformed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.static.checks import ROOT, TEMPLATE, require_tool, run_tool
from tests.static.scanners import (
    CHECKOV,
    checkov_failures,
    checkov_parsing_errors,
    checkov_reports,
    checkov_skip_problems,
    checkov_unused_skips,
    makefile_pin,
    sam_transformed,
)

pytestmark = pytest.mark.static

CheckovRun = tuple[list[dict[str, Any]], str]


@pytest.fixture(scope="module")
def checkov_run(tmp_path_factory: pytest.TempPathFactory) -> CheckovRun:
    """One checkov run (tens of seconds) for the module: (its reports, its output for messages)."""
    checkov = require_tool(CHECKOV)
    transformed = tmp_path_factory.mktemp("checkov") / "transformed.json"
    transformed.write_text(json.dumps(sam_transformed(), indent=1))
    # --skip-download: no call to Prisma Cloud for its guideline ids (this machine reaches only
    # package registries).
    result = run_tool([checkov, "-f", TEMPLATE.relative_to(ROOT), "-f", transformed, "--framework", "cloudformation",
                       "--skip-download", "-o", "json"], timeout=600)
    output = f"exit {result.returncode}\n--- stdout\n{result.stdout[-20000:]}\n--- stderr\n{result.stderr[-5000:]}"
    assert result.returncode in (0, 1), output  # 1: failed checks, anything else: checkov broke
    return checkov_reports(result.stdout), output


def test_checkov_is_the_pinned_version(checkov_run: CheckovRun) -> None:
    reports, output = checkov_run
    versions = {(r.get("summary") or {}).get("checkov_version") for r in reports}
    assert versions == {makefile_pin("CHECKOV_VERSION")}, output


def test_checkov_reads_both_files(checkov_run: CheckovRun) -> None:
    reports, output = checkov_run
    assert not checkov_parsing_errors(reports), output
    files = {Path(str(r.get("file_path"))).name for report in reports
             for kind in ("passed_checks", "failed_checks", "skipped_checks")
             for r in (report.get("results") or {}).get(kind, [])}
    assert {"template.yaml", "transformed.json"} <= files, output


def test_checkov_finds_nothing(checkov_run: CheckovRun) -> None:
    reports, _ = checkov_run
    failures = checkov_failures(reports)
    assert not failures, ("checkov: fix these in template.yaml, or skip one on its resource with a comment "
                          "saying why:\n" + "\n".join(failures))


def test_every_checkov_skip_says_why(template: dict[str, Any]) -> None:
    assert not checkov_skip_problems(template)


def test_every_checkov_skip_matches_a_check(template: dict[str, Any], checkov_run: CheckovRun) -> None:
    reports, _ = checkov_run
    assert not checkov_unused_skips(template, reports)


# --- the rules themselves, on small inputs ----------------------------------------------------

def _template_with_skips(*skips: Any) -> dict[str, Any]:
    return {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Metadata": {"checkov": {"skip": list(skips)}}}}}


def test_a_skip_without_a_comment_is_a_problem() -> None:
    problems = checkov_skip_problems(_template_with_skips({"id": "CKV_AWS_18"}, {"id": "CKV_AWS_21", "comment": " "},
                                                          {"comment": "no id"}, {"id": "CKV_AWS_19", "comment": "why"}))
    assert len(problems) == 3, problems
    assert "CKV_AWS_18 has no comment" in problems[0]


def test_a_failed_check_and_an_unused_skip_are_reported() -> None:
    report = {"results": {
        "failed_checks": [{"check_id": "CKV_AWS_18", "check_name": "access logging", "resource": "AWS::S3::Bucket.Bucket",
                           "file_path": "/template.yaml", "file_line_range": [3, 9]}],
        "skipped_checks": [{"check_id": "CKV_AWS_21", "resource": "AWS::IAM::Role.BucketRole"}],
    }}
    assert checkov_failures([report]) == ["CKV_AWS_18 access logging: AWS::S3::Bucket.Bucket (/template.yaml:3)"]
    template = _template_with_skips({"id": "CKV_AWS_21", "comment": "used, by what SAM made of it"},
                                    {"id": "CKV_AWS_99", "comment": "matches nothing"})
    assert checkov_unused_skips(template, [report]) == ["Bucket: checkov skip CKV_AWS_99 matched no check on it"]
