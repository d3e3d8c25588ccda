"""What each `eiplane` command does; argument parsing is in eiplane.cli."""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import shutil
import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import yaml
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from eiplane.cli.progress import (
    fleet_summary_from_history,
    follow,
    full_report,
    print_plan,
    print_report,
    print_report_validation,
)
from eiplane.models.spec import parse_fleet_spec
from eiplane.naming import model_prefix

LOCAL_POLL_S = 0.1  # the embedded AWS has no quota to respect
DEFAULT_STACK_NAME = "eiplane"  # what `make deploy` names the stack
# What `eiplane local up` serves by default, and what an SDK needs to reach it when the
# machine has no AWS configuration: the embedded AWS accepts any credentials.
LOCAL_REGION = "us-east-1"
LOCAL_ACCESS_KEY_ID = LOCAL_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto's dummy credentials, not a secret
# template.yaml: `Name: !Sub ${AWS::StackName}-ProvisionFleet`
PROVISION_FLEET_SUFFIX = "-ProvisionFleet"
ROLLOUT_FLEET_SUFFIX = "-RolloutFleet"
NO_REGION = ("no AWS region configured: pass --region, or set AWS_REGION (or AWS_DEFAULT_REGION), "
             "or run `aws configure`")
NO_CREDENTIALS = ("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
                  "or run `aws configure` (`aws sso login` for SSO); an `eiplane local up` endpoint on 127.0.0.1 "
                  "needs none")


class CommandError(Exception):
    """A command cannot run as asked; the message says why and what to do."""


def is_loopback(endpoint_url: str | None) -> bool:
    """An endpoint on this machine (127.0.0.0/8, ::1, localhost): an `eiplane local up` server."""
    if not endpoint_url:
        return False
    try:
        host = urlsplit(endpoint_url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def aws_session(region: str | None, endpoint_url: str | None) -> boto3.session.Session:
    """The session a command's AWS clients come from.

    Against a loopback --endpoint-url (the embedded AWS), whatever AWS configuration this
    machine has is used, and what it lacks is filled in with the embedded AWS's defaults:
    region us-east-1 (unless --region), credentials testing/testing. Against AWS, a missing
    region or missing credentials is a CommandError saying what to set, before any call."""
    session = boto3.session.Session(region_name=region)
    if is_loopback(endpoint_url):
        resolved_region = session.region_name or LOCAL_REGION
        if session.get_credentials() is None:
            return boto3.session.Session(aws_access_key_id=LOCAL_ACCESS_KEY_ID,
                                         aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY, region_name=resolved_region)
        return session if session.region_name else boto3.session.Session(region_name=resolved_region)
    if not session.region_name:
        raise CommandError(NO_REGION)
    if session.get_credentials() is None:
        raise CommandError(NO_CREDENTIALS)
    return session


def load_spec_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        loaded = yaml.safe_load(file.read_text())  # YAML is a superset of JSON: both load here
    except yaml.YAMLError as exc:
        raise CommandError(f"{path} is neither YAML nor JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise CommandError(f"{path} must hold one fleet spec (a mapping), not {type(loaded).__name__}")
    return loaded


def execution_name(fleet: str, now: datetime | None = None) -> str:
    """Unique per start (StartExecution is idempotent by name), readable in the console."""
    return f"{fleet}-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S%fZ')}"


def write_json(path: str, document: Any) -> None:
    """Whole or not at all: a reader waiting for the file (local up's --ready-file) never sees half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(document, indent=2, default=str) + "\n")
    partial.replace(target)


def run_and_report(sfn: BaseClient, s3: BaseClient, state_machine_arn: str, spec: dict[str, Any], name: str,
                   report_path: str | None, poll_s: float = 1.0) -> int:
    """Start, follow, print. Polling a real account once a second keeps GetExecutionHistory
    well inside its quota (5 calls a second refill). The execution's output is the fleet's
    summary; the whole report it names (every slot's validation numbers) is read from S3."""
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(spec))["executionArn"]
    print(f"execution {arn}")
    result = follow(sfn, arn, poll_s=poll_s)
    if result.status == "SUCCEEDED" and spec.get("dry_run"):
        print_plan(result.output)
        document: Any = result.output
    else:
        summary = result.output if result.status == "SUCCEEDED" else fleet_summary_from_history(result)
        report = full_report(s3, summary)
        if report is not None:
            print_report(report)
        if result.status == "SUCCEEDED":
            document = report or result.output
        else:
            print(f"{result.status}: {result.error}: {result.error_message()}", file=sys.stderr)
            document = {"status": result.status, "error": result.error, "message": result.error_message(),
                        "execution_arn": arn, "fleet": report or summary}
    if report_path:
        write_json(report_path, document)
    return 0 if result.status == "SUCCEEDED" else 1


def fleet_apply(args: argparse.Namespace) -> int:
    spec = load_spec_file(args.spec)
    if args.dry_run:
        spec["dry_run"] = True
    parse_fleet_spec(spec)  # InvalidFleetSpec here, before anything starts; the state machine checks again
    name = args.name or execution_name(spec["name"])
    wants_instances = not spec.get("dry_run") and int((spec.get("capacity") or {}).get("desired", 0)) > 0
    if args.local and wants_instances and not args.artifact:
        # Refused before anything starts: the run would fail at PlanLaunch with ArtifactNotFound,
        # whose advice (artifact push) cannot reach an embedded AWS that lives only for this command.
        raise CommandError("--local starts an embedded AWS of its own, with an empty bucket, and this spec wants "
                           f"{spec['capacity']['desired']} instance(s): give the packed model with --artifact DIR "
                           "(eiplane artifact pack ... --out DIR)")
    if args.local:
        from eiplane.local.engine import EmbeddedAws

        with EmbeddedAws() as aws:
            if args.artifact:  # the embedded AWS starts empty: bring the model along
                from eiplane.artifacts.push import push

                push(aws.client("s3"), aws.stack.outputs["ArtifactsBucketName"],
                     model_prefix(spec["name"], spec["model"]["name"], spec["model"]["version"]), args.artifact)
            return run_and_report(aws.client("stepfunctions"), aws.client("s3"), aws.state_machine_arn(), spec, name,
                                  args.report, poll_s=LOCAL_POLL_S)
    if args.artifact:
        raise CommandError("--artifact is for --local; elsewhere push it first: eiplane artifact push")
    session = aws_session(args.region, args.endpoint_url)
    sfn = session.client("stepfunctions", endpoint_url=args.endpoint_url)
    arn = find_state_machine(session, sfn, args)
    return run_and_report(sfn, session.client("s3", endpoint_url=args.endpoint_url), arn, spec, name, args.report,
                          poll_s=LOCAL_POLL_S if is_loopback(args.endpoint_url) else 1.0)


def fleet_rollout(args: argparse.Namespace) -> int:
    """Start RolloutFleet with the spec naming the new version, follow it, print its outcome: exit 0 when
    it rolled out, 1 when it rolled back (the cause says why and what serves now) or failed."""
    spec = load_spec_file(args.spec)
    parse_fleet_spec(spec)  # InvalidFleetSpec here, before anything starts; the state machine checks again
    session = aws_session(args.region, args.endpoint_url)
    sfn = session.client("stepfunctions", endpoint_url=args.endpoint_url)
    machine = find_state_machine(session, sfn, args, ROLLOUT_FLEET_SUFFIX, "RolloutFleetStateMachineArn")
    name = args.name or execution_name(f"rollout-{spec['name']}")
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(spec))["executionArn"]
    print(f"execution {arn}")
    result = follow(sfn, arn, poll_s=LOCAL_POLL_S if is_loopback(args.endpoint_url) else 1.0)
    if result.status == "SUCCEEDED":
        document: Any = result.output
        print(f"rolled out: {document['version_before']} -> {document['version_after']} in {document['batches']} "
              f"batch(es), {document['replaced']} instance(s) replaced; {document['reason']}")
    else:
        document = {"status": result.status, "error": result.error, "message": result.error_message(),
                    "execution_arn": arn}
        print(f"{result.status}: {result.error}: {result.error_message()}", file=sys.stderr)
    if args.report:
        write_json(args.report, document)
    return 0 if result.status == "SUCCEEDED" else 1


def artifact_pack(args: argparse.Namespace) -> int:
    try:
        from eiplane.artifacts.pack import load_model_factory, load_saved_module, pack
    except ImportError as exc:
        raise CommandError(f"packing needs torch: pip install 'eiplane[torch]' ({exc})") from None
    try:
        shape = tuple(int(d) for d in args.input.lower().split("x"))
        batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        raise CommandError(f"--input {args.input!r} / --batch-sizes {args.batch_sizes!r}: "
                           "write dimensions like 3x224x224 and sizes like 1,8,32") from None
    model = load_model_factory(args.model) if args.model else load_saved_module(args.module_file, trusted=args.trusted)
    manifest = pack(model, shape, name=args.name, version=args.version, out_dir=args.out, batch_sizes=batch_sizes,
                    target=args.target, examples=args.examples, seed=args.seed)
    print(f"packed {manifest.name} {manifest.version} into {args.out} (torch {manifest.torch_version}): "
          + ", ".join(f"{name} {digest[:12]}" for name, digest in sorted(manifest.files.items())))
    return 0


def artifact_push(args: argparse.Namespace) -> int:
    from eiplane.artifacts.manifest import load_manifest
    from eiplane.artifacts.push import push

    manifest = load_manifest(args.artifact_dir)  # ArtifactError if it is not a packed artifact
    session = aws_session(args.region, args.endpoint_url)
    s3 = session.client("s3", endpoint_url=args.endpoint_url)
    bucket = args.bucket or _artifacts_bucket(session, s3, args)
    prefix = model_prefix(args.fleet, manifest.name, manifest.version)
    pushed = push(s3, bucket, prefix, args.artifact_dir)
    print(f"pushed to s3://{bucket}/{prefix} (manifest sha256 {pushed['manifest_sha256']}); "
          f"the fleet spec's model is {{name: {manifest.name}, version: {manifest.version}}}")
    return 0


def artifact_validate(args: argparse.Namespace) -> int:
    """The agent, with the interpreter running this command, on this machine's device."""
    import subprocess
    import tempfile

    from eiplane.agent import AGENT_PATH
    from eiplane.artifacts.manifest import load_manifest, manifest_digest
    from eiplane.artifacts.result import ValidationResult

    load_manifest(args.artifact_dir)  # ArtifactError if it is not a packed artifact
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or str(Path(scratch) / "result.json")
        completed = subprocess.run(
            [sys.executable, str(AGENT_PATH), "--artifact", args.artifact_dir,
             "--manifest-sha256", manifest_digest(args.artifact_dir), "--device", args.device,
             "--precisions", args.precisions, "--instance-id", "local", "--iterations", str(args.iterations),
             "--out", out], check=False)
        if not Path(out).is_file():
            raise CommandError(f"the validation agent exited {completed.returncode} without writing its result "
                               "(its output is above)")
        result = ValidationResult.model_validate(json.loads(Path(out).read_text()))
    print_report_validation(result.summary())
    return completed.returncode


def _artifacts_bucket(session: boto3.session.Session, s3: BaseClient, args: argparse.Namespace) -> str:
    if args.endpoint_url:  # an `eiplane local up` server: no CloudFormation there
        names = sorted(str(b["Name"]) for b in s3.list_buckets().get("Buckets", []))
        # The template's bucket has no BucketName: <stack>-artifactsbucket-<suffix>, lower case.
        wanted = f"{args.stack_name.lower()}-artifactsbucket-" if args.stack_name else None
        matches = [n for n in names if n.startswith(wanted)] if wanted else [n for n in names if "-artifactsbucket-" in n]
        if len(matches) == 1:
            return matches[0]
        what = f"bucket {wanted}*" if wanted else "artifacts bucket (<stack>-artifactsbucket-*)"
        if not matches:
            raise CommandError(f"no {what} at {args.endpoint_url} (buckets there: {', '.join(names) or 'none'}); "
                               "pass --bucket, or --stack-name")
        raise CommandError(f"{len(matches)} artifacts buckets at {args.endpoint_url} ({', '.join(matches)}): "
                           "pass --bucket or --stack-name")
    return _stack_output(session, args.stack_name or DEFAULT_STACK_NAME, "ArtifactsBucketName")


def _stack_output(session: boto3.session.Session, stack_name: str, key: str) -> str:
    cloudformation = session.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:  # anything else (access denied, ...) is for eiplane.cli.main to explain
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
            raise CommandError(f"no stack {stack_name} in {session.region_name}: deploy it (`make deploy`), "
                               "or pass --stack-name / --region") from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if key not in outputs:
        raise CommandError(f"stack {stack_name} has no {key} output: is it eiplane's template.yaml?")
    return str(outputs[key])


def find_state_machine(session: boto3.session.Session, sfn: BaseClient, args: argparse.Namespace,
                       suffix: str = PROVISION_FLEET_SUFFIX, output: str = "ProvisionFleetStateMachineArn") -> str:
    """A state machine of the stack, named `<stack><suffix>` (template.yaml): --state-machine-arn if given; at
    an endpoint (no CloudFormation there), the one so named, --stack-name's if given, else the only one;
    otherwise the stack's output `output`."""
    if getattr(args, "state_machine_arn", None):
        return str(args.state_machine_arn)
    if args.endpoint_url:
        machines = {str(m["name"]): str(m["stateMachineArn"])
                    for page in sfn.get_paginator("list_state_machines").paginate() for m in page["stateMachines"]}
        wanted = f"{args.stack_name}{suffix}" if args.stack_name else None
        matches = sorted(n for n in machines if (n == wanted if wanted else n.endswith(suffix)))
        if len(matches) == 1:
            return machines[matches[0]]
        if not matches:
            raise CommandError(f"no state machine {wanted or '<stack>' + suffix} at {args.endpoint_url} "
                               f"(state machines there: {', '.join(sorted(machines)) or 'none'}); "
                               "pass --stack-name or --state-machine-arn")
        raise CommandError(f"{len(matches)} {suffix[1:]} state machines at {args.endpoint_url} "
                           f"({', '.join(matches)}): pass --stack-name or --state-machine-arn")
    return _stack_output(session, args.stack_name or DEFAULT_STACK_NAME, output)


def _check_port_free(port: int) -> None:
    """A busy port would leave the embedded server's thread dead and `local up` waiting for ever."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: only a listener blocks
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CommandError(f"cannot serve on 127.0.0.1:{port} ({exc.strerror}; another `eiplane local up`?): "
                               "pick another --port, or --port 0 for a free one") from None


def local_up(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port}: a port is 0-65535 (0: any free one)")
    _check_port_free(args.port)
    from eiplane.local.engine import EmbeddedAws

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from eiplane.cli.serving import local_endpoints_file

    aws = EmbeddedAws(server_port=args.port, region=args.region, echo_logs=args.echo_logs)
    aws.start()
    endpoints = local_endpoints_file(int(urlsplit(aws.endpoint_url or "").port or 0))
    try:
        state_machine = aws.state_machine_arn()
        print(f"embedded AWS on {aws.endpoint_url} (region {aws.region}); Ctrl-C stops it")
        for key, value in aws.stack.outputs.items():
            print(f"  {key}: {value}")
        print("try:\n  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws stepfunctions start-execution "
              f"--endpoint-url {aws.endpoint_url} --region {aws.region} \\\n"
              f"    --state-machine-arn {state_machine} --name try-1 "
              "--input file://events/provision_fleet_gpu.json\n"
              f"  eiplane fleet apply events/provision_fleet_gpu.json --endpoint-url {aws.endpoint_url}"
              + ("" if aws.region == LOCAL_REGION else f" --region {aws.region}"), flush=True)
        if args.ready_file:
            write_json(args.ready_file, {"endpoint_url": aws.endpoint_url, "region": aws.region,
                                         "outputs": aws.stack.outputs})
        # Real time moves the embedded AWS's clock here (health checks, drains), each minute's load balancer
        # metrics are published as they happen, and the balancers' DNS names resolve (eiplane fleet status).
        aws.load_balancers.start_publisher()
        while not stop.wait(1.0):
            aws.clock.advance(1.0)
            write_json(str(endpoints), aws.load_balancers.dns_table())
    finally:
        aws.stop()
        # The balancers' addresses go with the server: a later one on this port must not find them.
        shutil.rmtree(endpoints.parent, ignore_errors=True)
    return 0


def local_invoke(args: argparse.Namespace) -> int:
    from eiplane.local.engine import EmbeddedAws

    event_file = Path(args.event)
    if not event_file.is_file():
        raise CommandError(f"{args.event}: no such event file")
    try:
        event = json.loads(event_file.read_text())
    except ValueError as exc:
        raise CommandError(f"{args.event} is not JSON: {exc}") from None
    with EmbeddedAws(region=args.region) as aws:
        functions = aws.stack.functions
        logical = args.function if args.function in functions else _by_code_dir(aws, args.function)
        response = aws.client("lambda").invoke(FunctionName=functions[logical], Payload=json.dumps(event),
                                               LogType="Tail")
        logs = base64.b64decode(response.get("LogResult", "")).decode()
        if logs:
            sys.stderr.write(logs)
        payload = json.loads(response["Payload"].read() or b"null")
    print(json.dumps(payload, indent=2))
    return 1 if response.get("FunctionError") else 0


def _by_code_dir(aws: Any, name: str) -> str:
    """Accept the function folder name too (validate_fleet_spec), as in functions/."""
    from eiplane.local.template import function_properties, load_template

    template = load_template(aws.root / "template.yaml")
    for logical in aws.stack.functions:
        if Path(function_properties(template, logical)["CodeUri"]).name == name:
            return str(logical)
    known = ", ".join(sorted(aws.stack.functions))
    raise CommandError(f"no function {name!r} in template.yaml; one of: {known}")


def bench_control_plane_cost(args: argparse.Namespace) -> int:
    from eiplane.bench.control_plane_cost import measure, render

    try:
        sizes = tuple(int(n) for n in args.sizes.split(","))
    except ValueError:
        raise CommandError(f"--sizes {args.sizes!r}: write fleet sizes like 0,1,2,4") from None
    if not all(0 <= n <= 100 for n in sizes):
        raise CommandError(f"--sizes {args.sizes!r}: each size is 0-100 (a fleet's capacity.max)")
    measured = measure(sizes)
    print(render(measured))
    if args.json:
        write_json(args.json, measured)
    return 0


def bench_capacity(args: argparse.Namespace) -> int:
    if args.legacy:
        return _bench_capacity_legacy(args)
    from pydantic import ValidationError

    from eiplane.capacity.benchmark import eiplane_settings
    from eiplane.capacity.evaluation import bench_families, evaluation_config
    from eiplane.capacity.families import FAMILIES
    from eiplane.capacity.policy import PolicySettings

    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    unknown = [f for f in families or () if f not in FAMILIES]
    if unknown:
        raise CommandError(f"--families: unknown {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    if args.workers < 1 or (args.limit is not None and args.limit < 1) or (args.max_minutes is not None
                                                                         and args.max_minutes < 1):
        raise CommandError("--workers, --limit and --max-minutes must be >= 1")
    overrides: dict[str, Any] = {}
    for setting in args.setting or ():
        key, sep, value = setting.partition("=")
        if not sep or key.strip() not in PolicySettings.model_fields:
            raise CommandError(f"--setting {setting!r}: give KEY=VALUE, KEY one of eiplane's policy settings: "
                               f"{', '.join(PolicySettings.model_fields)}")
        overrides[key.strip()] = None if value.strip() == "None" else value.strip()
    try:  # pydantic converts and checks each value as it does the Lambda's settings
        settings = eiplane_settings(evaluation_config(args.launch_minutes, args.interval_minutes), **overrides)
    except ValidationError as exc:
        raise CommandError(f"--setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    written = bench_families(args.out, args.which, L=args.launch_minutes, N=args.interval_minutes, workers=args.workers,
                             families=families, limit=args.limit, max_minutes=args.max_minutes,
                             warm_pool=not args.no_warm_pool, plot=not args.no_plot, settings=settings,
                             progress=progress if args.progress else None)
    print(written["table"])
    if "plot_skipped" in written:
        print(f"(no plot: {written['plot_skipped']})")
    print("\nwrote " + ", ".join(written["files"]))
    return 0


def _bench_capacity_legacy(args: argparse.Namespace) -> int:
    from eiplane.capacity.benchmark import bench_capacity as run

    written = run(args.out, L=args.launch_minutes, N=args.interval_minutes, curves=not args.no_curves,
                  workers=args.workers)
    print(written["table"])
    if "equal_violation" in written:
        print("\ncost / oracle at equal violation rates:\n" + written["equal_violation"])
    if "plot_skipped" in written:
        print(f"(no plot: {written['plot_skipped']})")
    print("\nwrote " + ", ".join(written["files"]))
    return 0


def _demand_trace(path: str, column: str | None) -> list[float]:
    """The demand of a trace file, read once; a missing or malformed file is the user's: one line, exit 2."""
    from eiplane.capacity.simulate import TraceError, read_trace

    if not Path(path).is_file():
        raise CommandError(f"{path}: no such trace file")
    try:
        return read_trace(path, column)
    except TraceError as exc:  # says the file, and the line and the cell where there is one
        raise CommandError(str(exc)) from None


def bench_simulator(args: argparse.Namespace) -> int:
    from eiplane.capacity.benchmark import simulator_speed
    from eiplane.capacity.traces import diurnal

    if args.trace:
        demand, name = _demand_trace(args.trace, args.column), Path(args.trace).stem
    else:
        if args.days < 1:
            raise CommandError(f"--days {args.days}: at least 1")
        demand, name = diurnal(days=args.days), f"diurnal, {args.days} days"
    print(simulator_speed(demand, name, cache=not args.no_cache).render())
    return 0


def simulate(args: argparse.Namespace) -> int:
    from eiplane.capacity.simulate import SimConfig, simulate_trace

    demand = _demand_trace(args.trace, args.column)
    if args.capacity_rps <= 0 or args.interval_minutes < 1 or args.launch_minutes < 0 or args.drain_minutes < 0:
        raise CommandError("--capacity-rps must be > 0, --interval-minutes >= 1, --launch-minutes and "
                           "--drain-minutes >= 0")
    config = SimConfig(launch_minutes=args.launch_minutes, interval_minutes=args.interval_minutes,
                       drain_minutes=args.drain_minutes, capacity_rps=args.capacity_rps)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    summaries = simulate_trace(demand, Path(args.trace).stem, args.out, config)
    print("| policy | instance-hours | cost / oracle | violation min % | unserved % | launches |")
    print("| --- | --- | --- | --- | --- | --- |")
    for summary in summaries:
        row = summary.as_dict()
        print(f"| {row['policy']} | {row['instance_hours']:.1f} | {row['cost_vs_oracle']:.3f} | "
              f"{row['violation_minutes_pct']:.3f} | {row['unserved_pct']:.4f} | {row['launches']} |")
    print(f"timelines and summary.json in {args.out}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from eiplane.cli.demo import run_demo

    return run_demo(report_path=args.report)


def bench_serving(args: argparse.Namespace) -> int:
    from eiplane.bench.serving import measure, render

    artifact = Path(args.artifact) if args.artifact else None
    if artifact is not None and not (artifact / "manifest.json").is_file():
        raise CommandError(f"{artifact}: no manifest.json (pack one with `eiplane artifact pack`)")
    if args.seconds <= 0:
        raise CommandError("--seconds must be > 0")
    measured = measure(artifact, device=args.device, seconds=args.seconds, model=args.model)
    print(render(measured))
    if args.json:
        write_json(args.json, measured)
    return 0
