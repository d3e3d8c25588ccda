"""`eiplane fleet status NAME` and `eiplane invoke NAME --input FILE.json`: the fleet as it serves.

Both read the stack's state table (the spec ProvisionFleet registered, each slot's record, the
prerequisites with the fleet's load balancer) and ask the load balancer for each target's health.
The endpoint is the balancer's DNS name, which resolves inside the fleet's VPC only (the balancer is
internal). Against `eiplane local up`, that name resolves as the embedded AWS's DNS does: to the
load balancer's proxy on this machine, which `local up` writes to local_endpoints_file(port).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.client import BaseClient

from eiplane.cli.commands import CommandError, _stack_output, aws_session, is_loopback
from eiplane.cli.traffic import post

LOCAL_ONLY_ONE_COMMAND = (
    "--local starts an embedded AWS of its own for this one command, where no fleet exists: run `eiplane local up` "
    "(and `eiplane fleet apply ... --endpoint-url http://127.0.0.1:4566`), then pass --endpoint-url here")


def local_endpoints_file(port: int) -> Path:
    """Where `eiplane local up` on `port` writes {load balancer DNS name: {listener port: proxy URL}}."""
    return Path(tempfile.gettempdir()) / f"eiplane-local-{port}" / "load-balancers.json"


def _table(session: Any, dynamodb: BaseClient, args: argparse.Namespace) -> str:
    if args.endpoint_url:  # an `eiplane local up` server: no CloudFormation there
        names = [n for page in dynamodb.get_paginator("list_tables").paginate() for n in page["TableNames"]
                 if "FleetStateTable" in n]
        if len(names) != 1:
            raise CommandError(f"{len(names)} fleet state tables at {args.endpoint_url} ({', '.join(names) or 'none'}): "
                               "is `eiplane local up` serving there?")
        return str(names[0])
    return _stack_output(session, args.stack_name or "eiplane", "FleetStateTableName")


def _items(dynamodb: BaseClient, table: str, fleet: str) -> dict[str, dict[str, Any]]:
    from eiplane.state import plain

    items: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("query").paginate(
            TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": f"FLEET#{fleet}"}}):
        for item in page["Items"]:
            items[item["sk"]["S"]] = {k: plain(v) for k, v in item.items()}
    registration = dynamodb.get_item(TableName=table, Key={"pk": {"S": "REGISTRY"}, "sk": {"S": f"FLEET#{fleet}"}})
    if "Item" in registration:
        items["REGISTRY"] = {k: plain(v) for k, v in registration["Item"].items()}
    return items


def fleet_view(args: argparse.Namespace) -> dict[str, Any]:
    """Everything `fleet status` prints, as data."""
    if args.local:
        raise CommandError(LOCAL_ONLY_ONE_COMMAND)
    session = aws_session(args.region, args.endpoint_url)
    dynamodb = session.client("dynamodb", endpoint_url=args.endpoint_url)
    items = _items(dynamodb, _table(session, dynamodb, args), args.name)
    if "REGISTRY" not in items and "PREREQUISITES" not in items:
        raise CommandError(f"no fleet {args.name} in this stack's state table: apply its spec first (eiplane fleet apply)")
    registration = items.get("REGISTRY", {})
    spec = registration.get("spec") or {}
    prerequisites = items.get("PREREQUISITES", {})
    slots = {int(key[5:]): record for key, record in items.items() if key.startswith("SLOT#")}
    region = spec.get("region") or prerequisites.get("region") or session.region_name
    serving_port = int(((spec.get("serving") or {}).get("port")) or 8080)
    health: dict[str, dict[str, Any]] = {}
    target_group = prerequisites.get("target_group_arn")
    if target_group:
        elbv2 = session.client("elbv2", region_name=region, endpoint_url=args.endpoint_url)
        described = elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        health = {d["Target"]["Id"]: d["TargetHealth"] for d in described}
    endpoint = prerequisites.get("endpoint_url")
    local_url = _local_url(args.endpoint_url, str(endpoint)) if endpoint and is_loopback(args.endpoint_url) else None
    model = spec.get("model") or {}
    rows = []
    for index, record in sorted(slots.items()):
        instance = record.get("instance_id")
        validation = record.get("validation") or {}
        target = health.get(str(instance), {}) if instance else {}
        rows.append({
            "slot": index, "state": record.get("state"), "instance_id": instance,
            "target": target.get("State") or ("not registered" if instance else None),
            "target_reason": target.get("Reason"),
            # what this instance validated and serves (its record), which may not be the spec's version
            "model": f"{record['model_name']} {record['model_version']}" if record.get("model_name") else None,
            "manifest_sha256": record.get("manifest_sha256"),
            "validated_on": validation.get("device"), "validation_passed": validation.get("passed"),
            "serving": validation.get("serving"), "reason": record.get("reason"),
        })
    return {"fleet": args.name, "region": region, "backend": (spec.get("backend") or {}).get("type"),
            "capacity": spec.get("capacity"), "desired": registration.get("desired"), "endpoint": endpoint,
            "model": f"{model.get('name')} {model.get('version')}" if model else None,
            "local_url": local_url, "serving_port": serving_port, "target_group_arn": target_group,
            "in_service": sum(r["state"] == "in_service" for r in rows),
            "healthy": sum(r["target"] == "healthy" for r in rows), "slots": rows}


def _local_url(endpoint_url: str | None, endpoint: str) -> str | None:
    """The proxy URL the embedded AWS's DNS gives the balancer's name (None: `local up` has not written it)."""
    port = urlsplit(endpoint_url or "").port
    if port is None:
        return None
    path = local_endpoints_file(port)
    if not path.exists():
        return None
    parts = urlsplit(endpoint)
    listeners = json.loads(path.read_text()).get(parts.hostname or "", {})
    wanted = str(parts.port or (443 if parts.scheme == "https" else 80))
    return listeners.get(wanted)


def fleet_status(args: argparse.Namespace) -> int:
    view = fleet_view(args)
    capacity = view["capacity"] or {}
    print(f"fleet {view['fleet']} ({view['backend']}) in {view['region']}: {view['in_service']} in service, "
          f"{view['healthy']} healthy at the load balancer; desired {view['desired']} "
          f"(min {capacity.get('min')}, max {capacity.get('max')})")
    print(f"endpoint: {view['endpoint'] or '(none recorded: run fleet apply)'}"
          + (f"  (here: {view['local_url']})" if view["local_url"] else ""))
    print(f"model: {view['model'] or '-'} (the spec's); each slot's is the version its instance validated and serves")
    print(f"{'slot':>4}  {'state':11} {'instance':20} {'target':15} {'model':14} {'manifest':12} validation")
    for row in view["slots"]:
        serving = row["serving"] or {}
        measured = (f"{serving['capacity_rps']:.0f} req/s at p99 <= {serving['latency_objective_ms']:g} ms"
                    if serving.get("capacity_rps") else "")
        validated = ("passed" if row["validation_passed"] else "failed" if row["validation_passed"] is False else "-")
        if row["validated_on"]:
            validated += f" on {row['validated_on']}"
        print(f"{row['slot']:>4}  {row['state'] or '-':11} {row['instance_id'] or '-':20} {row['target'] or '-':15} "
              f"{row['model'] or '-':14} {(row['manifest_sha256'] or '-')[:12]:12} {validated}"
              f"{'; ' + measured if measured else ''}")
        if row["state"] == "failed" and row["reason"]:
            print(f"{'':6}{str(row['reason'])[:200]}")
    if args.json:
        from eiplane.cli.commands import write_json

        write_json(args.json, view)
    return 0


def invoke(args: argparse.Namespace) -> int:
    path = Path(args.input)
    if not path.is_file():
        raise CommandError(f"{args.input}: no such file")
    body = path.read_bytes()
    try:
        json.loads(body)
    except ValueError as exc:
        raise CommandError(f"{args.input} is not JSON: {exc}") from None
    url = args.url
    if url is None:
        view = fleet_view(args)
        url = view["local_url"] or view["endpoint"]
        if not url:
            raise CommandError(f"fleet {args.name} has no endpoint recorded: apply its spec first")
    started = time.perf_counter()
    try:
        status, answer, latency_ms = post(url, body, timeout_s=args.timeout)
    except OSError as exc:
        raise CommandError(f"no answer from {url} within {args.timeout:g} s ({exc}): the load balancer is internal, "
                           "reachable only from the fleet's VPC (or through `eiplane local up`)") from None
    text = answer.decode(errors="replace")
    print(f"HTTP {status} from {url} in {latency_ms:.1f} ms (client side, {1000 * (time.perf_counter() - started):.1f} "
          "ms with the connection)")
    try:
        print(json.dumps(json.loads(text), indent=None if len(text) < 2000 else 1))
    except ValueError:
        print(text)
    return 0 if status == 200 else 1
