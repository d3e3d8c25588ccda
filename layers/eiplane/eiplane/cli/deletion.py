"""`eiplane fleet delete NAME` and `eiplane teardown`: DeleteFleet started, followed and its report printed.

Teardown deletes the stack's fleets one after another (not at once): a VPC endpoint two fleets share is
kept by the first deletion and deleted by the second, which sees the first's records gone."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from botocore.client import BaseClient

from eiplane.cli.commands import (
    DEFAULT_STACK_NAME,
    LOCAL_POLL_S,
    CommandError,
    aws_session,
    execution_name,
    find_state_machine,
    is_loopback,
    write_json,
)
from eiplane.cli.progress import follow
from eiplane.executions import ExecutionResult
from eiplane.models.deletion import parse_delete_request

DELETE_FLEET_SUFFIX = "-DeleteFleet"  # template.yaml: `Name: !Sub ${AWS::StackName}-DeleteFleet`
LOCAL_REFUSED = ("--local starts an embedded AWS of its own for this one command, where no fleet exists: run "
                 "`eiplane local up` and pass --endpoint-url")


def _state_machine(session: Any, sfn: BaseClient, args: argparse.Namespace) -> str:
    return find_state_machine(session, sfn, args, DELETE_FLEET_SUFFIX, "DeleteFleetStateMachineArn")


def _confirm(what: str, args: argparse.Namespace) -> None:
    """A real deletion (not a dry run) is confirmed by typing what it deletes, or --yes."""
    if args.dry_run or args.yes:
        return
    if not sys.stdin.isatty():
        raise CommandError(f"deleting {what} cannot be undone: pass --yes (or --dry-run to see what it deletes)")
    typed = input(f"delete {what}? This cannot be undone. Type '{what}' to go on: ").strip()
    if typed != what:
        raise CommandError("not confirmed: nothing was deleted")


def print_deletion(report: dict[str, Any], out: TextIO | None = None) -> None:
    """The report as a table: kind, name, id, what was (or would be) done and why."""
    out = out or sys.stdout
    print(f"fleet {report['fleet']} in {report['region']}" + (" (plan only: nothing changed)" if report["dry_run"]
                                                              else ""), file=out)
    for item in report["items"]:
        print(f"  {item['action']:<8} {item['kind']:<19} {item['name']:<40} {item['id']}", file=out)
        if item.get("reason"):
            print(f"  {'':<8} {'':<19} - {item['reason']}", file=out)
    print(f"  {report['message']}", file=out)


def run_deletion(sfn: BaseClient, s3: BaseClient, machine: str, request: dict[str, Any], poll_s: float,
                 out: TextIO | None = None) -> tuple[ExecutionResult, dict[str, Any] | None]:
    """Start DeleteFleet, follow it state by state, print its report (read from S3)."""
    out = out or sys.stdout
    name = execution_name(f"delete-{request['fleet']}")
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(request))["executionArn"]
    print(f"execution {arn}", file=out)
    result = follow(sfn, arn, out=out, poll_s=poll_s)
    report = None
    if result.status == "SUCCEEDED":
        where = result.output["report"]
        report = json.loads(s3.get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read())
        print_deletion(report, out)
    else:
        print(f"{result.status}: {result.error}: {result.error_message()} (what is left is still tagged and "
              "recorded: run the deletion again)", file=sys.stderr)
    return result, report


def _clients(args: argparse.Namespace) -> tuple[Any, BaseClient, BaseClient, float]:
    if getattr(args, "local", False):
        raise CommandError(LOCAL_REFUSED)
    session = aws_session(args.region, args.endpoint_url)
    sfn = session.client("stepfunctions", endpoint_url=args.endpoint_url)
    return session, sfn, session.client("s3", endpoint_url=args.endpoint_url), \
        LOCAL_POLL_S if is_loopback(args.endpoint_url) else 1.0


def fleet_delete(args: argparse.Namespace) -> int:
    request = {"fleet": args.name, "dry_run": args.dry_run, "purge_artifacts": args.purge_artifacts}
    parse_delete_request(request)  # InvalidDeleteRequest here, before anything starts
    session, sfn, s3, poll_s = _clients(args)
    machine = _state_machine(session, sfn, args)
    _confirm(args.name, args)
    result, report = run_deletion(sfn, s3, machine, request, poll_s)
    if args.report:
        write_json(args.report, report or {"status": result.status, "error": result.error,
                                           "message": result.error_message(), "execution_arn": result.arn})
    return 0 if result.status == "SUCCEEDED" else 1


def _fleets(session: Any, args: argparse.Namespace) -> list[str]:
    """Every fleet of the stack's registry, those a failed deletion left marked too."""
    from eiplane.cli.serving import _table

    dynamodb = session.client("dynamodb", endpoint_url=args.endpoint_url)
    table = _table(session, dynamodb, args)
    names = []
    for page in dynamodb.get_paginator("query").paginate(
            TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "REGISTRY"}},
            ProjectionExpression="sk"):
        names += [item["sk"]["S"].removeprefix("FLEET#") for item in page["Items"]]
    return sorted(names)


def teardown(args: argparse.Namespace) -> int:
    session, sfn, s3, poll_s = _clients(args)
    machine = _state_machine(session, sfn, args)
    fleets = _fleets(session, args)
    if not fleets:
        print("no fleets in this stack's registry: nothing to delete (sam delete leaves the bucket and the table, "
              "which it retains)")
        return 0
    stack = args.stack_name or DEFAULT_STACK_NAME
    _confirm(f"every fleet of {stack}" if not args.dry_run else stack, args)
    failed = []
    for fleet in fleets:
        print(f"== {fleet}")
        result, _ = run_deletion(sfn, s3, machine, {"fleet": fleet, "dry_run": args.dry_run,
                                                   "purge_artifacts": args.purge_artifacts}, poll_s)
        if result.status != "SUCCEEDED":
            failed.append(f"{fleet} ({result.error})")
    if failed:
        print(f"teardown: {len(failed)} of {len(fleets)} fleet(s) not deleted: {', '.join(failed)}; run it again",
              file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    print(f"teardown: {verb} {len(fleets)} fleet(s): {', '.join(fleets)}"
          + ("" if args.dry_run else "; nothing of them bills any more: `sam delete` may remove the stack"))
    return 0
